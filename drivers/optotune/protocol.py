"""The Optotune Lens Driver 4 / 4i wire protocol as pure functions: CRC, framing, command codecs.

Nothing here does I/O, so the driver and tests share one definition of every byte, and the
simulator can take the CRC and the documented request lengths from here without borrowing the
driver's reply parsing. Layouts follow docs/hardware-protocols.md §2: ASCII command letters, a
big-endian binary payload, then CRC-16/ARC appended low byte first. A reply is its payload, the
CRC of that payload (low byte first) and ``\\r\\n``. Replies must be read by their expected length:
payloads and CRC bytes can contain 0x0D/0x0A, so reading up to a line end is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

BAUDRATE = 115200
#: The handshake is sent without CRC or terminator; the answer carries no CRC either.
HANDSHAKE = b"Start"
HANDSHAKE_REPLY = b"Ready\r\n"
#: The device's answer to a frame whose CRC does not match (sent unsolicited, even for silent commands).
NACK = b"N\r\n"
TERMINATOR = b"\r\n"
#: Full-scale value of the 12-bit current and generator-swing encodings (±4095 = ±Imax).
CURRENT_FULL_SCALE = 4095
#: Focal-power encoding resolution: 200 steps per dioptre.
FP_STEPS_PER_DPT = 200
#: Temperatures travel as °C × 16 (0.0625 °C resolution).
TEMP_STEPS_PER_C = 16

#: Mode numbers reported by ``MMA`` and the letter that selects each in ``Mw?A``.
MODE_CURRENT, MODE_SINE, MODE_TRIANGLE, MODE_RECTANGLE, MODE_FOCAL_POWER, MODE_ANALOG = 1, 2, 3, 4, 5, 6
MODE_LETTERS = {MODE_CURRENT: b"D", MODE_SINE: b"S", MODE_TRIANGLE: b"T", MODE_RECTANGLE: b"Q",
                MODE_FOCAL_POWER: b"C"}

#: Length before the CRC of every request the driver sends and the simulator understands, keyed by the
#: prefix that identifies it. ``V`` appears in two lengths because public drivers disagree (§2.3).
REQUEST_LENGTHS: dict[bytes, tuple[int, ...]] = {
    b"H": (1,), b"F": (1,), b"J": (1,), b"X": (1,), b"V": (1, 2), b"IR": (10,),
    b"CrMA": (6,), b"CrUA": (6,), b"CrLA": (6,), b"CwUA": (6,), b"CwLA": (6,),
    b"Ar": (4,), b"Aw": (4,), b"MMA": (3,), b"TCA": (3,),
    b"MwDA": (4,), b"MwSA": (4,), b"MwTA": (4,), b"MwQA": (4,), b"MwCA": (4,),
    b"PwUA": (8,), b"PwLA": (8,), b"PwFA": (8,), b"PwTA": (8,), b"PwDA": (8,), b"PrDA": (8,),
}


class ProtocolError(ValueError):
    """A reply that is not what the request calls for (wrong length, CRC, terminator or echo)."""


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0, no final XOR); ``crc16_arc(b"123456789") == 0xBB3D``."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(command: bytes) -> bytes:
    """A request as sent: the command followed by its CRC, low byte first."""
    return command + crc16_arc(command).to_bytes(2, "little")


def frame_ok(framed: bytes) -> bool:
    """True when ``framed`` ends in the CRC of what precedes it (the CRC over message + CRC is zero)."""
    return len(framed) >= 3 and crc16_arc(framed) == 0


def reply_frame(payload: bytes) -> bytes:
    """A reply as the device sends it: payload, CRC of the payload (low byte first), ``\\r\\n``."""
    return frame(payload) + TERMINATOR


def parse_reply(raw: bytes, payload_len: int, echo: bytes = b"") -> bytes:
    """Check a reply read by length and return its payload; ``echo`` is the prefix the payload must start with."""
    if raw.startswith(NACK):
        raise ProtocolError("the device answered N (it received a frame with a bad CRC)")
    if len(raw) != payload_len + 4:
        raise ProtocolError(f"expected a {payload_len + 4}-byte reply, got {len(raw)} bytes {raw.hex(' ')!r}")
    if raw[-2:] != TERMINATOR:
        raise ProtocolError(f"reply does not end in CR LF: {raw.hex(' ')}")
    if not frame_ok(raw[:-2]):
        raise ProtocolError(f"reply CRC mismatch: {raw.hex(' ')}")
    payload = raw[:payload_len]
    if not payload.startswith(echo):
        raise ProtocolError(f"reply {payload!r} does not start with {echo!r}")
    return payload


@dataclass(frozen=True)
class Request:
    """One framed request and the payload length of its reply (0: the device answers nothing on success)."""

    data: bytes
    reply_len: int = 0
    echo: bytes = b""


def _i16(value: int) -> bytes:
    return struct.pack(">h", value)


def _checked_i16(value: int, what: str) -> int:
    value = int(value)
    if not -32768 <= value <= 32767:
        raise ValueError(f"{what} {value} does not fit the protocol's 16-bit field")
    return value


# -- identity -----------------------------------------------------------------------------------
def firmware_type() -> Request:
    return Request(frame(b"H"), 2, b"H")


def firmware_branch() -> Request:
    return Request(frame(b"F"), 2, b"F")


def lens_serial() -> Request:
    return Request(frame(b"X"), 9, b"X")


def firmware_version() -> Request:
    """``V`` in its one-byte form; reply ``V`` + major u8 + minor u8 + build u16 + revision u16."""
    return Request(frame(b"V"), 7, b"V")


def decode_firmware_version(payload: bytes) -> str:
    major, minor, build, revision = struct.unpack(">BBHH", payload[1:7])
    return f"{major}.{minor}.{build}.{revision}"


# -- currents -----------------------------------------------------------------------------------
def max_current() -> Request:
    """Reply ``CMA`` + i16 in mA × 100 (LD4 default 29284 = 292.84 mA)."""
    return Request(frame(b"CrMA\x00\x00"), 5, b"CMA")


def upper_current_limit() -> Request:
    return Request(frame(b"CrUA\x00\x00"), 5, b"CUA")


def lower_current_limit() -> Request:
    return Request(frame(b"CrLA\x00\x00"), 5, b"CLA")


def get_current() -> Request:
    return Request(frame(b"Ar\x00\x00"), 3, b"A")


def set_current(raw: int) -> Request:
    return Request(frame(b"Aw" + _i16(_checked_i16(raw, "current"))))


def decode_i16(payload: bytes, offset: int) -> int:
    return struct.unpack_from(">h", payload, offset)[0]


def current_to_raw(current_ma: float, imax_ma: float) -> int:
    """The 12-bit current code for ``current_ma``, clamped to ±4095 (= ±Imax)."""
    raw = round(current_ma / imax_ma * CURRENT_FULL_SCALE)
    return max(-CURRENT_FULL_SCALE, min(CURRENT_FULL_SCALE, raw))


def raw_to_current(raw: int, imax_ma: float) -> float:
    return raw * imax_ma / CURRENT_FULL_SCALE


# -- modes and the generator --------------------------------------------------------------------
def set_mode(mode: int) -> Request:
    """``Mw?A``; the reply echoes the letter (``MDA``), focal-power mode adds status, max FP and min FP."""
    letter = MODE_LETTERS[mode]
    return Request(frame(b"Mw" + letter + b"A"), 8 if mode == MODE_FOCAL_POWER else 3, b"M" + letter + b"A")


def read_mode() -> Request:
    return Request(frame(b"MMA"), 4, b"MMA")


def generator_upper(raw: int) -> Request:
    return Request(frame(b"PwUA" + _i16(_checked_i16(raw, "upper swing")) + b"\x00\x00"))


def generator_lower(raw: int) -> Request:
    return Request(frame(b"PwLA" + _i16(_checked_i16(raw, "lower swing")) + b"\x00\x00"))


def generator_frequency(millihertz: int) -> Request:
    if not 0 < millihertz <= 0xFFFFFFFF:
        raise ValueError(f"generator frequency {millihertz} mHz is outside 1 mHz … 4294967 Hz")
    return Request(frame(b"PwFA" + struct.pack(">I", millihertz)))


# -- temperature and focal power ------------------------------------------------------------------
def temperature() -> Request:
    return Request(frame(b"TCA"), 5, b"TCA")


def decode_temperature(payload: bytes) -> float:
    return decode_i16(payload, 3) / TEMP_STEPS_PER_C


def temperature_limits(upper_c: float, lower_c: float) -> Request:
    """``PwTA``: reply 2 bytes (meaning unverified, not checked) + status u8 + max FP i16 + min FP i16."""
    upper = _checked_i16(round(upper_c * TEMP_STEPS_PER_C), "upper temperature limit")
    lower = _checked_i16(round(lower_c * TEMP_STEPS_PER_C), "lower temperature limit")
    return Request(frame(b"PwTA" + _i16(upper) + _i16(lower)), 7)


def decode_fp_range(payload: bytes, fw_type: bytes) -> tuple[int, float, float]:
    """(status, min FP dpt, max FP dpt) from the last five payload bytes of a ``PwTA`` or ``MwCA`` reply."""
    status, max_raw, min_raw = struct.unpack(">Bhh", payload[-5:])
    return status, decode_focal_power(min_raw, fw_type), decode_focal_power(max_raw, fw_type)


def encode_focal_power(dpt: float, fw_type: bytes) -> int:
    """Raw focal power: firmware type A offsets by +5 dpt, the others do not; 0.005 dpt resolution."""
    offset = 5.0 if fw_type == b"A" else 0.0
    return _checked_i16(round((dpt + offset) * FP_STEPS_PER_DPT), "focal power")


def decode_focal_power(raw: int, fw_type: bytes) -> float:
    """Dioptres of a raw focal power: the value on the 0.005 dpt grid itself (type A's −1.8 dpt, raw 640, is
    −1.8, not the −1.7999999999999998 that ``640 / 200 − 5`` gives, which a plan at −1.8 then exceeded).

    The offset is removed in whole steps before the one division, so the result is the float nearest the exact
    grid value.
    """
    offset_steps = 5 * FP_STEPS_PER_DPT if fw_type == b"A" else 0
    return (raw - offset_steps) / FP_STEPS_PER_DPT


def set_focal_power(dpt: float, fw_type: bytes) -> Request:
    return Request(frame(b"PwDA" + _i16(encode_focal_power(dpt, fw_type)) + b"\x00\x00"))


def get_focal_power() -> Request:
    """``PrDA``: reply 2 bytes (prefix unverified, not checked) + i16 raw focal power."""
    return Request(frame(b"PrDA\x00\x00\x00\x00"), 4)
