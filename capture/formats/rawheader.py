"""Prophesee RAW file headers: parsing (modern and legacy) and writing, following OpenEB 5.1.1.

A header is a run of ASCII lines ``% <key> <value>`` ended by ``% end`` (or by the first line that
does not start with ``% ``). The event format and sensor geometry are resolved with the rules of
OpenEB's Prophesee plugin; where focalrig accepts a header that OpenEB would reject, or fills in a
value the header does not state, it says so in :attr:`RawHeader.inferred`.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

_PREFIX = b"% "

#: OpenEB format name -> value of the legacy ``% evt`` key.
EVT_VERSION = {"EVT2": "2.0", "EVT21": "2.1", "EVT3": "3.0"}
_EVT_TO_FORMAT = {v: k for k, v in EVT_VERSION.items()}

#: Prophesee system_ID -> (default format, width, height) used by legacy headers (no ``% format``).
SYSTEM_ID_TABLE: dict[int, tuple[str, int, int]] = {
    **dict.fromkeys((21, 28, 35), ("EVT2", 640, 480)),
    **dict.fromkeys((26, 39), ("EVT2", 1280, 720)),
    40: ("EVT3", 640, 480),
    **dict.fromkeys((30, 48, 49, 50), ("EVT3", 1280, 720)),
}

#: Prophesee system_ID -> sensor generation (CCAM3 Gen3/3.1, CCAM3/CCAM5 Gen4, EVK2/EVK3 Gen4.1, IMX636).
SYSTEM_ID_GENERATION: dict[int, str] = {
    21: "3.0", 28: "3.1", 35: "3.1", 40: "3.1", 26: "4.0", 30: "4.0", 39: "4.1", 48: "4.1", 49: "4.2", 50: "4.2",
}


class RawHeaderError(ValueError):
    """The header does not say (and nothing lets focalrig infer) how to decode the data."""


@dataclass
class RawHeader:
    """A parsed and resolved RAW header."""

    #: Every ``(key, value)`` line in file order (a repeated key's last value wins in :attr:`fields`).
    pairs: list[tuple[str, str]]
    #: Byte offset of the first event word.
    payload_offset: int
    format: str
    width: int
    height: int
    #: ``"little"`` or ``"legacy"`` for EVT 2.1, else None.
    endianness: str | None = None
    inferred: list[str] = field(default_factory=list)
    #: Sensor generation (``4.2`` for IMX636), from the header or inferred from system_ID; None if unknown.
    generation: str | None = None

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.pairs)


def split_header(data: bytes) -> tuple[list[tuple[str, str]], int]:
    """Split the ASCII header from a RAW file's start.

    Returns the ``(key, value)`` pairs in file order and the byte offset where event data starts.
    Parsing stops after ``% end`` or before the first line not starting with ``% `` (OpenEB's rule).
    ``data`` must hold at least the whole header (the first 64 KiB of a file is plenty).
    """
    pairs: list[tuple[str, str]] = []
    pos = 0
    while data.startswith(_PREFIX, pos):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        tokens = data[pos + 2 : nl].decode("ascii", errors="replace").split()
        pos = nl + 1
        if not tokens:
            continue
        if tokens[0] == "end":
            break
        pairs.append((tokens[0], " ".join(tokens[1:])))
    return pairs, pos


def _parse_format(value: str) -> tuple[str, dict[str, str]]:
    name, *options = value.split(";")
    opts = {}
    for opt in options:
        key, _, val = opt.partition("=")
        opts[key.strip()] = val.strip()
    return name.strip().upper(), opts


def _parse_geometry(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", value)
    if not m:
        raise RawHeaderError(f"unreadable '% geometry {value}' (expected WIDTHxHEIGHT, e.g. 1280x720)")
    return int(m.group(1)), int(m.group(2))


def parse_raw_header(
    data: bytes, *, width: int | None = None, height: int | None = None
) -> RawHeader:
    """Parse and resolve the header at the start of ``data`` (the first 64 KiB of a RAW file).

    ``width``/``height`` override or supply the geometry for headers that carry none.
    Raises :class:`RawHeaderError` with an explanation when the data cannot be decoded.
    """
    if not data.startswith(_PREFIX):
        raise RawHeaderError(
            "no Prophesee RAW header (a RAW file starts with ASCII lines '% key value'); "
            "is this really a .raw event file?"
        )
    pairs, offset = split_header(data)
    fields = dict(pairs)
    inferred: list[str] = []

    # Integrators: system_ID means something only for Prophesee-made systems (OpenEB's rule).
    integrator = fields.get("integrator_name", "")
    plugin_int = fields.get("plugin_integrator_name", integrator)
    camera_int = fields.get("camera_integrator_name", integrator)
    if not plugin_int and not camera_int:
        plugin_int = camera_int = "Prophesee"
    system = None
    if plugin_int == "Prophesee" and camera_int == "Prophesee" and "system_ID" in fields:
        try:
            system = SYSTEM_ID_TABLE.get(int(fields["system_ID"], 0))
        except ValueError:
            inferred.append(f"ignored unreadable system_ID '{fields['system_ID']}'")

    fmt_name: str | None = None
    fmt_w = fmt_h = None
    endianness = None
    if "format" in fields:
        fmt_name, opts = _parse_format(fields["format"])
        try:
            fmt_w = int(opts["width"]) if "width" in opts else None
            fmt_h = int(opts["height"]) if "height" in opts else None
        except ValueError as exc:
            raise RawHeaderError(f"unreadable geometry in '% format {fields['format']}'") from exc
        endianness = opts.get("endianness")
    elif "evt" in fields:
        fmt_name = _EVT_TO_FORMAT.get(fields["evt"].strip())
        if fmt_name is None:
            raise RawHeaderError(f"unknown event format '% evt {fields['evt']}' (focalrig reads 2.0, 2.1, 3.0)")
        if system is None:
            inferred.append(
                f"format {fmt_name} taken from '% evt {fields['evt']}' without a known system_ID "
                "(OpenEB 5.1.1 rejects such a header)"
            )
        else:
            inferred.append(f"format {fmt_name} from legacy '% evt {fields['evt']}' line")
    elif system is not None:
        fmt_name = system[0]
        inferred.append(f"format {fmt_name} from system_ID {fields['system_ID']}")
    else:
        raise RawHeaderError(
            "the header names no event format (no '% format' or '% evt' line and no known system_ID)"
        )
    if fmt_name not in EVT_VERSION:
        raise RawHeaderError(f"unsupported event format '{fmt_name}' (focalrig reads EVT2, EVT21 and EVT3)")

    if "geometry" in fields:
        geo_w, geo_h = _parse_geometry(fields["geometry"])
        if (fmt_w is not None and fmt_w != geo_w) or (fmt_h is not None and fmt_h != geo_h):
            raise RawHeaderError(
                f"'% geometry {fields['geometry']}' contradicts '% format {fields['format']}'"
            )
        fmt_w, fmt_h = geo_w, geo_h
    if (fmt_w is None or fmt_h is None) and system is not None and "format" not in fields:
        fmt_w, fmt_h = system[1], system[2]
        inferred.append(f"geometry {fmt_w}x{fmt_h} from system_ID {fields['system_ID']}")
    if width is not None and height is not None:
        if fmt_w is None or fmt_h is None:
            inferred.append(f"geometry {width}x{height} given by the user (the header has none)")
        elif (fmt_w, fmt_h) != (width, height):
            inferred.append(f"geometry {width}x{height} given by the user (header: {fmt_w}x{fmt_h})")
        fmt_w, fmt_h = width, height
    if fmt_w is None or fmt_h is None:
        raise RawHeaderError("the header gives no sensor geometry; pass --width and --height")

    if fmt_name == "EVT21" and endianness is None:
        if "endianness" in fields:
            endianness = fields["endianness"].strip()
        elif system is not None and int(fields["system_ID"], 0) < 0x37:
            endianness = "legacy"
            inferred.append("EVT 2.1 legacy endianness from system_ID < 0x37")
        else:
            endianness = "little"
            inferred.append("EVT 2.1 little endianness assumed (header does not say)")
    if endianness is not None and endianness not in ("little", "legacy"):
        raise RawHeaderError(f"unknown EVT 2.1 endianness '{endianness}' (expected little or legacy)")

    generation = fields.get("sensor_generation") or fields.get("generation")
    if generation is None and system is not None:
        generation = SYSTEM_ID_GENERATION.get(int(fields["system_ID"], 0))
        if generation is not None:
            inferred.append(f"sensor generation {generation} from system_ID {fields['system_ID']}")

    return RawHeader(
        pairs, offset, fmt_name, fmt_w, fmt_h, endianness if fmt_name == "EVT21" else None, inferred, generation
    )


def format_value(fmt: str, width: int, height: int, endianness: str | None = None) -> str:
    """OpenEB's serialisation of the ``format`` key: name, then options in alphabetical order."""
    opts = {"height": str(height), "width": str(width)}
    if endianness is not None:
        opts["endianness"] = endianness
    return ";".join([fmt, *(f"{k}={opts[k]}" for k in sorted(opts))])


def build_raw_header(
    fmt: str,
    width: int,
    height: int,
    extra: dict[str, str] | None = None,
    *,
    date: _dt.datetime | None = None,
) -> bytes:
    """Header for a file focalrig writes: sorted keys (as OpenEB writes them), then ``% end``.

    Always carries ``date``, ``evt``, ``format`` and ``geometry``; ``extra`` adds keys such as
    ``generation`` or ``serial_number`` (and may override the defaults). Values must be one line.
    """
    if fmt not in EVT_VERSION:
        raise ValueError(f"cannot write RAW format {fmt!r}")
    date = date or _dt.datetime.now()
    keys = {
        "date": date.strftime("%Y-%m-%d %H:%M:%S"),
        "evt": EVT_VERSION[fmt],
        "format": format_value(fmt, width, height),
        "geometry": f"{width}x{height}",
    }
    for key, value in (extra or {}).items():
        if not key or any(c.isspace() for c in key) or "\n" in str(value):
            raise ValueError(f"RAW header key/value must be single tokens/lines: {key!r}={value!r}")
        keys[key] = str(value)
    lines = [f"% {k} {keys[k]}\n" for k in sorted(keys)]
    return ("".join(lines) + "% end\n").encode("ascii")
