"""Recordings with a part missing, empty, cut or corrupt: what is intact stays readable, ``inspect`` says what is
wrong (never "success"), and whatever needs the damaged part fails naming that file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from calibration.model import CalibrationError
from calibration.pipeline import calibrate_recording
from capture.fuzz.seeds import write_recording_seed
from capture.recording import Recording, RecordingError, RecordingWriter
from capture.recording.summary import summarize
from drivers.camera import EventChunk
from drivers.events.synthetic import synthetic_events

PARTS = ["events.raw", "frames.h5", "sync.h5", "metadata.json"]


@pytest.fixture(scope="module")
def seed_recording(tmp_path_factory):
    return write_recording_seed(tmp_path_factory.mktemp("seed")).path


@pytest.fixture
def recording(seed_recording, tmp_path):
    """A fresh copy of a complete three-sweep recording, to damage."""
    return shutil.copytree(seed_recording, tmp_path / "rec")


def test_the_intact_recording_is_a_success(recording):
    with Recording.open(recording) as rec:
        s = summarize(rec)
        assert len(list(rec.sweeps())) == 3
    assert s["status"] == "success" and not s["problems"] and s["events"]["truncation"] is None


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_inspect_names_a_missing_or_empty_part_instead_of_success(recording, part, damage):
    path = recording / part
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"")
    with Recording.open(recording) as rec:
        s = summarize(rec)
    assert s["status"] == "incomplete"
    assert part in s["problems"] and damage in s["problems"][part] and part in s["reason"]
    if part != "events.raw":  # what is intact is still summarised
        assert s["events"]["count"] == 6000
    if part != "sync.h5":
        assert s["sweeps"]["count"] == 3


@pytest.mark.parametrize(("part", "needed"), [("sync.h5", "sweep table"), ("frames.h5", "frames"),
                                              ("events.raw", "events"), ("metadata.json", "commanded sweep")])
def test_reading_sweeps_without_a_part_they_need_names_it(recording, part, needed):
    (recording / part).unlink()
    with Recording.open(recording) as rec, pytest.raises(RecordingError) as exc:
        list(rec.sweeps())
    assert str(recording / part) in str(exc.value) and needed in str(exc.value)


def test_a_recording_without_sync_data_says_why_it_has_no_sweeps(recording):
    with Recording.open(recording) as rec:
        assert rec.no_sweeps_reason() is None
    (recording / "sync.h5").unlink()
    with Recording.open(recording) as rec:
        assert "sync.h5: missing" in rec.no_sweeps_reason()


def test_calibration_without_sync_data_fails_instead_of_dropping_timing(recording):
    (recording / "sync.h5").unlink()
    # With a separate target, only REC's sweeps could give the lens lag and breathing.
    with pytest.raises(CalibrationError, match=r"sync\.h5: missing.*Lens lag and focus breathing"):
        calibrate_recording(recording, target=recording)
    # Without one, REC is a sweep capture (its metadata has a commanded sweep), not a spatial target.
    with pytest.raises(CalibrationError, match=r"sync\.h5: missing"):
        calibrate_recording(recording)


def test_calibration_without_metadata_names_the_missing_file(recording):
    (recording / "metadata.json").unlink()
    with pytest.raises(RecordingError, match=r"metadata\.json: missing"):
        calibrate_recording(recording)


def test_a_recording_that_never_had_frames_is_not_damaged(tmp_path):
    """frames.h5 is created at the first frame: an events-only capture has none, and that is no problem."""
    folder = tmp_path / "events_only"
    folder.mkdir()
    cd, trig = synthetic_events(2000, 320, 240, rate=1e5, seed=2)
    w = RecordingWriter(folder, uid="e" * 32, plan={"name": "t"}, describe={}, event_geometry=(320, 240),
                        raw_format=None, raw_header=None, calibration_path=None)
    w.write_events(EventChunk(cd, trig, int(cd["t"][-1]) + 1))
    w.close("success", None, {})
    with Recording.open(folder) as rec:
        s = summarize(rec)
    assert not (folder / "frames.h5").exists()
    assert s["status"] == "success" and not s["problems"]


def test_a_raw_file_cut_mid_word_is_not_called_a_flush_boundary(recording):
    raw = recording / "events.raw"
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) // 2 | 1])  # half the file, ending inside a 16-bit word
    with Recording.open(recording) as rec:
        e = summarize(rec)["events"]
    assert e["truncated"] and "cut mid-word" in e["truncation"] and "flush" not in e["truncation"].split(":")[0]
    assert 0 < e["count"] < 6000


def test_a_raw_file_cut_on_a_word_boundary_is_found_by_its_logged_count(recording):
    raw = recording / "events.raw"
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) // 2 & ~7])  # ends between two EVT3 word groups: the decoder sees no damage
    with Recording.open(recording) as rec:
        e = summarize(rec)["events"]
    assert not e["truncated"]
    assert f"of the {6000:,} events the capture wrote" in e["truncation"]


def test_unreadable_documents_leave_the_rest_readable(recording):
    meta = recording / "metadata.json"
    meta.write_bytes(meta.read_bytes().replace(b'"uid"', b'"u\xffd"', 1))  # not UTF-8 any more
    log = recording / "run.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0][:10] + b"\xff" + lines[0][11:] + b"".join(lines[1:]))  # the start document damaged
    with Recording.open(recording) as rec:
        s = summarize(rec)
        assert rec.complete  # the stop document after the damaged line is still read
    assert s["status"] == "incomplete" and "not valid JSON" in s["problems"]["metadata.json"]
    assert s["events"]["count"] == 6000 and s["sweeps"]["count"] == 3


def test_metadata_of_the_wrong_shape_is_named(recording):
    import json

    meta = recording / "metadata.json"
    doc = json.loads(meta.read_text())
    doc["commanded"]["low_dpt"] = "zero"
    doc["event_geometry"] = [320]
    meta.write_text(json.dumps(doc))
    with Recording.open(recording) as rec:
        with pytest.raises(RecordingError, match=r"metadata\.json: 'event_geometry' is \[320\]"):
            rec.event_geometry  # noqa: B018
        with pytest.raises(RecordingError, match=r"metadata\.json: unusable commanded sweep"):
            rec.commanded(np.zeros(1, [("t0_us", "<f8"), ("soft_synced", "u1")])[0])


def test_metadata_values_of_the_wrong_type_are_left_out_and_reported(recording):
    """A plan that is a string ended in AttributeError ('str' object has no attribute 'get') reading sweeps."""
    import json

    meta = recording / "metadata.json"
    doc = json.loads(meta.read_text())
    doc["plan"], doc["calibration_file"] = "x", 3
    meta.write_text(json.dumps(doc))
    with Recording.open(recording) as rec:
        assert len(list(rec.sweeps())) == 3  # nothing that was needed is lost
        s = summarize(rec)
    assert s["status"] == "incomplete" and "plan='x'" in s["problems"]["metadata.json"]
    assert "calibration_file=3" in s["problems"]["metadata.json"]


def test_a_capture_before_its_first_frames_is_not_damaged(tmp_path):
    """frames.h5 appears with the first frame batch: a capture still starting (or killed then) lacks it."""
    folder = tmp_path / "starting"
    folder.mkdir()
    cd, trig = synthetic_events(2000, 320, 240, rate=1e5, seed=2)
    w = RecordingWriter(folder, uid="s" * 32, plan={"name": "t"}, describe={}, event_geometry=(320, 240),
                        raw_format=None, raw_header=None, calibration_path=None,
                        extra={"frame_geometry": [64, 48]})
    try:
        w.write_events(EventChunk(cd, trig, int(cd["t"][-1]) + 1))
        w.flush()
        with Recording.open(folder) as rec:
            assert not rec.problems and rec.status == "incomplete" and not rec.complete
    finally:
        w.close("success", None, {})


def test_a_damaged_sweep_table_is_named(recording):
    """An empty window in sync.h5's sweep table (a damaged block) ended in SweepData's ValueError, naming no file."""
    import h5py

    with h5py.File(recording / "sync.h5", "r+") as f:
        row = f["sweeps"][1]
        row["t_end_us"] = row["t_start_us"]
        f["sweeps"][1] = row
    with Recording.open(recording) as rec, pytest.raises(RecordingError) as exc:
        list(rec.sweeps())
    assert str(recording / "sync.h5") in str(exc.value) and "row 1" in str(exc.value)
