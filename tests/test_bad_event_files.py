"""Damaged and crafted event files: every reader path bounds its memory and time by the data present, and every
error names the file. The files are the ones the fuzz harness found failing, rebuilt deterministically."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from capture.formats import EventFileError, open_events
from capture.formats.convert import convert_events
from capture.formats.stats import compute_stats
from capture.fuzz.seeds import write_hdf5_seed
from capture.recording import Recording
from capture.recording.summary import summarize
from drivers.events.evt2 import TIME_LOOP_US

MiB = 1 << 20
TIME_HIGH = 0x8 << 28


def wrapping_evt2(path, wraps: int = 60, size: int = 566):
    """The crafted file of the report: an EVT2 header, ``wraps`` TIME_HIGH wraps, a few CD events, ``size`` bytes."""
    words = [TIME_HIGH, (1 << 28) | (5 << 11) | 7]
    for _ in range(wraps):
        words += [TIME_HIGH | 0x0FFFFFFF, TIME_HIGH]
    header = b"% evt 2.0\n% format EVT2;height=480;width=640\n% geometry 640x480\n% end\n"
    n_events = (size - len(header)) // 4 - len(words)
    words += [(1 << 28) | (6 << 11) | 7] * n_events
    path.write_bytes(header + np.array(words, "<u4").tobytes())
    return path, 1 + n_events


def peak_mib(fn) -> float:
    """Peak traced memory (numpy's buffers included) while ``fn`` runs, in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()


def test_time_wraps_cost_memory_by_events_not_time_span(tmp_path):
    path, n_events = wrapping_evt2(tmp_path / "wraps.raw")
    assert path.stat().st_size == 566
    stats = {}

    def info():
        with open_events(path) as reader:
            stats["s"] = compute_stats(reader)

    assert peak_mib(info) < 64  # was 7.7 GiB: one bin per millisecond of the 285-hour span
    s = stats["s"]
    assert s.n_cd == n_events and s.duration_us == 60 * TIME_LOOP_US
    assert s.peak_count == n_events - 1  # every event after the last wrap shares one millisecond

    summary = {}

    def inspect():
        with Recording.open(path) as rec:
            summary["s"] = summarize(rec)

    assert peak_mib(inspect) < 64
    from capture.recording.summary import MAX_RATE_BINS

    events, rate = summary["s"]["events"], summary["s"]["rate"]
    assert events["count"] == n_events and len(rate) <= MAX_RATE_BINS
    assert rate[:, 1].sum() * events["rate_bin_us"] / 1e6 == pytest.approx(n_events)  # no event lost to wider bins


@pytest.mark.parametrize("seed", range(4))
def test_sparse_window_counts_equal_the_dense_histogram(seed):
    from capture.formats.stats import window_counts

    rng = np.random.default_rng(seed)
    t = np.sort(np.concatenate([rng.integers(0, 50_000, 3000), rng.integers(10**12, 10**12 + 5000, 40)]))
    for part in (t[:3000], t):  # a dense span (bincount) and a sparse one (sorted unique)
        keys, counts = window_counts(part, 1000)
        dense = np.bincount(part[part < 10**9] // 1000)
        assert counts.sum() == part.size
        assert np.array_equal(keys[keys < 10**6], np.flatnonzero(dense))
        assert np.array_equal(counts[keys < 10**6], dense[dense > 0])


def test_conversions_refuse_time_spans_that_no_data_fills(tmp_path):
    """A few events hours apart would need gigabytes of EVT3 time words or HDF5 index rows: refused, naming the
    source and what was written."""
    path, _ = wrapping_evt2(tmp_path / "wraps.raw")
    for dst in (tmp_path / "out.raw", tmp_path / "out.hdf5"):
        def convert(dst=dst):
            with open_events(path) as reader, pytest.raises(EventFileError) as exc:
                convert_events(reader, dst)
            assert exc.value.path == path and dst.name in exc.value.problem
            assert "timestamps are probably corrupt" in exc.value.problem

        assert peak_mib(convert) < 64
        assert dst.stat().st_size < MiB


def test_conversion_errors_about_the_sources_events_name_the_source(tmp_path):
    src = tmp_path / "unsorted.raw"
    header = b"% evt 2.0\n% format EVT2;height=480;width=640\n% end\n"
    words = [TIME_HIGH | 100, (1 << 28) | (5 << 11) | 7, TIME_HIGH | 50, (1 << 28) | (6 << 11) | 7]
    src.write_bytes(header + np.array(words, "<u4").tobytes())
    with open_events(src) as reader, pytest.raises(EventFileError) as exc:
        convert_events(reader, tmp_path / "out.hdf5")
    assert exc.value.path == src and "not sorted by time" in exc.value.problem and "out.hdf5" in exc.value.problem


@pytest.fixture
def hdf5_bytes(tmp_path):
    return bytearray(write_hdf5_seed(tmp_path).path.read_bytes())


def _damaged(tmp_path, data: bytearray, name: str):
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def test_hdf5_with_unparseable_attributes_still_gives_its_events(tmp_path, hdf5_bytes):
    """The name length of the first attribute made HDF5's attribute iteration raise RuntimeError (a traceback)."""
    at = hdf5_bytes.find(b"geometry\x00")
    hdf5_bytes[at - 6:at - 4] = b"\xff\xff"
    path = _damaged(tmp_path, hdf5_bytes, "attrs.hdf5")
    with open_events(path) as reader:
        assert any("attributes unreadable" in note for note in reader.info.inferred)
        assert compute_stats(reader).n_cd == 20_000
        with pytest.raises(EventFileError, match="pass --width and --height") as exc:
            convert_events(reader, tmp_path / "out.raw")
        assert exc.value.path == path
    with open_events(path, width=320, height=240) as reader:  # the sensor size given by hand: converts
        assert convert_events(reader, tmp_path / "out.raw") == (20_000, 396)


def test_hdf5_with_a_damaged_string_heap_names_the_file(tmp_path, hdf5_bytes):
    """A broken global heap signature ended in h5py's 'Can't synchronously read data' without the file's name."""
    at = hdf5_bytes.find(b"GCOL")
    hdf5_bytes[at:at + 4] = b"XXXX"
    path = _damaged(tmp_path, hdf5_bytes, "heap.hdf5")
    with open_events(path) as reader:
        assert any("unreadable" in note for note in reader.info.inferred)
        reader.seek_time(16_800_000)  # seeking needs the index tables' 'offset' attributes: falls back to a scan
        assert compute_stats(reader).n_cd > 0


def test_hdf5_whose_string_heap_makes_hdf5_loop_opens_anyway(tmp_path, hdf5_bytes):
    """Zeroed heap objects made HDF5 loop forever inside C code when any attribute was read (> 300 s)."""
    at = hdf5_bytes.find(b"GCOL")
    hdf5_bytes[at + 16:at + 16 + 512] = bytes(512)
    path = _damaged(tmp_path, hdf5_bytes, "loop.hdf5")
    script = textwrap.dedent(f"""
        try:
            import capture.formats.hdf5_attributes as attributes
            attributes.ATTRIBUTE_TIMEOUT_S = 3.0
        except ImportError:
            pass
        from capture.formats import open_events
        from capture.formats.stats import compute_stats
        with open_events({str(path)!r}) as reader:
            print(compute_stats(reader).n_cd, "|".join(reader.info.inferred))
    """)
    # A separate interpreter, so that the loop (were it back) ends this test instead of hanging the suite.
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    n_cd, notes = done.stdout.strip().split(" ", 1)
    assert int(n_cd) == 20_000 and "did not finish reading the attributes" in notes


def test_hdf5_extent_beyond_the_stored_chunks_reads_only_what_is_stored(tmp_path):
    """A corrupt extent made HDF5 return fill values for chunks never written: 2^40 zero events from 30 KiB."""
    import h5py

    from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, HDF5_INDEX

    path = tmp_path / "plain.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["geometry"] = "320x240"
        cd = f.create_dataset("CD/events", (1024,), EVENT_CD, maxshape=(None,), chunks=(1024,))
        cd[:] = np.zeros(1024, EVENT_CD)
        cd.resize((1 << 40,))  # the extent a flipped size field can claim; one chunk is stored
        f.create_dataset("CD/indexes", (0,), HDF5_INDEX)
        f.create_dataset("EXT_TRIGGER/events", (0,), EVENT_EXT_TRIGGER)
        f.create_dataset("EXT_TRIGGER/indexes", (0,), HDF5_INDEX)
    with open_events(path) as reader:
        assert any("claims 1099511627776 rows" in note for note in reader.info.inferred)
        n = 0
        for cd, _ in reader.read_chunks(1 << 16):
            n += len(cd)
            if n > 1 << 20:
                break
    assert n == 1024


def test_metadata_no_header_can_hold_is_left_behind_by_a_conversion(tmp_path):
    """A damaged attribute name ('g\\x1eometry') made the RAW header writer raise a ValueError naming no file."""
    from capture.formats.hdf5 import Hdf5EventWriter
    from drivers.events.synthetic import synthetic_events

    cd, trig = synthetic_events(1000, 320, 240, rate=1e5, seed=1)
    src = tmp_path / "odd_metadata.hdf5"
    with Hdf5EventWriter(src, 320, 240, metadata={"g\x1eometry": "320x240", "note": "two\nlines",
                                                  "serial_number": "S1"}) as w:
        w.write(cd, trig)
    with open_events(src) as reader:
        assert convert_events(reader, tmp_path / "out.raw", metadata=dict(reader.info.metadata)) == (1000, len(trig))
    with open_events(tmp_path / "out.raw") as out:
        assert out.info.metadata["serial_number"] == "S1"
        assert not {"g\x1eometry", "note"} & set(out.info.metadata)
