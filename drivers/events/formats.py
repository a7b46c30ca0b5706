"""RAW format name -> streaming codec: the one table both file I/O and live cameras use.

Imports are lazy so importing this module compiles no numba kernels.
"""

from __future__ import annotations

from drivers.events.codec import EventDecoder, EventEncoder

#: RAW encodings focalrig decodes, by the names RAW headers use (``format EVT3`` / ``evt 3.0`` etc.).
DECODABLE_FORMATS = ("EVT3", "EVT2", "EVT21")
#: RAW encodings focalrig writes.
ENCODABLE_FORMATS = ("EVT3", "EVT2")


def make_decoder(fmt: str, width: int, height: int, endianness: str | None = None) -> EventDecoder:
    """The streaming decoder for a RAW format name (``EVT2``, ``EVT21``, ``EVT3``)."""
    if fmt == "EVT3":
        from drivers.events.evt3 import Evt3Decoder

        return Evt3Decoder(width, height)
    if fmt == "EVT2":
        from drivers.events.evt2 import Evt2Decoder

        return Evt2Decoder(width, height)
    if fmt == "EVT21":
        from drivers.events.evt21 import Evt21Decoder

        return Evt21Decoder(width, height, endianness=endianness or "little")
    raise ValueError(f"no decoder for RAW format {fmt!r}")


def make_encoder(fmt: str, width: int, height: int) -> EventEncoder:
    """The streaming encoder for a writable RAW format name (``EVT3`` or ``EVT2``)."""
    if fmt == "EVT3":
        from drivers.events.evt3 import Evt3Encoder

        return Evt3Encoder(width, height)
    if fmt == "EVT2":
        from drivers.events.evt2 import Evt2Encoder

        return Evt2Encoder(width, height)
    raise ValueError(f"focalrig writes RAW as EVT3 or EVT2, not {fmt!r}")
