"""EVT 2.0 codec and EVT 2.1 decoder: real file, hand-built words, round trips, split streams, bad input."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.formats.rawheader import split_header
from drivers.events.codec import EventDecoder
from drivers.events.dtypes import EVENT_EXT_TRIGGER, make_cd, make_triggers
from drivers.events.evt2 import Evt2Decoder, Evt2Encoder
from drivers.events.evt21 import Evt21Decoder
from drivers.events.synthetic import synthetic_events
from tests.reference import assert_matches_reference, reference_decodes, shared_event_file

EVT2_FILE = "expelliarmus_evt2_sample.raw"
# OpenEB 5.1.1 constants (§3), restated here rather than imported so that the tests check the codec's.
TH_MAX = (1 << 28) - 1
MAX_TIMESTAMP_US = TH_MAX * 64
TIME_LOOP_US = 1 << 34
WRAP_THRESHOLD_US = MAX_TIMESTAMP_US - 10_000


# -- word builders (vectorised; EVT2-shaped 32-bit words, also the halves of EVT 2.1 words) -------------
def u32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.uint32)


def w_time_high(th) -> np.ndarray:
    return u32((0x8 << 28) | np.asarray(th, np.int64))


def w_cd(p, lsb, x, y) -> np.ndarray:
    p, lsb, x, y = (np.asarray(a, np.int64) for a in (p, lsb, x, y))
    return u32((p << 28) | (lsb << 22) | (x << 11) | y)


def w_trigger(lsb, channel, edge) -> np.ndarray:
    lsb, channel, edge = (np.asarray(a, np.int64) for a in (lsb, channel, edge))
    return u32((0xA << 28) | (lsb << 22) | (channel << 8) | edge)


def w_type(kind, payload=0x123456) -> np.ndarray:
    return u32((np.asarray(kind, np.int64) << 28) | payload)


def cat(*parts) -> np.ndarray:
    return np.concatenate([np.atleast_1d(p) for p in parts]).astype(np.uint32)


def evt21_bytes(first: np.ndarray, second: np.ndarray, layout: str) -> bytes:
    """EVT 2.1 stream from EVT2-shaped words and their masks/payloads, in one of the two layouts (§4.1)."""
    first, second = first.astype(np.uint64), second.astype(np.uint64)
    if layout == "little":
        return ((first << np.uint64(32)) | second).astype("<u8").tobytes()
    return np.stack([first, second], axis=1).astype("<u4").tobytes()


def expand_vectors(p, t, x_base, y, masks) -> np.ndarray:
    """Expected CD events of EVT 2.1 vector words: bit i of a mask -> x_base + i, words then bits in order."""
    bits = (np.asarray(masks, np.uint64)[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)
    word, bit = np.nonzero(bits)
    x_base, y, p, t = (np.asarray(a) for a in (x_base, y, p, t))
    return make_cd(x_base[word] + bit, y[word], p[word], t[word])


# -- decoding helpers ---------------------------------------------------------------------------------
def decode_pieces(decoder: EventDecoder, data: bytes, cuts) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``data`` fed in pieces cut at the given byte offsets."""
    bounds = [0, *sorted(int(c) for c in cuts), len(data)]
    cds, trigs = [], []
    for a, b in itertools.pairwise(bounds):
        cd, trig = decoder.decode(data[a:b])
        cds.append(cd)
        trigs.append(trig)
    return np.concatenate(cds), np.concatenate(trigs)


def random_cuts(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    return rng.integers(0, size + 1, n)


def evt2_payload() -> bytes:
    data = shared_event_file(EVT2_FILE).read_bytes()
    _, offset = split_header(data[: 1 << 16])
    return data[offset:]


def assert_same_events(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# -- EVT 2.0 decoder: the shared real file ----------------------------------------------------------------
def test_evt2_file_matches_openeb_reference():
    decoder = Evt2Decoder(640, 480)
    cd, trig = decoder.decode(evt2_payload())
    assert_matches_reference(cd, trig, reference_decodes()[EVT2_FILE])
    assert decoder.pending_bytes == 0 and not decoder.group_pending
    assert decoder.time_shift_us == reference_decodes()[EVT2_FILE]["t_first"] // 64 * 64


@pytest.mark.parametrize("seed", range(4))
def test_evt2_file_split_anywhere_matches_reference(seed):
    payload = evt2_payload()
    rng = np.random.default_rng(seed)
    cuts = np.concatenate([random_cuts(rng, len(payload), 40), [1, 3, 6, 4097, len(payload) - 1]])
    cd, trig = decode_pieces(Evt2Decoder(640, 480), payload, cuts)
    assert_matches_reference(cd, trig, reference_decodes()[EVT2_FILE])


def test_evt2_snapshot_restore_resumes_exactly():
    payload = evt2_payload()
    decoder = Evt2Decoder(640, 480)
    whole, _ = Evt2Decoder(640, 480).decode(payload)
    first, _ = decoder.decode(payload[:100_001])
    snap = decoder.snapshot()
    rest, _ = decoder.decode(payload[100_001:])
    decoder.reset()
    decoder.restore(snap)
    again, _ = decoder.decode(payload[100_001:])
    assert_same_events(np.concatenate([first, rest]), whole)
    assert_same_events(again, rest)


# -- EVT 2.0 decoder: hand-built streams --------------------------------------------------------------------
def test_evt2_words_before_first_time_high_are_skipped():
    decoder = Evt2Decoder(640, 480)
    cd, trig = decoder.decode(cat(w_cd(1, 5, 10, 20), w_trigger(3, 1, 1), w_type(0xE)).tobytes())
    assert cd.shape[0] == 0 and trig.shape[0] == 0
    assert decoder.time_shift_us is None and decoder.current_time_us is None
    cd, trig = decoder.decode(cat(w_cd(0, 7, 11, 21), w_time_high(1000), w_cd(1, 9, 12, 22)).tobytes())
    assert_same_events(cd, make_cd([12], [22], [1], [1000 * 64 + 9]))
    assert trig.shape[0] == 0
    assert decoder.time_shift_us == 64_000 and decoder.current_time_us == 64_000
    decoder.decode(w_time_high(1003).tobytes())
    assert decoder.time_shift_us == 64_000 and decoder.current_time_us == 1003 * 64


def test_evt2_fields_triggers_and_skipped_types():
    words = cat(
        w_time_high(5),
        w_cd(0, 63, 2047, 2047),  # no geometry check (OpenEB): x, y beyond 640x480 come through
        w_type(0xE, 0x0014), w_type(0xF, 0x3FFFFF),  # OTHERS + CONTINUED
        w_type(0xD), w_type(0xF), w_type(0xF), w_type(0xF), w_type(0xF), w_type(0xF),  # IMU packet
        w_type([0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x9, 0xB, 0xC]),  # unknown types
        w_trigger(17, 31, 1),
        w_trigger(0, 0, 0),
        w_time_high(6),
        w_cd(1, 0, 0, 0),
        w_trigger(1, 7, 1),
    )
    cd, trig = Evt2Decoder(640, 480).decode(words.tobytes())
    assert_same_events(cd, make_cd([2047, 0], [2047, 0], [0, 1], [5 * 64 + 63, 6 * 64]))
    assert_same_events(trig, make_triggers([1, 0, 1], [5 * 64 + 17, 5 * 64, 6 * 64 + 1], [31, 0, 7]))


def test_evt2_time_wrap_follows_openeb_threshold():
    # OpenEB: a TIME_HIGH at least MaxTimestamp - 10000 µs below the base is a wrap (+2^34).
    wrap_th = -(-WRAP_THRESHOLD_US // 64)  # smallest base (in TIME_HIGH units) that wraps back to 0
    assert wrap_th * 64 >= WRAP_THRESHOLD_US > (wrap_th - 1) * 64
    words = cat(
        w_time_high(TH_MAX), w_cd(1, 63, 1, 1),
        w_time_high(0), w_cd(0, 2, 2, 2),  # wrap 1
        w_time_high(100), w_time_high(90), w_cd(0, 3, 3, 3),  # small step back: taken at face value
        w_time_high(wrap_th), w_time_high(0), w_cd(1, 4, 4, 4),  # exactly at the threshold: wrap 2
        w_time_high(wrap_th - 1), w_time_high(0), w_cd(1, 5, 5, 5),  # just below it: no wrap
    )
    expected_t = [
        MAX_TIMESTAMP_US + 63,
        TIME_LOOP_US + 2,
        TIME_LOOP_US + 90 * 64 + 3,
        2 * TIME_LOOP_US + 4,
        2 * TIME_LOOP_US + 5,
    ]
    data = words.tobytes()
    decoder = Evt2Decoder(640, 480)
    cd, _ = decoder.decode(data)
    np.testing.assert_array_equal(cd["t"], expected_t)
    assert decoder.time_shift_us == MAX_TIMESTAMP_US and decoder.current_time_us == 2 * TIME_LOOP_US
    for cut in range(1, len(data)):  # the per-TIME_HIGH rule does not depend on where the stream is cut
        split, _ = decode_pieces(Evt2Decoder(640, 480), data, [cut])
        np.testing.assert_array_equal(split["t"], expected_t)


def test_evt2_decoder_stops_and_resumes_when_trigger_output_fills():
    n = 70_000  # more than the 65 537 trigger slots the base class allocates per kernel call
    k = np.arange(n)
    words = cat(w_time_high(1), w_trigger(k % 64, k % 32, k % 2), w_cd(1, 0, 3, 4))
    cd, trig = Evt2Decoder(640, 480).decode(words.tobytes())
    assert trig.shape[0] == n and cd.shape[0] == 1
    np.testing.assert_array_equal(trig["id"], np.arange(n) % 32)
    np.testing.assert_array_equal(trig["t"], 64 + np.arange(n) % 64)


# -- EVT 2.0 encoder --------------------------------------------------------------------------------------
def roundtrip(cd, trig, width=1280, height=720, calls=1, seed=0, cuts=0):
    """Encode in ``calls`` time-ordered pieces, decode in ``cuts`` random byte pieces."""
    encoder = Evt2Encoder(width, height)
    bounds = np.sort(np.random.default_rng(seed).integers(0, max(_t_end(cd, trig), 1) + 1, calls - 1))
    data = b""
    for lo, hi in zip([-1, *bounds], [*bounds, None], strict=True):
        cd_part = cd[(cd["t"] > lo) & ((cd["t"] <= hi) if hi is not None else True)]
        trig_part = trig[(trig["t"] > lo) & ((trig["t"] <= hi) if hi is not None else True)]
        data += encoder.encode(cd_part, trig_part)
    rng = np.random.default_rng(seed + 1)
    return decode_pieces(Evt2Decoder(width, height), data, random_cuts(rng, len(data), cuts)), data


def _t_end(cd, trig) -> int:
    return max(int(cd["t"].max()) if cd.shape[0] else 0, int(trig["t"].max()) if trig.shape[0] else 0)


@st.composite
def event_streams(draw):
    """CD events and triggers with gaps from 0 (many events per µs) to several 2^34 µs wraps."""
    gap = st.one_of(
        st.just(0), st.integers(0, 70), st.integers(0, 1 << 23), st.integers((1 << 23), 3 * TIME_LOOP_US)
    )
    start = draw(
        st.one_of(st.just(0), st.integers(0, 1 << 20), st.integers(TIME_LOOP_US - 500, 2 * TIME_LOOP_US))
    )

    def times(n):
        return start + np.cumsum(np.array(draw(st.lists(gap, min_size=n, max_size=n)), np.int64))

    n_cd = draw(st.integers(0, 60))
    n_trig = draw(st.integers(0, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cd = make_cd(rng.integers(0, 1280, n_cd), rng.integers(0, 720, n_cd), rng.integers(0, 2, n_cd),
                 times(n_cd))
    trig = make_triggers(rng.integers(0, 2, n_trig), times(n_trig), rng.integers(0, 32, n_trig))
    return cd, trig


@settings(max_examples=50, deadline=None)
@given(streams=event_streams(), calls=st.integers(1, 4), seed=st.integers(0, 1000), cuts=st.integers(0, 5))
def test_evt2_roundtrip_property(streams, calls, seed, cuts):
    cd, trig = streams
    (got_cd, got_trig), data = roundtrip(cd, trig, calls=calls, seed=seed, cuts=cuts)
    assert_same_events(got_cd, cd)
    assert_same_events(got_trig, trig)
    if data:
        assert np.frombuffer(data[:4], "<u4")[0] >> 28 == 0x8  # a TIME_HIGH comes first


@pytest.mark.parametrize("calls", [1, 7])
def test_evt2_roundtrip_dense_stream(calls):
    cd, trig = synthetic_events(300_000, 1280, 720, rate=50e6, seed=11)
    trig["id"] = np.arange(trig.shape[0]) % 32
    (got_cd, got_trig), data = roundtrip(cd, trig, calls=calls, seed=calls, cuts=20)
    assert_same_events(got_cd, cd)
    assert_same_events(got_trig, trig)
    # One word per event plus exactly one TIME_HIGH per distinct t >> 6 (no wrap in this stream).
    t_all = np.concatenate([cd["t"], trig["t"]])
    assert len(data) // 4 == t_all.shape[0] + np.unique(t_all >> 6).shape[0]


def test_evt2_roundtrip_strided_input_and_triggers_only():
    cd, _ = synthetic_events(20_000, 640, 480, rate=5e6, seed=2)
    t_end = int(cd["t"][-1])
    trig = make_triggers([1, 0], [t_end + 1000, t_end + 1001], [4, 5])
    encoder = Evt2Encoder(640, 480)
    data = encoder.encode(cd[::3]) + encoder.encode(None, trig)  # a strided view, then triggers alone
    got_cd, got_trig = Evt2Decoder(640, 480).decode(data)
    assert_same_events(got_cd, cd[::3])
    assert_same_events(got_trig, trig)


def test_evt2_roundtrip_many_events_in_one_microsecond():
    n = 5000
    rng = np.random.default_rng(5)
    cd = make_cd(rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n), np.full(n, 12_345))
    trig = make_triggers([1, 0], [12_345, 12_345], [0, 31])
    (got_cd, got_trig), data = roundtrip(cd, trig, 640, 480)
    assert_same_events(got_cd, cd)
    assert_same_events(got_trig, trig)
    assert len(data) == 4 * (n + 2 + 1)


def test_evt2_long_gaps_and_wraps_are_encoded_explicitly():
    t = np.array([0, 8_400_001, TIME_LOOP_US - 1, TIME_LOOP_US, TIME_LOOP_US + 5, 4 * TIME_LOOP_US + 100])
    cd = make_cd(np.arange(t.shape[0]), np.arange(t.shape[0]), np.arange(t.shape[0]) % 2, t)
    (got, _), data = roundtrip(cd, np.empty(0, EVENT_EXT_TRIGGER), 640, 480)
    assert_same_events(got, cd)
    words = np.frombuffer(data, "<u4")
    th = words[words >> 28 == 0x8] & TH_MAX
    # Reaching TH_MAX, the next boundary costs only the 0; each further boundary costs TH_MAX then 0.
    expected = [0, 8_400_001 >> 6, TH_MAX, 0, TH_MAX, 0, TH_MAX, 0, TH_MAX, 0, 100 >> 6]
    np.testing.assert_array_equal(th, expected)


def test_evt2_stream_starting_after_a_wrap_keeps_absolute_time():
    t0 = 2 * TIME_LOOP_US + 1000
    cd = make_cd([1, 2], [3, 4], [0, 1], [t0, t0 + 70])
    (got, _), data = roundtrip(cd, np.empty(0, EVENT_EXT_TRIGGER), 640, 480)
    assert_same_events(got, cd)
    decoder = Evt2Decoder(640, 480)
    decoder.decode(data)
    assert decoder.time_shift_us == 0  # the stream starts with TIME_HIGH 0 so that loops count from 0


def test_evt2_encoder_rejects_bad_input():
    encoder = Evt2Encoder(640, 480)
    cd = make_cd([1, 2], [1, 2], [0, 1], [10, 20])
    with pytest.raises(TypeError, match="EVENT_CD"):
        encoder.encode(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="not sorted"):
        encoder.encode(cd[::-1])
    with pytest.raises(ValueError, match="negative"):
        encoder.encode(make_cd([1], [1], [0], [-5]))
    with pytest.raises(ValueError, match="outside the 640x480"):
        encoder.encode(make_cd([640], [1], [0], [5]))
    with pytest.raises(ValueError, match="polarity"):
        encoder.encode(make_cd([1], [1], [2], [5]))
    with pytest.raises(ValueError, match=r"0\.\.31"):
        encoder.encode(None, make_triggers([1], [5], [32]))
    with pytest.raises(ValueError, match="beyond the supported"):
        encoder.encode(make_cd([1], [1], [0], [1 << 50]))
    with pytest.raises(ValueError, match="11 bits"):
        Evt2Encoder(4096, 480)
    assert encoder.encode(cd)  # nothing above was written
    with pytest.raises(ValueError, match="time order"):
        encoder.encode(make_cd([1], [1], [0], [19]))
    assert encoder.encode(None) == b""


# -- EVT 2.1 decoder ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["little", "legacy"])
def test_evt21_single_words_follow_the_documented_bit_layout(layout):
    vector_hi = (1 << 28) | (9 << 22) | (100 << 11) | 200  # EVT_POS, t lsb 9, x base 100, y 200
    mask = 0b1001_0000_0000_0000_0000_0000_0000_0101
    trigger_hi = (0xA << 28) | (4 << 22) | (13 << 8) | 1
    time_high_hi = (0x8 << 28) | 777
    pairs = [(time_high_hi, 0), (vector_hi, mask), (trigger_hi, 0)]
    if layout == "little":  # one LE u64: type [63:60] ... the EVT2-shaped word is the high half
        data = b"".join(struct.pack("<Q", (hi << 32) | lo) for hi, lo in pairs)
    else:  # two LE u32: the EVT2-shaped word first, then the mask
        data = b"".join(struct.pack("<II", hi, lo) for hi, lo in pairs)
    cd, trig = Evt21Decoder(640, 480, layout).decode(data)
    t = 777 * 64 + 9
    assert_same_events(cd, make_cd([100, 102, 128, 131], [200] * 4, [1] * 4, [t] * 4))
    assert_same_events(trig, make_triggers([1], [777 * 64 + 4], [13]))


def evt21_stream(rng: np.random.Generator, n_vectors: int, width: int = 640):
    """Hand-built EVT 2.1 words (as EVT2-shaped halves + masks) and the events they must decode to."""
    p = rng.integers(0, 2, n_vectors)
    lsb = rng.integers(0, 64, n_vectors)
    x_base = rng.integers(0, width, n_vectors)
    x_base[::7] = width - rng.integers(1, 32, x_base[::7].shape[0])  # near the right edge
    y = rng.integers(0, 480, n_vectors)
    sparsity = rng.integers(0, 2, (n_vectors, 32)) & rng.integers(0, 2, (n_vectors, 32))
    masks = (sparsity.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(axis=1)
    masks[::5] = 0xFFFFFFFF
    masks[3::11] = 0  # an empty vector yields nothing
    th = 50 + np.arange(n_vectors) // 10  # a TIME_HIGH before every 10th vector
    new_th = np.r_[True, th[1:] != th[:-1]]
    first = np.concatenate([w_time_high(th[new_th]), w_cd(p, lsb, x_base, y)])
    second = np.concatenate([rng.integers(0, 2**32, new_th.sum()), masks]).astype(np.uint32)
    slots = np.concatenate([np.flatnonzero(new_th) * 2, np.arange(n_vectors) * 2 + 1])  # TIME_HIGH first
    order = np.argsort(slots, kind="stable")
    first, second = first[order], second[order]
    # Prefix skipped before the first TIME_HIGH, and OTHERS + CONTINUED + a trigger at the end.
    first = cat(w_cd(1, 1, 1, 1), w_trigger(2, 3, 1), first, w_type(0xE), w_type(0xF), w_trigger(5, 31, 0))
    second = cat(0xFFFFFFFF, 0, second, 0xF0001234, 0xDEADBEEF, 0)
    cd = expand_vectors(p, th * 64 + lsb, x_base, y, masks)
    trig = make_triggers([0], [int(th[-1]) * 64 + 5], [31])
    return first, second, cd, trig


@pytest.mark.parametrize("layout", ["little", "legacy"])
@pytest.mark.parametrize("seed", range(3))
def test_evt21_decodes_hand_built_stream_and_splits_anywhere(layout, seed):
    rng = np.random.default_rng(seed)
    first, second, cd_expected, trig_expected = evt21_stream(rng, 400)
    data = evt21_bytes(first, second, layout)
    decoder = Evt21Decoder(640, 480, layout)
    cd, trig = decoder.decode(data)
    assert_same_events(cd, cd_expected)
    assert_same_events(trig, trig_expected)
    assert cd["x"].max() >= 640  # vectors past the right edge are not clipped (§4 states no rule for EVT 2.1)
    assert decoder.time_shift_us == 50 * 64 and decoder.current_time_us == (50 + 399 // 10) * 64
    cuts = np.concatenate([random_cuts(rng, len(data), 30), [1, 5, 9, len(data) - 3]])
    cd, trig = decode_pieces(Evt21Decoder(640, 480, layout), data, cuts)
    assert_same_events(cd, cd_expected)
    assert_same_events(trig, trig_expected)


@pytest.mark.parametrize("layout", ["little", "legacy"])
def test_evt21_full_vectors_fill_output_and_resume(layout):
    n = 20_000  # 32 events per word, far above the 4-per-word buffer hint: the kernel must stop and resume
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 1248, n), rng.integers(0, 720, n)
    first = cat(w_time_high(3), w_cd(1, 7, x, y))
    data = evt21_bytes(first, cat(0, np.full(n, 0xFFFFFFFF)), layout)
    cd, _ = Evt21Decoder(1280, 720, layout).decode(data)
    expected = expand_vectors(np.ones(n, int), np.full(n, 3 * 64 + 7), x, y, np.full(n, 0xFFFFFFFF))
    assert_same_events(cd, expected)


@pytest.mark.parametrize("layout", ["little", "legacy"])
def test_evt21_time_wraps_like_evt2(layout):
    first = cat(w_time_high(TH_MAX), w_cd(0, 1, 10, 10), w_time_high(0), w_cd(1, 2, 20, 20))
    data = evt21_bytes(first, cat(0, 1, 0, 0b11), layout)
    cd, _ = Evt21Decoder(640, 480, layout).decode(data)
    np.testing.assert_array_equal(cd["t"], [MAX_TIMESTAMP_US + 1, TIME_LOOP_US + 2, TIME_LOOP_US + 2])
    np.testing.assert_array_equal(cd["x"], [10, 20, 21])


def test_evt21_layouts_differ_and_bad_endianness_is_rejected():
    first, second = cat(w_time_high(1), w_cd(1, 0, 5, 6)), cat(0, 1)
    little = Evt21Decoder(640, 480, "little").decode(evt21_bytes(first, second, "legacy"))[0]
    assert little.shape[0] == 0  # legacy bytes read as little: the TIME_HIGH is in the wrong half
    with pytest.raises(ValueError, match="endianness"):
        Evt21Decoder(640, 480, "big")  # type: ignore[arg-type]
    assert Evt21Decoder(640, 480).endianness == "little"
