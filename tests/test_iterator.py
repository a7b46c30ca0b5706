"""EventsIterator slicing, and streaming statistics, checked against brute force on known streams."""

import itertools

import numpy as np
import pytest

from capture.formats.base import EventFileInfo
from capture.formats.iterator import EventsIterator
from capture.formats.memory import InMemoryEventReader
from capture.formats.stats import compute_stats
from drivers.events.dtypes import make_cd, make_triggers
from drivers.events.synthetic import synthetic_events


def reader_of(cd, trig):
    return InMemoryEventReader(cd, trig, EventFileInfo(path=None, format="NPZ", width=640, height=480))


@pytest.fixture(scope="module")
def stream():
    cd, trig = synthetic_events(120_000, 640, 480, rate=2e6, seed=5)
    cd["t"] += 1_234_567  # absolute times far from 0
    trig["t"] += 1_234_567
    return cd, trig


def test_delta_t_windows_partition_the_stream(stream):
    cd, trig = stream
    slices = list(EventsIterator(reader_of(cd, trig), mode="delta_t", delta_t=5000))
    assert slices[0].t_start == cd["t"][0] - cd["t"][0] % 5000
    for a, b in itertools.pairwise(slices):
        assert a.t_end == b.t_start and a.t_end - a.t_start == 5000
    for sl in slices:
        assert np.all((sl.events["t"] >= sl.t_start) & (sl.events["t"] < sl.t_end))
        assert np.all((sl.triggers["t"] >= sl.t_start) & (sl.triggers["t"] < sl.t_end))
    assert np.array_equal(np.concatenate([s.events for s in slices]), cd)
    assert np.array_equal(np.concatenate([s.triggers for s in slices]), trig)


def test_delta_t_yields_empty_windows_in_gaps():
    cd = make_cd([1, 2, 3], [0, 0, 0], [1, 0, 1], [100, 150, 45_100])
    slices = list(EventsIterator(reader_of(cd, make_triggers([], [], [])), delta_t=10_000))
    assert [len(s.events) for s in slices] == [2, 0, 0, 0, 1]
    assert slices[-1].t_start == 40_000


def test_n_events_and_mixed(stream):
    cd, trig = stream
    sizes = [len(s.events) for s in EventsIterator(reader_of(cd, trig), mode="n_events", n_events=7000)]
    assert sizes[:-1] == [7000] * (len(sizes) - 1) and sum(sizes) == cd.shape[0]
    got_trig = np.concatenate([s.triggers for s in EventsIterator(reader_of(cd, trig), mode="n_events",
                                                                  n_events=7000)])
    assert np.array_equal(got_trig, trig)
    mixed = list(EventsIterator(reader_of(cd, trig), mode="mixed", delta_t=20_000, n_events=3000))
    assert all(len(s.events) <= 3000 for s in mixed)
    assert all(s.t_end - s.t_start <= 20_000 for s in mixed)
    assert np.array_equal(np.concatenate([s.events for s in mixed]), cd)
    assert np.array_equal(np.concatenate([s.triggers for s in mixed]), trig)


def test_start_ts_max_duration_and_relative(stream):
    cd, trig = stream
    t0 = int(cd["t"][0]) + 10_000
    it = EventsIterator(reader_of(cd, trig), delta_t=1000, start_ts=t0, max_duration=5000, relative_timestamps=True)
    slices = list(it)
    assert [s.t_start for s in slices] == [t0 + 1000 * k for k in range(5)]
    expected = cd[(cd["t"] >= t0) & (cd["t"] < t0 + 5000)]
    got = np.concatenate([s.events for s in slices])
    assert got.shape[0] == expected.shape[0]
    assert np.array_equal(np.concatenate([s.events["t"] + s.t_start for s in slices]), expected["t"])
    assert all(np.all(s.events["t"] < 1000) for s in slices)
    assert it.get_size() == (480, 640)


def test_stats_match_brute_force(stream):
    cd, trig = stream
    s = compute_stats(reader_of(cd, trig), peak_window_us=1000)
    assert (s.n_cd, s.n_on, s.n_triggers) == (cd.shape[0], int((cd["p"] == 1).sum()), trig.shape[0])
    assert (s.t_first, s.t_last) == (int(cd["t"][0]), int(cd["t"][-1]))
    assert s.peak_count == np.bincount(cd["t"] // 1000).max()
    assert s.trigger_edges == {(0, 1): int((trig["p"] == 1).sum()), (0, 0): int((trig["p"] == 0).sum())}
    assert s.mean_rate == pytest.approx(cd.shape[0] / ((cd["t"][-1] - cd["t"][0]) * 1e-6))
