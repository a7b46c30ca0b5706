"""The simulated event camera: chunking, EVT3 raw bytes, trigger-in, event rate along the sweep, ROI, determinism."""

import numpy as np
import pytest

from capture.formats.rawheader import build_raw_header, parse_raw_header
from drivers.camera import NotSupportedError
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.events.evt3 import Evt3Decoder
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.moving import MovingObject
from drivers.sim.rig import SimRig

SIZE = (96, 72)  # small sensor: the physics is size-independent and the tests stay fast
CHUNK_US = 5_000


def make_camera(seed: int = 0, **kwargs) -> SimEventCamera:
    return SimEventCamera(SimRig.default(SIZE, seed=seed), chunk_us=CHUNK_US, **kwargs)


def read_chunks(cam: SimEventCamera, n: int) -> list:
    chunks = [cam.read(1.0) for _ in range(n)]
    assert all(c is not None for c in chunks)
    return chunks


def joined(chunks) -> tuple[np.ndarray, np.ndarray]:
    return (concat_events([c.cd for c in chunks], EVENT_CD),
            concat_events([c.triggers for c in chunks], EVENT_EXT_TRIGGER))


def same_events(a: np.ndarray, b: np.ndarray) -> bool:
    """Field by field: the padding bytes of the Metavision dtypes are not part of the events."""
    return a.dtype == b.dtype and a.shape == b.shape and all(np.array_equal(a[n], b[n]) for n in a.dtype.names)


def canonical_cd(cd: np.ndarray) -> np.ndarray:
    """Order within one µs is not part of EVT3 (the encoder groups by row), so compare sorted by (t, y, p, x)."""
    return cd[np.lexsort((cd["x"], cd["p"], cd["y"], cd["t"]))]


def expected_strobe(rig: SimRig, t0: int, t1: int) -> np.ndarray:
    times, pol = rig.frames_starting(t0 - rig.exposure_us - 1, t1 + 1).strobe_edges()
    t = np.round(times).astype(np.int64)
    keep = (t >= t0) & (t < t1)
    return np.column_stack([t[keep], pol[keep]])


@pytest.fixture(scope="module")
def recorded():
    """Forty 5 ms chunks (two sweep periods) with both trigger channels enabled from the start."""
    cam = make_camera()
    cam.enable_trigger_in(cam.rig.strobe_channel)
    cam.enable_trigger_in(cam.rig.sync_channel)
    cam.start()
    chunks = read_chunks(cam, 40)
    cam.stop()
    return cam, chunks


def test_identity_geometry_and_header():
    cam = make_camera(seed=7)
    assert cam.geometry == SIZE
    assert (cam.identity.vendor, cam.identity.model) == ("focalrig", "simulated event camera")
    assert "7" in cam.identity.serial and cam.identity.extra["generation"] == "4.2"
    assert cam.raw_format == "EVT3"
    header = cam.raw_header
    assert header["format"] == "EVT3;height=72;width=96" and header["geometry"] == "96x72"
    assert header["generation"] == "4.2" and header["serial_number"] == cam.identity.serial
    assert "system_ID" not in header
    with pytest.raises(NotSupportedError):
        cam.set_biases({"bias_diff_on": 10})


def test_event_geometry_differs_from_rgb():
    cam = SimEventCamera(SimRig.default((96, 72), event_size=(80, 64)), chunk_us=CHUNK_US)
    assert cam.geometry == (80, 64)
    cam.start()
    cd = joined(read_chunks(cam, 4))[0]
    assert cd.size > 0 and cd["x"].max() < 80 and cd["y"].max() < 64


def test_chunks_contiguous_sorted_and_inside_geometry(recorded):
    _, chunks = recorded
    assert [c.t_end_us for c in chunks] == [CHUNK_US * (i + 1) for i in range(len(chunks))]
    for i, c in enumerate(chunks):
        t0, t1 = i * CHUNK_US, (i + 1) * CHUNK_US
        for arr in (c.cd, c.triggers):
            assert np.all(np.diff(arr["t"]) >= 0)
            assert arr.size == 0 or (arr["t"][0] >= t0 and arr["t"][-1] < t1)
        assert c.cd.dtype == EVENT_CD and c.triggers.dtype == EVENT_EXT_TRIGGER
    cd, _ = joined(chunks)
    assert cd.size > 1000
    assert cd["x"].max() < SIZE[0] and cd["y"].max() < SIZE[1]
    assert set(np.unique(cd["p"])) == {0, 1}


def test_raw_bytes_behind_header_decode_to_delivered_events(recorded):
    cam, chunks = recorded
    w, h = cam.geometry
    data = build_raw_header("EVT3", w, h, cam.raw_header) + b"".join(c.raw for c in chunks)
    header = parse_raw_header(data)
    assert (header.format, header.width, header.height, header.generation) == ("EVT3", w, h, "4.2")
    dec = Evt3Decoder(w, h)
    dec_cd, dec_trig = dec.decode(data[header.payload_offset:])
    cd, triggers = joined(chunks)
    assert dec_cd.size == cd.size and dec.dropped_vector_groups == 0
    assert same_events(canonical_cd(dec_cd), canonical_cd(cd))
    assert same_events(dec_trig, triggers) and triggers.size > 0


def test_triggers_only_after_enable_and_match_strobe_schedule():
    cam = make_camera()
    cam.start()
    before = read_chunks(cam, 10)
    assert all(c.triggers.size == 0 for c in before)
    cam.enable_trigger_in(cam.rig.strobe_channel)
    after = read_chunks(cam, 20)
    trig = joined(after)[1]
    assert set(trig["id"]) == {cam.rig.strobe_channel}  # the sync channel is still off
    t0, t1 = 10 * CHUNK_US, 30 * CHUNK_US
    want = expected_strobe(cam.rig, t0, t1)
    assert len(want) >= 4
    np.testing.assert_array_equal(np.column_stack([trig["t"], trig["p"]]), want)
    with pytest.raises(NotSupportedError):
        cam.enable_trigger_in(99)


def test_lens_sync_alternates_once_per_half_sweep(recorded):
    cam, chunks = recorded
    trig = joined(chunks)[1]
    sync = trig[trig["id"] == cam.rig.sync_channel]
    half = cam.rig.trajectory.period_us / 2
    assert sync.size == 4  # 200 ms of a 10 Hz sweep
    np.testing.assert_array_equal(sync["t"], np.round(np.arange(4) * half).astype(np.int64))
    np.testing.assert_array_equal(sync["p"], [1, 0, 1, 0])
    strobe = trig[trig["id"] == cam.rig.strobe_channel]
    want = expected_strobe(cam.rig, 0, 40 * CHUNK_US)
    np.testing.assert_array_equal(np.column_stack([strobe["t"], strobe["p"]]), want)


def test_event_rate_follows_lens_speed(recorded):
    """Blur changes only while D moves: 1 ms bins count far more events mid-sweep than at the turnarounds."""
    cam, chunks = recorded
    cd, _ = joined(chunks)
    edges = np.arange(0, 40 * CHUNK_US + 1, 1000)
    counts = np.histogram(cd["t"], edges)[0]
    mid = edges[:-1] + 500.0
    speed = np.abs(np.gradient(cam.rig.trajectory.actual_dpt(mid), mid))
    assert np.corrcoef(counts, speed)[0, 1] > 0.35  # events bunch at focus crossings, so not higher
    slow, fast = speed < np.quantile(speed, 0.25), speed > np.quantile(speed, 0.75)
    assert counts[fast].mean() > 5 * counts[slow].mean()


def test_same_seed_same_stream_other_seed_differs():
    def run(seed: int):
        cam = make_camera(seed)
        cam.enable_trigger_in(0)
        cam.start()
        chunks = read_chunks(cam, 6)
        return joined(chunks)[0], b"".join(c.raw for c in chunks)

    cd_a, raw_a = run(3)
    cd_b, raw_b = run(3)
    cd_c, _ = run(4)
    assert raw_a == raw_b and same_events(cd_a, cd_b)
    assert not same_events(cd_a, cd_c)


def test_roi_drops_events_outside_and_keeps_the_rest():
    full, roi = make_camera(), make_camera()
    roi.set_roi(10, 20, 30, 25)
    for cam in (full, roi):
        cam.start()
    cd_full = joined(read_chunks(full, 8))[0]
    cd_roi = joined(read_chunks(roi, 8))[0]
    inside = ((cd_full["x"] >= 10) & (cd_full["x"] < 40) & (cd_full["y"] >= 20) & (cd_full["y"] < 45))
    assert 0 < cd_roi.size < cd_full.size
    assert same_events(cd_roi, cd_full[inside])
    with pytest.raises(ValueError):
        roi.set_roi(90, 0, 10, 10)


def test_read_outside_start_stop_returns_none():
    cam = make_camera()
    assert cam.read(0.0) is None
    cam.start()
    assert cam.read(0.0) is not None
    cam.stop()
    assert cam.read(0.0) is None
    cam.close()
    cam.close()


def test_realtime_read_times_out_before_chunk_end():
    cam = make_camera(realtime=True)
    cam.start()
    assert cam.read(0.0) is None  # the first chunk ends 5 ms after start: not there yet
    chunk = cam.read(1.0)
    assert chunk is not None and chunk.t_end_us == CHUNK_US


def test_cached_sampling_visits_every_node_crossing_and_turnaround():
    """Between two samples the focal power stays within one cache node interval and does not reverse, so the
    cached L(t) is linear between them up to the lens path's curvature (gaps capped at max_sample_dt_us)."""
    cam = make_camera(max_sample_dt_us=400.0)
    cam.start()
    cam.read(1.0)  # builds the cache for the lens path
    t0, t1 = 40_000.0, 140_000.0  # several turnarounds of the default 10 Hz sweep
    times = cam.sample_times(t0, t1)
    assert times[0] == t0 and times[-1] == t1 and np.all(np.diff(times) > 0)
    assert np.diff(times).max() <= 400.0 + 1e-6
    dense = np.linspace(t0, t1, 200_001)  # 0.5 µs
    x = (cam.rig.lens_path.actual_dpt(dense) - cam._cache.d_min) / cam._cache.step_dpt
    interval = np.searchsorted(times, dense, side="right") - 1
    starts = np.flatnonzero(np.diff(interval, prepend=-1))
    node = np.floor(x)
    spans = np.maximum.reduceat(node, starts) - np.minimum.reduceat(node, starts)
    # (a crossing lands on a sample to within the 10 µs probe's interpolation: a few intervals start early)
    assert np.mean(spans == 0) > 0.98
    direction = np.sign(np.diff(x, append=x[-1]))
    up, down = (np.add.reduceat((direction == sign).astype(int), starts) for sign in (1, -1))
    assert np.minimum(up, down).max() * 0.5 <= 20.0  # µs against the sweep's direction in any interval
    moving = SimEventCamera(SimRig.default(SIZE, moving=MovingObject(2.0, 10.0, (20.0, 20.0), (300.0, 0.0), SIZE)),
                            chunk_us=CHUNK_US)
    assert moving.sample_times(0.0, 5_000.0) is None  # a moving object changes L at fixed power: adaptive


def test_cached_sampling_gives_the_events_adaptive_sampling_gives(monkeypatch):
    def events(adaptive: bool) -> np.ndarray:
        cam = make_camera(seed=3)
        if adaptive:
            monkeypatch.setattr(cam, "sample_times", lambda t0, t1: None)
        cam.start()
        return joined(read_chunks(cam, 30))[0]

    node, adaptive = events(False), events(True)
    assert abs(node.size - adaptive.size) <= 0.005 * adaptive.size
    w, h = SIZE
    per_pixel = [np.bincount(e["y"].astype(int) * w + e["x"], minlength=w * h) for e in (node, adaptive)]
    same = per_pixel[0] == per_pixel[1]
    assert same.mean() > 0.9
    order = [np.lexsort((e["t"], e["y"].astype(int) * w + e["x"])) for e in (node, adaptive)]
    keep = [same[(e["y"].astype(int) * w + e["x"])[o]] for e, o in zip((node, adaptive), order, strict=True)]
    dt = node["t"][order[0]][keep[0]].astype(np.int64) - adaptive["t"][order[1]][keep[1]].astype(np.int64)
    assert np.percentile(np.abs(dt), 95) <= 50  # µs: the same crossings, placed alike
