"""One-pass validation of event batches before they are encoded or stored.

Every writer (RAW encoders, the ECF/HDF5 writer) must refuse a batch it cannot store faithfully
*before* writing any of it, so a bad batch loses nothing already written. The check is a single
numba pass because it runs on every batch of a live recording.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_OK, _NEGATIVE, _BEFORE_WRITTEN, _UNSORTED, _POLARITY, _FIELD_A, _FIELD_B = range(7)


@njit(cache=True)
def _first_violation(t, p, a, a_limit, b, b_limit, after_t):
    """``(code, index)`` of the first bad event, or ``(_OK, -1)``.

    ``a``/``b`` are two integer fields that must lie in ``[0, limit)`` (x and y for CD events; the
    channel id twice for triggers).
    """
    prev = after_t
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < 0:
            return _NEGATIVE, i
        if ti < prev:
            return (_BEFORE_WRITTEN if i == 0 else _UNSORTED), i
        prev = ti
        if p[i] != 0 and p[i] != 1:
            return _POLARITY, i
        if a[i] < 0 or a[i] >= a_limit:
            return _FIELD_A, i
        if b[i] < 0 or b[i] >= b_limit:
            return _FIELD_B, i
    return _OK, -1


def _order_message(code: int, label: str, i: int, t: int, after_t: int) -> str | None:
    if code == _NEGATIVE:
        return f"{label} {i} has a negative time t={t} µs"
    if code == _BEFORE_WRITTEN:
        return (f"{label}s start at t={t} µs, before the {after_t} µs already written; "
                "events must be written in time order")
    if code == _UNSORTED:
        return f"{label}s are not sorted by time: event {i} at t={t} µs is earlier than the event before"
    return None


def check_cd(cd: np.ndarray, *, width: int, height: int, after_t: int = 0, who: str) -> None:
    """Raise ValueError (prefixed with ``who``) unless ``cd`` is storable: times ≥ 0, sorted and not
    before ``after_t``; polarity 0/1; 0 ≤ x < width and 0 ≤ y < height."""
    if cd.shape[0] == 0:
        return
    x, y, p, t = cd["x"], cd["y"], cd["p"], cd["t"]
    code, i = _first_violation(t, p, x, width, y, height, after_t)
    if code == _OK:
        return
    msg = _order_message(code, "CD event", i, int(t[i]), after_t)
    if code == _POLARITY:
        msg = f"CD event {i} has polarity {int(p[i])} (must be 0 or 1)"
    elif code in (_FIELD_A, _FIELD_B):
        msg = f"CD event {i} at x={int(x[i])}, y={int(y[i])} is outside the {width}x{height} sensor"
    raise ValueError(f"{who}: {msg}")


def check_triggers(triggers: np.ndarray, *, max_id: int, after_t: int = 0, who: str) -> None:
    """Raise ValueError unless ``triggers`` are storable: times as in :func:`check_cd`, edge 0/1,
    channel id in ``0..max_id``."""
    if triggers.shape[0] == 0:
        return
    ids, p, t = triggers["id"], triggers["p"], triggers["t"]
    code, i = _first_violation(t, p, ids, max_id + 1, ids, max_id + 1, after_t)
    if code == _OK:
        return
    msg = _order_message(code, "trigger event", i, int(t[i]), after_t)
    if code == _POLARITY:
        msg = f"trigger event {i} has edge {int(p[i])} (must be 0 falling or 1 rising)"
    elif code in (_FIELD_A, _FIELD_B):
        msg = f"trigger channel id must be 0..{max_id}, event {i} has {int(ids[i])}"
    raise ValueError(f"{who}: {msg}")
