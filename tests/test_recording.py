"""Recording folders below the engine: RAW as the camera sent it (and exact after a drop), OpenEB-readable headers,
bare event files as events-only recordings, unique names, pre-capture checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from capture.engine import CaptureEngine
from capture.formats import create_writer, open_events
from capture.formats.rawheader import parse_raw_header
from capture.recording import Recording, RecordingError, RecordingWriter, create_recording_dir, preflight
from capture.recording.layout import EVENTS_FILE
from capture.replay import ReplayRig
from drivers.camera import EventChunk
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events, make_cd
from drivers.events.evt3 import Evt3Encoder
from drivers.events.synthetic import synthetic_events
from tests.capture_rigs import plan

W, H = 320, 240
HEADER = {"evt": "3.0", "format": f"EVT3;height={H};width={W}", "geometry": f"{W}x{H}", "generation": "4.2",
          "serial_number": "SIM00000042"}


def canonical(cd):
    return cd[np.lexsort((cd["x"], cd["p"], cd["y"], cd["t"]))]


def camera_chunks(t_offset_us: int, n_chunks: int = 6):
    """Chunks as a camera delivers them: events, trigger edges and the same stretch as EVT3 bytes."""
    cd, trig = synthetic_events(60_000, W, H, rate=2e6, seed=1)
    cd["t"] += t_offset_us
    trig["t"] += t_offset_us
    enc = Evt3Encoder(W, H)
    bounds = np.linspace(cd["t"][0], cd["t"][-1] + 1, n_chunks + 1).astype(np.int64)
    out = []
    for t0, t1 in itertools.pairwise(bounds):
        c = cd[(cd["t"] >= t0) & (cd["t"] < t1)]
        tr = trig[(trig["t"] >= t0) & (trig["t"] < t1)]
        out.append(EventChunk(c, tr, int(t1), enc.encode(c, tr)))
    return out


def writer(folder):
    return RecordingWriter(folder, uid="0" * 32, plan=plan().model_dump(mode="json"), describe={},
                           event_geometry=(W, H), raw_format="EVT3", raw_header=HEADER, calibration_path=None)


@pytest.mark.parametrize("t_offset_us", [0, 20_000_000])  # beyond 2^24 µs the stream starts with TIME_HIGH wraps
def test_raw_is_the_cameras_bytes_and_stays_exact_after_a_dropped_chunk(tmp_path, t_offset_us):
    chunks = camera_chunks(t_offset_us)
    w = writer(tmp_path)
    for i, chunk in enumerate(chunks):
        if i == 2:
            w.events_dropped()  # chunk 2 never reached the writer
            continue
        w.write_events(chunk)
    w.close("success", None, {})
    raw = (tmp_path / EVENTS_FILE).read_bytes()
    header_end = raw.index(b"% end\n") + len(b"% end\n")
    assert raw[header_end:].startswith(chunks[0].raw + chunks[1].raw)  # verbatim until the drop
    kept = [c for i, c in enumerate(chunks) if i != 2]
    with open_events(tmp_path / EVENTS_FILE) as reader:
        got = list(reader.read_chunks())
        assert not reader.truncated
    cd = concat_events([c for c, _ in got], EVENT_CD)
    assert np.array_equal(canonical(cd), canonical(concat_events([c.cd for c in kept], EVENT_CD)))
    assert np.array_equal(concat_events([t for _, t in got], EVENT_EXT_TRIGGER),
                          concat_events([c.triggers for c in kept], EVENT_EXT_TRIGGER))


def test_raw_header_and_encoding_are_what_openeb_reads(tmp_path):
    evt3 = pytest.importorskip("evt3")  # independent EVT 3.0 decoder (OpenEB semantics), test-only dependency
    chunks = camera_chunks(0)
    w = writer(tmp_path)
    for chunk in chunks:
        w.write_events(chunk)
    w.close("success", None, {})
    path = tmp_path / EVENTS_FILE
    header = parse_raw_header(path.read_bytes()[:4096])
    fields = header.fields
    for key in ("evt", "format", "geometry", "generation", "serial_number", "date"):
        assert key in fields, key
    assert fields["format"] == f"EVT3;height={H};width={W}" and fields["evt"] == "3.0" and not header.inferred
    events, trig = evt3.decode_file_with_triggers(str(path))  # reads past the header as OpenEB does
    got = make_cd(events.x, events.y, events.polarity, events.t.astype(np.int64))
    assert np.array_equal(canonical(got), canonical(concat_events([c.cd for c in chunks], EVENT_CD)))
    ref_trig = concat_events([c.triggers for c in chunks], EVENT_EXT_TRIGGER)
    assert np.array_equal(trig.timestamp.astype(np.int64), ref_trig["t"])


def test_bare_event_file_is_an_events_only_recording_the_engine_can_cut_into_sweeps(tmp_path):
    """A RAW file from other software (sync edges on channel 1 every 40 ms) replays through the engine."""
    cd, _ = synthetic_events(200_000, W, H, rate=2e6, seed=2)
    edges = np.arange(0, int(cd["t"][-1]), 20_000)
    trig = np.zeros(len(edges), EVENT_EXT_TRIGGER)
    trig["t"], trig["p"], trig["id"] = edges, (np.arange(len(edges)) + 1) % 2, 1
    for name in ("bare.raw", "bare.hdf5"):
        with create_writer(tmp_path / name, W, H) as wr:
            wr.write(cd, trig)
        with Recording.open(tmp_path / name) as rec:
            assert rec.status == "events-only" and rec.complete and len(rec.frames) == 0
            assert np.array_equal(rec.triggers["t"], edges)
            with pytest.raises(RecordingError, match="no sweep table"):
                list(rec.sweeps())
    with ReplayRig(tmp_path / "bare.raw") as rig:
        engine = CaptureEngine(rig, plan(sweeps=2, strobe_channel=None), None)
        sweeps = []
        engine.signals.sweep_finished.connect(sweeps.append)
        status = engine.run()
    assert status.exit_status == "success" and [s.t_start_us for s in sweeps] == [0, 40_000]
    assert np.array_equal(canonical(sweeps[1].cd), canonical(cd[(cd["t"] >= 40_000) & (cd["t"] < 80_000)]))


def test_recording_folders_are_never_reused(tmp_path):
    a = create_recording_dir(tmp_path, "{plan}_{uid8}", "my plan", "abcdef0123")
    b = create_recording_dir(tmp_path, "{plan}_{uid8}", "my plan", "abcdef0123")
    assert a.name == "my-plan_abcdef01" and b.name == "my-plan_abcdef01_001"
    with pytest.raises(RecordingError, match="one plain name"):
        create_recording_dir(tmp_path, "{plan}/x", "p", "u")


def test_preflight_refuses_a_full_disk_or_a_file_as_folder(tmp_path):
    with pytest.raises(RecordingError, match="MiB free"):
        preflight(tmp_path, 0, min_free_mib=1e12)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RecordingError, match="not a folder"):
        preflight(tmp_path / "f", 0, 0)
    assert preflight(tmp_path / "new" / "deep", 1000, 0).is_dir()


def test_not_a_recording(tmp_path):
    with pytest.raises(RecordingError, match="not a focalrig recording"):
        Recording.open(tmp_path)
    with pytest.raises(RecordingError, match="no such recording"):
        Recording.open(tmp_path / "missing")
