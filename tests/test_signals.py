"""Every signal that ends focalrig leaves the lens at DC 0 mA (and a recording finalised, naming the signal).

The lens is a simulated LD4 served by ``focalrig sim lens`` on a pty in its own process, so the command under
test talks real serial to it, and what the lens was left doing is read back over the wire after the command
has gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import serial

from capture.recording import Recording
from capture.recording.layout import RUN_LOG
from tests.ld4_pty import DC_MODE, lens_state, served_ld4, start, stop_started


@pytest.fixture(autouse=True)
def _no_command_outlives_its_test():
    yield
    stop_started()


#: What each command leaves the lens doing while it holds it, as its own status line says.
DRIVEN = {"sweep": "mode triangle", "set-diopter": "mode focal-power", "set-current": "current -49.99 mA"}


@pytest.mark.parametrize(("command", "args", "signum"), [
    ("sweep", ["--freq", "5", "--low", "0", "--high", "1.5"], signal.SIGTERM),
    ("sweep", ["--freq", "5", "--low", "0", "--high", "1.5"], signal.SIGHUP),
    ("set-diopter", ["-1.5"], signal.SIGTERM),
    ("set-current", ["-50"], signal.SIGHUP),
])
def test_lens_commands_release_the_lens_on_sigterm_and_sighup(command, args, signum):
    with served_ld4() as port:
        proc, out, err = start("lens", "--port", port, command, *args)
        out.wait_for("holding")
        assert DRIVEN[command] in out.text(timeout_s=0), out.text(timeout_s=0)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 128 + signum, err.text()
        assert lens_state(port) == (DC_MODE, 0.0)
        said = err.text()
        assert f"{signal.Signals(signum).name}: lens released" in said and "Traceback" not in said


GUI_SIM = """
[lens]
backend = "optotune-ld4"
port = "{port}"
[sim]
rgb_size = [96, 72]
event_size = [96, 72]
realtime = false
"""


def start_gui(tmp_path, port: str):
    """``focalrig gui`` on a tiny simulated rig whose lens is the LD4 on ``port``; returns once it has streamed
    for a second (the lens sweeping), as its stall report says."""
    config = tmp_path / "rig.toml"
    config.write_text(GUI_SIM.format(port=port))
    proc, out, err = start("gui", "--config", str(config), "--report-stalls", "--warmup", "1",
                           env={"QT_QPA_PLATFORM": "offscreen", "FOCALRIG_GUI_SETTINGS": str(tmp_path / "gui.json")})
    out.wait_for("longest stall", timeout_s=120)
    return proc, out, err


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, True)])
def test_gui_releases_the_lens_and_exits_on_a_stop_signal(tmp_path, signum, group):
    """SIGTERM as ``kill`` sends it (to the GUI alone); SIGINT and SIGHUP as a terminal sends them (to the whole
    process group, the GUI's simulated-camera children included)."""
    with served_ld4() as port:
        proc, _out, err = start_gui(tmp_path, port)
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum, err.text()
        assert lens_state(port) == (DC_MODE, 0.0)
        assert "Traceback" not in err.text()


@pytest.mark.slow
def test_gui_releases_the_lens_when_its_camera_processes_are_killed(tmp_path):
    with served_ld4() as port:
        proc, _out, err = start_gui(tmp_path, port)
        children = worker_children(proc.pid)
        assert children, "the simulated cameras run in child processes"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # the GUI notices, closes the rig and lets go of the port: the lens can be asked
            try:
                state = lens_state(port)
            except (serial.SerialException, OSError, ValueError):
                state = None
            if state == (DC_MODE, 0.0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert proc.poll() is None  # the window stays open and says what happened
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM, err.text()
        assert state == (DC_MODE, 0.0), err.text()
        assert "simulator process stopped" in err.text() and "Traceback" not in err.text()


def worker_children(pid: int) -> list[int]:
    """The multiprocessing workers (simulated cameras, fusion) of process ``pid``; not its resource tracker."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                found.append(int(child))
    return found


#: A small, fast simulated rig whose lens is the LD4 on the pty (the rig then runs its own fixed 25 Hz sweep).
SMALL_RIG = ["--set", "sim.rgb_size=[48,36]", "--set", "sim.event_size=[48,36]", "--set", "sim.sweep_hz=25",
             "--set", "sim.sweep_high_dpt=2.0", "--set", "plan.frequency_hz=25", "--set", "plan.high_dpt=2.0",
             "--set", "plan.frame_rate_hz=100", "--set", "plan.min_free_mib=0"]


def wait_for_sweeps(out: Path, n: int, proc, err, timeout_s: float = 60.0) -> Path:
    """The recording folder once its run log holds ``n`` sweep documents."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, err.text()
        for log in out.glob(f"*/{RUN_LOG}"):
            if log.read_text().count('"doc": "event"') >= n:
                return log.parent
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} sweeps within {timeout_s} s: {err.text()}")


@pytest.mark.parametrize(("command", "signum"), [("capture", signal.SIGINT), ("capture", signal.SIGTERM),
                                                 ("capture", signal.SIGHUP), ("simulate", signal.SIGTERM)])
def test_a_capture_ended_by_a_signal_releases_the_lens_and_finalises_the_recording(tmp_path, command, signum):
    with served_ld4() as port:
        proc, _out, err = start(command, "--out", str(tmp_path), "--sweeps", "1000", *SMALL_RIG,
                                "--set", f"lens.port={port}")
        folder = wait_for_sweeps(tmp_path, 2, proc, err)
        os.killpg(proc.pid, signum)  # as a service manager or a closing terminal reaches the whole group
        assert proc.wait(timeout=60) == 128 + signum, err.text()
        assert lens_state(port) == (DC_MODE, 0.0)
    name = signal.Signals(signum).name
    with Recording.open(folder) as rec:
        assert rec.complete and rec.status == "aborted" and name in rec.reason
        assert rec.metadata["exit_status"] == "aborted" and len(rec) >= 2
        with rec.events() as reader:
            assert sum(len(cd) for cd, _ in reader.read_chunks()) == rec.metadata["counts"]["events"]
    assert "Traceback" not in err.text()
