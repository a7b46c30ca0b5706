"""focalrig's ``EventsIterator`` against OpenEB's own (``metavision_core.event_io``), slice for slice.

Same file, same ``mode``/``delta_t``/``n_events``, with and without OpenEB's RAW time shift: every slice must
hold exactly the CD events OpenEB's slice holds, in the same order, and every trigger must come out. The
files are the three public recordings (real camera bytes, one with triggers) and a dense 1280×720 EVT3 stream
that focalrig wrote across the 2^24 µs EVT3 wrap.
"""

from __future__ import annotations

import numpy as np
import pytest

from capture.formats import EventsIterator, create_writer, open_events
from drivers.events.dtypes import EVENT_EXT_TRIGGER, concat_events, make_triggers
from drivers.events.synthetic import synthetic_events
from tests.reference import shared_event_file

pytestmark = pytest.mark.openeb

SHARED_RAW = [
    "expelliarmus_evt3_sample.raw",
    "expelliarmus_evt2_sample.raw",
    "ros_event_camera_codecs_evt3_trigger.raw",
]
SETTINGS = [
    {"mode": "delta_t", "delta_t": 1000},
    {"mode": "delta_t", "delta_t": 10_000},
    {"mode": "n_events", "n_events": 7000},
    {"mode": "mixed", "delta_t": 1000, "n_events": 300},     # counts cut most windows: the window grid moves
    {"mode": "mixed", "delta_t": 5000, "n_events": 1000},
]


@pytest.fixture(scope="module")
def focalrig_raw(tmp_path_factory):
    """A dense EVT3 stream written by focalrig: 120 k events across the 2^24 µs wrap, strobe edges on two ids."""
    cd, trig = synthetic_events(120_000, 1280, 720, rate=20e6, seed=7)
    cd["t"] += (1 << 24) - 3000
    trig = make_triggers(trig["p"], trig["t"] + (1 << 24) - 3000, np.arange(trig.shape[0]) % 2)
    path = tmp_path_factory.mktemp("iter") / "dense.raw"
    with create_writer(path, 1280, 720) as w:
        w.write(cd, trig)
    return path


def raw_files(focalrig_raw):
    return [focalrig_raw, *[shared_event_file(n) for n in SHARED_RAW]]


def openeb_start(settings: dict) -> dict:
    """OpenEB's iterator starts its windows at ``start_ts=0``; ask focalrig's for the same (n_events has none)."""
    return {} if settings["mode"] == "n_events" else {"start_ts": 0}


def assert_same_slices(ours: list, theirs, settings: dict) -> None:
    """Slice for slice the same CD events; all triggers; window ends as OpenEB's ``current_time`` where defined.

    One documented difference: when the data end exactly on a slice cut by its count, OpenEB's end-of-data
    flush yields one more, empty, slice; focalrig does not.
    """
    expected, current_time = theirs.slices(), theirs.current_time.tolist()
    if len(expected) == len(ours) + 1 and settings["mode"] != "delta_t":
        assert len(expected[-1]) == 0 and len(ours[-1].events) == settings["n_events"]
        expected, current_time = expected[:-1], current_time[:-1]
    assert len(ours) == len(expected) and theirs.sizes.sum() > 0
    for i, (mine, ref) in enumerate(zip(ours, expected, strict=True)):
        assert np.array_equal(mine.events, ref), f"slice {i}: {len(mine.events)} events, OpenEB's has {len(ref)}"
    if settings["mode"] == "delta_t":
        assert [s.t_end for s in ours] == current_time
    elif settings["mode"] == "mixed":  # a slice cut by its count ends at its last event (t_end is exclusive)
        full = settings["n_events"]
        assert [s.t_end - (len(s.events) == full) for s in ours] == current_time
    got = concat_events([s.triggers for s in ours], EVENT_EXT_TRIGGER)
    assert np.array_equal(got, theirs.triggers)


@pytest.mark.parametrize("time_shift", [False, True], ids=["absolute", "time-shifted"])
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_iterator_matches_openeb_slice_for_slice_on_raw(oracle, focalrig_raw, settings, time_shift):
    for path in raw_files(focalrig_raw):
        theirs = oracle.iterate(path, time_shift=time_shift, **settings)
        ours = list(EventsIterator(path, time_shift=time_shift, **settings, **openeb_start(settings)))
        assert_same_slices(ours, theirs, settings)


def test_without_start_ts_focalrig_skips_only_openebs_leading_empty_windows(oracle, focalrig_raw):
    """The documented difference: focalrig's first window is the first event's, not the one at t = 0."""
    settings = {"mode": "delta_t", "delta_t": 1000}
    theirs = oracle.iterate(focalrig_raw, **settings)
    ours = list(EventsIterator(focalrig_raw, **settings))
    lead = ours[0].t_start // 1000
    assert lead > 16_000 and all(n == 0 for n in theirs.sizes[:lead]) and theirs.sizes[lead] > 0
    assert [len(s.events) for s in ours] == theirs.sizes[lead:].tolist()
    assert all(np.array_equal(a.events, b) for a, b in zip(ours, theirs.slices()[lead:], strict=True))


@pytest.mark.parametrize("time_shift", [False, True], ids=["absolute", "time-shifted"])
def test_start_ts_max_duration_and_relative_timestamps_match_openeb(oracle, time_shift):
    path = shared_event_file("ros_event_camera_codecs_evt3_trigger.raw")
    start = 14_400_000 if not time_shift else 100_000
    settings = {"mode": "delta_t", "delta_t": 2000, "start_ts": start, "max_duration": 300_000,
                "relative_timestamps": True}
    theirs = oracle.iterate(path, time_shift=time_shift, **settings)
    ours = list(EventsIterator(path, time_shift=time_shift, **settings))
    assert len(ours) == len(theirs.sizes) == 150 and sum(len(s.events) for s in ours) > 10_000
    for mine, ref in zip(ours, theirs.slices(), strict=True):
        assert np.array_equal(mine.events, ref)
        assert not len(ref) or ref["t"].max() < 2000  # relative to each window's start, in both


@pytest.mark.parametrize("settings", [{"mode": "delta_t", "delta_t": 10_000}, {"mode": "n_events", "n_events": 7000}],
                         ids=["delta_t", "n_events"])
def test_iterator_matches_openeb_on_hdf5(oracle, focalrig_raw, tmp_path, settings):
    """HDF5: OpenEB's own files and one focalrig wrote. Only these settings: OpenEB's Python HDF5 reader fails
    on small ``delta_t`` windows (an IndexError in its seek) and cuts ``mixed`` slices by another rule than
    its RAW reader does; focalrig follows the RAW rule for every format."""
    ours_h5 = tmp_path / "dense.hdf5"
    with open_events(focalrig_raw) as reader, create_writer(ours_h5, 1280, 720) as w:
        for cd, trig in reader.read_chunks():
            w.write(cd, trig)
    files = [ours_h5, *[shared_event_file(n.replace(".raw", "__openeb511_ecf.hdf5")) for n in SHARED_RAW
                        if n != "expelliarmus_evt2_sample.raw"]]
    for path in files:
        theirs = oracle.iterate(path, **settings)
        ours = list(EventsIterator(path, **settings, **openeb_start(settings)))
        expected = theirs.slices()
        assert len(ours) == len(expected) > 3
        assert all(np.array_equal(a.events, b) for a, b in zip(ours, expected, strict=True))
        assert np.array_equal(concat_events([s.triggers for s in ours], EVENT_EXT_TRIGGER), theirs.triggers)
