"""EVT 3.0 codec: OpenEB 5.1.1-exact decoding (real files, quirks, any split) and encoder round trips.

The decoder is held to OpenEB's own decodes of the shared real recordings, element by element, and to
hand-built word streams for each decoder quirk of docs/prophesee-formats.md §4.3–4.5. The encoder is
held to §4.6: its output must decode to the input multiset with our decoder and with the independent
``evt3`` package, and must contain only word sequences OpenEB decodes unambiguously.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.formats.rawheader import split_header
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events, make_cd, make_triggers
from drivers.events.evt3 import Evt3Decoder, Evt3Encoder
from drivers.events.synthetic import synthetic_events
from tests.reference import (
    assert_matches_reference,
    reference_decodes,
    reference_npz,
    shared_event_file,
    sort_events,
)

REAL_FILES = ["expelliarmus_evt3_sample.raw", "ros_event_camera_codecs_evt3_trigger.raw"]
HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- word builders ---------------------------------------------------------------------------------
def addr_y(y: int, system: int = 0) -> int:
    return (0x0 << 12) | (system << 11) | y


def addr_x(x: int, p: int) -> int:
    return (0x2 << 12) | (p << 11) | x


def vect_base(x: int, p: int) -> int:
    return (0x3 << 12) | (p << 11) | x


def vect12(bits: int) -> int:
    return (0x4 << 12) | bits


def vect8(bits: int) -> int:
    return (0x5 << 12) | bits


def time_low(v: int) -> int:
    return (0x6 << 12) | v


def time_high(v: int) -> int:
    return (0x8 << 12) | v


def trigger(p: int, channel: int) -> int:
    return (0xA << 12) | (channel << 8) | p


def others(subtype: int) -> int:
    return (0xE << 12) | subtype


def cont12(v: int) -> int:
    return (0xF << 12) | v


def cont4(v: int) -> int:
    return (0x7 << 12) | v


def triple(mask: int) -> list[int]:
    return [vect12(mask & 0xFFF), vect12((mask >> 12) & 0xFFF), vect8((mask >> 24) & 0xFF)]


def as_bytes(words: list[int]) -> bytes:
    return np.asarray(words, dtype="<u2").tobytes()


def decode(
    data: bytes, width: int = 1280, height: int = 720, cuts=()
) -> tuple[np.ndarray, np.ndarray, Evt3Decoder]:
    """Decode ``data`` fed in pieces cut at the byte offsets ``cuts``."""
    dec = Evt3Decoder(width, height)
    bounds = [0, *sorted(cuts), len(data)]
    parts = [dec.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    cd = concat_events([p[0] for p in parts], EVENT_CD)
    trig = concat_events([p[1] for p in parts], EVENT_EXT_TRIGGER)
    return cd, trig, dec


def cd_list(cd: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(int(e["x"]), int(e["y"]), int(e["p"]), int(e["t"])) for e in cd]


def trig_list(trig: np.ndarray) -> list[tuple[int, int, int]]:
    return [(int(e["p"]), int(e["id"]), int(e["t"])) for e in trig]


def payload(name: str) -> bytes:
    data = shared_event_file(name).read_bytes()
    _, offset = split_header(data[: 1 << 16])
    return data[offset:]


# -- real recordings against OpenEB 5.1.1 ----------------------------------------------------------
@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_equals_openeb_decode_in_order(name):
    data = payload(name)
    cd, trig, dec = decode(data)
    ref_cd, ref_trig = reference_npz(name)
    assert cd.shape == ref_cd.shape and trig.shape == ref_trig.shape
    for field in ("x", "y", "p", "t"):
        assert np.array_equal(cd[field], ref_cd[field]), field
    for field in ("p", "id", "t"):
        assert np.array_equal(trig[field], ref_trig[field]), field
    assert_matches_reference(cd, trig, reference_decodes()[name])
    assert not dec.group_pending and dec.pending_bytes == 0
    assert dec.dropped_vector_groups == 0
    assert dec.current_time_us >= int(cd["t"][-1])


def _group_cuts(data: bytes) -> list[int]:
    """Byte offsets inside every kind of multi-word group of a stream (a few of each)."""
    words = np.frombuffer(data[: len(data) // 2 * 2], "<u2")
    kinds = words >> 12
    vect = np.flatnonzero(kinds == 0x4)[::2][:50]  # first word of VECT_12 pairs
    erc = np.flatnonzero((kinds == 0xE) & np.isin(words & 0xFFF, [0x14, 0x16]))[:50]
    starts = np.concatenate([vect, erc])
    return sorted({int(2 * s + d) for s in starts for d in (1, 2, 3, 4, 5, 6, 7)})


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_any_split_gives_same_events(name):
    data = payload(name)
    whole_cd, whole_trig, _ = decode(data)
    cuts = _group_cuts(data)
    assert len(cuts) > 100  # the cuts do fall inside groups
    for chosen in (cuts, cuts[::3], cuts[1::7]):
        cd, trig, dec = decode(data, cuts=chosen)
        assert np.array_equal(cd, whole_cd) and np.array_equal(trig, whole_trig)
        assert not dec.group_pending


@pytest.mark.parametrize("name", REAL_FILES)
@HYPOTHESIS
@given(fractions=st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_real_file_random_splits(name, fractions):
    data = payload(name)
    cuts = {int(f * len(data)) for f in fractions}
    cd, trig, _ = decode(data, cuts=cuts)
    ref_cd, ref_trig = reference_npz(name)
    assert np.array_equal(cd["t"], ref_cd["t"]) and np.array_equal(cd["x"], ref_cd["x"])
    assert np.array_equal(cd["y"], ref_cd["y"]) and np.array_equal(cd["p"], ref_cd["p"])
    assert trig_list(trig) == [(int(e["p"]), int(e["id"]), int(e["t"])) for e in ref_trig]


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_time_shift_is_openebs(name):
    data = payload(name)
    first_th = next(int(w) & 0xFFF for w in np.frombuffer(data[:4096], "<u2") if int(w) >> 12 == 0x8)
    dec = Evt3Decoder(1280, 720)
    assert dec.time_shift_us is None and dec.current_time_us is None
    dec.decode(data[:2048])
    assert dec.time_shift_us == (first_th - 1) * 4096


def test_snapshot_inside_a_vector_group_resumes_exactly():
    data = payload("expelliarmus_evt3_sample.raw")
    whole, _, _ = decode(data)
    cut = _group_cuts(data)[40]
    dec = Evt3Decoder(1280, 720)
    head, _ = dec.decode(data[:cut])
    snap = dec.snapshot()
    dec.decode(data[cut:])  # moves on; the snapshot must be unaffected
    other = Evt3Decoder(1280, 720)
    other.restore(snap)
    tail, _ = other.decode(data[cut:])
    assert np.array_equal(concat_events([head, tail], EVENT_CD), whole)


def test_ros_file_erc_counts_are_consumed_and_kept():
    _, _, dec = decode(payload("ros_event_camera_codecs_evt3_trigger.raw"))
    cd_in, cd_out = dec.last_erc_counts
    assert cd_in is not None and cd_out is not None and 0 <= cd_out <= cd_in < 1 << 28


# -- decoder quirks on hand-built streams ----------------------------------------------------------
def test_words_before_first_time_high_are_ignored():
    words = [addr_y(5), addr_x(7, 1), trigger(1, 3), vect_base(0, 1), *triple(0xFF), time_low(9),
             time_high(3), addr_x(8, 0), addr_y(5), addr_x(8, 0)]
    cd, trig, dec = decode(as_bytes(words))
    # ADDR_X right after the first TIME_HIGH is ignored too: the row set before it does not count.
    assert cd_list(cd) == [(8, 5, 0, 3 * 4096)]
    assert trig.shape[0] == 0
    assert dec.time_shift_us == 2 * 4096


@pytest.mark.parametrize(("first", "shift"), [(0, 0), (1, 0), (2, 4096), (0xFFF, 0xFFE * 4096)])
def test_time_shift_from_first_time_high(first, shift):
    dec = Evt3Decoder(1280, 720)
    dec.decode(as_bytes([addr_y(1)]))
    assert dec.time_shift_us is None
    dec.decode(as_bytes([time_high(first), time_high(first + 1 if first < 0xFFF else 0)]))
    assert dec.time_shift_us == shift


def test_time_low_latest_wins_even_stepping_back_and_time_high_resets_it():
    words = [time_high(2), addr_y(1), time_low(811), addr_x(1, 1), time_low(800), addr_x(2, 1),
             time_high(2), addr_x(3, 1),  # same TIME_HIGH value: TIME_LOW kept
             time_high(3), addr_x(4, 1)]  # new value: TIME_LOW reset to 0
    cd, _, dec = decode(as_bytes(words))
    assert [e[3] for e in cd_list(cd)] == [2 * 4096 + 811, 2 * 4096 + 800, 2 * 4096 + 800, 3 * 4096]
    assert dec.current_time_us == 3 * 4096


def test_time_high_loop_rule():
    words = [time_high(0xFFE), addr_y(0), time_low(5), addr_x(0, 0),
             time_high(0xFFF), time_high(0), time_low(7), addr_x(1, 0),  # wrap: loop 1
             time_high(2100), time_high(52), addr_x(2, 0),  # drop of exactly 2048: loop 2
             time_high(2100), time_high(53), addr_x(3, 0)]  # drop of 2047: no wrap counted
    cd, _, _ = decode(as_bytes(words))
    assert [e[3] for e in cd_list(cd)] == [
        0xFFE * 4096 + 5,
        (1 << 24) + 7,
        (2 << 24) + 52 * 4096,
        (2 << 24) + 53 * 4096,
    ]


def test_invalid_row_mutes_cd_words_until_a_valid_row():
    words = [time_high(1), vect_base(10, 1), addr_y(719), addr_x(1, 0),
             addr_y(720), addr_x(2, 0), *triple(0b1),  # y = height: muted, the vector base does not move
             addr_y(3, system=1), addr_x(3, 0),  # 12-bit content 2051 >= height: muted too
             addr_y(4), *triple(0b101), addr_x(5, 1)]
    cd, _, dec = decode(as_bytes(words), height=720)
    assert cd_list(cd) == [(1, 719, 0, 4096), (10, 4, 1, 4096), (12, 4, 1, 4096), (5, 4, 1, 4096)]
    assert dec.dropped_vector_groups == 0


def test_reserved_type_1_is_a_non_cd_row():
    words = [time_high(1), addr_y(6), addr_x(1, 0), 0x1006, addr_x(2, 0), vect_base(0, 0), *triple(1),
             addr_y(6), addr_x(3, 1)]
    cd, _, _ = decode(as_bytes(words))
    assert cd_list(cd) == [(1, 6, 0, 4096), (3, 6, 1, 4096)]


def test_cd_words_before_any_row_are_ignored():
    cd, _, _ = decode(as_bytes([time_high(1), addr_x(1, 0), addr_y(2), addr_x(1, 0)]))
    assert cd_list(cd) == [(1, 2, 0, 4096)]


def test_vectors_lone_vect8_and_untyped_group_words():
    words = [time_high(1), addr_y(9), vect_base(100, 1),
             *triple(0x80000001 | (1 << 12) | (1 << 24)),  # bits 0, 12, 24, 31 -> x 100, 112, 124, 131
             vect8(0xFF),  # lone VECT_8: nothing, base unchanged
             vect12(0x1), addr_x(0x7FF, 1), time_low(0x0FF),  # group words taken as masks, types unchecked
             addr_x(1, 0)]
    cd, _, _ = decode(as_bytes(words))
    second = 0x1 | (0xFFF << 12) | (0xFF << 24)  # EVT_ADDR_X(0x7FF, p=1) has content 0xFFF
    expected = [(100 + b, 9, 1, 4096) for b in (0, 12, 24, 31)]
    expected += [(132 + b, 9, 1, 4096) for b in range(32) if second >> b & 1]
    assert cd_list(cd) == [*expected, (1, 9, 0, 4096)]  # the TIME_LOW inside the group set no time


def test_right_edge_drop_and_recovery_at_next_vect_base():
    width = 1280
    words = [time_high(1), addr_y(0), *triple(1),  # no VECT_BASE_X yet: dropped
             vect_base(width - 64, 0), *triple(1), *triple(1 << 31),  # base 1216, 1248: fine
             *triple(1), *triple(1),  # base 1280, 1312: dropped
             vect_base(width - 33, 1), *triple(1),  # 1247 + 32 <= 1280: fine
             *triple(1),  # base 1279: dropped
             addr_x(width - 1, 1), vect_base(0, 0), *triple(1 << 5)]
    cd, _, dec = decode(as_bytes(words), width=width)
    assert [(e[0], e[2]) for e in cd_list(cd)] == [(1216, 0), (1279, 0), (1247, 1), (1279, 1), (5, 0)]
    assert dec.dropped_vector_groups == 4


def test_trigger_and_others_groups():
    words = [time_high(5), time_low(17), trigger(1, 15), trigger(0, 0),
             others(0x014), cont12(0x345), cont12(0x012), cont4(0x3),  # 28-bit count 0x3012345
             others(0x016), addr_x(1, 0), addr_y(2), addr_x(3, 0),  # group words are taken untyped
             others(0x0FF), addr_y(2), addr_x(4, 1),  # other subtypes are single words
             cont12(0xFFF), cont4(1), addr_x(5, 1)]  # stray CONTINUED: ignored
    cd, trig, dec = decode(as_bytes(words))
    t = 5 * 4096 + 17
    assert trig_list(trig) == [(1, 15, t), (0, 0, t)]
    assert cd_list(cd) == [(4, 2, 1, t), (5, 2, 1, t)]
    assert dec.last_erc_counts == (0x3012345, 0x1 | (2 << 12) | (3 << 24))


QUIRK_STREAM = [
    0x2001, time_high(7), addr_y(3), vect_base(20, 1), *triple(0xF0F0F0F0), time_low(100),
    others(0x014), cont12(1), cont12(2), cont4(3), addr_x(9, 0), *triple(0xFFFFFFFF), vect8(3),
    others(0x016), cont12(4), cont12(5), cont4(6), trigger(1, 2), addr_y(800), *triple(1), addr_x(1, 1),
    addr_y(2), vect_base(1240, 0), *triple(0x3), *triple(0x5), *triple(0x7), vect_base(0, 0), *triple(0x9),
    time_high(8), time_low(5), addr_x(2, 1), 0x1000, addr_x(3, 1), addr_y(1), addr_x(4, 1),
]


def test_every_split_of_a_quirky_stream_decodes_identically():
    data = as_bytes(QUIRK_STREAM)
    whole = decode(data)
    assert whole[0].shape[0] > 40 and whole[1].shape[0] == 1 and whole[2].dropped_vector_groups == 2
    for cut in range(1, len(data)):
        cd, trig, dec = decode(data, cuts=[cut])
        assert cd_list(cd) == cd_list(whole[0]) and trig_list(trig) == trig_list(whole[1]), cut
        assert dec.dropped_vector_groups == 2 and dec.last_erc_counts == whole[2].last_erc_counts
    for cut in range(0, len(data), 3):  # two cuts: a group spread over three pieces
        cd, _, _ = decode(data, cuts=[cut, cut + 1, cut + 2, cut + 3])
        assert cd_list(cd) == cd_list(whole[0]), cut


def test_kernel_stops_with_headroom_and_resumes_exactly():
    """Drive the kernel itself with outputs just above the headroom: it must stop and resume losslessly."""
    stream = QUIRK_STREAM + [trigger(1, 1)] * 5 + [addr_y(1), vect_base(0, 1), *triple(0xFFFFFFFF) * 6]
    words = np.asarray(stream, np.uint16)
    want_cd, want_trig, _ = decode(as_bytes(stream))
    dec = Evt3Decoder(1280, 720)
    got_cd, got_trig = [], []
    for piece in (words[:20], words[20:]):  # a vector group straddles the two inputs
        pos = 0
        while pos < piece.shape[0]:
            out_cd, out_trig = np.empty(40, EVENT_CD), np.empty(1, EVENT_EXT_TRIGGER)
            new_pos, n_cd, n_trig = dec._run(piece, pos, dec._state, out_cd, out_trig, 1280, 720)
            assert new_pos > pos or n_cd or n_trig
            pos = new_pos
            got_cd += cd_list(out_cd[:n_cd])
            got_trig += trig_list(out_trig[:n_trig])
    assert got_cd == cd_list(want_cd) and got_trig == trig_list(want_trig)


def test_group_pending_and_truncation():
    dec = Evt3Decoder(1280, 720)
    dec.decode(as_bytes([time_high(1), addr_y(1), vect_base(0, 0), vect12(1)]) + b"\x01")
    assert dec.group_pending and dec.pending_bytes == 1
    cd, _ = dec.decode(b"\x40" + as_bytes([vect8(0)]))
    assert not dec.group_pending and cd_list(cd) == [(0, 1, 0, 4096), (12, 1, 0, 4096)]


def test_decode_keeps_event_cd_dtype_when_the_kernel_refills():
    words = [time_high(1)]
    for y in range(20):
        words += [addr_y(y), vect_base(0, 0)] + triple(0xFFFFFFFF) * 40
    cd, _ = Evt3Decoder(1280, 720).decode(as_bytes(words))  # 10 events per word: several kernel runs
    assert cd.dtype == EVENT_CD


def test_output_refills_when_vectors_are_denser_than_the_hint():
    words = [time_high(1)]
    for y in range(720):
        words += [addr_y(y), vect_base(0, y & 1)] + triple(0xFFFFFFFF) * 40
    dec = Evt3Decoder(1280, 720)
    cd, _ = dec.decode(as_bytes(words))
    assert cd.shape[0] == 720 * 1280
    assert np.array_equal(cd["x"], np.tile(np.arange(1280), 720))
    assert np.array_equal(cd["y"], np.repeat(np.arange(720), 1280))


# -- encoder ---------------------------------------------------------------------------------------
def assert_wellformed(data: bytes, width: int, height: int) -> None:
    """The §4.6 rules, checked on the words themselves."""
    w = np.frombuffer(data, "<u2").astype(np.int64)
    kind, content = w >> 12, w & 0xFFF
    assert kind[0] == 0x8, "stream must start with TIME_HIGH"
    assert not np.isin(kind, [0x1, 0x7, 0x9, 0xB, 0xC, 0xD, 0xE, 0xF]).any(), "reserved or unexpected word"
    th = content[kind == 0x8]
    assert np.all((np.diff(th) % 4096) == 1), "TIME_HIGH must step through every value"
    assert np.all(content[kind == 0x0] < height)
    assert np.all((content[kind == 0x2] & 0x7FF) < width)
    assert np.all((content[kind == 0x3] & 0x7FF) <= width - 32)
    # Vector words come only as VECT_BASE_X or a previous triple, then VECT_12, VECT_12, VECT_8.
    v12 = np.flatnonzero(kind == 0x4)
    starts = v12[::2]
    assert v12.shape[0] % 2 == 0 and np.all(kind[starts + 1] == 0x4) and np.all(kind[starts + 2] == 0x5)
    assert np.array_equal(np.flatnonzero(kind == 0x5), starts + 2)
    assert np.all(np.isin(kind[starts - 1], [0x3, 0x5, 0x2]))  # base, previous triple, or its duplicates
    # A chain never runs past the right edge: the n-th triple after VECT_BASE_X(b) covers b + 32n ...
    bases = np.flatnonzero(kind == 0x3)
    v8 = np.flatnonzero(kind == 0x5)
    if v8.shape[0]:
        owner = np.searchsorted(bases, v8) - 1
        assert np.all(owner >= 0)
        nth = np.arange(v8.shape[0]) - np.searchsorted(v8, bases[owner])
        assert np.all((content[bases[owner]] & 0x7FF) + 32 * (nth + 1) <= width)


def round_trip(cd, triggers, width, height, n_pieces=1, seed=0):
    """Encode in ``n_pieces`` calls cut at random times; decode; compare multisets and triggers."""
    enc = Evt3Encoder(width, height)
    times = np.concatenate([cd["t"], triggers["t"]])
    rng = np.random.default_rng(seed)
    cut_times = np.sort(rng.choice(times, size=min(n_pieces - 1, times.shape[0]))) if n_pieces > 1 else []
    bounds = [None, *cut_times, None]
    pieces = []
    for lo, hi in itertools.pairwise(bounds):
        sel_cd = np.ones(cd.shape[0], bool)
        sel_tr = np.ones(triggers.shape[0], bool)
        if lo is not None:
            sel_cd &= cd["t"] >= lo
            sel_tr &= triggers["t"] >= lo
        if hi is not None:
            sel_cd &= cd["t"] < hi
            sel_tr &= triggers["t"] < hi
        pieces.append(enc.encode(cd[sel_cd], triggers[sel_tr]))
    data = b"".join(pieces)
    if cd.shape[0] or triggers.shape[0]:
        assert_wellformed(data, width, height)
    got_cd, got_trig, dec = decode(data, width, height)
    assert dec.dropped_vector_groups == 0 and not dec.group_pending
    assert np.array_equal(sort_events(got_cd), sort_events(cd))
    assert trig_list(got_trig) == trig_list(triggers)
    return data


@st.composite
def event_streams(draw):
    """Small streams that stress the encoder: edge columns, runs, bursts, duplicates, gaps, wraps."""
    width = draw(st.sampled_from([1280, 640, 33, 32, 31, 1, 2048]))
    height = draw(st.sampled_from([720, 1, 2048]))
    n = draw(st.integers(0, 300))
    t0 = draw(st.sampled_from([0, 4095, 4096, (1 << 24) - 3, 1 << 24, 5 * (1 << 24) + 777]))
    steps = draw(st.lists(st.sampled_from([0, 0, 0, 0, 1, 2, 4095, 4096, 4097, 9_000_000, 17_000_000]),
                          min_size=n, max_size=n))
    t = t0 + np.cumsum(np.asarray(steps, np.int64))
    x_choices = st.one_of(st.integers(0, width - 1), st.sampled_from([0, width - 1, max(width - 32, 0)]))
    xs = np.asarray(draw(st.lists(x_choices, min_size=n, max_size=n)), np.int64)
    # Runs: half the events continue the previous one's row and polarity one column to the right.
    run = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    ys = np.asarray(draw(st.lists(st.integers(0, height - 1), min_size=n, max_size=n)), np.int64)
    ps = np.asarray(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), np.int64)
    for i in range(1, n):
        if run[i] and t[i] == t[i - 1]:
            xs[i] = min(xs[i - 1] + 1, width - 1)
            ys[i], ps[i] = ys[i - 1], ps[i - 1]
    cd = make_cd(xs, ys, ps, t)
    if n:
        order = np.asarray(draw(st.permutations(range(n))), np.int64)
        cd = cd[order][np.argsort(t[order], kind="stable")]  # any order within a µs
    n_tr = draw(st.integers(0, 8))
    tr_t = np.sort(np.asarray(draw(st.lists(st.integers(t0, int(t[-1]) if n else t0 + 10_000),
                                            min_size=n_tr, max_size=n_tr)), np.int64))
    triggers = make_triggers(draw(st.lists(st.integers(0, 1), min_size=n_tr, max_size=n_tr)), tr_t,
                             draw(st.lists(st.integers(0, 15), min_size=n_tr, max_size=n_tr)))
    pieces = draw(st.integers(1, 4))
    return cd, triggers, width, height, pieces


@HYPOTHESIS
@given(stream=event_streams())
def test_round_trip_property(stream):
    cd, triggers, width, height, pieces = stream
    round_trip(cd, triggers, width, height, n_pieces=pieces)


@pytest.mark.parametrize(("seed", "rate", "pieces"), [(0, 50e6, 1), (1, 5e6, 3), (2, 200e6, 7)])
def test_round_trip_dense_synthetic(seed, rate, pieces):
    cd, triggers = synthetic_events(60_000, 1280, 720, rate=rate, seed=seed)
    triggers["id"] = np.arange(triggers.shape[0]) % 16
    data = round_trip(cd, triggers, 1280, 720, n_pieces=pieces, seed=seed)
    words = np.frombuffer(data, "<u2") >> 12
    assert (words == 0x4).sum() > 1000  # dense runs do use vectors
    assert len(data) < 1.6 * cd.shape[0]  # and cost well under 2 bytes per event


def test_round_trip_shuffled_within_microsecond_and_duplicates():
    cd, triggers = synthetic_events(20_000, 640, 480, rate=80e6, seed=5)
    rng = np.random.default_rng(5)
    cd = concat_events([cd, cd[rng.choice(cd.shape[0], 500)]], EVENT_CD)  # exact duplicates
    cd = cd[np.lexsort((rng.random(cd.shape[0]), cd["t"]))]
    round_trip(cd, triggers, 640, 480, n_pieces=3)


def test_round_trip_real_recording():
    ref_cd, ref_trig = reference_npz("ros_event_camera_codecs_evt3_trigger.raw")
    round_trip(ref_cd.astype(EVENT_CD), ref_trig.astype(EVENT_EXT_TRIGGER), 1280, 720, n_pieces=5)
    ref_cd, _ = reference_npz("expelliarmus_evt3_sample.raw")
    data = round_trip(ref_cd.astype(EVENT_CD), np.empty(0, EVENT_EXT_TRIGGER), 1280, 720)
    assert len(data) <= len(payload("expelliarmus_evt3_sample.raw"))  # no worse than the camera


def test_burst_of_full_rows_in_one_microsecond_and_edge_columns():
    width, height = 1280, 720
    yy, xx = np.meshgrid(np.arange(0, height, 7), np.arange(width), indexing="ij")
    full = make_cd(xx.ravel(), yy.ravel(), yy.ravel() & 1, np.full(xx.size, 123_456))
    edges = make_cd([width - 1, width - 2, width - 32, width - 33, 0, width - 1] * 2, [1] * 6 + [2] * 6,
                    [0] * 12, [200_000] * 12)
    right_run = make_cd(np.arange(width - 20, width), np.full(20, 5), np.ones(20), np.full(20, 300_000))
    cd = concat_events([full, edges, right_run], EVENT_CD)
    data = round_trip(cd, np.empty(0, EVENT_EXT_TRIGGER), width, height)
    # A full row of 1280 columns costs a VECT_BASE_X, 40 triples and its EVT_ADDR_Y.
    assert len(data) // 2 < 122 * len(range(0, height, 7)) + 100


def test_isolated_events_use_single_addresses():
    cd = make_cd([10, 100, 1000], [1, 1, 1], [1, 1, 1], [5, 5, 5])
    words = np.frombuffer(Evt3Encoder(1280, 720).encode(cd), "<u2")
    assert [int(w) for w in words] == [time_high(0), time_low(5), addr_y(1), addr_x(10, 1), addr_x(100, 1),
                                       addr_x(1000, 1)]


def test_time_words_follow_the_rules():
    t = [4096 * 3, 4096 * 3 + 7, 4096 * 5 + 7, 4096 * 5 + 7]
    cd = make_cd([1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 0], t)
    triggers = make_triggers([1], [4096 * 5 + 9], [15])
    words = [int(w) for w in np.frombuffer(Evt3Encoder(1280, 720).encode(cd, triggers), "<u2")]
    assert words == [time_high(3), addr_y(0), addr_x(1, 0), time_low(7), addr_x(2, 0),
                     time_high(4), time_high(5), time_low(7), addr_x(3, 0), addr_x(4, 0),
                     time_low(9), trigger(1, 15)]


def test_long_gaps_and_the_2_24_wrap():
    t = np.array([100, 9_000_000, 9_000_001, (1 << 24) - 1, 1 << 24, (1 << 24) + 4096, 3 * (1 << 24) + 5,
                  3 * (1 << 24) + 20_000_000], np.int64)
    cd = make_cd(np.arange(t.size), np.zeros(t.size), np.zeros(t.size), t)
    triggers = make_triggers([0, 1], [(1 << 24) - 1, 3 * (1 << 24) + 5], [0, 15])
    data = round_trip(cd, triggers, 1280, 720, n_pieces=4)
    th = np.frombuffer(data, "<u2")
    assert int((th >> 12 == 0x8).sum()) == (int(t[-1]) >> 12) + 1  # every TIME_HIGH value, once


def test_first_event_beyond_2_24_starts_from_time_high_zero():
    t0 = 3 * (1 << 24) + 4096 * 7 + 11
    cd = make_cd([5, 6], [7, 7], [1, 1], [t0, t0 + 1])
    data = round_trip(cd, make_triggers([1], [t0], [3]), 1280, 720)
    words = np.frombuffer(data, "<u2")
    assert words[0] == time_high(0)
    # The cost of rebuilding the absolute time: 2 bytes per 4.096 ms of offset.
    assert words.shape[0] == (t0 >> 12) + 1 + 6  # then TL, trigger, ADDR_Y, ADDR_X; TL, ADDR_X


def test_encoder_output_decodes_identically_with_evt3_package(tmp_path):
    evt3 = pytest.importorskip("evt3")
    cd, triggers = synthetic_events(50_000, 640, 480, rate=30e6, seed=9)
    cd["t"] += (1 << 24) - 20_000  # crosses the wrap
    triggers["t"] += (1 << 24) - 20_000
    triggers["id"] = np.arange(triggers.shape[0]) % 16
    t_end = int(cd["t"][-1]) + 1
    edges = make_cd([639, 638, 608, 607, 0] * 7, np.repeat(np.arange(7), 5), [1] * 35, [t_end] * 35)
    cd = concat_events([cd, edges], EVENT_CD)
    enc = Evt3Encoder(640, 480)
    half = cd.shape[0] // 2
    t_half = int(cd["t"][half])
    data = enc.encode(cd[:half], triggers[triggers["t"] < t_half])
    data += enc.encode(cd[half:], triggers[triggers["t"] >= t_half])
    path = tmp_path / "enc.raw"
    path.write_bytes(b"% format EVT3;height=480;width=640\n% end\n" + data)
    events, trig = evt3.decode_file_with_triggers(str(path))
    got = make_cd(events.x, events.y, events.polarity, events.t.astype(np.int64))
    assert np.array_equal(sort_events(got), sort_events(cd))
    assert np.array_equal(trig.timestamp.astype(np.int64), triggers["t"])
    assert np.array_equal(trig.id.astype(np.int64), triggers["id"])
    assert np.array_equal(trig.value.astype(np.int64), triggers["p"])
    # Its streaming decoder too, fed in odd-sized pieces.
    dec = evt3.Decoder(640, 480)
    parts = [dec.feed(data[i : i + 777]) for i in range(0, len(data), 777)]
    streamed = make_cd(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "polarity")),
                       np.concatenate([p.t for p in parts]).astype(np.int64))
    assert np.array_equal(sort_events(streamed), sort_events(cd))


def test_real_files_decode_like_evt3_package():
    evt3 = pytest.importorskip("evt3")
    for name in REAL_FILES:
        events, trig = evt3.decode_file_with_triggers(str(shared_event_file(name)))
        cd, ours_trig, _ = decode(payload(name))
        assert np.array_equal(cd["t"], events.t.astype(np.int64)) and np.array_equal(cd["x"], events.x)
        assert np.array_equal(cd["y"], events.y) and np.array_equal(cd["p"], events.polarity)
        assert np.array_equal(ours_trig["t"], trig.timestamp.astype(np.int64))


# -- encoder input checks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cd", "triggers", "message"),
    [
        (make_cd([1, 2], [1, 1], [0, 0], [5, 4]), None, "not sorted"),
        (make_cd([1280], [1], [0], [5]), None, "outside the 1280x720"),
        (make_cd([1], [720], [0], [5]), None, "outside the 1280x720"),
        (make_cd([1], [1], [2], [5]), None, "polarity"),
        (make_cd([1], [1], [0], [-1]), None, "negative"),
        (None, make_triggers([1], [5], [16]), "id must be 0..15"),
        (None, make_triggers([1, 1], [6, 5], [0, 0]), "not sorted"),
    ],
)
def test_encoder_rejects_bad_input(cd, triggers, message):
    with pytest.raises(ValueError, match=message):
        Evt3Encoder(1280, 720).encode(cd, triggers)


def test_encoder_rejects_going_back_in_time_and_bad_geometry_or_dtype():
    enc = Evt3Encoder(1280, 720)
    enc.encode(make_cd([1], [1], [0], [100]))
    with pytest.raises(ValueError, match="before the 100 µs already written"):
        enc.encode(make_cd([1], [1], [0], [99]))
    with pytest.raises(ValueError, match="11-bit"):
        Evt3Encoder(4096, 720)
    packed = np.zeros(1, [("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])
    with pytest.raises(TypeError, match="EVENT_CD"):
        Evt3Encoder(1280, 720).encode(packed)
