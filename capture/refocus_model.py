"""The event camera's brightness model as both stack building and synthetic training data use it (the EFS model).

An event camera pixel fires each time its log brightness moves by its contrast threshold C, ON when it rises, so a
frame multiplied pixel by pixel by exp(C·(ON − OFF)) over the events up to another moment shows the scene as it was
then. :func:`signed_counts` takes ON − OFF from events, :func:`refocus` applies it to a frame, and :func:`gap_fill`
says where planes between frames are worth synthesising. Recordings read their threshold with
:mod:`calibration.refocus`; :mod:`fusion.synthetic` takes its events from a simulated sensor.
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


def interval_counts(cd: np.ndarray, edges_us, width: int, height: int) -> np.ndarray:
    """ON − OFF events per event pixel in each interval edges[k] <= t < edges[k + 1] (K, H, W) float32, in one pass
    over time-sorted CD events; ``edges_us`` ascending."""
    edges = np.asarray(edges_us, np.float64)
    i0, i1 = np.searchsorted(cd["t"], [edges[0], edges[-1]])
    part = cd[i0:i1]
    interval = np.searchsorted(edges, part["t"], side="right") - 1
    flat = np.bincount(interval * (width * height) + part["y"].astype(np.int64) * width + part["x"],
                       weights=np.where(part["p"] > 0, 1.0, -1.0), minlength=(edges.size - 1) * width * height)
    return flat.reshape(edges.size - 1, height, width).astype(np.float32)


def signed_counts(cd: np.ndarray, t_from_us: float, t_to_us: float, width: int, height: int) -> np.ndarray:
    """ON − OFF events per event pixel fired between two moments (H, W) float32; negative when ``t_to`` comes
    first (going back in time undoes the change)."""
    counts = interval_counts(cd, sorted((t_from_us, t_to_us)), width, height)[0]
    return counts if t_to_us >= t_from_us else -counts
