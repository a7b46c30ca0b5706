"""Time and data stay true under load: nothing is dated outside the event clock, losses are counted and said.

The rig is the simulated one paced by the wall clock, as live cameras are, with its event camera slowed down (a
camera whose computer cannot keep up: its event clock falls behind the wall while the frame camera keeps pace)
and a recording writer that sleeps on every write (a slow disk). Nothing here asserts a wall time: the checks
are on the recorded timestamps, the counts and the final status.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import capture.engine
from capture.engine import CaptureEngine
from capture.recording import Recording, RecordingWriter
from drivers.sim.event_camera import SimEventCamera
from tests.capture_rigs import lens_is_safe, plan, sim_rig


class SlowEventCamera(SimEventCamera):
    """A simulated event camera on an overloaded computer: each chunk takes 25 ms to come, for 5 ms of stream."""

    def read(self, timeout_s: float):
        time.sleep(0.025)
        return super().read(timeout_s)


class SlowWriter(RecordingWriter):
    """A recording writer on a slow disk."""

    def write_events(self, chunk) -> None:
        time.sleep(0.01)
        super().write_events(chunk)


def realtime_rig(event_camera_cls=SimEventCamera):
    rig, port = sim_rig(event_camera_cls=event_camera_cls)
    rig.sim.realtime = True
    rig.event_camera.realtime = True
    rig.frame_camera._realtime = True
    return rig, port


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory):
    out = tmp_path_factory.mktemp("loaded")
    rig, port = realtime_rig(SlowEventCamera)
    with pytest.MonkeyPatch.context() as mp, rig:
        mp.setattr(capture.engine, "RecordingWriter", SlowWriter)
        engine = CaptureEngine(rig, plan(sweeps=4), out, keep_sweeps=False, frame_queue=16, event_queue_mib=0.05)
        assert not engine.lossless
        status = engine.run()
        safe = lens_is_safe(port)
    return status, safe


def test_no_frame_is_dated_beyond_the_events_it_was_placed_by(overloaded):
    status, _ = overloaded
    with Recording.open(status.recording) as rec:
        with rec.events() as reader:
            last_event = max(int(cd["t"][-1]) for cd, _ in reader.read_chunks() if len(cd))
        frames = rec.frames
        assert len(frames) > 0
        assert int(frames.exposure_end_us.max()) <= status.t_event_us
        assert int(frames.exposure_start_us.max()) <= last_event
        assert np.all(frames.on_event_clock)


def test_a_lossy_run_ends_success_with_losses_and_records_the_figures(overloaded):
    status, safe = overloaded
    assert safe
    assert status.exit_status == "success_with_losses" and status.sweeps_done == 4
    losses = status.losses
    assert losses["frames_missing"] + losses["frames_after_events"] > 0
    assert losses["frame_share"] > 0.01 or losses["event_share"] > 0.01
    assert "lost" in status.reason and "frames" in status.reason
    with Recording.open(status.recording) as rec:
        assert rec.status == "success_with_losses" and rec.reason == status.reason
        meta = rec.metadata
        assert meta["losses"]["frames_missing"] == losses["frames_missing"]
        assert meta["losses"]["frames_written"] == len(rec.frames)
    # Frame k is exposed over [5k, 5k + 1] ms: every frame that ends inside the event span is written or missing.
    assert losses["frames_written"] + losses["frames_missing"] == (status.t_event_us - 1000) // 5000 + 1


def test_a_run_without_losses_stays_a_plain_success(tmp_path):
    rig, port = realtime_rig()
    with rig:
        status = CaptureEngine(rig, plan(sweeps=2), tmp_path, keep_sweeps=False).run()
        assert lens_is_safe(port)
    assert status.exit_status == "success" and status.losses["frames_missing"] == 0
    assert status.losses["events_dropped"] == 0 and status.lens_safe


def test_the_capture_command_says_so_in_its_last_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app
    from tests.capture_rigs import lens_port

    read = SimEventCamera.read

    def slow_read(self, timeout_s: float):
        time.sleep(0.025)
        return read(self, timeout_s)

    monkeypatch.setattr(SimEventCamera, "read", slow_read)  # the camera the CLI opens: as SlowEventCamera
    small = ["--set", "sim.rgb_size=[48,36]", "--set", "sim.event_size=[48,36]", "--set", "sim.realtime=true",
             "--set", "sim.sweep_hz=25", "--set", "plan.frequency_hz=25", "--set", "plan.high_dpt=2.0",
             "--set", "plan.frame_rate_hz=400", "--set", "plan.min_free_mib=0", "--set", "event_camera.chunk_us=5000"]
    result = CliRunner().invoke(app, ["capture", "--out", str(tmp_path), "--sweeps", "12", *small,
                                      "--set", f"lens.port={lens_port()}"])
    assert result.exit_code == 3, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert "finished with losses" in last and "lost" in last and "frames" in last and str(tmp_path) in last
