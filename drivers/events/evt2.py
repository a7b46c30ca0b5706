"""EVT 2.0: Prophesee's 32-bit-word RAW encoding, decoded and encoded exactly as OpenEB 5.1.1 does.

Every word is ``[31:28]`` type plus payload (``docs/prophesee-formats.md`` §3). Time is rebuilt as
``TIME_HIGH·64 + lsb6``, 34 bits that wrap every 2^34 µs (≈ 4.77 h), so a decoder carries a loop
offset. The time helpers below are shared with EVT 2.1, whose time words work the same way.

Decoder departures from OpenEB, all invisible on well-formed streams:

* OpenEB looks for a time wrap once per read buffer (comparing the buffer's last TIME_HIGH with the
  time base at the buffer's start) and only then applies the wrap rule word by word. focalrig applies
  the rule to every TIME_HIGH, because its results must not depend on how a file happens to be cut
  into blocks. The two agree when OpenEB's buffer holding the wrap ends within 10 ms after it; a
  longer buffer, or a stream that starts past a wrap, OpenEB decodes modulo 2^34 µs, whatever the
  encoder wrote (measured with OpenEB 5.1.1, ``tests/test_openeb_files.py``). Only streams reaching
  4.77 h of camera time are concerned.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numba import njit

from drivers.events.codec import EventDecoder, EventEncoder

#: Word types (``[31:28]``).
TYPE_CD_OFF = 0x0
TYPE_CD_ON = 0x1
TYPE_TIME_HIGH = 0x8
TYPE_EXT_TRIGGER = 0xA
TYPE_IMU = 0xD
TYPE_OTHERS = 0xE
TYPE_CONTINUED = 0xF

#: TIME_HIGH carries t >> 6 in 28 bits.
TIME_HIGH_BITS = 28
TIME_HIGH_MASK = (1 << TIME_HIGH_BITS) - 1
#: Period of the 34-bit timestamp: OpenEB adds this on every wrap.
TIME_LOOP_US = 1 << 34
#: OpenEB's MaxTimestamp: the largest time base a TIME_HIGH can express.
MAX_TIMESTAMP_US = TIME_HIGH_MASK << 6
#: A TIME_HIGH this far (or further) below the current base is a wrap, not jitter (OpenEB's rule).
WRAP_THRESHOLD_US = MAX_TIMESTAMP_US - 10_000

# Decoder state vector (int64), shared by EVT 2.0 and EVT 2.1.
S_STARTED = 0  # 1 once the first TIME_HIGH has been seen (words before it are skipped)
S_BASE = 1  # current time base in µs: TIME_HIGH·64 + loops
S_LOOPS = 2  # multiple of 2^34 added by the wraps seen so far
S_SHIFT = 3  # first TIME_HIGH·64: what OpenEB subtracts with time shifting on
STATE_SIZE = 4


def new_time_state() -> np.ndarray:
    """A fresh decoder state vector (see the ``S_*`` indices)."""
    return np.zeros(STATE_SIZE, np.int64)


@njit(cache=True, inline="always")
def next_time_base(time_high: np.int64, base: np.int64, loops: np.int64) -> tuple[np.int64, np.int64]:
    """Time base after a TIME_HIGH word with payload ``time_high``; returns ``(base, loops)``.

    A TIME_HIGH below the current base by at least ``WRAP_THRESHOLD_US`` means the 34-bit clock
    wrapped (OpenEB's rule); a smaller step back is taken at face value, as OpenEB does.
    """
    new_base = (time_high << 6) + loops
    if base - new_base >= WRAP_THRESHOLD_US:
        loops += TIME_LOOP_US
        new_base += TIME_LOOP_US
    return new_base, loops


@njit(cache=True, inline="always")
def put_trigger(out_trig: np.ndarray, k: int, word: np.int64, base: np.int64) -> None:
    """Write the trigger of an EVT2-shaped 32-bit ``word``: t lsb ``[27:22]``, id ``[12:8]``, edge ``[0]``."""
    e = out_trig[k]
    e.p = word & 1
    e.id = (word >> 8) & 0x1F
    e.t = base + ((word >> 22) & 0x3F)


@njit(cache=True)
def _evt2_run(words, pos, state, out_cd, out_trig, width, height):
    """EVT 2.0 kernel (contract in :class:`drivers.events.codec.EventDecoder`).

    Every word is decoded on its own, so the kernel may stop before any word; it stops only when
    an output is full. Geometry is not checked, as in OpenEB, so ``width``/``height`` are unused.
    """
    n = words.shape[0]
    cap_cd = out_cd.shape[0]
    cap_trig = out_trig.shape[0]
    n_cd = 0
    n_trig = 0
    i = pos
    if state[S_STARTED] == 0:
        while i < n:
            w = np.int64(words[i])
            i += 1
            if (w >> 28) == TYPE_TIME_HIGH:
                state[S_STARTED] = 1
                state[S_BASE] = (w & TIME_HIGH_MASK) << 6
                state[S_SHIFT] = state[S_BASE]
                break
    base = state[S_BASE]
    loops = state[S_LOOPS]
    while i < n:
        w = np.int64(words[i])
        kind = w >> 28
        if kind <= TYPE_CD_ON:
            if n_cd >= cap_cd:
                break
            e = out_cd[n_cd]
            e.x = (w >> 11) & 0x7FF
            e.y = w & 0x7FF
            e.p = kind
            e.t = base + ((w >> 22) & 0x3F)
            n_cd += 1
        elif kind == TYPE_TIME_HIGH:
            base, loops = next_time_base(w & TIME_HIGH_MASK, base, loops)
        elif kind == TYPE_EXT_TRIGGER:
            if n_trig >= cap_trig:
                break
            put_trigger(out_trig, n_trig, w, base)
            n_trig += 1
        # OTHERS, CONTINUED, IMU and unknown types carry no CD or trigger event: skipped like OpenEB.
        i += 1
    state[S_BASE] = base
    state[S_LOOPS] = loops
    return i, n_cd, n_trig


class TimeHighDecoder(EventDecoder):
    """Properties common to the formats with EVT2-style 34-bit time (EVT 2.0 and EVT 2.1)."""

    def _new_state(self) -> np.ndarray:
        return new_time_state()

    @property
    def time_shift_us(self) -> int | None:
        return int(self._state[S_SHIFT]) if self._state[S_STARTED] else None

    @property
    def current_time_us(self) -> int | None:
        return int(self._state[S_BASE]) if self._state[S_STARTED] else None

    @property
    def group_pending(self) -> bool:
        """Always False: every word (EVT 2.1: every 64-bit word) is complete on its own."""
        return False


class Evt2Decoder(TimeHighDecoder):
    """Streaming EVT 2.0 decoder reproducing OpenEB 5.1.1 (absolute times; see the module notes).

    Words before the first TIME_HIGH are skipped; CD and EXT_TRIGGER words are decoded; OTHERS,
    CONTINUED, IMU and unknown words are skipped; x/y are not checked against the geometry.
    """

    format_name: ClassVar[str] = "EVT2"
    word_dtype: ClassVar[np.dtype] = np.dtype("<u4")
    events_per_word_hint: ClassVar[float] = 1.0
    _run = staticmethod(_evt2_run)


@njit(cache=True)
def _emit_time_high(out: np.ndarray, k: int, last_th: np.int64, th: np.int64) -> tuple[int, np.int64]:
    """Append the TIME_HIGH words that move the stream from ``last_th`` to ``th`` (both absolute t >> 6).

    ``last_th`` is -1 before the first TIME_HIGH. Between two epochs of 2^34 µs the words
    ``0x0FFFFFFF`` (unless just written) then ``0`` are written per boundary: the drop from the
    maximum to 0 is what makes OpenEB count a wrap. A stream whose first event lies beyond 2^34 µs
    starts with TIME_HIGH 0, since a decoder's first TIME_HIGH always starts at loop 0.
    Returns ``(k, last_th)``; writes at most ``1 + 2·(boundaries crossed) + 1`` words.
    """
    tag = np.int64(TYPE_TIME_HIGH) << 28
    if last_th < 0:
        last_th = th if th <= TIME_HIGH_MASK else np.int64(0)
        out[k] = tag | last_th
        k += 1
    while (last_th >> TIME_HIGH_BITS) < (th >> TIME_HIGH_BITS):
        if (last_th & TIME_HIGH_MASK) != TIME_HIGH_MASK:
            out[k] = tag | TIME_HIGH_MASK
            k += 1
        out[k] = tag
        k += 1
        last_th = ((last_th >> TIME_HIGH_BITS) + 1) << TIME_HIGH_BITS
    if th != last_th:
        out[k] = tag | (th & TIME_HIGH_MASK)
        k += 1
        last_th = th
    return k, last_th


@njit(cache=True)
def _evt2_encode(cd, trig, cd_before_trig, last_th, out):
    """Merge CD and triggers by time into EVT 2.0 words; returns ``(n_words, last_th)``.

    ``cd_before_trig[j]`` is the number of CD events not later than trigger j, so the CD events
    between two triggers are written by a counted loop with unsigned indices, which runs ~2.5x
    faster than a loop testing every event against the next trigger's time. At equal times CD
    events go first (any order decodes the same: the two kinds come back in separate arrays).
    Each event costs one word plus at most one TIME_HIGH for a change of t >> 6; the other
    TIME_HIGHs (the first one, wrap boundaries) are bounded in :meth:`Evt2Encoder._encode`.
    """
    n_trig = trig.shape[0]
    i = 0
    k = 0
    trig_tag = np.int64(TYPE_EXT_TRIGGER) << 28
    for j in range(n_trig + 1):
        end = cd_before_trig[j] if j < n_trig else cd.shape[0]
        for m in range(i, end):
            # Unsigned indices spare numba's negative-index wraparound test (~2x faster loop).
            e = cd[np.uint64(m)]
            t = np.int64(e.t)
            th = t >> 6
            if th != last_th:
                k, last_th = _emit_time_high(out, k, last_th, th)
            word = (np.int64(e.p) << 28) | ((t & 0x3F) << 22) | (np.int64(e.x) << 11) | np.int64(e.y)
            out[np.uint64(k)] = word
            k += 1
        i = end
        if j < n_trig:
            g = trig[j]
            t = np.int64(g.t)
            th = t >> 6
            if th != last_th:
                k, last_th = _emit_time_high(out, k, last_th, th)
            out[k] = trig_tag | ((t & 0x3F) << 22) | (np.int64(g.id) << 8) | np.int64(g.p)
            k += 1
    return k, last_th


class Evt2Encoder(EventEncoder):
    """Streaming EVT 2.0 encoder whose output OpenEB 5.1.1 decodes back to the input exactly.

    Follows the writer rules of §3: a TIME_HIGH before the first event and whenever t >> 6
    changes, each CD/trigger word with its own 6 time LSBs, and explicit wrap words at every
    multiple of 2^34 µs so that long gaps and multi-hour recordings keep their absolute times.
    """

    format_name: ClassVar[str] = "EVT2"
    max_trigger_id: ClassVar[int] = 31
    #: Largest accepted timestamp (exclusive): ~35.7 years. Each 2^34 µs crossed costs two words,
    #: so this bounds the output of one call even for absurd time gaps.
    max_time_us: ClassVar[int] = 1 << 50

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        if not (0 < self.width <= 2048 and 0 < self.height <= 2048):
            raise ValueError(
                f"EVT2 encoder: x and y have 11 bits, so a {self.width}x{self.height} sensor does not fit"
            )
        self._last_th = -1  # absolute t >> 6 of the last TIME_HIGH written, -1 before the first

    def _validate(self, cd: np.ndarray, triggers: np.ndarray) -> None:
        super()._validate(cd, triggers)
        for label, arr in (("CD events", cd), ("trigger events", triggers)):
            if arr.shape[0] and int(arr["t"][-1]) >= self.max_time_us:
                raise ValueError(
                    f"EVT2 encoder: {label} reach t={int(arr['t'][-1])} µs, beyond the supported "
                    f"{self.max_time_us} µs"
                )

    def _encode(self, cd: np.ndarray, triggers: np.ndarray) -> np.ndarray:
        t_end = max(int(arr["t"][-1]) for arr in (cd, triggers) if arr.shape[0])
        # Size bound: one word per event, one TIME_HIGH per event at most for a change of t >> 6,
        # at most one leading TIME_HIGH 0, and two words per 2^34 µs boundary crossed.
        epochs = (t_end >> 34) - (max(self._last_th, 0) >> TIME_HIGH_BITS)
        n = cd.shape[0] + triggers.shape[0]
        out = np.empty(2 * n + 2 * epochs + 1, np.uint32)
        cd_before_trig = np.searchsorted(cd["t"], triggers["t"], side="right")
        k, self._last_th = _evt2_encode(cd, triggers, cd_before_trig, np.int64(self._last_th), out)
        return out[:k]
