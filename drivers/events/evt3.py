"""EVT 3.0 (16-bit words): a streaming decoder identical to OpenEB 5.1.1, and an encoder it decodes exactly.

EVT3 is stateful: time, row, vector base and polarity are set by their own words and CD words only
carry what changed. The decoder therefore keeps OpenEB's whole state (not just the spec's) in an
int64 vector, including the quirks that change the decoded events (docs/prophesee-formats.md §4.2–4.7):
a VECT_12 always starts a 3-word group whose other two words are taken without a type check, a lone
VECT_8 emits nothing, a group whose base reaches past the right edge is dropped together with the
following groups up to the next VECT_BASE_X, an out-of-range row (or reserved type 0x1) mutes CD
words until the next valid EVT_ADDR_Y, and a TIME_LOW may step back. Multi-word groups straddling two
``decode()`` calls are completed from the next call, so any split of a stream decodes identically.

The encoder writes only what OpenEB decodes unambiguously (§4.6): complete vector triples, every
intermediate TIME_HIGH value (so gaps and the 2^24 µs wrap decode right), no reserved words.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numba import njit

from drivers.events.codec import KERNEL_CD_HEADROOM, EventDecoder, EventEncoder

# -- word types (bits [15:12]) -------------------------------------------------------------------
_ADDR_Y = 0x0
_ADDR_X = 0x2
_VECT_BASE_X = 0x3
_VECT_12 = 0x4
_VECT_8 = 0x5
_TIME_LOW = 0x6
_TIME_HIGH = 0x8
_EXT_TRIGGER = 0xA
_OTHERS = 0xE
#: OTHERS subtypes followed by CONTINUED_12, CONTINUED_12, CONTINUED_4 (ERC "CD events in" / "after ERC").
_OTHERS_CD_IN_COUNT = 0x014
_OTHERS_CD_OUT_COUNT = 0x016

_POLARITY_BIT = 1 << 11
#: TIME_HIGH values are 12 bits; OpenEB counts a wrap when TIME_HIGH drops by at least half that range.
_TH_HALF_RANGE = 2048

# -- decoder state vector (int64) ----------------------------------------------------------------
_S_STARTED = 0  # 1 once the first TIME_HIGH has been seen (words before it are ignored)
_S_FIRST_TH = 1  # value of the first TIME_HIGH (for OpenEB's time shift)
_S_LOOP = 2  # number of 2^24 µs wraps
_S_TH = 3  # last TIME_HIGH value
_S_TL = 4  # last TIME_LOW value
_S_Y = 5  # content of the last EVT_ADDR_Y (12 bits: the system-type bit is part of the compared value)
_S_VALID = 6  # 1 while CD words decode: after an EVT_ADDR_Y < height, not after reserved type 0x1
_S_BASE = 7  # content of VECT_BASE_X plus 32 per vector group (uint32 in OpenEB; bit 11 is the polarity)
_S_HAS_BASE = 8  # OpenEB's validator: cleared by a dropped group, set by VECT_BASE_X
_S_DROPPED = 9  # vector groups dropped because their base reached past the right edge (or no base)
_S_PEND_NEED = 10  # length of the multi-word group waiting for more input (0: none, 3: vector, 4: OTHERS)
_S_PEND_N = 11  # words of that group already received
_S_PEND_W = 12  # ... stored in state[12:16]
_S_ERC_IN = 16  # last 28-bit count of OTHERS 0x014 (-1: none yet)
_S_ERC_OUT = 17  # last 28-bit count of OTHERS 0x016 (-1: none yet)
_S_SIZE = 18

# Multiply-and-lookup (de Bruijn) index of the lowest set bit of a 32-bit mask: portable and branch-free.
_DEBRUIJN_32 = np.array(
    [0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
     31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9],
    dtype=np.int64,
)


@njit(cache=True, nogil=True)
def _decode_span(words, pos, state, out_cd, n_cd, out_trig, n_trig, width, height):
    """Decode ``words[pos:]`` after the first TIME_HIGH; mirrors OpenEB's ``decode_events_buffer``.

    Returns ``(pos, n_cd, n_trig)``. Stops early (before the word) when an output is nearly full; a
    group cut by the end of ``words`` is moved into the state and completed by the next call.
    """
    n = words.shape[0]
    cd_len = out_cd.shape[0]
    trig_len = out_trig.shape[0]
    loop = state[_S_LOOP]
    th = state[_S_TH]
    tl = state[_S_TL]
    y = state[_S_Y]
    valid = state[_S_VALID]
    base = state[_S_BASE]
    has_base = state[_S_HAS_BASE]
    dropped = state[_S_DROPPED]
    t_high = (loop << 24) + (th << 12)
    while pos < n:
        w = np.int64(words[pos])
        kind = w >> 12
        c = w & 0xFFF
        if kind == _ADDR_X:
            if valid:
                if n_cd + KERNEL_CD_HEADROOM > cd_len:
                    break
                ev = out_cd[n_cd]
                ev.x = c & 0x7FF
                ev.y = y
                ev.p = c >> 11
                ev.t = t_high + tl
                n_cd += 1
            pos += 1
        elif kind == _VECT_12:
            if pos + 3 > n:
                break  # group cut by the end of the input: handled after the loop
            if valid:
                if n_cd + KERNEL_CD_HEADROOM > cd_len:
                    break
                x0 = base & 0xF7FF
                if has_base and x0 + 32 <= width:
                    # The 2nd and 3rd words are read as VECT_12 and VECT_8 whatever their type (as OpenEB).
                    w1 = np.int64(words[pos + 1]) & 0xFFF
                    w2 = np.int64(words[pos + 2]) & 0xFF
                    mask = c | (w1 << 12) | (w2 << 24)
                    pol = (base >> 11) & 1
                    t = t_high + tl
                    while mask:
                        low = mask & -mask
                        mask ^= low
                        ev = out_cd[n_cd]
                        ev.x = x0 + _DEBRUIJN_32[((low * 0x077CB531) & 0xFFFFFFFF) >> 27]
                        ev.y = y
                        ev.p = pol
                        ev.t = t
                        n_cd += 1
                else:
                    has_base = 0
                    dropped += 1
                base = (base + 32) & 0xFFFFFFFF
            pos += 3
        elif kind == _TIME_HIGH:
            if th >= c + _TH_HALF_RANGE:
                loop += 1
            if c != th:
                tl = 0
            th = c
            t_high = (loop << 24) + (th << 12)
            pos += 1
        elif kind == _TIME_LOW:
            tl = c
            pos += 1
        elif kind == _ADDR_Y:
            y = c
            valid = 1 if c < height else 0
            pos += 1
        elif kind == _VECT_BASE_X:
            base = c
            has_base = 1
            pos += 1
        elif kind == _EXT_TRIGGER:
            if n_trig >= trig_len:
                break
            tr = out_trig[n_trig]
            tr.p = c & 1
            tr.id = c >> 8
            tr.t = t_high + tl
            n_trig += 1
            pos += 1
        elif kind == _OTHERS and (c == _OTHERS_CD_IN_COUNT or c == _OTHERS_CD_OUT_COUNT):
            if pos + 4 > n:
                break
            count = (
                (np.int64(words[pos + 1]) & 0xFFF)
                | ((np.int64(words[pos + 2]) & 0xFFF) << 12)
                | ((np.int64(words[pos + 3]) & 0xF) << 24)
            )
            state[_S_ERC_IN if c == _OTHERS_CD_IN_COUNT else _S_ERC_OUT] = count
            pos += 4
        else:
            if kind == 0x1:  # reserved: OpenEB stores it as a non-CD row address
                valid = 0
            # Lone VECT_8, CONTINUED, other OTHERS, IMU and reserved words carry no event.
            pos += 1
    if pos < n:
        kind = np.int64(words[pos]) >> 12
        c = np.int64(words[pos]) & 0xFFF
        need = 0
        if kind == _VECT_12:
            need = 3
        elif kind == _OTHERS and (c == _OTHERS_CD_IN_COUNT or c == _OTHERS_CD_OUT_COUNT):
            need = 4
        if pos + need > n:  # a group cut by the end of the input (not an output stop)
            state[_S_PEND_NEED] = need
            state[_S_PEND_N] = n - pos
            for k in range(n - pos):
                state[_S_PEND_W + k] = words[pos + k]
            pos = n
    state[_S_LOOP] = loop
    state[_S_TH] = th
    state[_S_TL] = tl
    state[_S_Y] = y
    state[_S_VALID] = valid
    state[_S_BASE] = base
    state[_S_HAS_BASE] = has_base
    state[_S_DROPPED] = dropped
    return pos, n_cd, n_trig


@njit(cache=True, nogil=True)
def _decode_kernel(words, pos, state, out_cd, out_trig, width, height):
    """The EventDecoder kernel: skip to the first TIME_HIGH, finish a pending group, decode the rest."""
    n = words.shape[0]
    if state[_S_STARTED] == 0:
        while pos < n and (words[pos] >> 12) != _TIME_HIGH:
            pos += 1
        if pos == n:
            return pos, 0, 0
        # OpenEB primes TIME_HIGH with v - 1 and then decodes this word: TL = 0, no wrap.
        v = np.int64(words[pos]) & 0xFFF
        state[_S_STARTED] = 1
        state[_S_FIRST_TH] = v
        state[_S_TH] = v
        pos += 1
    n_cd = 0
    n_trig = 0
    need = state[_S_PEND_NEED]
    if need:
        got = state[_S_PEND_N]
        while got < need and pos < n:
            state[_S_PEND_W + got] = words[pos]
            got += 1
            pos += 1
        state[_S_PEND_N] = got
        if got < need or out_cd.shape[0] < KERNEL_CD_HEADROOM or out_trig.shape[0] < 1:
            return pos, 0, 0
        group = np.empty(need, np.uint16)
        for k in range(need):
            group[k] = state[_S_PEND_W + k]
        state[_S_PEND_NEED] = 0
        state[_S_PEND_N] = 0
        _, n_cd, n_trig = _decode_span(group, 0, state, out_cd, 0, out_trig, 0, width, height)
    return _decode_span(words, pos, state, out_cd, n_cd, out_trig, n_trig, width, height)


class Evt3Decoder(EventDecoder):
    """Streaming EVT 3.0 decoder giving exactly OpenEB 5.1.1's events, in its order, with absolute times.

    ``dropped_vector_groups`` counts the vector groups OpenEB also drops (``InvalidVectBase``: the
    group would reach past the right edge, or no VECT_BASE_X came before it) so readers can warn.
    """

    format_name = "EVT3"
    word_dtype: ClassVar[np.dtype] = np.dtype("<u2")
    # Sensor streams average below one event per word; a dense vector triple yields up to 32 per 3 words.
    events_per_word_hint = 2.0
    _run = staticmethod(_decode_kernel)

    def _new_state(self) -> np.ndarray:
        state = np.zeros(_S_SIZE, np.int64)
        state[_S_FIRST_TH] = -1
        state[_S_ERC_IN] = state[_S_ERC_OUT] = -1
        return state

    @property
    def time_shift_us(self) -> int | None:
        """OpenEB's default shift for RAW: (v − 1) × 4096 µs for the first TIME_HIGH value v (0 if v = 0)."""
        if not self._state[_S_STARTED]:
            return None
        return max(int(self._state[_S_FIRST_TH]) - 1, 0) * 4096

    @property
    def current_time_us(self) -> int | None:
        if not self._state[_S_STARTED]:
            return None
        s = self._state
        return (int(s[_S_LOOP]) << 24) + (int(s[_S_TH]) << 12) + int(s[_S_TL])

    @property
    def group_pending(self) -> bool:
        return bool(self._state[_S_PEND_NEED])

    @property
    def dropped_vector_groups(self) -> int:
        """Vector groups dropped so far as OpenEB does (its ``InvalidVectBase`` warning)."""
        return int(self._state[_S_DROPPED])

    @property
    def last_erc_counts(self) -> tuple[int | None, int | None]:
        """Latest ERC monitoring counts (CD events in, CD events after ERC); None until one arrives."""
        cd_in, cd_out = int(self._state[_S_ERC_IN]), int(self._state[_S_ERC_OUT])
        return (cd_in if cd_in >= 0 else None, cd_out if cd_out >= 0 else None)


# -- encoder -------------------------------------------------------------------------------------
_E_STARTED = 0  # 1 once the first TIME_HIGH is written
_E_TH_INDEX = 1  # t >> 12 of the last TIME_HIGH written (its word holds the low 12 bits)
_E_TL = 2  # TIME_LOW value the decoder holds now
_E_Y = 3  # row of the last EVT_ADDR_Y written (-1: none)
_E_SIZE = 4

#: An EVT3 coordinate has 11 bits.
MAX_EVT3_DIMENSION = 2048
#: Above this many runs in one µs, a plain sort beats ordering the runs by insertion.
_MAX_MERGED_RUNS = 32
#: A vector chain costs 4 words for its first 32 columns: worth it from 5 distinct columns on.
_MIN_VECTOR_START = 5
#: Each further triple costs 3 words: worth continuing the chain from 3 columns on.
_MIN_VECTOR_CONTINUE = 3


@njit(cache=True, nogil=True, inline="always")
def _popcount32(v):
    """Number of set bits of a 32-bit value (SWAR; LLVM turns it into one instruction where it can)."""
    v = v - ((v >> 1) & 0x55555555)
    v = (v & 0x33333333) + ((v >> 2) & 0x33333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F
    return ((v * 0x01010101) & 0xFFFFFFFF) >> 24


@njit(cache=True, nogil=True, inline="always")
def _scan_window(keys, k, e, base):
    """Bit mask of the columns of ``keys[k:e]`` (one row, sorted by x) in ``[base, base + 32)``.

    Returns ``(mask, distinct, end)``; ``keys[k:end]`` are the events inside the window.
    """
    mask = np.int64(0)
    j = k
    while j < e:
        off = (keys[j] & 0x7FF) - base
        if off >= 32:
            break
        mask |= np.int64(1) << off
        j += 1
    return mask, _popcount32(mask), j


@njit(cache=True, nogil=True, inline="always")
def _write_triple(keys, k, end, mask, distinct, pbit, out, o):
    """VECT_12, VECT_12, VECT_8 for ``mask``, then one EVT_ADDR_X per duplicate event (a bit holds one)."""
    out[o] = (_VECT_12 << 12) | (mask & 0xFFF)
    out[o + 1] = (_VECT_12 << 12) | ((mask >> 12) & 0xFFF)
    out[o + 2] = (_VECT_8 << 12) | ((mask >> 24) & 0xFF)
    o += 3
    if end - k > distinct:
        for j in range(k + 1, end):
            if keys[j] == keys[j - 1]:
                out[o] = (_ADDR_X << 12) | pbit | (keys[j] & 0x7FF)
                o += 1
    return o


@njit(cache=True, nogil=True, inline="always")
def _encode_row(keys, k, e, pbit, out, o, width):
    """Encode one row and polarity (``keys[k:e]`` sorted by x) with vectors where they save words.

    A chain ``VECT_BASE_X`` + triples costs 4 words for its first 32 columns and 3 for each further
    32; single EVT_ADDR_X words cost 1 per event. A chain starts where its first window holds at
    least 5 distinct columns and goes on while the next window holds at least 3, so the result never
    takes more words than singles would. Bases stay at most ``width - 32`` (OpenEB drops a group
    reaching past the right edge), so a run at the edge is covered from ``width - 32``.
    """
    if e - k < _MIN_VECTOR_START or width < 32:
        for q in range(k, e):
            out[o] = (_ADDR_X << 12) | pbit | (keys[q] & 0x7FF)
            o += 1
        return o
    last = _MIN_VECTOR_START - 1
    while k < e:
        x0 = keys[k] & 0x7FF
        # Cheap pre-test (the keys of one row differ by x only): fewer than 5 events within 32 columns.
        if k + last >= e or keys[k + last] - keys[k] >= 32:
            out[o] = (_ADDR_X << 12) | pbit | x0
            o += 1
            k += 1
            continue
        base = min(x0, width - 32)
        mask, distinct, end = _scan_window(keys, k, e, base)
        if distinct < _MIN_VECTOR_START:  # duplicates among those events
            out[o] = (_ADDR_X << 12) | pbit | x0
            o += 1
            k += 1
            continue
        out[o] = (_VECT_BASE_X << 12) | pbit | base
        o = _write_triple(keys, k, end, mask, distinct, pbit, out, o + 1)
        k = end
        while k < e and base + 64 <= width:
            mask, distinct, end = _scan_window(keys, k, e, base + 32)
            if distinct < _MIN_VECTOR_CONTINUE:
                break
            base += 32
            o = _write_triple(keys, k, end, mask, distinct, pbit, out, o)
            k = end
    return o


@njit(cache=True, nogil=True)
def _order_runs(keys, m, runs, n_runs, spare, order):
    """Sort ``keys[:m]`` in place; they are ``n_runs`` x-ascending one-row runs starting at ``runs``.

    Runs are few (a row that comes back within one µs, or x stepping back), so ordering them by
    their first key and concatenating is enough and much faster than a sort; only runs of one row
    that interleave in x (or very many runs) need a full sort.
    """
    if n_runs > _MAX_MERGED_RUNS:
        keys[:m].sort()
        return
    runs[n_runs] = m
    for r in range(n_runs):  # insertion sort of the run indices by first key
        head = keys[runs[r]]
        q = r
        while q > 0 and keys[runs[order[q - 1]]] > head:
            order[q] = order[q - 1]
            q -= 1
        order[q] = r
    o = 0
    for r in range(n_runs):
        a = runs[order[r]]
        if o and keys[a] < spare[o - 1]:
            keys[:m].sort()  # runs of one row interleave
            return
        for q in range(a, runs[order[r] + 1]):
            spare[o] = keys[q]
            o += 1
    keys[:m] = spare[:m]


@njit(cache=True, nogil=True)
def _max_group(cd):
    """The largest number of CD events sharing one timestamp (``cd`` is time-sorted)."""
    best = 0
    a = 0
    for i in range(1, cd.shape[0] + 1):
        if i == cd.shape[0] or cd[i].t != cd[a].t:
            best = max(best, i - a)
            a = i
    return best


@njit(cache=True, nogil=True)
def _encode_kernel(cd, triggers, state, out, width):
    """Write the words of time-sorted ``cd`` and ``triggers`` into ``out``; returns the word count.

    Word budget (the caller sizes ``out`` with it): per CD event at most 2 (EVT_ADDR_Y + EVT_ADDR_X,
    vectors never cost more), per trigger 1, per distinct timestamp 1 TIME_LOW, plus one TIME_HIGH
    per 4096 µs step covered.

    Each µs's events are packed as keys ``y << 12 | p << 11 | x`` and cut into runs of one
    (y, p) with ascending x. When no (y, p) comes back in a later run of the same µs, as in
    sensor readout order, the runs are encoded in input order; otherwise they are sorted first.
    """
    n_cd = cd.shape[0]
    n_tr = triggers.shape[0]
    started = state[_E_STARTED]
    th_index = state[_E_TH_INDEX]
    tl = state[_E_TL]
    cur_y = state[_E_Y]
    cap = _max_group(cd)
    keys = np.empty(cap, np.int64)
    spare = np.empty(cap, np.int64)
    runs = np.empty(cap + 1, np.int64)
    order = np.empty(_MAX_MERGED_RUNS, np.int64)
    seen = np.full(2 * MAX_EVT3_DIMENSION, -1, np.int64)  # (y, p) -> last t it occurred at
    o = 0
    i = 0
    j = 0
    while i < n_cd or j < n_tr:
        if j >= n_tr or (i < n_cd and cd[i].t <= triggers[j].t):
            t = cd[i].t
        else:
            t = triggers[j].t
        # Time words: every TIME_HIGH value on the way (wraps and long gaps decode right), then TIME_LOW.
        index = t >> 12
        if not started:
            first = 0 if index >= 4096 else index  # beyond 2^24 µs: count the wraps from TIME_HIGH 0
            th_index = first - 1
            started = 1
        if index != th_index:
            for k in range(th_index + 1, index + 1):
                out[o] = (_TIME_HIGH << 12) | (k & 0xFFF)
                o += 1
            th_index = index
            tl = 0
        low = t & 0xFFF
        if low != tl:
            out[o] = (_TIME_LOW << 12) | low
            o += 1
            tl = low
        while j < n_tr and triggers[j].t == t:
            out[o] = (_EXT_TRIGGER << 12) | (triggers[j].id << 8) | triggers[j].p
            o += 1
            j += 1
        # This µs's CD events (at most ``cap``) as keys, cut into runs of one (y, p) and rising x.
        m = 0
        n_runs = 0
        needs_sort = False
        prev = np.int64(-1)
        while i < n_cd and cd[i].t == t:
            ev = cd[i]
            key = (np.int64(ev.y) << 12) | (np.int64(ev.p) << 11) | np.int64(ev.x)
            # Branch-free: run starts are unpredictable in sparse data.
            row = key >> 11
            new_run = (key < prev) | (row != (prev >> 11))
            needs_sort |= new_run & (seen[row] == t)
            seen[row] = t
            runs[n_runs] = m
            n_runs += new_run
            keys[m] = key
            prev = key
            m += 1
            i += 1
        if needs_sort:
            _order_runs(keys, m, runs, n_runs, spare, order)
            n_runs = 0  # cut the sorted keys into (y, p) runs anew
            for q in range(m):
                if q == 0 or (keys[q] >> 11) != (keys[q - 1] >> 11):
                    runs[n_runs] = q
                    n_runs += 1
        runs[n_runs] = m
        for r in range(n_runs):
            k = runs[r]
            y = keys[k] >> 12
            out[o] = (_ADDR_Y << 12) | y
            o += y != cur_y
            cur_y = y
            o = _encode_row(keys, k, runs[r + 1], keys[k] & _POLARITY_BIT, out, o, width)
    state[_E_STARTED] = started
    state[_E_TH_INDEX] = th_index
    state[_E_TL] = tl
    state[_E_Y] = cur_y
    return o


class Evt3Encoder(EventEncoder):
    """Streaming EVT 3.0 encoder whose output OpenEB 5.1.1 decodes to exactly the input events.

    State (time words and current row) carries over between ``encode()`` calls, so a stream may be
    written in any number of pieces. Events of one µs may come in any order: the events of each
    (row, polarity) are brought together and sorted by x, so the decoded order within a µs can
    differ from the input (the decoded multiset never does).

    Absolute time: the stream starts with the TIME_HIGH of the first timestamp; if that is at or
    beyond 2^24 µs (16.8 s), the stream starts at TIME_HIGH 0 and counts up through every value, so
    decoders rebuild the absolute time from the wraps. That costs 2 bytes per 4.096 ms of offset
    (about 0.5 MB per 17 min). Likewise every TIME_HIGH value is written across silent periods.
    """

    format_name = "EVT3"
    max_trigger_id = 15
    #: Most TIME_HIGH words one call may write across silence or a leading offset: 32 MiB, 19 hours. Beyond
    #: that the times are refused rather than encoded: a few corrupt timestamps (say, a decoded file with
    #: spurious EVT 2 wraps, hours apart) would otherwise cost gigabytes of output for a handful of events.
    max_time_high_words = 1 << 24

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        if not (0 < self.width <= MAX_EVT3_DIMENSION and 0 < self.height <= MAX_EVT3_DIMENSION):
            raise ValueError(
                f"EVT3 encoder: geometry {self.width}x{self.height} does not fit 11-bit coordinates "
                f"(at most {MAX_EVT3_DIMENSION}x{MAX_EVT3_DIMENSION})"
            )
        self._state = np.zeros(_E_SIZE, np.int64)
        self._state[_E_Y] = -1

    def _encode(self, cd: np.ndarray, triggers: np.ndarray) -> np.ndarray:
        n_cd, n_tr = cd.shape[0], triggers.shape[0]
        ends = [int(a["t"][-1]) for a in (cd, triggers) if a.shape[0]]
        last_index = max(ends) >> 12
        if self._state[_E_STARTED]:
            th_words = last_index - int(self._state[_E_TH_INDEX])
        else:
            first_index = min(int(a["t"][0]) for a in (cd, triggers) if a.shape[0]) >> 12
            th_words = last_index + 1 - (0 if first_index >= 4096 else first_index)
        if th_words > self.max_time_high_words:
            since = "the previous events" if self._state[_E_STARTED] else "t=0"
            raise ValueError(
                f"EVT3 encoder: events up to t={max(ends)} µs would need {th_words:,} TIME_HIGH words to cover "
                f"the time since {since} (at most {self.max_time_high_words:,}, about 19 hours, are written); "
                "the timestamps are probably corrupt"
            )
        out = np.empty(3 * n_cd + 2 * n_tr + th_words, np.uint16)  # the kernel's proven word budget
        n = _encode_kernel(cd, triggers, self._state, out, self.width)
        return out[:n].astype("<u2", copy=False)  # EVT3 is little-endian: a no-op on x86 and ARM
