"""``focalrig capture / inspect / simulate`` as a user runs them, including Ctrl-C and kill -9 mid-capture."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from app.cli import app
from capture.recording import Recording
from capture.recording.layout import RUN_LOG
from drivers.config import SimConfig
from tests.capture_rigs import lens_port

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
#: A small, fast simulated rig; soft sync (the lens sync is exercised by tests/test_engine.py).
SMALL = ["--set", "sim.rgb_size=[48,36]", "--set", "sim.event_size=[48,36]", "--set", "plan.frequency_hz=25",
         "--set", "plan.high_dpt=2.0", "--set", "plan.sync_channel=none", "--set", "plan.frame_rate_hz=100",
         "--set", "plan.min_free_mib=0"]


def cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def start_capture(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "app.cli", "capture", "--out", str(out), "--sweeps", "1000", *SMALL,
           "--set", f"lens.port={lens_port()}", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_sweeps(out: Path, n: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> Path:
    """The recording folder once its run log holds ``n`` sweep documents."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for folder in out.glob("*"):
            log = folder / RUN_LOG
            if log.is_file() and log.read_text().count('"doc": "event"') >= n:
                return folder
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} sweeps within {timeout_s} s")


def test_ctrl_c_stops_after_the_sweep_and_finalises(tmp_path):
    proc = start_capture(tmp_path)
    folder = wait_for_sweeps(tmp_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    with Recording.open(folder) as rec:
        assert rec.complete and rec.status == "aborted" and "stopped by the user" in rec.reason
        sweeps = list(rec.sweeps())
        assert len(rec) >= 2 and len(sweeps) == len(rec)
        assert [len(s.frames) for s in sweeps] == rec.sweep_table["n_frames"].tolist()  # counted while recording
        assert [len(s.cd) for s in sweeps] == rec.sweep_table["n_events"].tolist()
        assert rec.metadata["exit_status"] == "aborted" and rec.metadata["counts"]["sweeps"] == len(rec)
        with rec.events() as reader:
            assert sum(len(cd) for cd, _ in reader.read_chunks()) == rec.metadata["counts"]["events"]


def test_second_ctrl_c_stops_at_once_and_files_stay_readable(tmp_path):
    proc = start_capture(tmp_path, "--set", "plan.frequency_hz=0.5")  # 2 s sweeps: the first Ctrl-C would wait
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("*/frames.h5")) and time.monotonic() < deadline:  # frames are being written
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    folder = next(tmp_path.iterdir())
    with Recording.open(folder) as rec:
        assert rec.complete and rec.status == "aborted" and "immediately" in rec.reason
        assert len(rec.frames) > 0 and len(rec) == 0  # stopped inside the first sweep
        with rec.events() as reader:
            assert sum(len(cd) for cd, _ in reader.read_chunks()) == rec.metadata["counts"]["events"]


def test_kill_9_leaves_an_incomplete_but_readable_recording(tmp_path):
    proc = start_capture(tmp_path)
    folder = wait_for_sweeps(tmp_path, 3, proc)
    proc.kill()
    proc.communicate(timeout=10)
    with Recording.open(folder) as rec:
        assert not rec.complete and rec.status == "incomplete" and rec.exit_status is None
        assert len(rec) >= 3
        sweeps = list(rec.sweeps())
        assert len(sweeps) == len(rec) and all(s.frames for s in sweeps)
        with rec.events() as reader:
            n = sum(len(cd) for cd, _ in reader.read_chunks())
        assert n >= sum(int(r["n_events"]) for r in rec.sweep_table)
        assert int(rec.frames.index[-1]) >= len(rec.frames) - 1
    result = cli("inspect", folder)
    assert result.exit_code == 0 and "incomplete" in result.output


def test_dry_run_prints_the_resolved_plan_and_volume(tmp_path):
    result = cli("capture", "--dry-run", "--out", tmp_path, "--sweeps", "7", "--set", "plan.frame_rate_hz=30")
    assert result.exit_code == 0, result.output
    assert "sweeps = 7" in result.output and "frame_rate_hz = 30.0" in result.output and "MiB" in result.output
    assert not any(tmp_path.iterdir())


def test_unwritable_output_is_one_clear_error_before_capture(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    port = lens_port()
    result = cli("capture", "--out", blocker / "sub", "--sweeps", "2", *SMALL, "--set", f"lens.port={port}")
    assert result.exit_code == 2
    assert "error:" in result.output and "cannot create the output folder" in result.output
    from drivers.sim import get_simulator

    assert get_simulator(port.removeprefix("optosim://")).commands() == []  # no device was touched


def test_simulate_writes_ground_truth_and_inspect_plots(tmp_path):
    result = cli("simulate", "--out", tmp_path, "--sweeps", "3", *SMALL, "--set", f"lens.port={lens_port()}")
    assert result.exit_code == 0, result.output
    folder = next(tmp_path.iterdir())
    gt = folder / "ground_truth"
    depth = np.load(gt / "depth_dpt.npy")
    assert depth.shape == (36, 48)
    assert np.isclose(np.unique(depth)[:, None], np.array(SimConfig().depths_dpt)[None]).any(axis=1).all()
    assert cv2.imread(str(gt / "all_in_focus.png")).shape == (36, 48, 3)
    h = np.array(json.loads((gt / "homography_event_to_rgb.json").read_text())["matrix"])
    assert h.shape == (3, 3) and h[0, 0] < 0  # the beam splitter mirrors x
    traj = np.load(gt / "lens_trajectory.npz")
    assert len(traj["t_us"]) == len(traj["actual_dpt"]) > 100
    png = tmp_path / "plot.png"
    result = cli("inspect", folder, "--plot", png)
    assert result.exit_code == 0, result.output
    assert "success" in result.output and "sweeps" in result.output and "soft" in result.output
    image = cv2.imread(str(png))
    assert image.shape == (640, 1200, 3) and len(np.unique(image.reshape(-1, 3), axis=0)) > 5


def test_capture_replay_recuts_a_recording_exactly_as_live(tmp_path):
    result = cli("simulate", "--out", tmp_path / "live", "--sweeps", "3", *SMALL, "--set", f"lens.port={lens_port()}")
    assert result.exit_code == 0, result.output
    live = next((tmp_path / "live").iterdir())
    result = cli("capture", "--replay", live, "--out", tmp_path / "again")
    assert result.exit_code == 0, result.output
    again = next((tmp_path / "again").iterdir())
    with Recording.open(live) as a, Recording.open(again) as b:
        assert b.metadata["replay_of"] == str(live) and b.status == "success"
        assert b.metadata["plan"] == a.metadata["plan"]  # the recording's own plan, not the default one
        assert len(a) == len(b) == 3
        for k in range(3):
            sa, sb = a.sweep(k), b.sweep(k)
            assert (sa.t_start_us, sa.t_end_us, len(sa.cd), len(sa.frames)) == \
                (sb.t_start_us, sb.t_end_us, len(sb.cd), len(sb.frames))


def test_capture_replay_of_a_missing_file_is_one_clear_error(tmp_path):
    result = cli("capture", "--replay", tmp_path / "nothing-here", "--out", tmp_path)
    assert result.exit_code == 2 and "error:" in result.output and "nothing-here" in result.output
