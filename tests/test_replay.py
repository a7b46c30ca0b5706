"""ReplayEventCamera: the shared real recordings come back event for event, paced by an injected clock."""

from __future__ import annotations

import re

import numpy as np
import pytest

from capture.replay import ReplayEventCamera
from drivers.camera import CameraError, EventChunk
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from tests.reference import EVENTS_DIR, assert_matches_reference, reference_decodes, reference_npz, shared_event_file

RAW_FILES = ["expelliarmus_evt3_sample.raw", "expelliarmus_evt2_sample.raw", "ros_event_camera_codecs_evt3_trigger.raw"]
TRIGGER_FILE = "ros_event_camera_codecs_evt3_trigger.raw"
SHORT_FILE = "expelliarmus_evt3_sample.raw"  # 9 ms of events: a few chunks per pass


class FakeClock:
    """A clock that only moves when slept on, recording every sleep asked for."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def read_all(cam: ReplayEventCamera, limit: int = 100_000) -> list[EventChunk]:
    chunks = []
    while (chunk := cam.read(timeout_s=10.0)) is not None:
        chunks.append(chunk)
        assert len(chunks) < limit
    return chunks


def joined(chunks: list[EventChunk]) -> tuple[np.ndarray, np.ndarray]:
    return (concat_events([c.cd for c in chunks], EVENT_CD),
            concat_events([c.triggers for c in chunks], EVENT_EXT_TRIGGER))


def assert_contiguous(chunks: list[EventChunk], chunk_us: int, t_start: int) -> None:
    """Every chunk covers exactly [previous end, its end), of length chunk_us, and holds only events in it."""
    prev = t_start
    for c in chunks:
        assert c.t_end_us - prev == chunk_us
        for arr in (c.cd, c.triggers):
            if arr.shape[0]:
                assert arr["t"][0] >= prev and arr["t"][-1] < c.t_end_us
        prev = c.t_end_us


@pytest.mark.parametrize("name", RAW_FILES)
def test_replay_delivers_exactly_the_reference_events(name):
    with ReplayEventCamera(shared_event_file(name), speed=None) as cam:
        cam.enable_trigger_in(0)
        cam.start()
        chunks = read_all(cam)
    cd, triggers = joined(chunks)
    assert_matches_reference(cd, triggers, reference_decodes()[name])
    if (EVENTS_DIR / f"{name.removesuffix('.raw')}__openeb511_reference.npz").exists():
        ref_cd, ref_trig = reference_npz(name)
        for field in ("x", "y", "p", "t"):
            np.testing.assert_array_equal(cd[field], ref_cd[field])
        for field in ("p", "id", "t"):
            np.testing.assert_array_equal(triggers[field], ref_trig[field])
    assert all(c.raw is None for c in chunks)
    assert_contiguous(chunks, 10_000, chunks[0].t_end_us - 10_000)


def test_triggers_only_for_enabled_channels():
    path = shared_event_file(TRIGGER_FILE)
    with ReplayEventCamera(path, speed=None) as cam:
        cam.start()
        assert joined(read_all(cam))[1].shape[0] == 0
    with ReplayEventCamera(path, speed=None) as cam:
        cam.enable_trigger_in(1)  # wired to nothing in this file
        cam.start()
        assert joined(read_all(cam))[1].shape[0] == 0


def test_identity_and_geometry_come_from_the_file():
    with ReplayEventCamera(shared_event_file(SHORT_FILE)) as cam:
        assert cam.identity.vendor == "file replay"
        assert cam.identity.model == "EVT3"
        assert cam.identity.serial == "00000307"
        assert cam.identity.extra["generation"] == "4.1"
        assert cam.geometry == (1280, 720)
        assert cam.raw_format is None
    with ReplayEventCamera(shared_event_file(TRIGGER_FILE)) as cam:  # no serial in its header
        assert cam.identity.serial == TRIGGER_FILE


@pytest.mark.parametrize("speed", [1.0, 2.0, 0.5])
def test_real_time_pacing_sleeps_for_the_duration_over_speed(speed):
    clock = FakeClock()
    cam = ReplayEventCamera(shared_event_file(TRIGGER_FILE), speed=speed, clock=clock, sleep=clock.sleep)
    cam.start()
    t0 = clock.t
    chunks = []
    while (chunk := cam.read(timeout_s=10.0)) is not None:
        first_start = chunks[0].t_end_us - 10_000 if chunks else chunk.t_end_us - 10_000
        # never handed out before its end is due
        assert clock.t - t0 >= (chunk.t_end_us - first_start) * 1e-6 / speed - 1e-9
        chunks.append(chunk)
    cam.close()
    duration_s = (chunks[-1].t_end_us - (chunks[0].t_end_us - 10_000)) * 1e-6
    assert duration_s > 1.2  # the file holds 1.25 s of events
    assert sum(clock.sleeps) == pytest.approx(duration_s / speed, rel=1e-9)
    assert clock.t - t0 == pytest.approx(duration_s / speed, rel=1e-9)


def test_timeout_returns_none_and_keeps_the_slice():
    path = shared_event_file(TRIGGER_FILE)
    with ReplayEventCamera(path, speed=None) as fast:
        fast.start()
        expected = [fast.read(1.0) for _ in range(2)]
    clock = FakeClock()
    with ReplayEventCamera(path, speed=1.0, clock=clock, sleep=clock.sleep) as cam:
        cam.start()
        assert cam.read(timeout_s=0.004) is None  # the first slice is due 10 ms after the first read
        assert clock.sleeps == [0.004]
        assert cam.read(timeout_s=0.004) is None
        first = cam.read(timeout_s=0.004)
        assert clock.sleeps == pytest.approx([0.004, 0.004, 0.002])
        second = cam.read(timeout_s=1.0)
    for got, want in zip([first, second], expected, strict=True):
        assert got is not None and want is not None
        assert got.t_end_us == want.t_end_us
        np.testing.assert_array_equal(got.cd, want.cd)


def test_start_us_skips_earlier_events():
    name = TRIGGER_FILE
    ref_cd, ref_trig = reference_npz(name)
    start_us = 14_547_000  # just before the two trigger edges
    with ReplayEventCamera(shared_event_file(name), speed=None, start_us=start_us, chunk_us=5_000) as cam:
        cam.enable_trigger_in(0)
        cam.start()
        chunks = read_all(cam)
    cd, triggers = joined(chunks)
    np.testing.assert_array_equal(cd["t"], ref_cd["t"][ref_cd["t"] >= start_us])
    np.testing.assert_array_equal(cd["x"], ref_cd["x"][ref_cd["t"] >= start_us])
    np.testing.assert_array_equal(triggers["t"], ref_trig["t"])
    assert_contiguous(chunks, 5_000, start_us)


def test_loop_starts_over_with_shifted_times():
    path = shared_event_file(SHORT_FILE)
    with ReplayEventCamera(path, speed=None, chunk_us=4_000) as once:
        once.start()
        one_pass = read_all(once)
    first_start = one_pass[0].t_end_us - 4_000
    span = one_pass[-1].t_end_us - first_start
    n = len(one_pass)
    clock = FakeClock()
    with ReplayEventCamera(path, speed=1.0, chunk_us=4_000, loop=True, clock=clock, sleep=clock.sleep) as cam:
        cam.start()
        chunks = [cam.read(timeout_s=10.0) for _ in range(3 * n)]
    assert all(c is not None for c in chunks)
    assert_contiguous(chunks, 4_000, first_start)
    for k in range(3):
        for got, want in zip(chunks[k * n:(k + 1) * n], one_pass, strict=True):
            assert got.t_end_us == want.t_end_us + k * span
            np.testing.assert_array_equal(got.cd["t"], want.cd["t"] + k * span)
            np.testing.assert_array_equal(got.cd["x"], want.cd["x"])
    assert sum(clock.sleeps) == pytest.approx(3 * span * 1e-6)
    np.testing.assert_array_equal(one_pass[0].cd["t"], reference_npz(SHORT_FILE)[0]["t"][: one_pass[0].cd.shape[0]])


def test_missing_file_is_a_camera_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere.raw"
    with pytest.raises(CameraError, match=re.escape(str(missing))):
        ReplayEventCamera(missing)


def test_corrupt_file_is_a_camera_error_naming_it(tmp_path):
    bad = tmp_path / "garbage.raw"
    bad.write_bytes(b"\x00\x01not a raw file\xff" * 64)
    with pytest.raises(CameraError, match=re.escape(str(bad))):
        ReplayEventCamera(bad)


def test_stop_and_close_never_raise_and_end_the_stream():
    cam = ReplayEventCamera(shared_event_file(SHORT_FILE), speed=None)
    cam.close()  # never started
    cam = ReplayEventCamera(shared_event_file(SHORT_FILE), speed=None)
    assert cam.read(1.0) is None  # not started yet
    cam.start()
    assert cam.read(1.0) is not None
    cam.stop()
    assert cam.read(1.0) is None
    cam.stop()
    cam.close()
    with pytest.raises(CameraError):
        cam.start()


# -- ReplayRig: a recording's frames and lens through the device interfaces ------------------------------------
def _frames_only_recording(folder):
    """A recording folder with six frames (index 3 dropped by the camera) and no events."""
    from capture.recording import RecordingWriter
    from drivers.camera import Frame
    from tests.capture_rigs import plan

    w = RecordingWriter(folder, uid="f" * 32, plan=plan(frame_rate_hz=100.0).model_dump(mode="json"), describe={},
                        event_geometry=None, raw_format=None, raw_header=None, calibration_path=None,
                        extra={"frame_geometry": [8, 6]})
    frames = [Frame(np.full((6, 8), k, np.uint8), k, 10_000 * k, 10_000 * k + 1000, "event", 0.1 * k)
              for k in (0, 1, 2, 4, 5, 6)]
    w.write_frames(frames, ["strobe"] * len(frames))
    w.close("success", None, {})
    return frames


def test_replay_rig_plays_recorded_frames_with_their_indices_and_pacing(tmp_path):
    from capture.recording import Recording
    from capture.replay import ReplayFocus, ReplayFrameCamera, ReplayRig
    from drivers.focus import Waveform

    frames = _frames_only_recording(tmp_path)
    clock = FakeClock()
    with Recording.open(tmp_path) as rec:
        cam = ReplayFrameCamera(rec, speed=1.0, clock=clock)
        assert cam.geometry == (8, 6)
        cam.start()
        assert cam.read(0.0) is None              # frame 0 is due once its exposure (1 ms) has ended
        clock.t += 0.001
        got = [cam.read(0.0)]
        clock.t += 0.100                          # everything else is due now
        got += [cam.read(0.0) for _ in range(6)]
        assert got[-1] is None and cam.at_end
        played = got[:-1]
        assert [f.index for f in played] == [f.index for f in frames]  # the camera's drop (index 3) kept
        assert all(np.array_equal(a.image, b.image) and a.exposure_start_us == b.exposure_start_us
                   and a.focal_power_dpt == pytest.approx(b.focal_power_dpt)
                   for a, b in zip(played, frames, strict=True))
    with ReplayRig(tmp_path) as rig:
        assert rig.event_camera is None and isinstance(rig.frame_camera, ReplayFrameCamera)
        lens = rig.lens
        assert isinstance(lens, ReplayFocus) and lens.capabilities.focal_power_range_dpt == (0.0, 2.0)
        lens.start_sweep(Waveform.SINE, 25.0, 0.0, 2.0)
        lens.safe_state()
        assert [c[0] for c in lens.commands] == ["start_sweep", "safe_state"]
