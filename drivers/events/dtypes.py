"""Event dtypes identical to Metavision's, so arrays move between focalrig and OpenEB code unchanged.

Both event dtypes contain padding (Metavision's C++ structs are 8-byte aligned), so they are built
with explicit offsets and itemsize; a packed field list would not match OpenEB's memory layout.
"""

from __future__ import annotations

import numpy as np

#: Change-detection event: p = 0 OFF (darker), 1 ON; origin top-left; t in µs.
EVENT_CD = np.dtype(
    {"names": ["x", "y", "p", "t"], "formats": ["<u2", "<u2", "<i2", "<i8"], "offsets": [0, 2, 4, 8],
     "itemsize": 16}
)

#: External trigger edge: p = 1 rising, 0 falling; id = trigger-in channel; t in µs on the CD clock.
EVENT_EXT_TRIGGER = np.dtype(
    {"names": ["p", "t", "id"], "formats": ["<i2", "<i8", "<i2"], "offsets": [0, 8, 16], "itemsize": 24}
)

#: Row of the ``indexes`` tables of Prophesee HDF5 files.
HDF5_INDEX = np.dtype({"names": ["id", "ts"], "formats": ["<u8", "<i8"], "offsets": [0, 8], "itemsize": 16})


def empty_cd(n: int = 0) -> np.ndarray:
    """An uninitialised CD array of ``n`` events (zero-length by default)."""
    return np.empty(n, EVENT_CD)


def empty_triggers(n: int = 0) -> np.ndarray:
    """An uninitialised trigger array of ``n`` events (zero-length by default)."""
    return np.empty(n, EVENT_EXT_TRIGGER)


def make_cd(x, y, p, t) -> np.ndarray:
    """Build a CD array from columns (any integer array-likes of equal length)."""
    t = np.asarray(t)
    out = np.empty(t.shape[0], EVENT_CD)
    out["x"], out["y"], out["p"], out["t"] = x, y, p, t
    return out


def make_triggers(p, t, id) -> np.ndarray:
    """Build a trigger array from columns."""
    t = np.asarray(t)
    out = np.empty(t.shape[0], EVENT_EXT_TRIGGER)
    out["p"], out["t"], out["id"] = p, t, id
    return out


def as_events(arr: np.ndarray, dtype: np.dtype, *, zero_padding: bool = False) -> np.ndarray:
    """``arr`` as a contiguous array of the event ``dtype``, copying only when needed.

    Arrays with the right fields in another layout (NumPy 2's packed copies, arrays users build)
    are converted field by field. ``zero_padding`` always copies into zeroed memory, for writers
    that store padding bytes raw and must not leak whatever the caller's padding held.
    """
    arr = np.asarray(arr)
    if arr.dtype == dtype and not zero_padding:
        return np.ascontiguousarray(arr)
    if arr.dtype.names is None or not set(dtype.names) <= set(arr.dtype.names):
        raise ValueError(f"expected events with fields {', '.join(dtype.names)}; got dtype {arr.dtype}")
    out = np.zeros(arr.shape[0], dtype)
    for name in dtype.names:
        out[name] = arr[name]
    return out


def concat_events(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Concatenate event arrays of one padded dtype, keeping that exact dtype.

    NumPy 2's ``np.concatenate`` returns a *packed* copy of padded structured dtypes (itemsize 14
    for EventCD), which no longer equals the Metavision layout, and asking it for ``dtype=`` is
    slow; joining the raw bytes is exact and an order of magnitude faster.
    """
    if not parts:
        return np.empty(0, dtype)
    if len(parts) == 1:
        return parts[0]
    raw = [np.ascontiguousarray(p, dtype=dtype).view(np.uint8) for p in parts]
    return np.concatenate(raw).view(dtype)
