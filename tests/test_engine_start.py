"""The capture engine when the lens will not run the plan: it ends "finished" and "failed" with one reason, the lens
safe, whoever started it (the GUI and scripts skip the CLI's own plan check), and never hangs.

The engine runs on its own thread here and is waited for with a timeout, so a hang fails the test instead of
stopping the suite.
"""

from __future__ import annotations

import pytest

from capture.engine import CaptureEngine
from capture.recording import Recording
from drivers.sim import get_simulator
from tests.capture_rigs import lens_is_safe, plan, sim_rig

WAIT_S = 60.0
#: What would move the lens: generator swings and frequency, modes other than DC, focal-power set points.
MOVING = (b"PwUA", b"PwLA", b"PwFA", b"PwDA", b"MwSA", b"MwTA", b"MwQA", b"MwCA")


def start_and_wait(engine: CaptureEngine):
    """Start ``engine`` on its thread, wait (bounded) for it; returns its status and the ``finished`` emissions."""
    finished = []
    engine.signals.finished.connect(finished.append)
    engine.start()
    status = engine.wait(WAIT_S)
    assert not engine._thread.is_alive(), f"the engine did not end within {WAIT_S:.0f} s ({status.state})"
    return status, finished


@pytest.mark.parametrize("changes", [dict(high_dpt=3.5), dict(waveform="stepped", n_planes=4, dwell_ms=10.0,
                                                              sync_channel=None, high_dpt=3.5)],
                         ids=["sine", "stepped"])
def test_a_plan_beyond_the_lens_is_refused_before_the_lens_moves(tmp_path, changes):
    """The simulated LD4 reaches 2.8 dpt; a plan to 3.5 dpt started without the CLI's check used to get as far as
    starting the sweep (sine: refused there, and the engine hung; stepped: refused mid-sweep)."""
    rig, port = sim_rig()
    with rig:
        status, finished = start_and_wait(CaptureEngine(rig, plan(**changes), tmp_path))
        commands = get_simulator(port.removeprefix("optosim://")).commands()
        safe = lens_is_safe(port)
    assert status.state == "finished" and [s.exit_status for s in finished] == ["failed"]
    assert status.exit_status == "failed"
    assert status.reason == ("plan.high_dpt = 3.5 dpt is outside the focal-power range -1.8 … 2.8 dpt of the "
                             f"Optotune Lens Driver 4 on {port} (set plan.low_dpt and plan.high_dpt inside it)")
    assert safe and status.lens_safe and not any(c.startswith(MOVING) for c in commands)
    assert status.recording is None and not any(tmp_path.iterdir())  # refused before anything was written


def test_a_lens_that_refuses_to_start_the_sweep_fails_the_capture_without_hanging(tmp_path):
    """Starting the sweep fails (the driver stops answering) after the reader threads were made but before they
    ran: the teardown used to join threads never started, raise out of itself, never reach "finished", and leave
    the CLI's progress loop waiting for ever."""
    rig, port = sim_rig()
    sim = get_simulator(port.removeprefix("optosim://"))
    rig.lens.connect()
    sim.faults.silence = True  # from here on the driver's replies are lost (its commands still execute)
    with rig:
        status, finished = start_and_wait(CaptureEngine(rig, plan(), tmp_path))
        sim.faults.silence = False
        safe = lens_is_safe(port)
    assert status.state == "finished" and [s.exit_status for s in finished] == ["failed"]
    assert status.exit_status == "failed" and status.reason.startswith("FocusError: Optotune lens driver on ")
    assert "no reply to temperature limits" in status.reason and "\n" not in status.reason
    assert "ending the capture" not in status.reason  # one reason: the lens's
    assert status.sweeps_done == 0 and safe  # the driver sent the lens safe before raising
    with Recording.open(status.recording) as rec:  # wound down in full: the recording is finalised
        assert rec.complete and rec.status == "failed" and rec.reason == status.reason


def test_a_fault_while_ending_still_finishes_the_engine_and_says_why(tmp_path, monkeypatch):
    """Whatever goes wrong while winding down, the engine reaches "finished" and emits it once."""
    rig, _ = sim_rig()
    engine = CaptureEngine(rig, plan(sweeps=1), tmp_path)

    def broken() -> None:
        raise RuntimeError("counting the losses failed")

    monkeypatch.setattr(engine, "_losses", broken)
    with rig:
        status, finished = start_and_wait(engine)
    assert status.state == "finished" and len(finished) == 1
    assert status.exit_status == "failed"
    assert status.reason == "ending the capture: RuntimeError: counting the losses failed"
