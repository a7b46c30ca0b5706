"""The event camera's brightness model as both stack building and synthetic training data use it (the EFS model).

An event camera pixel fires each time its log brightness moves by its contrast threshold C, ON when it rises, so a
frame multiplied pixel by pixel by exp(C·(ON − OFF)) over the events up to another moment shows the scene as it was
then. :func:`refocus` applies that; :func:`gap_fill` says where planes between frames are worth synthesising.
Recordings get their threshold and counts from :mod:`calibration.refocus`; :mod:`fusion.synthetic` from its
simulated sensor.
"""

from __future__ import annotations

import numpy as np


def gap_fill(powers: np.ndarray, n_total: int, min_gap_dpt: float = 0.0) -> list[float]:
    """Powers for up to ``n_total − len(powers)`` new planes: each splits the widest gap left (ties: the lower one),
    as long as that gap is wider than ``min_gap_dpt``."""
    planes = sorted(float(p) for p in powers)
    added: list[float] = []
    while len(planes) < n_total and len(planes) >= 2:
        gaps = np.diff(planes)
        i = int(np.argmax(gaps))
        if gaps[i] <= min_gap_dpt:
            break
        mid = 0.5 * (planes[i] + planes[i + 1])
        planes.insert(i + 1, mid)
        added.append(mid)
    return sorted(added)


def refocus(image: np.ndarray, counts_rgb: np.ndarray, c: float) -> np.ndarray:
    """``image`` re-timed by signed event counts already in its pixel grid: × exp(c·counts); saturated pixels kept."""
    dtype = image.dtype
    top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
    gain = np.exp(np.float32(c) * counts_rgb)
    f = image.astype(np.float32)
    out = f * (gain[..., None] if f.ndim == 3 else gain)
    saturated = (f.max(axis=-1) if f.ndim == 3 else f) >= 0.98 * top
    out[saturated] = f[saturated]
    if np.issubdtype(dtype, np.integer):
        return np.clip(np.rint(out), 0, top).astype(dtype)
    return np.clip(out, 0.0, top).astype(dtype)
