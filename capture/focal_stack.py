"""The one object that crosses from capture/calibration to fusion: an aligned focal stack.

Calibration builds it from a sweep of a recording (or the simulator builds it with ground truth); the
fusion engine consumes it, whatever the method; folders in the seed projects' layouts load into it.
It lives in ``capture`` because both calibration and fusion depend on capture and on nothing else.

Conventions, fixed here so no consumer has to guess:
- planes are ordered by focal power, ascending (near-to-far or far-to-near is a property of the optics);
- every array is already in the RGB camera's pixel grid (events warped, breathing corrected);
- ``events[k, p]`` counts events of polarity ``p`` (0 = OFF/negative, 1 = ON/positive, as in the
  Metavision ``p`` field) that fell into plane k's time window; counts, not a ternary map, so no
  information is lost before the consumer decides how to normalise;
- ``event_focus_dpt`` / ``event_focus_weight``, when present, are the focal power at which each pixel passed
  through focus as its events timed it (NaN where they cannot tell) and how much evidence that rests on — depth
  at a resolution no frame rate gives (``calibration.event_focus``); fusion merges it with its own depth;
- ground truth, when present (simulated stacks), is named by what it is and never read by fusion.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

#: Keys allowed in ``FocalStack.ground_truth``: the all-in-focus image (like one frame), the depth in dioptres
#: (float32 H×W) and the continuous focal index (float32 H×W, 0..N−1 in this stack's planes).
GROUND_TRUTH_KEYS = frozenset({"all_in_focus", "depth_dpt", "focal_index"})

NPZ_FORMAT = "focalrig.focal_stack"
NPZ_VERSION = 1


class FocalStackError(ValueError):
    """A focal stack's arrays do not fit together; the message says which and how."""


@dataclass(frozen=True)
class FocalStack:
    frames: np.ndarray                      # (N, H, W) or (N, H, W, 3); uint8, uint16 or float32 in [0, 1]
    focal_powers_dpt: np.ndarray            # (N,) float64, strictly ascending
    events: np.ndarray | None = None        # (N, 2, H, W) counts per polarity, any unsigned/float dtype
    ground_truth: dict[str, np.ndarray] = field(default_factory=dict)
    #: Provenance: recording uid, sweep index, calibration id, time window, source folder ... (JSON-serialisable).
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    event_focus_dpt: np.ndarray | None = None      # (H, W) float32, NaN where the events cannot tell
    event_focus_weight: np.ndarray | None = None   # (H, W) float32 ≥ 0, 0 where event_focus_dpt is NaN

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        powers = np.asarray(self.focal_powers_dpt, dtype=np.float64)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "focal_powers_dpt", powers)
        if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] != 3):
            raise FocalStackError(f"frames must be (N, H, W) or (N, H, W, 3), got shape {frames.shape}")
        if frames.dtype not in (np.uint8, np.uint16, np.float32):
            raise FocalStackError(f"frames must be uint8, uint16 or float32, got {frames.dtype}")
        n = frames.shape[0]
        if n < 1:
            raise FocalStackError("a focal stack needs at least one plane")
        if powers.shape != (n,):
            raise FocalStackError(f"{n} frames but {powers.size} focal powers")
        if n > 1 and not np.all(np.diff(powers) > 0):
            raise FocalStackError("focal powers must be strictly ascending (sort the planes first)")
        if self.events is not None:
            events = np.asarray(self.events)
            object.__setattr__(self, "events", events)
            if events.shape != (n, 2, *self.shape):
                raise FocalStackError(f"events must be (N, 2, H, W) = {(n, 2, *self.shape)}, got {events.shape}")
        if (self.event_focus_dpt is None) != (self.event_focus_weight is None):
            raise FocalStackError("event_focus_dpt and event_focus_weight come together")
        for name in ("event_focus_dpt", "event_focus_weight"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, np.float32)
                object.__setattr__(self, name, value)
                if value.shape != self.shape:
                    raise FocalStackError(f"{name} must be (H, W) = {self.shape}, got {value.shape}")
        unknown = set(self.ground_truth) - GROUND_TRUTH_KEYS
        if unknown:
            raise FocalStackError(f"unknown ground-truth keys {sorted(unknown)}; allowed: {sorted(GROUND_TRUTH_KEYS)}")
        for key, value in self.ground_truth.items():
            if np.asarray(value).shape[:2] != self.shape:
                raise FocalStackError(f"ground truth {key!r} has shape {np.shape(value)}, frames are {self.shape}")

    @property
    def n_planes(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of every plane."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def is_color(self) -> bool:
        return self.frames.ndim == 4

    @property
    def has_events(self) -> bool:
        return self.events is not None

    @property
    def has_event_focus(self) -> bool:
        return self.event_focus_dpt is not None

    @property
    def refocused(self) -> np.ndarray:
        """(N,) bool: planes synthesized from a frame by its events (``meta["planes"][k]["kind"] == "refocused"``)
        rather than exposed; their colour is their source frame's, their luma is timed by the events."""
        planes = self.meta.get("planes")
        if not planes or len(planes) != self.n_planes:
            return np.zeros(self.n_planes, bool)
        return np.array([p.get("kind", "frame") == "refocused" for p in planes])

    def without_events(self) -> FocalStack:
        """The frames alone: event slices, event-timed focus and event-refocused planes left out."""
        keep = np.flatnonzero(~self.refocused)
        planes = self.meta.get("planes")
        meta = self.meta if len(keep) == self.n_planes else {**self.meta, "planes": [planes[k] for k in keep]}
        return replace(self, frames=self.frames[keep], focal_powers_dpt=self.focal_powers_dpt[keep], events=None,
                       event_focus_dpt=None, event_focus_weight=None, meta=meta)

    def save_npz(self, path: str | Path) -> Path:
        """Lossless single-file form (counts kept, ground truth and meta included), written atomically."""
        import json
        import os

        path = Path(path)
        arrays: dict[str, np.ndarray] = {"frames": self.frames, "focal_powers_dpt": self.focal_powers_dpt}
        if self.events is not None:
            arrays["events"] = self.events
        if self.event_focus_dpt is not None:
            arrays["event_focus_dpt"] = self.event_focus_dpt
            arrays["event_focus_weight"] = self.event_focus_weight
        for key, value in self.ground_truth.items():
            arrays[f"gt_{key}"] = np.asarray(value)
        header = {"format": NPZ_FORMAT, "version": NPZ_VERSION, "name": self.name, "meta": self.meta}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> FocalStack:
        import json
        import zipfile

        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                if header.get("format") != NPZ_FORMAT:
                    raise FocalStackError(f"{path}: not a focalrig focal stack (format {header.get('format')!r})")
                if header.get("version", 0) > NPZ_VERSION:
                    raise FocalStackError(f"{path}: focal stack version {header['version']} is newer than this "
                                          f"focalrig reads ({NPZ_VERSION}); upgrade focalrig")
                ground_truth = {k[3:]: data[k] for k in data.files if k.startswith("gt_")}
                events = data["events"] if "events" in data.files else None
                focus = [data[k] if k in data.files else None for k in ("event_focus_dpt", "event_focus_weight")]
                return cls(data["frames"], data["focal_powers_dpt"], events, ground_truth,
                           header.get("meta", {}), header.get("name", ""), *focus)
        except (KeyError, ValueError, OSError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            if isinstance(exc, FocalStackError):
                raise
            raise FocalStackError(f"{path}: unreadable focal stack ({exc})") from exc
