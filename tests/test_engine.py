"""The capture engine on the simulated rig: sweeps on the event clock, replay, soft sync, stepped, failures, stop."""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest

from capture.engine import CaptureEngine
from capture.recording import Recording
from capture.replay import ReplayRig
from drivers.sim import get_simulator
from tests.capture_rigs import FailingEventCamera, lens_is_safe, plan, sim_rig

PERIOD_US = 40_000


def canonical(cd: np.ndarray) -> np.ndarray:
    """EVT3 does not keep the order within one µs: compare sorted by (t, y, p, x)."""
    return cd[np.lexsort((cd["x"], cd["p"], cd["y"], cd["t"]))]


def run(rig, p, out, **kw):
    engine = CaptureEngine(rig, p, out, **kw)
    sweeps, started = [], []
    engine.signals.sweep_finished.connect(sweeps.append)
    engine.signals.sweep_started.connect(started.append)
    status = engine.run()
    if sweeps:  # every sweep handed out was announced first
        assert started[:len(sweeps)] == [s.index for s in sweeps]
    return engine, status, sweeps


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """Three hard-synced sweeps recorded from the simulated rig, and what the engine emitted live."""
    out = tmp_path_factory.mktemp("rec")
    rig, port = sim_rig()
    with rig:
        engine, status, sweeps = run(rig, plan(), out)
        safe = lens_is_safe(port)
    return engine, status, sweeps, safe


def test_capture_cuts_sweeps_on_the_sync_edges_and_places_frames_on_their_strobes(captured):
    _engine, status, sweeps, safe = captured
    assert status.exit_status == "success" and status.state == "finished" and safe
    assert status.sweeps_done == 3 and not status.soft_synced
    assert [s.index for s in sweeps] == [0, 1, 2]
    for s in sweeps:
        assert s.t_end_us - s.t_start_us == PERIOD_US and s.t_start_us == s.index * PERIOD_US
        assert s.commanded.t0_us == s.t_start_us and not s.commanded.soft_synced
        assert len(s.cd) > 100 and np.all((s.cd["t"] >= s.t_start_us) & (s.cd["t"] < s.t_end_us))
        assert len(s.frames) == 8  # 200 fps over 40 ms
        strobe = s.triggers[(s.triggers["id"] == 0) & (s.triggers["p"] == 1)]["t"]
        assert [f.exposure_start_us for f in s.frames] == strobe.tolist()
        for f in s.frames:  # frame k starts at k·5 ms: the strobe pulse of its own index
            assert f.clock == "event" and f.exposure_start_us == f.index * 5000
    assert status.sync["frames_paired"] > 0 and status.sync["exposure_mismatch"] == 0
    assert all(v == 0 for v in status.drops.values())


def test_mailboxes_hold_the_newest_data(captured):
    engine, status, sweeps, _ = captured
    assert engine.latest_frame().index >= sweeps[-1].frames[-1].index
    recent = engine.latest_events(10_000)
    assert len(recent) and recent["t"].min() >= status.t_event_us - 10_000
    lens = engine.lens_history()
    assert lens.shape[1] == 2 and len(lens) >= 3 * 64 and lens[:, 1].min() >= 0 and lens[:, 1].max() <= 2.0
    rate = engine.rate_history()
    assert rate.shape[1] == 2 and rate[-1, 0] == status.t_event_us and rate[:, 1].max() > 0


def test_recording_reads_back_what_the_engine_emitted(captured):
    _, status, sweeps, _ = captured
    with Recording.open(status.recording) as rec:
        assert rec.complete and rec.status == "success" and rec.soft_synced is False
        meta = rec.metadata
        assert meta["uid"] and meta["plan"]["frequency_hz"] == 25.0 and meta["devices"]["lens"]["identity"]
        assert meta["versions"]["numpy"] and "git_sha" in meta["versions"]
        assert meta["counts"]["sweeps"] == 3 and meta["raw_verbatim"] is True
        back = list(rec.sweeps())
        assert len(back) == 3
        for live, read in zip(sweeps, back, strict=True):
            assert (read.t_start_us, read.t_end_us) == (live.t_start_us, live.t_end_us)
            assert np.array_equal(canonical(read.cd), canonical(live.cd))
            assert np.array_equal(read.triggers, live.triggers)
            assert [f.index for f in read.frames] == [f.index for f in live.frames]
            assert all(np.array_equal(a.image, b.image) and a.focal_power_dpt == b.focal_power_dpt
                       for a, b in zip(read.frames, live.frames, strict=True))
        one = rec.sweep(1)
        assert np.array_equal(canonical(one.cd), canonical(sweeps[1].cd))
        assert len(rec.lens_commanded) == 3 * 64
        assert np.allclose(rec.lens_commanded[:64, 1], sweeps[0].commanded.commanded_dpt(rec.lens_commanded[:64, 0]))


def test_replay_gives_the_same_sweeps_events_and_frames(captured, tmp_path):
    _, status, live, _ = captured
    with ReplayRig(status.recording) as rig:
        _, replayed, sweeps = run(rig, plan(), tmp_path)
    assert replayed.exit_status == "success" and replayed.sweeps_done == 3
    for a, b in zip(live, sweeps, strict=True):
        assert (a.t_start_us, a.t_end_us) == (b.t_start_us, b.t_end_us)
        assert np.array_equal(canonical(a.cd), canonical(b.cd))
        assert [f.index for f in a.frames] == [f.index for f in b.frames]
        assert all(np.array_equal(f.image, g.image) and f.exposure_start_us == g.exposure_start_us
                   for f, g in zip(a.frames, b.frames, strict=True))
    with Recording.open(replayed.recording) as rec:  # the replay's own recording, re-encoded events
        assert rec.metadata["replay_of"] == str(status.recording) and rec.metadata["raw_verbatim"] is False
        assert np.array_equal(canonical(next(rec.sweeps()).cd), canonical(live[0].cd))


def test_soft_sync_takes_the_phase_from_the_command_and_marks_the_recording(tmp_path):
    rig, _port = sim_rig(sync_channel=None)
    with rig:
        _, status, sweeps = run(rig, plan(sync_channel=None, sweeps=2), tmp_path)
    assert status.exit_status == "success" and status.soft_synced
    assert [s.commanded.soft_synced for s in sweeps] == [True, True]
    assert sweeps[1].t_start_us - sweeps[0].t_start_us == PERIOD_US
    assert not len(sweeps[0].triggers[sweeps[0].triggers["id"] == 1])  # no sync edges recorded
    with Recording.open(status.recording) as rec:
        assert rec.soft_synced and rec.metadata["soft_synced"]


def test_stepped_plan_steps_the_lens_through_its_set_points(tmp_path):
    rig, port = sim_rig()
    p = plan(waveform="stepped", n_planes=3, dwell_ms=10.0, sweeps=2, sync_channel=None)
    with rig:
        _, status, sweeps = run(rig, p, tmp_path)
        commands = get_simulator(port.removeprefix("optosim://")).commands()
    assert status.exit_status == "success" and len(sweeps) == 2
    assert sum(c.startswith(b"PwDA") for c in commands) >= 6  # 2 sweeps × 3 set points (focal-power writes)
    assert sweeps[0].commanded.step_powers_dpt == (0.0, 1.0, 2.0)
    with Recording.open(status.recording) as rec:
        steps = rec.lens_commanded
        assert list(steps[:, 1]) == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
        assert np.all(np.diff(steps[:, 0]) >= 10_000)  # each set point held at least dwell_ms


def test_event_camera_failure_mid_sweep_leaves_a_safe_lens_and_a_failed_readable_recording(tmp_path):
    rig, port = sim_rig(event_camera_cls=FailingEventCamera)
    with rig:
        _, status, sweeps = run(rig, plan(sweeps=10), tmp_path)
        safe = lens_is_safe(port)
    assert status.exit_status == "failed" and "USB transfer failed" in status.reason
    assert safe and len(sweeps) >= 1
    with Recording.open(status.recording) as rec:
        assert rec.complete and rec.status == "failed" and "USB transfer failed" in rec.reason
        assert len(list(rec.sweeps())) == len(sweeps)


def test_lens_failure_mid_capture_fails_with_the_lens_error_and_drives_the_lens_safe(tmp_path):
    rig, port = sim_rig()
    engine = CaptureEngine(rig, plan(sweeps=50), tmp_path, lens_poll_s=0.01)
    sim = get_simulator(port.removeprefix("optosim://"))
    engine.signals.sweep_finished.connect(lambda s: setattr(sim.faults, "silence", s.index >= 1))
    with rig:
        status = engine.run()
        sim.faults.silence = False
        safe = lens_is_safe(port)
    assert status.exit_status == "failed" and "no reply" in status.reason and "Optotune" in status.reason
    assert safe and 2 <= status.sweeps_done < 50


def test_unwritable_output_fails_before_any_device_moves(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(locked, os.W_OK):  # running as root: permissions do not stop us
        locked = tmp_path / "file-not-folder"
        locked.write_text("x")
    rig, port = sim_rig()
    with rig:
        _, status, sweeps = run(rig, plan(), locked / "recordings")
    assert status.exit_status == "failed" and str(locked) in status.reason and not sweeps
    assert status.recording is None
    assert get_simulator(port.removeprefix("optosim://")).commands() == []  # the lens was never even connected


def test_stop_request_finishes_the_sweep_in_progress(tmp_path):
    rig, _ = sim_rig()
    engine = CaptureEngine(rig, plan(sweeps=100), tmp_path)
    engine.signals.sweep_finished.connect(lambda s: s.index == 1 and engine.request_stop())
    with rig:
        status = engine.run()
    assert status.exit_status == "aborted" and status.sweeps_done == 3  # sweep 2 was in progress
    with Recording.open(status.recording) as rec:
        assert rec.status == "aborted" and len(rec) == 3


def test_full_queue_drops_and_counts_and_the_raw_file_still_decodes_exactly(tmp_path):
    rig, _ = sim_rig()
    engine = CaptureEngine(rig, plan(sweeps=3), tmp_path, event_queue_mib=0.01, lossless=False)

    def stalled_disk(_frame) -> None:
        """Hold the pipeline thread (the writer) until the event reader has had to drop: a disk that stalls.

        Waiting on the drop counter rather than sleeping a fixed time keeps the test independent of CPU load.
        """
        deadline = time.monotonic() + 10.0
        while engine.status().drops["events"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    engine.signals.frame.connect(stalled_disk)
    with rig:
        status = engine.run()
    assert status.drops["event_chunks"] > 0 and status.drops["events"] > 0
    with Recording.open(status.recording) as rec, rec.events() as reader:
        n = sum(len(cd) for cd, _ in reader.read_chunks())
        assert not reader.truncated
        assert n == status.events_total == rec.metadata["counts"]["events"]
        assert rec.metadata["raw_verbatim"] is False


def test_plan_wiring_that_contradicts_the_simulated_rig_fails_before_capture(tmp_path):
    rig, port = sim_rig(sync_channel=None)  # the lens sync is not wired on this rig, but the plan says channel 1
    with rig:
        _, status, sweeps = run(rig, plan(), tmp_path)
    assert status.exit_status == "failed" and "plan.sync_channel = 1" in status.reason
    assert "set plan.sync_channel=none" in status.reason and status.recording is None and not sweeps
    assert get_simulator(port.removeprefix("optosim://")).commands() == []  # refused before the lens was touched


def test_hard_sync_without_sync_edges_fails_with_advice(tmp_path):
    rig, port = sim_rig(sync_channel=None)
    rig.sim = None  # a live rig: the wiring is not known in advance, only the missing edges tell
    with rig:
        _, status, sweeps = run(rig, plan(), tmp_path, sync_timeout_s=0.1)
        safe = lens_is_safe(port)
    assert status.exit_status == "failed" and "no lens sync edge on trigger-in channel 1" in status.reason
    assert "plan.sync_channel=none" in status.reason and safe and not sweeps


def test_a_one_point_stepped_plan_holds_the_lens_for_a_target_recording(tmp_path):
    rig, port = sim_rig()
    hold = plan(waveform="stepped", low_dpt=1.5, high_dpt=1.5, n_planes=1, dwell_ms=40.0, sweeps=2,
                sync_channel=None)
    with rig:
        _, status, sweeps = run(rig, hold, tmp_path)
        commands = get_simulator(port.removeprefix("optosim://")).commands()
        safe = lens_is_safe(port)
    assert status.exit_status == "success" and len(sweeps) == 2 and safe
    assert [s.commanded.step_powers_dpt for s in sweeps] == [(1.5,), (1.5,)]
    assert sum(c.startswith(b"PwDA") for c in commands) >= 1  # the lens was set to the held power
    with Recording.open(status.recording) as rec:
        assert set(rec.lens_commanded[:, 1]) == {1.5}
