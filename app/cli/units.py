"""Parsing of durations given on the command line (``10ms``, ``250us``, ``1.5s``)."""

from __future__ import annotations

import re

_UNITS_US = {"us": 1, "µs": 1, "ms": 1_000, "s": 1_000_000}


def parse_duration_us(text: str) -> int:
    """Microseconds in ``text``: a number with a unit ``us``, ``ms`` or ``s`` (bare numbers are µs)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s)?\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (examples: 10ms, 250us, 1.5s)")
    value = float(m.group(1)) * _UNITS_US[m.group(2) or "us"]
    if value < 1:
        raise ValueError(f"duration {text!r} is shorter than 1 µs")
    return round(value)
