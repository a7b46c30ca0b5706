"""Access to the shared real recordings and their OpenEB 5.1.1 reference decodes.

Tests that need ``../shared/data/events`` skip with a clear reason when it is absent, so the
project stays testable without the shared folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

EVENTS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "events"


def shared_event_file(name: str) -> Path:
    """Path of a shared event file, or skip the test when the shared data is not present."""
    path = EVENTS_DIR / name
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def reference_decodes() -> dict:
    """The JSON ground truth (counts, sums, sorted hash, triggers) for the three shared RAW files."""
    return json.loads(shared_event_file("reference_decodes.json").read_text())


def reference_npz(raw_name: str) -> tuple[np.ndarray, np.ndarray]:
    """OpenEB's own decode (``cd``, ``triggers``) of a shared RAW file, in decode order."""
    stem = raw_name.removesuffix(".raw")
    data = np.load(shared_event_file(f"{stem}__openeb511_reference.npz"))
    return data["cd"], data["triggers"]


def sorted_hash(cd: np.ndarray) -> str:
    """SHA-256 of the (t, x, y, p)-lexsorted int64 array, as in reference_decodes.json."""
    a = np.stack([cd["t"], cd["x"], cd["y"], cd["p"]], axis=1).astype(np.int64)
    order = np.lexsort((a[:, 3], a[:, 2], a[:, 1], a[:, 0]))
    return hashlib.sha256(np.ascontiguousarray(a[order]).tobytes()).hexdigest()


def assert_matches_reference(cd: np.ndarray, triggers: np.ndarray, ref: dict) -> None:
    """Assert a decode equals a reference_decodes.json entry in every recorded statistic."""
    assert cd.shape[0] == ref["n_cd"]
    assert int((cd["p"] == 1).sum()) == ref["n_on"]
    assert int(cd["x"].astype(np.int64).sum()) == ref["sum_x"]
    assert int(cd["y"].astype(np.int64).sum()) == ref["sum_y"]
    assert int(cd["t"].sum()) == ref["sum_t"]
    assert int(cd["t"][0]) == ref["t_first"] and int(cd["t"][-1]) == ref["t_last"]
    assert sorted_hash(cd) == ref["sha256_sorted_t_x_y_p_int64"]
    got_triggers = [{"p": int(e["p"]), "id": int(e["id"]), "t": int(e["t"])} for e in triggers]
    assert got_triggers == ref["triggers"]


def sort_events(cd: np.ndarray) -> np.ndarray:
    """Canonical order (t, y, x, p) for comparing event multisets (encoders may reorder within a µs)."""
    return cd[np.lexsort((cd["p"], cd["x"], cd["y"], cd["t"]))]
