"""ECF, Prophesee's event compression codec (HDF5 filter 36559), in numba.

Metavision tools read Prophesee HDF5 files only when ``/CD/events`` holds ECF chunks, and the ECF
plugin is on no package index, so focalrig encodes and decodes the blocks itself and moves them
with HDF5's direct-chunk calls (see :mod:`capture.formats.hdf5`). The block layout is restated in
docs/prophesee-formats.md §6.6; this module follows it and OpenEB's encoder choices exactly, so
OpenEB's chunks re-encode to the same bytes.

A block carries no checksum, so the decoder checks every length against the event count and the
buffer size: a damaged or truncated block raises :class:`ValueError`, where OpenEB's own decoder
would read or write out of bounds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from drivers.events.dtypes import EVENT_CD, as_events
from drivers.events.validate import check_cd

#: Most events one block can hold (OpenEB's codec buffer; its HDF5 writer uses 16 384 per chunk).
MAX_BLOCK_EVENTS = 65535
#: Header bit 0: after the y runs, x and p come packed in 12-bit groups (clear: masked x, then p runs).
FLAG_PACK_XP = 1
#: Header bit 1: y, x and p packed in 23-bit groups, no y runs (bit 0 is then ignored).
FLAG_PACK_YXP = 2
#: x and y are stored in 11 bits by every mode.
COORD_LIMIT = 2048

_HEADER_BYTES = 12  # u32 count/flags + u64 first timestamp
_INT64_MAX = np.iinfo(np.int64).max

# Decoder kernel status codes, turned into messages by ``_DECODE_ERRORS``.
_OK = 0
_TRUNCATED = 1
_DELTA_TOO_LONG = 2
_TIME_OVERFLOW = 3
_TOO_MANY = 4
_TRAILING = 5
_SECTION_NAMES = (
    "timestamps", "packed y/x/p words", "y runs", "packed x/p words", "masked x words", "p runs"
)
_DECODE_ERRORS = {
    _TRUNCATED: "{section} run past the end of the {size}-byte block (at byte {pos})",
    _DELTA_TOO_LONG: "a timestamp delta at byte {pos} has more than 64 bits",
    _TIME_OVERFLOW: "timestamps at byte {pos} overflow the signed 64-bit range",
    _TOO_MANY: "{section} at byte {pos} describe more events than the block's {n}",
    _TRAILING: "{extra} unused byte(s) after the last section (block is {size} bytes, events end at {pos})",
}

# -- little-endian access at any byte offset (ECF sections are not aligned) --------------------------
@njit(cache=True, inline="always")
def _u16(buf, pos):
    return np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)


@njit(cache=True, inline="always")
def _u32(buf, pos):
    return _u16(buf, pos) | (_u16(buf, pos + 2) << 16)


@njit(cache=True, inline="always")
def _put_u16(out, pos, v):
    out[pos] = v & 0xFF
    out[pos + 1] = (v >> 8) & 0xFF


@njit(cache=True, inline="always")
def _put_u32(out, pos, v):
    _put_u16(out, pos, v & 0xFFFF)
    _put_u16(out, pos + 2, (v >> 16) & 0xFFFF)


# -- ECF's "four values in three words" packing (y/x/p in u32 words, x/p in u16 words) ----------------
# With s = 8 (23-bit y|x|p values in u32 words) or s = 4 (12-bit x|p values in u16 words), four
# 3s-bit values v0..v3 become the 4s-bit words w0 = v0 << s | v1[s], w1 = v1 >> s << 2s | v2[2s],
# w2 = v2 >> 2s << 3s | v3[3s], where v[k] keeps the low k bits.
@njit(cache=True, inline="always")
def _read_word(buf, pos, s):
    return _u32(buf, pos) if s == 8 else _u16(buf, pos)


@njit(cache=True, inline="always")
def _write_word(out, pos, s, v):
    if s == 8:
        _put_u32(out, pos, v)
    else:
        _put_u16(out, pos, v)


@njit(cache=True, inline="always")
def _unpack_quad(w0, w1, w2, j, s):
    """Value ``j`` (0..3) of a packed group."""
    if j == 0:
        return w0 >> s
    if j == 1:
        return (w0 & ((1 << s) - 1)) | ((w1 >> (2 * s)) << s)
    if j == 2:
        return (w1 & ((1 << (2 * s)) - 1)) | ((w2 >> (3 * s)) << (2 * s))
    return w2 & ((1 << (3 * s)) - 1)


@njit(cache=True, inline="always")
def _write_quad(out, pos, s, v0, v1, v2, v3):
    """Pack four values and write the three words at ``pos``; returns the position after them."""
    word_mask = (1 << (4 * s)) - 1
    step = s // 2  # bytes per word
    _write_word(out, pos, s, ((v0 << s) | (v1 & ((1 << s) - 1))) & word_mask)
    _write_word(out, pos + step, s, (((v1 >> s) << (2 * s)) | (v2 & ((1 << (2 * s)) - 1))) & word_mask)
    _write_word(out, pos + 2 * step, s, (((v2 >> (2 * s)) << (3 * s)) | (v3 & ((1 << (3 * s)) - 1))) & word_mask)
    return pos + 3 * step


@njit(cache=True)
def _unpack_groups(buf, pos, n, s, w16):
    """Unpack ``ceil(n / 4)`` groups at ``pos`` into the x/p (and, for s = 8, y) fields of ``w16``."""
    step = s // 2
    for g in range((n + 3) // 4):
        b = pos + 3 * step * g
        a0 = _read_word(buf, b, s)
        a1 = _read_word(buf, b + step, s)
        a2 = _read_word(buf, b + 2 * step, s)
        for j in range(min(4, n - 4 * g)):
            val = _unpack_quad(a0, a1, a2, j, s)
            e = 8 * (4 * g + j)
            w16[e] = (val >> 1) & 0x7FF
            w16[e + 2] = val & 1
            if s == 8:
                w16[e + 1] = (val >> 12) & 0x7FF
    return pos + 3 * step * ((n + 3) // 4)


# -- decoding ----------------------------------------------------------------------------------------
@njit(cache=True)
def _decode_runs(buf, pos, n, word_bytes, count_bits, field, w16):
    """Run-length section shared by y runs and p runs: words ``value << count_bits | c`` (u16 or u8), where
    the all-ones count means the count follows as a u16; each run sets u16 ``field`` of the next c events.

    Returns ``(status, pos)``: the position after the section, or where the damage was found.
    """
    size = buf.shape[0]
    escape = (1 << count_bits) - 1
    i = 0
    while i < n:
        if pos + word_bytes > size:
            return _TRUNCATED, pos
        v = _u16(buf, pos) if word_bytes == 2 else np.int64(buf[pos])
        pos += word_bytes
        c = v & escape
        if c == escape:
            if pos + 2 > size:
                return _TRUNCATED, pos
            c = _u16(buf, pos)
            pos += 2
        if c > n - i:
            return _TOO_MANY, pos - word_bytes
        value = v >> count_bits
        for k in range(i, i + c):
            w16[8 * k + field] = value
        i += c
    return _OK, pos


@njit(cache=True)
def _decode_kernel(buf, n, pack_yxp, pack_xp, w16, w64):
    """Decode the sections after the 4-byte header into the u16/i64 views of an EventCD array.

    Returns ``(status, section, pos)``: ``pos`` is where decoding stopped (the block's used length
    on success). Every read is bounds-checked, so any byte string is safe to pass.
    """
    size = buf.shape[0]
    if buf[11] >= 0x80:
        return _TIME_OVERFLOW, 0, 4
    cur = np.int64(0)
    for k in range(8):
        cur |= np.int64(buf[4 + k]) << (8 * k)
    pos = _HEADER_BYTES

    # Timestamps: escape bytes (high nibble 0xF) accumulate a delta, normal bytes add d and give c events.
    i = 0
    while i < n:
        if pos >= size:
            return _TRUNCATED, 0, pos
        v = np.int64(buf[pos])
        pos += 1
        if v >> 4 == 15:
            dt = np.int64(0)
            shift = 0
            while v >> 4 == 15:
                nibble = v & 15
                if shift > 60 or (shift == 60 and nibble >= 8):
                    return _DELTA_TOO_LONG, 0, pos - 1
                dt |= nibble << shift
                shift += 4
                if pos >= size:
                    return _TRUNCATED, 0, pos
                v = np.int64(buf[pos])
                pos += 1
            if dt > _INT64_MAX - cur:
                return _TIME_OVERFLOW, 0, pos - 1
            cur += dt
        d = v >> 4
        if d > _INT64_MAX - cur:
            return _TIME_OVERFLOW, 0, pos - 1
        cur += d
        c = v & 15
        if c == 15:
            if pos + 2 > size:
                return _TRUNCATED, 0, pos
            c = _u16(buf, pos)
            pos += 2
        if c > n - i:
            return _TOO_MANY, 0, pos - 1
        for k in range(i, i + c):
            w64[2 * k + 1] = cur
            w16[8 * k + 3] = 0  # padding: outputs may be uninitialised buffers
        i += c

    if pack_yxp:
        if size - pos < 12 * ((n + 3) // 4):
            return _TRUNCATED, 1, size
        return _OK, 0, _unpack_groups(buf, pos, n, 8, w16)

    # y runs: u16 (y << 5 | c), c == 31 means the count follows as a u16.
    status, pos = _decode_runs(buf, pos, n, 2, 5, 1, w16)
    if status != _OK:
        return status, 2, pos

    if pack_xp:
        if size - pos < 6 * ((n + 3) // 4):
            return _TRUNCATED, 3, size
        return _OK, 0, _unpack_groups(buf, pos, n, 4, w16)

    # Masked x: u16 (x << 5 | m); bit 4 - j of m adds an event at x + j + 1. OpenEB's encoder may
    # set bits past the block's end (it compares with stale buffer entries); those are ignored.
    i = 0
    while i < n:
        if pos + 2 > size:
            return _TRUNCATED, 4, pos
        v = _u16(buf, pos)
        pos += 2
        x = v >> 5
        w16[8 * i] = x
        i += 1
        for j in range(5):
            if (v >> (4 - j)) & 1:
                if i < n:
                    w16[8 * i] = x + j + 1
                i += 1
    # p runs: u8 (p << 7 | c), c == 127 means the count follows as a u16.
    status, pos = _decode_runs(buf, pos, n, 1, 7, 2, w16)
    return status, (0 if status == _OK else 5), pos


def ecf_block_length(block: bytes | np.ndarray) -> int:
    """Number of events an ECF block's header declares (not validated: decode to check the block)."""
    buf = _as_bytes_array(block)
    return int(buf[:4].view("<u4")[0]) >> 2 if buf.shape[0] >= 4 else 0


def decode_ecf_block(block: bytes | np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Decode one ECF block (one HDF5 chunk) into an EVENT_CD array.

    ``out``, a contiguous EVENT_CD array of at least the block's length, receives the events
    instead of a new array, so a reader can assemble large pieces without copying; the returned
    array is then its first n events.

    Raises ValueError naming the problem when the block is inconsistent: an event count outside
    1..65535, a section running past the end, counts adding up to more events than declared, or
    bytes left over after the last section.
    """
    buf = _as_bytes_array(block)
    size = buf.shape[0]
    if size < _HEADER_BYTES:
        raise ValueError(f"ECF block of {size} bytes is shorter than its {_HEADER_BYTES}-byte header")
    header = int(buf[:4].view("<u4")[0])
    n = header >> 2
    if not 1 <= n <= MAX_BLOCK_EVENTS:
        raise ValueError(
            f"ECF block header declares {n} events (must be 1..{MAX_BLOCK_EVENTS}): not an ECF block"
        )
    if out is None:
        out = np.empty(n, EVENT_CD)
    elif out.dtype != EVENT_CD or not out.flags.c_contiguous or out.shape[0] < n:
        raise ValueError(f"output for {n} events must be a contiguous EVENT_CD array at least that long")
    out = out[:n]
    pack_yxp, pack_xp = bool(header & FLAG_PACK_YXP), bool(header & FLAG_PACK_XP)
    status, section, pos = _decode_kernel(buf, n, pack_yxp, pack_xp, out.view(np.uint16), out.view(np.int64))
    if status == _OK and pos != size:
        status = _TRAILING
    if status != _OK:
        raise ValueError(
            "corrupt ECF block: "
            + _DECODE_ERRORS[status].format(
                section=_SECTION_NAMES[section], size=size, pos=pos, n=n, extra=size - pos
            )
        )
    return out


# -- encoding ----------------------------------------------------------------------------------------
@njit(cache=True)
def _choose_mode(xs, ys, n):
    """OpenEB's size heuristic on the first quarter of the block (all of it below 16 events).

    Many repeats of the current row favour y runs; among those, many short increasing x steps
    favour masked x. The thresholds and the float rounding are OpenEB's, so the same mode (and thus
    the same bytes) comes out.
    """
    m = n if n < 16 else int(0.25 * n + 0.5)
    threshold = int(m * 20.0 / 100 + 0.5)
    count = 0
    prev_y = ys[0]
    same_rows = False
    for i in range(1, m):
        if ys[i] == prev_y:
            count += 1
            if count > threshold:
                same_rows = True
                break
        else:
            prev_y = ys[i]
    if not same_rows:
        return FLAG_PACK_YXP
    threshold = int(m * 8.0 / 100 + 0.5)
    count = 0
    run_x = xs[0]
    prev_x = xs[0]
    for i in range(1, m):
        if xs[i] > prev_x and xs[i] <= run_x + 5:
            count += 1
            if count > threshold:
                return 0
        else:
            run_x = xs[i]
        prev_x = xs[i]
    return FLAG_PACK_XP


@njit(cache=True)
def _encode_kernel(xs, ys, ps, ts, n, out):
    """Encode ``n`` validated events into ``out``; returns the block length.

    ``xs``/``ys``/``ps`` carry 5 extra entries past ``n``: OpenEB reuses one encoder buffer, so the
    padding of the last packed group (and, rarely, a masked-x comparison) sees what lies there.
    """
    mode = _choose_mode(xs, ys, n)
    _put_u32(out, 0, (n << 2) | mode)
    t0 = ts[0]
    for k in range(8):
        out[4 + k] = (t0 >> (8 * k)) & 0xFF
    pos = _HEADER_BYTES

    # Timestamps: a jump of 15 µs or more goes out as escape nibbles, then each run of equal times
    # is one byte (d << 4 | c), or (d << 4 | 15) + u16 count for 15 events or more.
    cur = t0
    i = 0
    while i < n:
        t = ts[i]
        if t - cur >= 15:
            dt = t - cur
            while dt > 0:
                out[pos] = 0xF0 | (dt & 15)
                pos += 1
                dt >>= 4
            cur = t
        d = t - cur
        cur = t
        c = 1
        while c < n - i and ts[i + c] == cur:
            c += 1
        if c >= 15:
            out[pos] = (d << 4) | 15
            _put_u16(out, pos + 1, c)
            pos += 3
        else:
            out[pos] = (d << 4) | c
            pos += 1
        i += c

    if mode == FLAG_PACK_YXP:
        for b in range(0, n, 4):
            pos = _write_quad(out, pos, 8, (ys[b] << 12) | (xs[b] << 1) | ps[b],
                              (ys[b + 1] << 12) | (xs[b + 1] << 1) | ps[b + 1],
                              (ys[b + 2] << 12) | (xs[b + 2] << 1) | ps[b + 2],
                              (ys[b + 3] << 12) | (xs[b + 3] << 1) | ps[b + 3])
        return pos

    i = 0
    while i < n:
        y = ys[i]
        c = 1
        while c < n - i and ys[i + c] == y:
            c += 1
        if c >= 31:
            _put_u16(out, pos, (y << 5) | 31)
            _put_u16(out, pos + 2, c)
            pos += 4
        else:
            _put_u16(out, pos, (y << 5) | c)
            pos += 2
        i += c

    if mode == FLAG_PACK_XP:
        for b in range(0, n, 4):
            pos = _write_quad(out, pos, 4, (xs[b] << 1) | ps[b], (xs[b + 1] << 1) | ps[b + 1],
                              (xs[b + 2] << 1) | ps[b + 2], (xs[b + 3] << 1) | ps[b + 3])
        return pos

    i = 0
    while i < n:
        x = xs[i]
        i += 1
        word = x << 5
        for j in range(5):
            if xs[i] == x + j + 1:  # i <= n + 4: the extra entries, as OpenEB compares with its stale buffer
                word |= 1 << (4 - j)
                i += 1
        _put_u16(out, pos, word)
        pos += 2
    i = 0
    while i < n:
        p = ps[i]
        c = 1
        while c < n - i and ps[i + c] == p:
            c += 1
        if c >= 127:
            out[pos] = (p << 7) | 127
            _put_u16(out, pos + 1, c)
            pos += 3
        else:
            out[pos] = (p << 7) | c
            pos += 1
        i += c
    return pos


def check_ecf_events(cd: np.ndarray) -> None:
    """Raise ValueError unless the EVENT_CD array ``cd`` can be ECF-encoded: x and y below 2048,
    p in {0, 1}, times non-negative and non-decreasing. Cheap (one pass), so writers check a whole
    batch before storing any of it."""
    cd = as_events(cd, EVENT_CD)
    check_cd(cd, width=COORD_LIMIT, height=COORD_LIMIT, who="cannot ECF-encode (11-bit coordinates)")


def encode_ecf_block(cd: np.ndarray, stale: np.ndarray | None = None, *, validate: bool = True) -> bytes:
    """Encode 1..65535 time-sorted EVENT_CD events as one ECF block, choosing the mode as OpenEB does.

    ``stale`` reproduces OpenEB's reused encoder buffer for byte-exact output: pass the events that
    OpenEB's encoder held at positions ``n .. n+4`` from the previous block (its writer encodes every
    chunk with one encoder). They only fill the ignored padding of the last packed group, and very
    rarely a masked-x bit past the end that decoders ignore; without them the padding is zero, as
    for the first block OpenEB writes.

    ``validate=False`` skips :func:`check_ecf_events`, for writers that already checked the events
    (invalid events then give a wrong block, never a crash).
    """
    cd = as_events(cd, EVENT_CD)
    n = cd.shape[0]
    if not 1 <= n <= MAX_BLOCK_EVENTS:
        raise ValueError(f"an ECF block holds 1..{MAX_BLOCK_EVENTS} events, got {n}")
    if validate:
        check_ecf_events(cd)
    w16 = cd.view(np.uint16)
    w64 = cd.view(np.int64)
    xs = np.zeros(n + 5, np.int64)
    ys = np.zeros(n + 5, np.int64)
    ps = np.zeros(n + 5, np.int64)
    xs[:n], ys[:n], ps[:n] = w16[0::8], w16[1::8], w16[2::8]
    if stale is not None:
        tail = as_events(stale, EVENT_CD)[:5]
        k = tail.shape[0]
        xs[n : n + k] = tail["x"] & 0x7FF
        ys[n : n + k] = tail["y"] & 0x7FF
        ps[n : n + k] = tail["p"] & 1
    # Worst case: 16 escape + 3 bytes per timestamp, then y runs (4/ev) + masked x (2/ev) + p runs (3/ev).
    out = np.empty(_HEADER_BYTES + 28 * n + 16, np.uint8)
    size = _encode_kernel(xs, ys, ps, w64[1::2], n, out)
    return out[:size].tobytes()


def _as_bytes_array(block: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(block, np.ndarray):
        return np.ascontiguousarray(block).reshape(-1).view(np.uint8)
    return np.frombuffer(block, dtype=np.uint8)
