"""The Prophesee backend on OpenEB 5.1.1's real HAL, a RAW recording opened as its device.

``DeviceDiscovery.open_raw_file`` gives a device with the same events stream, decoders, geometry and
identification as a camera, so the backend's live code path runs unchanged: polling, the HAL's raw log that
carries the camera's bytes out, chunking, start/stop, the end of the stream, missing facilities, and a whole
capture through the engine. The recording played is a capture of the simulated EVK4: its EVT3 bytes with
strobe and lens-sync trigger edges on ids 0 and 1.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.config import load_config
from capture.engine import CaptureEngine
from capture.formats import open_events
from capture.formats.rawheader import split_header
from capture.recording import Recording
from drivers import prophesee
from drivers.camera import CameraError, NotSupportedError
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.registry import make_event_camera, open_rig
from tests.capture_rigs import lens_port, plan, sim_rig

pytestmark = pytest.mark.openeb

CHUNK_US = 5000


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(path, cd, triggers, payload): a simulated EVK4 capture's events.raw, decoded by focalrig, and its bytes."""
    rig, _ = sim_rig()
    with rig:
        status = CaptureEngine(rig, plan(sweeps=3), tmp_path_factory.mktemp("source")).run()
    assert status.exit_status == "success"
    path = Recording.open(status.recording).events_path
    with open_events(path) as reader:
        parts = list(reader.read_chunks())
    data = path.read_bytes()
    payload = data[split_header(data[:65536])[1]:]
    cd, trig = (concat_events([c for c, _ in parts], EVENT_CD), concat_events([t for _, t in parts], EVENT_EXT_TRIGGER))
    assert len(cd) > 2000 and set(trig["id"]) == {0, 1}
    return path, cd, trig, payload


def stream_to_end(cam, chunks=None) -> list:
    chunks = [] if chunks is None else chunks
    for _ in range(100_000):
        chunk = cam.read(0.2)
        if chunk is None and cam.at_end:
            return chunks
        if chunk is not None:
            chunks.append(chunk)
    raise AssertionError("the file device never reached the end of its stream")


def assert_stream(chunks, source, *, whole_grid: bool = True) -> None:
    """The chunks carry the file's events, triggers and bytes exactly, in disjoint sorted time windows."""
    _, cd, trig, payload = source
    assert np.array_equal(concat_events([c.cd for c in chunks], EVENT_CD), cd)
    assert np.array_equal(concat_events([c.triggers for c in chunks], EVENT_EXT_TRIGGER), trig)
    assert b"".join(c.raw for c in chunks) == payload  # the camera's bytes, verbatim
    ends = [c.t_end_us for c in chunks]
    assert all(a < b for a, b in itertools.pairwise(ends))
    starts = [0, *ends[:-1]]
    for c, t0 in zip(chunks, starts, strict=True):
        for arr in (c.cd, c.triggers):
            assert np.all((arr["t"] >= t0) & (arr["t"] < c.t_end_us))
    if whole_grid:
        assert all(e % CHUNK_US == 0 for e in ends[:-1]) and ends[-1] > cd["t"][-1]


def test_a_raw_file_streams_through_the_backend_like_a_camera(source):
    path = source[0]
    with prophesee.PropheseeCamera(raw_file=path, chunk_us=CHUNK_US) as cam:
        assert cam.geometry == (48, 36) and cam.raw_format == "EVT3" and not cam.paced
        assert cam.identity.vendor == "Prophesee" and cam.identity.extra["connection"] == "File"
        assert cam.raw_header["format"] == "EVT3;height=36;width=48" and "date" not in cam.raw_header
        assert cam.read(0.01) is None  # not started: nothing
        cam.start()
        chunks = stream_to_end(cam)
        assert cam.at_end and cam.read(0.01) is None
        cam.start()  # a finished file does not start over
        assert cam.read(0.01) is None
    assert_stream(chunks, source)
    assert not (path.parent / (path.name + ".tmp_index")).exists()  # the HAL wrote nothing beside the file


def test_small_hal_buffers_and_a_rotating_raw_log_lose_no_byte(source, monkeypatch):
    """USB-sized buffers (64 words), the HAL's raw log flushed whenever the stream idles and rotated every
    512 bytes: every log's header is skipped and every byte comes through once."""
    monkeypatch.setattr(prophesee, "MAX_LOG_LAG_S", 0.0)
    with prophesee.PropheseeCamera(raw_file=source[0], chunk_us=CHUNK_US, read_words=64) as cam:
        cam._log.rotate_bytes = 512
        cam.start()
        chunks = stream_to_end(cam)
        assert cam._log._count > len(source[3]) // 1024  # the log was rotated many times
    assert_stream(chunks, source)


def test_stop_delivers_what_was_received_and_start_resumes_where_it_stopped(source):
    with prophesee.PropheseeCamera(raw_file=source[0], chunk_us=CHUNK_US, read_words=256) as cam:
        cam.start()
        first = [cam.read(1.0) for _ in range(5)]
        assert all(c is not None for c in first)
        cam.stop()
        while (chunk := cam.read(0.01)) is not None:  # what had been received is still delivered
            first.append(chunk)
        assert cam.read(0.01) is None and not cam.at_end
        cam.start()
        chunks = stream_to_end(cam, first)
    assert_stream(chunks, source, whole_grid=False)  # the stop cut one chunk short of its grid end


def test_facilities_a_file_device_lacks_are_reported_one_line_each(source):
    with prophesee.PropheseeCamera(raw_file=source[0]) as cam:
        for call, facility in ((lambda: cam.set_biases({"bias_diff_on": 5}), "I_LL_Biases"),
                               (lambda: cam.set_roi(0, 0, 8, 8), "I_ROI"),
                               (lambda: cam.enable_trigger_in(0), "I_TriggerIn")):
            with pytest.raises(NotSupportedError, match=facility) as info:
                call()
            message = str(info.value)
            assert "\n" not in message and str(source[0]) in message and "RAW file" in message
        with pytest.raises(CameraError, match="not inside the 48x36 sensor"):
            cam.set_roi(40, 0, 16, 8)


def test_a_configured_bias_on_a_file_device_fails_and_closes_it(source):
    cfg = load_config(overrides=['event_camera.backend="prophesee"', f'event_camera.raw_file="{source[0]}"',
                                 "event_camera.biases={bias_diff_on=5}"]).event_camera
    with pytest.raises(NotSupportedError, match=r"event_camera\.biases"):
        make_event_camera(cfg)


def test_missing_and_unreadable_files_fail_with_one_line(tmp_path):
    with pytest.raises(CameraError, match="does not exist") as info:
        prophesee.PropheseeCamera(raw_file=tmp_path / "nope.raw")
    assert "\n" not in str(info.value)
    junk = tmp_path / "junk.raw"
    junk.write_text("not an event file\n")
    with pytest.raises(CameraError, match=r"cannot open .*junk.raw as a device: .*metavision_file_info") as info:
        prophesee.PropheseeCamera(raw_file=junk)
    assert "\n" not in str(info.value) and "Error 101000" in str(info.value)


def test_a_capture_from_the_file_device_records_the_files_events_and_bytes(source, tmp_path):
    """The configured backend (event_camera.raw_file), through open_rig and the engine, until the file ends."""
    path, cd, trig, payload = source
    cfg = load_config(overrides=['event_camera.backend="prophesee"', f'event_camera.raw_file="{path}"',
                                 f'lens.port="{lens_port()}"', 'frame_camera.backend="none"'])
    with open_rig(cfg) as rig:
        engine = CaptureEngine(rig, plan(sweeps=None, sync_channel=None, strobe_channel=None), tmp_path)
        assert engine.lossless  # a file is not paced by the world: wait, never drop
        status = engine.run()
    assert status.exit_status == "success" and status.reason == "end of the event camera's recording"
    assert all(v == 0 for v in status.drops.values())
    with Recording.open(status.recording) as rec:
        data = rec.events_path.read_bytes()
        assert data[split_header(data[:65536])[1]:] == payload and rec.metadata["raw_verbatim"] is True
        with rec.events() as reader:
            parts = list(reader.read_chunks())
        assert np.array_equal(concat_events([c for c, _ in parts], EVENT_CD), cd)
        assert np.array_equal(rec.triggers, trig)
        assert rec.metadata["devices"]["event_camera"]["identity"]["extra"]["raw_file"] == str(path)


def test_the_fake_hal_of_the_mapping_tests_uses_only_names_the_real_hal_has():
    """test_camera_backends.py maps biases, ROI and trigger-in onto a stand-in HAL (a file device lacks them):
    every name it calls must exist in OpenEB 5.1.1's bindings, so the stand-in cannot drift from the SDK."""
    from drivers.openeb import import_hal
    from tests.test_camera_backends import FAKE_HAL_API

    hal = import_hal()
    for cls, names in FAKE_HAL_API.items():
        for name in names:
            assert hasattr(getattr(hal, cls), name), f"metavision_hal.{cls}.{name}"
