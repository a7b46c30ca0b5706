"""Event files both ways against OpenEB 5.1.1 itself: its tools and Python API read focalrig's files, focalrig
reads OpenEB's, and both sides decode to identical CD and trigger events.

focalrig → OpenEB: EVT 3.0 and EVT 2.0 RAW (dense vectors up to the right edge, trigger edges on two ids,
EVT3 across its 2^24 µs wrap), Prophesee HDF5 with triggers and indexes, a capture's ``events.raw``, and the
CSV layout (byte for byte what ``metavision_file_to_csv`` writes). OpenEB → focalrig: the public recordings,
``metavision_file_to_hdf5`` output, ``metavision_file_cutter`` output and the tools' CSV. Unlike the stored
reference decodes of ``test_files.py``, every expectation here is computed by OpenEB in the same run, so a
regression in a writer fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from capture.engine import CaptureEngine
from capture.formats import create_writer, open_events
from capture.recording import Recording
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events, make_triggers
from drivers.events.synthetic import synthetic_events
from tests.capture_rigs import plan, sim_rig
from tests.reference import shared_event_file, sort_events

pytestmark = pytest.mark.openeb

SHARED_RAW = [
    "expelliarmus_evt3_sample.raw",
    "expelliarmus_evt2_sample.raw",
    "ros_event_camera_codecs_evt3_trigger.raw",
]
#: Where the streams start: 3 ms before EVT3's 2^24 µs wrap; EVT2 three hours in, clear of its 2^34 µs wrap
#: (see test_evt2_across_its_34_bit_wrap_as_far_as_openeb_sees_it for that one).
START_US = {"EVT3": (1 << 24) - 3000, "EVT2": 3 * 3600 * 10**6}


def read_all(path, *, time_shift: bool = False) -> tuple[np.ndarray, np.ndarray]:
    with open_events(path, time_shift=time_shift, width=1280, height=720) as reader:
        parts = list(reader.read_chunks())
    return (concat_events([c for c, _ in parts], EVENT_CD),
            concat_events([t for _, t in parts], EVENT_EXT_TRIGGER))


def read_csv(path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)


def assert_same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    """Identical CD and trigger arrays, in the same order, and not trivially empty."""
    assert a[0].shape[0] > 0 and a[0].dtype == EVENT_CD and np.array_equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])


def stream(start_us: int, n: int = 120_000, width: int = 1280, height: int = 720, rate: float = 20e6):
    """Dense runs (vectors, some ending at the right edge) from ``start_us`` on, strobe edges on ids 0 and 1."""
    cd, trig = synthetic_events(n, width, height, rate=rate, seed=11)
    cd["t"] += start_us
    triggers = make_triggers(trig["p"], trig["t"] + start_us, np.arange(trig.shape[0]) // 2 % 2)
    assert (cd["x"] == width - 1).any()
    return cd, triggers


@pytest.fixture(scope="module", params=["EVT3", "EVT2"])
def focalrig_raw(request, tmp_path_factory):
    fmt = request.param
    cd, trig = stream(START_US[fmt])
    path = tmp_path_factory.mktemp(fmt) / f"{fmt.lower()}.raw"
    with create_writer(path, 1280, 720, evt=int(fmt[-1])) as w:
        w.write(cd[:50_000], trig[trig["t"] < cd["t"][50_000]])  # two batches: the writer's state carries over
        w.write(cd[50_000:], trig[trig["t"] >= cd["t"][50_000]])
    return path, cd, trig


# -- focalrig writes, OpenEB reads ----------------------------------------------------------------------------
def test_openeb_decodes_focalrig_raw_to_the_written_events(oracle, focalrig_raw):
    path, cd, trig = focalrig_raw
    theirs = oracle.decode(path)
    assert_same(theirs, read_all(path))  # OpenEB and focalrig agree on the file, event for event
    assert np.array_equal(sort_events(theirs[0]), sort_events(cd))  # and it holds what was written
    assert np.array_equal(theirs[1], trig) and set(trig["id"]) == {0, 1}


def test_openeb_time_shift_of_focalrig_raw_matches_focalrigs(oracle, focalrig_raw):
    path, _, _ = focalrig_raw
    assert_same(oracle.decode(path, time_shift=True), read_all(path, time_shift=True))


def test_evt2_across_its_34_bit_wrap_as_far_as_openeb_sees_it(oracle, tmp_path):
    """EVT2 time wraps every 2^34 µs (4.77 h). OpenEB 5.1.1 looks for that wrap once per read buffer, comparing
    the buffer's last TIME_HIGH with its time base, so it counts the wrap only when the buffer holding it ends
    within 10 ms after it; a longer buffer, or a stream that starts past the wrap, decodes modulo 2^34 µs, and
    its time-shifted decode of a stream starting just before a wrap adds 2^34 µs to every event. So no writer
    can make every OpenEB read agree: this file (6 ms across the wrap, one buffer) is one OpenEB gets right,
    and focalrig, which applies the wrap rule to every TIME_HIGH, decodes it identically."""
    cd, trig = stream((1 << 34) - 3000)
    assert cd["t"][0] < 1 << 34 < cd["t"][-1] < (1 << 34) + 10_000
    path = tmp_path / "wrap.raw"
    with create_writer(path, 1280, 720, evt=2) as w:
        w.write(cd, trig)
    theirs = oracle.decode(path)
    assert_same(theirs, read_all(path))
    assert np.array_equal(sort_events(theirs[0]), sort_events(cd)) and np.array_equal(theirs[1], trig)


def test_metavision_file_to_csv_reads_focalrig_raw(oracle, focalrig_raw, tmp_path):
    path, cd, trig = focalrig_raw
    oracle.file_to_csv(path, tmp_path / "tool.csv")
    rows = read_csv(tmp_path / "tool.csv")
    ours = read_all(path)[0]
    assert np.array_equal(rows, np.stack([ours["x"], ours["y"], ours["p"], ours["t"]], axis=1))
    assert rows.shape[0] == cd.shape[0]
    trig_rows = read_csv(tmp_path / "tool_triggers.csv")
    assert np.array_equal(trig_rows, np.stack([trig["p"], trig["id"], trig["t"]], axis=1))


def test_focalrig_csv_is_byte_for_byte_the_tools_csv(oracle, focalrig_raw, tmp_path):
    path, _, _ = focalrig_raw
    oracle.file_to_csv(path, tmp_path / "tool.csv")
    with open_events(path) as reader, create_writer(tmp_path / "ours.csv", 1280, 720) as w:
        for c, t in reader.read_chunks(7777):
            w.write(c, t)
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "tool.csv").read_bytes()
    assert (tmp_path / "ours_triggers.csv").read_bytes() == (tmp_path / "tool_triggers.csv").read_bytes()


def test_focalrig_hdf5_is_what_metavision_file_to_hdf5_writes(oracle, focalrig_raw, tmp_path):
    """The same events through both writers: identical events, triggers, indexes and index offsets, read
    through h5py with OpenEB's real ECF filter plugin; OpenEB's API and CSV tool read focalrig's file."""
    path, _, _ = focalrig_raw
    openeb_h5, ours_h5 = tmp_path / "openeb.hdf5", tmp_path / "ours.hdf5"
    oracle.file_to_hdf5(path, openeb_h5)  # OpenEB shifts RAW times while converting
    cd, trig = read_all(path, time_shift=True)
    with create_writer(ours_h5, 1280, 720) as w:
        w.write(cd, trig)
    theirs, ours = oracle.read_hdf5(openeb_h5), oracle.read_hdf5(ours_h5)
    for key in ("CD/events", "CD/indexes", "CD/indexes_offset", "EXT_TRIGGER/events", "EXT_TRIGGER/indexes",
                "EXT_TRIGGER/indexes_offset"):
        assert np.array_equal(ours[key], theirs[key]), key
    assert np.array_equal(ours["CD/events"], cd) and ours["CD/indexes"].shape[0] > 2
    assert_same(oracle.decode(ours_h5), (cd, trig))
    oracle.file_to_csv(ours_h5, tmp_path / "tool.csv")
    assert np.array_equal(read_csv(tmp_path / "tool.csv")[:, 3], cd["t"])
    assert read_csv(tmp_path / "tool_triggers.csv").shape[0] == trig.shape[0] > 0


@pytest.fixture(scope="module")
def capture_recording(tmp_path_factory):
    """Two hard-synced sweeps from the simulated rig: its EVT3 bytes, recorded verbatim, with trigger edges."""
    rig, _ = sim_rig()
    with rig:
        status = CaptureEngine(rig, plan(sweeps=2), tmp_path_factory.mktemp("capture")).run()
    assert status.exit_status == "success"
    return status.recording


def test_openeb_reads_a_captures_events_raw(oracle, capture_recording):
    with Recording.open(capture_recording) as rec:
        ours, triggers = read_all(rec.events_path)[0], rec.triggers
        assert rec.metadata["raw_verbatim"] is True
        theirs = oracle.decode(rec.events_path)
    assert_same(theirs, (ours, triggers))
    assert set(triggers["id"]) == {0, 1}  # strobe and lens sync
    oracle.run_tool("metavision_file_info", "-i", rec.events_path)  # the tool accepts the file


# -- OpenEB writes, focalrig reads ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHARED_RAW)
def test_focalrig_decodes_the_public_recordings_as_openeb_does(oracle, name):
    path = shared_event_file(name)
    for shift in (False, True):
        assert_same(read_all(path, time_shift=shift), oracle.decode(path, time_shift=shift))


@pytest.mark.parametrize("name", SHARED_RAW)
def test_focalrig_reads_metavision_file_to_hdf5_output(oracle, name, tmp_path):
    out = tmp_path / "openeb.hdf5"
    oracle.file_to_hdf5(shared_event_file(name), out)
    ours = read_all(out)
    assert_same(ours, oracle.decode(out))
    assert_same(ours, oracle.decode(shared_event_file(name), time_shift=True))  # the tool's time shift


def test_focalrig_reads_metavision_file_to_hdf5_output_of_its_own_raw(oracle, focalrig_raw, tmp_path):
    path, _, _ = focalrig_raw
    oracle.file_to_hdf5(path, tmp_path / "openeb.hdf5")
    assert_same(read_all(tmp_path / "openeb.hdf5"), read_all(path, time_shift=True))


@pytest.mark.parametrize("name", SHARED_RAW)
def test_focalrig_reads_metavision_file_cutter_output(oracle, name, tmp_path):
    src = shared_event_file(name)
    shifted = read_all(src, time_shift=True)[0]["t"]
    start_s, end_s = shifted[len(shifted) // 3] * 1e-6, shifted[2 * len(shifted) // 3] * 1e-6
    oracle.cut(src, tmp_path / "cut.raw", start_s, end_s)
    for shift in (False, True):
        ours = read_all(tmp_path / "cut.raw", time_shift=shift)
        assert_same(ours, oracle.decode(tmp_path / "cut.raw", time_shift=shift))
    assert 0 < ours[0].shape[0] < len(shifted)


def test_focalrig_reads_the_tools_csv(oracle, focalrig_raw, tmp_path):
    path, _, _ = focalrig_raw
    oracle.file_to_csv(path, tmp_path / "tool.csv")
    assert_same(read_all(tmp_path / "tool.csv"), oracle.decode(path))
