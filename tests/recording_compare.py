"""Everything a recording holds as data, for comparing two recordings bit for bit (provenance left out)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np

from capture.recording import Recording
from capture.recording.layout import FRAMES_FILE


def canonical(cd: np.ndarray) -> np.ndarray:
    """EVT3 does not keep the order within one µs: events sorted by (t, y, p, x)."""
    return cd[np.lexsort((cd["x"], cd["p"], cd["y"], cd["t"]))]


def digest(array: np.ndarray) -> str:
    """SHA-256 of an array's values, field by field (a structured dtype's padding bytes hold anything)."""
    h = hashlib.sha256()
    for name in array.dtype.names or (None,):
        h.update(np.ascontiguousarray(array if name is None else array[name]).tobytes())
    return h.hexdigest()


def recorded_data(folder: str | Path, *, lens: bool = True) -> dict[str, object]:
    """Digests of a recording's events, triggers, frames (pixels, indices, times, focal power, time source),
    sweeps and commanded lens trajectory; with ``lens`` also its measured lens samples. Equal dicts: equal data."""
    folder = Path(folder)
    out: dict[str, object] = {}
    with Recording.open(folder) as rec:
        with rec.events() as reader:
            parts = [cd for cd, _ in reader.read_chunks()]
        cd = canonical(np.concatenate(parts)) if parts else np.empty(0)
        out["events"] = (len(cd), digest(cd))
        out["triggers"] = digest(rec.triggers)
        out["sweeps"] = rec.sweep_table.tolist()
        out["commanded"] = digest(rec.lens_commanded)
        if lens:
            out["measured"] = digest(rec.lens_measured)
    frames = folder / FRAMES_FILE
    if frames.exists():
        with h5py.File(frames, "r") as f:
            g = f["frames"]
            out["frames"] = {name: digest(g[name][()]) for name in g}
            out["n_frames"] = len(g["index"])
    return out


def differences(a: dict, b: dict) -> list[str]:
    """The keys whose digests differ (for an assertion message)."""
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
