"""Event files end to end: RAW/HDF5/NPZ/CSV readers and writers, seeking, truncation and bad input."""

import logging

import numpy as np
import pytest

from capture.formats.base import EventFileError
from capture.formats.iterator import EventsIterator
from capture.formats.raw import RawEventReader, RawEventWriter, split_by_count
from capture.formats.registry import create_writer, open_events
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events, make_cd, make_triggers
from drivers.events.synthetic import synthetic_events
from drivers.events.validate import check_cd, check_triggers
from tests.reference import assert_matches_reference, reference_decodes, shared_event_file, sort_events

RAW_FILES = [
    "expelliarmus_evt3_sample.raw",
    "expelliarmus_evt2_sample.raw",
    "ros_event_camera_codecs_evt3_trigger.raw",
]


def read_all(reader):
    parts = list(reader.read_chunks(50_000))
    cd = concat_events([c for c, _ in parts], EVENT_CD)
    trig = concat_events([t for _, t in parts], EVENT_EXT_TRIGGER)
    return cd, trig


@pytest.fixture(scope="module")
def stream():
    cd, trig = synthetic_events(300_000, 640, 480, rate=5e6, seed=3)
    return cd, trig


@pytest.mark.parametrize("name", RAW_FILES)
@pytest.mark.parametrize("block", [4093, 1 << 20])
def test_raw_reader_matches_openeb_reference(name, block):
    with RawEventReader(shared_event_file(name), block_bytes=block) as reader:
        cd, trig = read_all(reader)
        assert not reader.truncated
    assert_matches_reference(cd, trig, reference_decodes()[name])


@pytest.mark.parametrize("name", RAW_FILES)
def test_time_shift_follows_openeb(name):
    with RawEventReader(shared_event_file(name), time_shift=True) as reader:
        shifted, _ = read_all(reader)
        shift = reader.time_shift_us
    ref = reference_decodes()[name]
    assert np.array_equal(shifted["t"] + shift, np.sort(shifted["t"] + shift))
    assert int(shifted["t"][0]) + shift == ref["t_first"]
    if reader.info.format == "EVT2":
        assert shift % 64 == 0 and 0 <= shifted["t"][0] < 64
    else:
        assert shift % 4096 == 0 and 4096 <= shifted["t"][0] < 8192


@pytest.mark.parametrize("fmt", ["EVT3", "EVT2"])
def test_raw_file_round_trip_streamed_in_pieces(tmp_path, stream, fmt):
    cd, trig = stream
    path = tmp_path / f"s_{fmt}.raw"
    with RawEventWriter(path, 640, 480, fmt=fmt, header={"serial_number": "SIM0001"}) as w:
        for part, part_trig in split_by_count(cd, trig, 70_001):
            w.write(part, part_trig)
    with open_events(path) as reader:
        assert (reader.info.format, reader.info.width, reader.info.height) == (fmt, 640, 480)
        assert reader.info.metadata["serial_number"] == "SIM0001"
        got_cd, got_trig = read_all(reader)
    assert np.array_equal(sort_events(got_cd), sort_events(cd))
    assert np.array_equal(got_trig, trig)


def test_seek_time_matches_filtering(tmp_path, stream):
    cd, trig = stream
    path = tmp_path / "seek.raw"
    with RawEventWriter(path, 640, 480) as w:
        w.write(cd, trig)
    rng = np.random.default_rng(0)
    with RawEventReader(path, block_bytes=8192) as reader:
        for target in [0, int(cd["t"][0]), *rng.integers(int(cd["t"][0]), int(cd["t"][-1]) + 10, 6)]:
            reader.seek_time(int(target))
            got_cd, got_trig = read_all(reader)
            want = sort_events(cd[cd["t"] >= target])
            assert np.array_equal(sort_events(got_cd), want)
            assert np.array_equal(got_trig, trig[trig["t"] >= target])


def test_seek_on_real_file_with_triggers():
    path = shared_event_file("ros_event_camera_codecs_evt3_trigger.raw")
    with RawEventReader(path, block_bytes=16384) as reader:
        full, trig = read_all(reader)
        reader.seek_time(14_548_000)
        after, trig_after = read_all(reader)
    assert np.array_equal(after, full[full["t"] >= 14_548_000])
    assert trig_after.tolist() == trig[trig["t"] >= 14_548_000].tolist() and len(trig_after) == 1


@pytest.mark.parametrize("cut_fraction", [0.37, 0.81])
def test_truncated_raw_yields_every_complete_event(tmp_path, caplog, cut_fraction):
    src = shared_event_file("expelliarmus_evt3_sample.raw").read_bytes()
    cut = int(len(src) * cut_fraction) | 1  # odd: ends inside a 16-bit word
    path = tmp_path / "cut.raw"
    path.write_bytes(src[:cut])
    with RawEventReader(shared_event_file("expelliarmus_evt3_sample.raw")) as full_reader:
        full, _ = read_all(full_reader)
    with caplog.at_level(logging.WARNING), RawEventReader(path, block_bytes=5000) as reader:
        got, _ = read_all(reader)
        assert reader.truncated
    assert "truncated" in caplog.text and "cut.raw" in caplog.text
    assert 0 < got.shape[0] < full.shape[0]
    assert np.array_equal(got, full[: got.shape[0]])
    # Everything up to the last complete vector group before the cut is there (at most one group lost).
    assert full.shape[0] - got.shape[0] < full.shape[0] * (1 - cut_fraction) + 64


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (b"\x00\x01garbage" * 10, ".raw", "no Prophesee RAW header"),
        (b"% date 2020-01-01\n% end\n\x00\x00", ".raw", "no event format"),
        (b"not an hdf5 file", ".hdf5", ""),
        (b"not a zip", ".npz", "not a readable .npz"),
        (b"x", ".evt", "unknown event file type"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(EventFileError) as exc:
        open_events(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(EventFileError, match="no such file"):
        open_events(tmp_path / "absent.raw")


def test_csv_needs_geometry_and_round_trips_with_triggers(tmp_path, stream):
    cd, trig = stream
    cd, trig = cd[:5000], trig[trig["t"] <= cd["t"][4999]]
    path = tmp_path / "ev.csv"
    with create_writer(path, 640, 480) as w:
        w.write(cd, trig)
    trig_line = (tmp_path / "ev_triggers.csv").read_text().splitlines()[0]
    assert trig_line == f"{trig['p'][0]},{trig['id'][0]},{trig['t'][0]}"
    first = path.read_text().splitlines()[0]
    assert first == f"{cd['x'][0]},{cd['y'][0]},{cd['p'][0]},{cd['t'][0]}"
    with pytest.raises(EventFileError, match="--width and --height"):
        open_events(path)
    with open_events(path, width=640, height=480) as reader:
        got, got_trig = read_all(reader)
    assert np.array_equal(got, cd) and np.array_equal(got_trig, trig)


def test_conversion_chain_is_lossless(tmp_path, stream):
    """RAW EVT3 -> HDF5 -> CSV -> NPZ -> RAW EVT2 -> HDF5 keeps every event and trigger."""
    cd, trig = stream
    cd, trig = cd[:40_000], trig[trig["t"] <= cd["t"][39_999]]
    src = tmp_path / "a.raw"
    with create_writer(src, 640, 480) as w:
        w.write(cd, trig)
    prev = src
    for name, evt in [("b.hdf5", 3), ("c.csv", 3), ("d.npz", 3), ("e.raw", 2), ("f.hdf5", 3)]:
        with open_events(prev, width=640, height=480) as reader, create_writer(
            tmp_path / name, 640, 480, evt=evt, metadata=reader.info.metadata
        ) as w:
            for c, t in reader.read_chunks(7000):
                w.write(c, t)
        prev = tmp_path / name
    with open_events(prev) as reader:
        got, got_trig = read_all(reader)
        assert (reader.info.width, reader.info.height) == (640, 480)
    assert np.array_equal(sort_events(got), sort_events(cd))
    assert np.array_equal(got_trig, trig)


def test_writer_refuses_out_of_order_and_keeps_what_was_written(tmp_path, stream):
    cd, _ = stream
    path = tmp_path / "order.raw"
    w = RawEventWriter(path, 640, 480)
    w.write(cd[1000:2000])
    with pytest.raises(EventFileError, match="time order"):
        w.write(cd[:10])
    w.close()
    with RawEventReader(path) as reader:
        got, _ = read_all(reader)
    assert np.array_equal(sort_events(got), sort_events(cd[1000:2000]))


def test_validation_messages_name_the_event():
    with pytest.raises(ValueError, match=r"^w: CD events are not sorted by time: event 2 at t=5 µs"):
        check_cd(make_cd([0, 0, 0], [0, 0, 0], [0, 0, 0], [5, 9, 5]), width=4, height=4, who="w")
    with pytest.raises(ValueError, match=r"^w: CD events start at t=5 µs, before the 9 µs already written"):
        check_cd(make_cd([0], [0], [0], [5]), width=4, height=4, after_t=9, who="w")
    with pytest.raises(ValueError, match=r"CD event 1 at x=4, y=0 is outside the 4x4 sensor"):
        check_cd(make_cd([0, 4], [0, 0], [0, 0], [5, 9]), width=4, height=4, who="w")
    with pytest.raises(ValueError, match=r"trigger event 0 has edge 2"):
        check_triggers(make_triggers([2], [5], [0]), max_id=15, who="w")
    check_cd(make_cd([3], [3], [1], [0]), width=4, height=4, who="w")  # valid: no error


def test_time_shifted_seek_and_iterator_on_raw():
    path = shared_event_file("ros_event_camera_codecs_evt3_trigger.raw")
    with RawEventReader(path) as reader:
        full, _ = read_all(reader)
    with RawEventReader(path, time_shift=True, block_bytes=32768) as reader:
        shift = reader.time_shift_us
        assert shift > 0
        target = int(full["t"][full.shape[0] // 2]) - shift
        reader.seek_time(target)
        after, _ = read_all(reader)
    want = full[full["t"] >= target + shift]
    assert np.array_equal(after["t"] + shift, want["t"]) and np.array_equal(after["x"], want["x"])
    it = EventsIterator(path, start_ts=int(full["t"][1000]), delta_t=50_000, max_duration=200_000)
    slices = list(it)
    assert len(slices) == 4
    got = concat_events([s.events for s in slices], EVENT_CD)
    lo, hi = int(full["t"][1000]), int(full["t"][1000]) + 200_000
    assert np.array_equal(got, full[(full["t"] >= lo) & (full["t"] < hi)])
