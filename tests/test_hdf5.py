"""Prophesee HDF5 (ECF) support: the codec against OpenEB's own chunks, the writer against OpenEB's files,
reading, seeking, streaming, crash behaviour and damaged input."""

import itertools
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capture.formats.hdf5 as hdf5_module
from capture.formats.base import EventFileError
from capture.formats.ecf import (
    FLAG_PACK_XP,
    FLAG_PACK_YXP,
    MAX_BLOCK_EVENTS,
    decode_ecf_block,
    encode_ecf_block,
)
from capture.formats.hdf5 import CHUNK_EVENTS, ECF_FILTER_ID, Hdf5EventReader, Hdf5EventWriter
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, HDF5_INDEX, make_cd
from drivers.events.synthetic import synthetic_events
from tests.reference import shared_event_file

OPENEB_FILES = ["expelliarmus_evt3_sample", "ros_event_camera_codecs_evt3_trigger"]
DATASETS = ["CD/events", "CD/indexes", "EXT_TRIGGER/events", "EXT_TRIGGER/indexes"]
MASKED = 0  # header mode bits of masked x + p runs (neither pack flag)


def openeb(stem):
    """(OpenEB-written HDF5 path, reference cd, reference triggers) for a shared recording."""
    path = shared_event_file(f"{stem}__openeb511_ecf.hdf5")
    ref = np.load(shared_event_file(f"{stem}__openeb511_reference.npz"))
    return path, ref["cd"], ref["triggers"]


def read_all(path, max_events=50_000):
    with Hdf5EventReader(path) as reader:
        parts = list(reader.read_chunks(max_events))
    cd = np.concatenate([c for c, _ in parts], dtype=EVENT_CD) if parts else np.empty(0, EVENT_CD)
    trig = (np.concatenate([t for _, t in parts], dtype=EVENT_EXT_TRIGGER) if parts
            else np.empty(0, EVENT_EXT_TRIGGER))
    return cd, trig


def ecf_chunks(ds):
    """Raw (offset, bytes) of every stored chunk of an ECF dataset, in order."""
    out = []
    for i in range(ds.id.get_num_chunks()):
        offset = ds.id.get_chunk_info(i).chunk_offset
        mask, data = ds.id.read_direct_chunk(offset)
        assert mask == 0
        out.append((offset[0], data))
    return out


def mode_of(block):
    return int.from_bytes(block[:4], "little") & 3


def fields_equal(a, b):
    return a.shape == b.shape and all(np.array_equal(a[name], b[name]) for name in b.dtype.names)


# -- ECF codec against OpenEB ----------------------------------------------------------------------
@pytest.mark.parametrize("stem", OPENEB_FILES)
def test_ecf_decode_of_every_openeb_chunk_equals_reference(stem):
    path, cd, _ = openeb(stem)
    with h5py.File(path, "r") as f:
        chunks = ecf_chunks(f["CD/events"])
    decoded = [decode_ecf_block(data) for _, data in chunks]
    assert [off for off, _ in chunks] == list(range(0, cd.shape[0], CHUNK_EVENTS))
    for (offset, _), events in zip(chunks, decoded, strict=True):
        assert events.dtype == EVENT_CD
        assert np.array_equal(events, cd[offset : offset + events.shape[0]])
    assert sum(e.shape[0] for e in decoded) == cd.shape[0]


@pytest.mark.parametrize("stem", OPENEB_FILES)
def test_ecf_reencoding_reproduces_openeb_chunk_bytes(stem):
    """Same mode choice and same bytes; OpenEB's last, partial block pads with its previous block's events."""
    path, _, _ = openeb(stem)
    with h5py.File(path, "r") as f:
        chunks = [data for _, data in ecf_chunks(f["CD/events"])]
    previous = None
    for data in chunks:
        events = decode_ecf_block(data)
        n = events.shape[0]
        stale = None if previous is None else previous[n : n + 5]
        assert encode_ecf_block(events, stale=stale) == data
        if n % 4 == 0:  # no padding: the plain call is already exact
            assert encode_ecf_block(events) == data
        previous = events


def test_openeb_files_cover_two_modes():
    """The shared files exercise pack_xp (dense rows) and pack_yxp; masked x is covered by round trips."""
    modes = set()
    for stem in OPENEB_FILES:
        path, _, _ = openeb(stem)
        with h5py.File(path, "r") as f:
            modes |= {mode_of(data) for _, data in ecf_chunks(f["CD/events"])}
    assert modes == {FLAG_PACK_XP, FLAG_PACK_YXP}


# -- ECF round trips -------------------------------------------------------------------------------
def _times(rng, n, t0, gap_bits, run_max):
    """Sorted times: runs of equal t (up to run_max long) separated by small, medium or huge gaps."""
    runs = rng.integers(1, run_max + 1, size=n)
    run_of_event = np.repeat(np.arange(n), runs)[:n]
    kind = rng.integers(0, 3, size=n)
    small, medium = rng.integers(1, 15, size=n), rng.integers(15, 256, size=n)
    gaps = np.where(kind == 0, small, np.where(kind == 1, medium, rng.integers(256, 1 << gap_bits, size=n)))
    gaps[0] = 0
    return t0 + np.cumsum(gaps)[run_of_event]


def _y_runs(rng, n, min_run=3):
    """Rows in runs of at least three events (some longer than 31, the u16-count case)."""
    lengths = rng.integers(min_run, 80, size=n)
    rows = rng.integers(0, 2048, size=n)
    rows[rng.random(n) < 0.1] = 2047
    return np.repeat(rows, lengths)[:n]


def _block(kind, n, seed, t0, gap_bits, run_max):
    rng = np.random.default_rng(seed)
    t = _times(rng, n, t0, gap_bits, run_max)
    if kind == "scatter":  # no two neighbours share a row: pack_yxp
        y = np.cumsum(rng.integers(1, 2048, size=n)) % 2048
        x = rng.integers(0, 2048, size=n)
        x[rng.random(n) < 0.05] = 2047
        y[rng.random(n) < 0.05] = 2047  # may create a repeat, still far below the 20 % threshold
        p = rng.integers(0, 2, size=n)
    elif kind == "rows":  # long rows, x never increasing: pack_xp
        y = _y_runs(rng, n)
        x = np.sort(rng.choice(2048, size=n, replace=False))[::-1]
        x[0] = 2047
        p = rng.integers(0, 2, size=n)
    else:  # long rows of neighbouring columns, polarity in long runs: masked x + p runs
        y = _y_runs(rng, n)
        lengths = rng.integers(3, 7, size=n)
        starts = rng.integers(0, 2048 - 6, size=n)
        starts[rng.random(n) < 0.1] = 2047 - 5
        within_run = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        x = (np.repeat(starts, lengths) + within_run)[:n]
        p = np.repeat(rng.integers(0, 2, size=n), rng.integers(1, 400, size=n))[:n]
    return make_cd(x, y, p, t)


EXPECTED_MODE = {"scatter": FLAG_PACK_YXP, "rows": FLAG_PACK_XP, "xruns": MASKED}
block_params = {
    "seed": st.integers(0, 2**32 - 1),
    "t0": st.sampled_from([0, 1, 2**32 - 1, 2**40]),
    "gap_bits": st.sampled_from([9, 20, 33, 40]),
    "run_max": st.sampled_from([1, 3, 20, 300]),
}


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(["scatter", "rows", "xruns"]), n=st.integers(16, 2048), **block_params)
def test_ecf_round_trip_in_each_mode(kind, n, seed, t0, gap_bits, run_max):
    cd = _block(kind, n, seed, t0, gap_bits, run_max)
    block = encode_ecf_block(cd)
    assert mode_of(block) == EXPECTED_MODE[kind]
    assert np.array_equal(decode_ecf_block(block), cd)


@settings(max_examples=50, deadline=None)
@given(kind=st.sampled_from(["scatter", "rows", "xruns"]), n=st.integers(1, 15), **block_params)
def test_ecf_round_trip_small_blocks(kind, n, seed, t0, gap_bits, run_max):
    cd = _block(kind, n, seed, t0, gap_bits, run_max)
    assert np.array_equal(decode_ecf_block(encode_ecf_block(cd)), cd)


@pytest.mark.parametrize("kind", ["scatter", "rows", "xruns"])
def test_ecf_round_trip_of_a_maximal_block(kind):
    if kind == "rows":  # x must not increase, so columns repeat: build 65535 events from 2048 columns
        rng = np.random.default_rng(1)
        n = MAX_BLOCK_EVENTS
        x = np.tile(np.arange(2047, -1, -1), n // 2048 + 1)[:n]
        cd = make_cd(x, _y_runs(rng, n), rng.integers(0, 2, n), _times(rng, n, 2**40, 33, 300))
    else:
        cd = _block(kind, MAX_BLOCK_EVENTS, 1, 2**40, 33, 300)
    block = encode_ecf_block(cd)
    assert mode_of(block) == EXPECTED_MODE[kind]
    assert np.array_equal(decode_ecf_block(block), cd)


def _mode_for(x, y):
    n = len(x)
    return mode_of(encode_ecf_block(make_cd(x, y, np.zeros(n), np.zeros(n))))


@pytest.mark.parametrize("n", [10, 16, 17, 1000, CHUNK_EVENTS])
def test_ecf_mode_choice_at_openebs_thresholds(n):
    """§6.6 item 4 at its boundaries: sample m events, more than round(0.2 m) row repeats leave pack_yxp,
    and then more than round(0.08 m) short increasing x steps pick masked x over pack_xp."""
    m = n if n < 16 else int(0.25 * n + 0.5)
    y_limit, x_limit = int(m * 0.2 + 0.5), int(m * 0.08 + 0.5)
    distinct_x = (2047 - np.arange(n)) % 2048  # never an increasing step
    for repeats, expected in ((y_limit, FLAG_PACK_YXP), (y_limit + 1, FLAG_PACK_XP)):
        y = np.maximum(np.arange(n) - repeats, 0) % 2048  # exactly `repeats` repeats at the start
        assert _mode_for(distinct_x, y) == expected
    y = np.arange(n) % 2048
    y[m:] = 0  # repeats after the sample do not count
    assert _mode_for(distinct_x, y) == FLAG_PACK_YXP
    same_row = np.zeros(n, np.int64)
    for steps, expected in ((x_limit, FLAG_PACK_XP), (x_limit + 1, MASKED)):
        x = list(distinct_x)
        for k in range(steps):  # pairs (v, v + 1): the second is one increasing step
            x[2 * k], x[2 * k + 1] = 2040 - 3 * k, 2041 - 3 * k
        x[2 * steps :] = (2040 - 3 * steps - np.arange(n - 2 * steps)) % 2048
        assert _mode_for(np.array(x), same_row) == expected


def test_ecf_extreme_times_and_long_equal_runs():
    t = np.concatenate([np.zeros(70, np.int64), np.full(300, 2**33), np.full(16, 2**62), [2**63 - 1]])
    cd = make_cd(np.arange(t.shape[0]) % 2048, np.full(t.shape[0], 2047), np.ones(t.shape[0]), t)
    assert np.array_equal(decode_ecf_block(encode_ecf_block(cd)), cd)


def test_ecf_encoder_rejects_what_it_cannot_store():
    good = make_cd([1, 2], [3, 4], [0, 1], [10, 11])
    cases = [
        (make_cd([2048, 0], [0, 0], [0, 0], [0, 1]), "x=2048"),
        (make_cd([0, 0], [0, 2048], [0, 0], [0, 1]), "y=2048"),
        (make_cd([0, 0], [0, 0], [0, 2], [0, 1]), "polarity 2"),
        (make_cd([0, 0], [0, 0], [0, 0], [-1, 1]), "negative"),
        (make_cd([0, 0], [0, 0], [0, 0], [5, 4]), "earlier"),
        (good[:0], "1..65535"),
        (np.zeros(MAX_BLOCK_EVENTS + 1, EVENT_CD), "1..65535"),
    ]
    for cd, message in cases:
        with pytest.raises(ValueError, match=message):
            encode_ecf_block(cd)
    packed = np.concatenate([good, good[:0]])  # NumPy 2 drops the padding: still accepted
    assert packed.dtype != EVENT_CD
    assert np.array_equal(decode_ecf_block(encode_ecf_block(packed)), good)


# -- ECF damaged input -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["scatter", "rows", "xruns"])
def test_ecf_every_truncation_is_a_clear_error(kind):
    block = encode_ecf_block(_block(kind, 200, 5, 1000, 20, 20))
    for cut in range(len(block)):
        with pytest.raises(ValueError, match="shorter than" if cut < 12 else "past the end"):
            decode_ecf_block(block[:cut])
    with pytest.raises(ValueError, match="unused byte"):
        decode_ecf_block(block + b"\0")


def test_ecf_inconsistent_counts_are_rejected():
    cd = _block("xruns", 100, 3, 0, 9, 3)
    block = bytearray(encode_ecf_block(cd))
    header = int.from_bytes(block[:4], "little")
    fewer = bytearray(block)
    fewer[:4] = (((header >> 2) - 1) << 2 | (header & 3)).to_bytes(4, "little")
    with pytest.raises(ValueError, match="more events than"):
        decode_ecf_block(bytes(fewer))
    for n in (0, MAX_BLOCK_EVENTS + 1):
        with pytest.raises(ValueError, match="not an ECF block"):
            decode_ecf_block(((n << 2) | 2).to_bytes(4, "little") + bytes(20))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), mode=st.sampled_from([0, 1, 2]), body=st.binary(max_size=300))
def test_ecf_decoder_survives_garbage(n, mode, body):
    """Any bytes after a plausible header either decode to exactly n events or raise ValueError."""
    block = ((n << 2) | mode).to_bytes(4, "little") + body
    try:
        events = decode_ecf_block(block)
    except ValueError:
        return
    assert events.shape[0] == n and events.dtype == EVENT_CD


# -- reading OpenEB files --------------------------------------------------------------------------
@pytest.mark.parametrize("stem", OPENEB_FILES)
@pytest.mark.parametrize("max_events", [1000, CHUNK_EVENTS, 1 << 20])
def test_reader_reproduces_openeb_reference(stem, max_events):
    path, cd, trig = openeb(stem)
    with Hdf5EventReader(path) as reader:
        assert (reader.info.format, reader.info.width, reader.info.height) == ("HDF5", 1280, 720)
        assert reader.info.metadata["version"] == "1.0" and "serial_number" in reader.info.metadata
        assert reader.info.inferred == []
        pieces = list(reader.read_chunks(max_events))
        assert reader.progress() == 1.0
    got_cd = np.concatenate([c for c, _ in pieces], dtype=EVENT_CD)
    got_trig = np.concatenate([t for _, t in pieces], dtype=EVENT_EXT_TRIGGER)
    assert np.array_equal(got_cd, cd) and np.array_equal(got_trig, trig)
    assert all(c.dtype == EVENT_CD and t.dtype == EVENT_EXT_TRIGGER for c, t in pieces)
    assert all(c.shape[0] <= max_events for c, _ in pieces)
    previous_end = -1
    for c, t in pieces:  # each piece's triggers fall in its own time stretch
        if c.shape[0]:
            assert np.all(t["t"] > previous_end) and np.all(t["t"] <= c["t"][-1])
            previous_end = int(c["t"][-1])
        else:
            assert np.all(t["t"] > previous_end)


# -- writing ---------------------------------------------------------------------------------------
def _dataset_layout(ds):
    dcpl = ds.id.get_create_plist()
    filters = [dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters())]
    htype = ds.id.get_type()
    members = [(htype.get_member_name(i), htype.get_member_offset(i), htype.get_member_type(i).get_size())
               for i in range(htype.get_nmembers())]
    return ds.dtype, ds.maxshape, ds.chunks, filters, htype.get_size(), members


def _attribute_kinds(obj):
    """name -> (is scalar variable-length string, is ASCII) for every attribute."""
    out = {}
    for name in obj.attrs:
        aid = obj.attrs.get_id(name)
        htype = aid.get_type()
        scalar = aid.get_space().get_simple_extent_type() == h5py.h5s.SCALAR
        out[name] = (scalar and isinstance(htype, h5py.h5t.TypeStringID) and htype.is_variable_str(),
                     htype.get_cset() == h5py.h5t.CSET_ASCII)
    return out


def _metadata_of(path):
    with h5py.File(path, "r") as f:
        return {k: v for k, v in f.attrs.items() if k not in ("version", "geometry")}


@pytest.mark.parametrize("stem", OPENEB_FILES)
def test_writer_output_matches_the_openeb_file(tmp_path, stem):
    src, cd, trig = openeb(stem)
    out = tmp_path / "ours.hdf5"
    with Hdf5EventWriter(out, 1280, 720, metadata=_metadata_of(src)) as writer:
        writer.write(cd, trig)
    with h5py.File(src, "r") as theirs, h5py.File(out, "r") as ours:
        names = []
        ours.visit(names.append)
        assert sorted(names) == ["CD", "CD/events", "CD/indexes", "EXT_TRIGGER", "EXT_TRIGGER/events",
                                 "EXT_TRIGGER/indexes"]
        for name in DATASETS:
            assert _dataset_layout(ours[name]) == _dataset_layout(theirs[name]), name
            assert ours[name].shape == theirs[name].shape, name
            assert _attribute_kinds(ours[name]) == _attribute_kinds(theirs[name]), name
        assert _dataset_layout(ours["CD/events"])[3] == [(ECF_FILTER_ID, h5py.h5z.FLAG_OPTIONAL, ())]
        assert dict(ours.attrs) == dict(theirs.attrs)
        assert _attribute_kinds(ours) == _attribute_kinds(theirs)
        assert all(kind == (True, True) for kind in _attribute_kinds(ours).values())
        for name in ("CD/indexes", "EXT_TRIGGER/indexes"):
            assert ours[name][:].tobytes() == theirs[name][:].tobytes(), name
            assert dict(ours[name].attrs) == dict(theirs[name].attrs), name
        assert ecf_chunks(ours["CD/events"]) == ecf_chunks(theirs["CD/events"])
        assert fields_equal(ours["EXT_TRIGGER/events"][:], trig)
    got_cd, got_trig = read_all(out)
    assert np.array_equal(got_cd, cd) and np.array_equal(got_trig, trig)


def test_writer_root_attributes_and_empty_file(tmp_path):
    path = tmp_path / "empty.hdf5"
    Hdf5EventWriter(path, 640, 480).close()
    with h5py.File(path, "r") as f:
        assert dict(f.attrs) == {"version": "1.0", "geometry": "640x480",
                                 "format": "EVT3;height=480;width=640", "generation": "4.2"}
        assert all(kind == (True, True) for kind in _attribute_kinds(f).values())
        for name in DATASETS:
            assert f[name].shape == (0,) and "offset" not in f[name].attrs
    with Hdf5EventReader(path) as reader:
        assert (reader.info.width, reader.info.height) == (640, 480)
        reader.seek_time(123)
        assert list(reader.read_chunks()) == []
    custom = tmp_path / "custom.hdf5"
    Hdf5EventWriter(custom, 640, 480, {"format": "EVT2;height=480;width=640", "generation": "4.1",
                                       "serial_number": "00ca"}).close()
    with Hdf5EventReader(custom) as reader:
        assert reader.info.metadata["format"] == "EVT2;height=480;width=640"
        assert reader.info.metadata["generation"] == "4.1" and reader.info.metadata["serial_number"] == "00ca"
    with pytest.raises(EventFileError, match="ASCII"):
        Hdf5EventWriter(tmp_path / "bad.hdf5", 640, 480, {"lens": "50 µm"})


@pytest.fixture(scope="module")
def stream():
    """~9 chunks of dense events with a 50 ms hole (empty index periods), plus 1 kHz triggers."""
    cd, trig = synthetic_events(150_000, 640, 480, rate=5e6, seed=11)
    cd["t"][70_000:] += 50_000
    return cd, trig


def _file_content(path):
    with h5py.File(path, "r") as f:
        return (
            dict(f.attrs),
            f["CD/events"].shape,
            ecf_chunks(f["CD/events"]),
            *(f[name][:].tobytes() for name in DATASETS[1:]),
            *(dict(f[name].attrs) for name in DATASETS[1:]),
        )


def _pieces(array, cuts):
    bounds = [0, *sorted(cuts), array.shape[0]]
    return [array[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cd_cuts=st.lists(st.integers(0, 150_000), max_size=12),
    trig_cuts=st.lists(st.integers(0, 60), max_size=5),
    flush_every=st.integers(1, 4),
    use_none=st.booleans(),
)
def test_streaming_in_uneven_pieces_gives_the_same_file(
    tmp_path_factory, stream, cd_cuts, trig_cuts, flush_every, use_none
):
    """Pieces of any size (empty ones too) and flushes in between give exactly the one-call file."""
    cd, trig = stream
    tmp = tmp_path_factory.mktemp("stream")
    with Hdf5EventWriter(tmp / "whole.hdf5", 640, 480) as writer:
        writer.write(cd, trig)
    cd_pieces, trig_pieces = _pieces(cd, cd_cuts), _pieces(trig, [min(c, trig.shape[0]) for c in trig_cuts])
    with Hdf5EventWriter(tmp / "pieces.hdf5", 640, 480) as writer:
        for i in range(max(len(cd_pieces), len(trig_pieces))):
            c = cd_pieces[i] if i < len(cd_pieces) else None
            t = trig_pieces[i] if i < len(trig_pieces) else None
            if use_none:
                c = c if c is not None and c.shape[0] else None
            writer.write(c, t)
            if i % flush_every == 0:
                writer.flush()
    assert _file_content(tmp / "pieces.hdf5") == _file_content(tmp / "whole.hdf5")


def test_flushed_file_survives_a_killed_writer(tmp_path, stream):
    """A process that dies without closing leaves a readable file holding everything it flushed."""
    cd, trig = stream
    np.savez(tmp_path / "in.npz", cd=cd[:40_000], trig=trig[trig["t"] <= cd["t"][39_999]])
    path = tmp_path / "crashed.hdf5"
    script = textwrap.dedent(f"""
        import os, numpy as np
        from capture.formats.hdf5 import Hdf5EventWriter
        data = np.load({str(tmp_path / "in.npz")!r})
        w = Hdf5EventWriter({str(path)!r}, 640, 480)
        w.write(data["cd"][:25_000], data["trig"])
        w.write(data["cd"][25_000:])
        w.flush()
        os._exit(3)
    """)
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 3
    got_cd, got_trig = read_all(path)
    assert np.array_equal(got_cd, cd[:40_000])
    assert np.array_equal(got_trig, trig[trig["t"] <= cd["t"][39_999]])
    with Hdf5EventReader(path) as reader:  # the index lacks its closing row; seeking still works
        t = int(cd["t"][39_000])
        reader.seek_time(t)
        first, _ = next(reader.read_chunks())
        assert np.array_equal(first, cd[:40_000][cd["t"][:40_000] >= t])


def test_writer_rejects_bad_events_and_keeps_what_it_accepted(tmp_path, stream):
    cd, trig = stream
    path = tmp_path / "order.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(cd[:20_000], trig[:3])
        with pytest.raises(EventFileError, match="time order"):
            writer.write(cd[:10])
        with pytest.raises(EventFileError, match="time order"):
            writer.write(None, trig[:1])
        with Hdf5EventWriter(tmp_path / "neg.hdf5", 640, 480) as other:
            with pytest.raises(EventFileError, match="negative"):
                other.write(make_cd([0], [0], [0], [-5]))
        wide = cd[20_000:20_010].copy()
        wide["x"][3] = 4000
        with pytest.raises(EventFileError, match="x=4000"):
            writer.write(wide)
        unsorted = cd[20_000:20_010].copy()
        unsorted["t"][5] = unsorted["t"][4] - 1
        with pytest.raises(EventFileError, match="earlier than the event before"):
            writer.write(unsorted)
        writer.write(cd[20_000:20_010])
    got_cd, got_trig = read_all(path)
    assert np.array_equal(got_cd, cd[:20_010]) and np.array_equal(got_trig, trig[:3])


def _openeb_index_rule(t):
    """§6.4's writer, event by event, as OpenEB runs it: the oracle for the vectorised, streamed table."""
    rows, count, index, last = [], 0, (0, -1), (0, -1)
    for ev_id, t_abs in enumerate(t.tolist()):
        rel = t_abs - int(t[0])
        while rel // 2000 + 1 > count:
            if ev_id != index[0]:
                last = index
            rows.append(last)
            count += 1
            index = (ev_id, rel)
    if count:
        rows.append(index)
    return rows


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    t0=st.sampled_from([0, 1999, 2000, 123_456_789, 2**40]),
    cuts=st.lists(st.integers(0, 300), max_size=6),
)
def test_index_tables_follow_openebs_rule_when_streamed(tmp_path_factory, n, seed, t0, cuts):
    """Empty periods, equal times, period edges and arbitrary write pieces, for CD and triggers alike."""
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0, 1, 1999, 2000, 2001, 700, 4000, 20_000], size=n, p=[.2, .1, .1, .1, .1, .2, .1, .1])
    t = t0 + np.cumsum(gaps) - gaps[0]
    cuts = [c % (n + 1) for c in cuts]
    cd = make_cd(np.zeros_like(t), np.zeros_like(t), np.zeros_like(t), t)
    trig = np.zeros(t.shape[0], EVENT_EXT_TRIGGER)
    trig["t"] = t + 7
    path = tmp_path_factory.mktemp("index") / "index.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        for piece_cd, piece_trig in zip(_pieces(cd, cuts), _pieces(trig, cuts[::-1]), strict=True):
            writer.write(piece_cd, piece_trig)
    expected = _openeb_index_rule(t)
    assert expected[0] == (0, -1) and len(expected) == (int(t[-1]) - int(t[0])) // 2000 + 2
    with h5py.File(path, "r") as f:
        for name, t_first in (("CD/indexes", t[0]), ("EXT_TRIGGER/indexes", t[0] + 7)):
            table = f[name][:]
            assert [(int(i), int(ts)) for i, ts in zip(table["id"], table["ts"], strict=True)] == expected
            assert f[name].attrs["offset"] == str(-int(t_first))


# -- seeking ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stream_file(tmp_path_factory, stream):
    path = tmp_path_factory.mktemp("seek") / "stream.hdf5"
    cd, trig = stream
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(cd, trig)
    return path


def _check_seek(path, cd, trig, t, max_events):
    with Hdf5EventReader(path) as reader:
        reader.seek_time(t)
        pieces = list(reader.read_chunks(max_events))
    got_cd = np.concatenate([c for c, _ in pieces], dtype=EVENT_CD) if pieces else np.empty(0, EVENT_CD)
    got_trig = (np.concatenate([g for _, g in pieces], dtype=EVENT_EXT_TRIGGER) if pieces
                else np.empty(0, EVENT_EXT_TRIGGER))
    assert np.array_equal(got_cd, cd[cd["t"] >= t])
    assert fields_equal(got_trig, trig[trig["t"] >= t])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_seek_time_matches_brute_force(stream_file, stream, data):
    cd, trig = stream
    lo, hi = int(cd["t"][0]), int(cd["t"][-1])
    t = data.draw(st.one_of(st.integers(lo - 5000, hi + 5000), st.sampled_from(cd["t"].tolist()),
                            st.sampled_from(trig["t"].tolist())))
    _check_seek(stream_file, cd, trig, t, data.draw(st.sampled_from([777, CHUNK_EVENTS, 1 << 20])))


@pytest.mark.parametrize("stem", OPENEB_FILES)
def test_seek_time_in_openeb_files(stem):
    path, cd, trig = openeb(stem)
    rng = np.random.default_rng(0)
    times = [0, int(cd["t"][0]), int(cd["t"][-1]), int(cd["t"][-1]) + 1, *trig["t"].tolist(),
             *rng.integers(cd["t"][0], cd["t"][-1], 10).tolist()]
    for t in times:
        _check_seek(path, cd, trig, t, 5000)


def test_seek_uses_the_index_instead_of_decoding_from_the_start(stream_file, stream, monkeypatch):
    cd, _ = stream
    decoded = []

    def counting_decode(block):
        decoded.append(len(block))
        return decode_ecf_block(block)

    monkeypatch.setattr(hdf5_module, "decode_ecf_block", counting_decode)
    t = int(cd["t"][-100])
    with Hdf5EventReader(stream_file) as reader:
        reader.seek_time(t)
        cd_after = next(reader.read_chunks())[0]
    assert np.array_equal(cd_after, cd[cd["t"] >= t])
    # The row read (OpenEB's, one period early) is at most 4 ms (~20 000 events here) before t: at most
    # three of the file's ten chunks are decoded, the last of them handed on to read_chunks.
    assert 1 <= len(decoded) <= 3


# -- other writers' layouts ------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_reads_plain_and_gzip_cd_events(tmp_path, stream, compression):
    cd, trig = stream
    cd, trig = cd[:40_000], trig[trig["t"] <= cd["t"][39_999]]
    path = tmp_path / "plain.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["geometry"] = "640x480"  # UTF-8, as h5py writes by default: fine for us
        f.create_dataset("CD/events", data=cd, chunks=(5000,), maxshape=(None,), compression=compression)
        f.create_dataset("CD/indexes", data=np.empty(0, HDF5_INDEX), maxshape=(None,))
        f.create_dataset("EXT_TRIGGER/events", data=trig, maxshape=(None,))
        f.create_dataset("EXT_TRIGGER/indexes", data=np.empty(0, HDF5_INDEX), maxshape=(None,))
    with Hdf5EventReader(path) as reader:
        assert (reader.info.width, reader.info.height) == (640, 480)
        assert any("not ECF" in note for note in reader.info.inferred)
    got_cd, got_trig = read_all(path, 7000)
    assert np.array_equal(got_cd, cd) and np.array_equal(got_trig, trig)
    _check_seek(path, cd, trig, int(cd["t"][23_456]), 3000)


def test_geometry_from_format_attribute(tmp_path, stream):
    path = tmp_path / "fmt.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(stream[0][:100])
    with h5py.File(path, "r+") as f:
        del f.attrs["geometry"]
    with Hdf5EventReader(path) as reader:
        assert (reader.info.width, reader.info.height) == (640, 480)


# -- damaged files ---------------------------------------------------------------------------------
def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(EventFileError, match="no such file"):
        Hdf5EventReader(tmp_path / "absent.hdf5")
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(EventFileError, match="not an HDF5 file") as exc:
        Hdf5EventReader(bad)
    assert str(bad) in str(exc.value)


@pytest.mark.parametrize("missing", ["CD/events", "CD/indexes", "EXT_TRIGGER/indexes"])
def test_missing_dataset_is_named(tmp_path, stream, missing):
    path = tmp_path / "partial.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(stream[0][:100])
    with h5py.File(path, "r+") as f:
        del f[missing]
    with pytest.raises(EventFileError, match=f"no /{missing} dataset"):
        Hdf5EventReader(path)


def test_wrong_dtype_is_reported(tmp_path):
    path = tmp_path / "floats.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("CD/events", data=np.zeros(10, np.float32))
        f.create_dataset("CD/indexes", data=np.empty(0, HDF5_INDEX))
    with pytest.raises(EventFileError, match=r"/CD/events has shape \(10,\) and dtype float32"):
        Hdf5EventReader(path)


def _damage_chunk(path, chunk, data):
    with h5py.File(path, "r+") as f:
        f["CD/events"].id.write_direct_chunk((chunk * CHUNK_EVENTS,), data, 0)


@pytest.mark.parametrize("max_events", [1000, 40_000, 1 << 20])
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda good: good[: len(good) // 2], "past the end"),
        (lambda good: good[:7], "shorter than"),
        (lambda good: bytes(range(256)) * 40, "not an ECF block"),
        (lambda good: encode_ecf_block(decode_ecf_block(good)[:100]), "holds 100 events"),
    ],
)
def test_damaged_chunk_yields_everything_before_it_then_one_error(
    tmp_path, stream, max_events, damage, message
):
    cd, trig = stream
    path = tmp_path / "damaged.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(cd, trig)
    with h5py.File(path, "r") as f:
        good = f["CD/events"].id.read_direct_chunk((3 * CHUNK_EVENTS,))[1]
    _damage_chunk(path, 3, damage(good))
    pieces = []
    with Hdf5EventReader(path) as reader, pytest.raises(EventFileError) as exc:
        for piece in reader.read_chunks(max_events):
            pieces.append(piece)
    assert str(path) in str(exc.value)
    assert f"/CD/events chunk 3 (events {3 * CHUNK_EVENTS}..{4 * CHUNK_EVENTS - 1})" in str(exc.value)
    assert message in str(exc.value)
    got = np.concatenate([c for c, _ in pieces], dtype=EVENT_CD)
    assert np.array_equal(got, cd[: 3 * CHUNK_EVENTS])
    got_trig = np.concatenate([t for _, t in pieces], dtype=EVENT_EXT_TRIGGER)
    assert fields_equal(got_trig, trig[trig["t"] <= cd["t"][3 * CHUNK_EVENTS - 1]])


def test_unwritten_chunk_is_reported(tmp_path, stream):
    path = tmp_path / "hole.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(stream[0][:CHUNK_EVENTS])
    with h5py.File(path, "r+") as f:
        f["CD/events"].resize((CHUNK_EVENTS + 50,))
    with Hdf5EventReader(path) as reader, pytest.raises(EventFileError, match=r"chunk 1 .*missing"):
        list(reader.read_chunks())


def test_many_triggers_are_interleaved_and_seekable(tmp_path):
    """More triggers than one read batch, mostly between sparse CD events."""
    rng = np.random.default_rng(4)
    cd = make_cd(rng.integers(0, 640, 3000), rng.integers(0, 480, 3000), rng.integers(0, 2, 3000),
                 np.sort(rng.integers(0, 200_000, 3000)))
    trig = np.zeros(50_000, EVENT_EXT_TRIGGER)
    trig["t"] = np.sort(rng.integers(0, 260_000, 50_000))
    trig["p"] = np.arange(50_000) % 2
    path = tmp_path / "triggers.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(cd[:1000], trig[:30_000])
        writer.write(cd[1000:], trig[30_000:])
    with Hdf5EventReader(path) as reader:
        pieces = list(reader.read_chunks(100))
    assert all(np.all(t["t"] <= c["t"][-1]) for c, t in pieces if c.shape[0])
    assert fields_equal(np.concatenate([t for _, t in pieces], dtype=EVENT_EXT_TRIGGER), trig)
    assert np.array_equal(np.concatenate([c for c, _ in pieces], dtype=EVENT_CD), cd)
    for t in (0, 150_000, 199_000, 230_000, 300_000):
        _check_seek(path, cd, trig, t, 700)


def test_chunk_stored_without_the_optional_filter_is_read_raw(tmp_path, stream):
    """HDF5 marks a chunk whose optional filter was skipped (filter mask bit 0); it then holds raw EventCD."""
    cd = stream[0][: 2 * CHUNK_EVENTS]
    path = tmp_path / "unfiltered.hdf5"
    with Hdf5EventWriter(path, 640, 480) as writer:
        writer.write(cd)
    raw = np.ascontiguousarray(cd[CHUNK_EVENTS:]).tobytes()
    with h5py.File(path, "r+") as f:
        f["CD/events"].id.write_direct_chunk((CHUNK_EVENTS,), raw, 1)
    got, _ = read_all(path, 10_000)
    assert np.array_equal(got, cd)
