"""The calibration of one rig: event→RGB geometry, focus breathing and lens timing, as a versioned JSON file.

A calibration has its own id (a uuid4) so recordings and focal stacks can say which calibration made them.
Each part is optional because each comes from a different recording (a blinking target for the geometry, a
sweep of a textured scene for timing and breathing) and calibrations are merged with :meth:`Calibration.merged`;
whoever needs a part asks for it with :meth:`Calibration.require`, which says what is missing and how to get it.

Coordinate conventions:
- ``SpatialCalibration.homography`` maps *undistorted* event px → *undistorted* RGB px (each side undistorted
  only when its intrinsics are known, raw px otherwise). A mirror (beam splitter) gives det < 0, which is legal.
- The focal stack lives in the RGB camera's raw pixel grid at the breathing reference power: ``Breathing``
  maps that reference grid to the grid at power D by a scaling s(D) about a fixed centre.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

FILE_FORMAT = "focalrig.calibration"
FILE_VERSION = 1


class CalibrationError(ValueError):
    """Calibration input or a calibration file is unusable; the message names the problem and what to do."""


def _undistort_criteria():
    return (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)


@dataclass(frozen=True, eq=False)
class Intrinsics:
    """A pinhole camera with OpenCV's distortion model, as ``cv2.calibrateCamera`` estimates it."""

    camera_matrix: np.ndarray   #: 3x3 float64
    distortion: np.ndarray      #: (k1, k2, p1, p2[, k3 ...]) float64
    rms_px: float               #: calibrateCamera's RMS reprojection error
    n_views: int

    def __post_init__(self) -> None:
        k = np.asarray(self.camera_matrix, np.float64)
        d = np.asarray(self.distortion, np.float64).ravel()
        if k.shape != (3, 3):
            raise CalibrationError(f"camera_matrix must be 3x3, got shape {k.shape}")
        if d.size not in (4, 5, 8, 12, 14):
            raise CalibrationError(f"distortion must have 4, 5, 8, 12 or 14 coefficients (OpenCV), got {d.size}")
        object.__setattr__(self, "camera_matrix", k)
        object.__setattr__(self, "distortion", d)

    def undistort(self, pts: np.ndarray) -> np.ndarray:
        """Raw px (N, 2) → undistorted px (N, 2) in the same camera matrix."""
        p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        k = self.camera_matrix
        return cv2.undistortPoints(p, k, self.distortion, None, None, k, _undistort_criteria()).reshape(-1, 2)

    def distort(self, pts: np.ndarray) -> np.ndarray:
        """Undistorted px (N, 2) → raw px (N, 2)."""
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        k = self.camera_matrix
        norm = np.column_stack([(p[:, 0] - k[0, 2]) / k[0, 0], (p[:, 1] - k[1, 2]) / k[1, 1], np.ones(len(p))])
        out, _ = cv2.projectPoints(norm, np.zeros(3), np.zeros(3), k, self.distortion)
        return out.reshape(-1, 2)

    def to_dict(self) -> dict:
        return {"camera_matrix": self.camera_matrix.tolist(), "distortion": self.distortion.tolist(),
                "rms_px": self.rms_px, "n_views": self.n_views}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Intrinsics:
        return cls(_get(d, "camera_matrix", where), _get(d, "distortion", where), float(_get(d, "rms_px", where)),
                   int(_get(d, "n_views", where)))


@dataclass(frozen=True, eq=False)
class SpatialCalibration:
    """Event sensor → RGB camera geometry (§7.1) and how well it fits."""

    rgb_size: tuple[int, int]                #: (width, height)
    event_size: tuple[int, int]              #: (width, height)
    homography: np.ndarray                   #: 3x3, undistorted event px → undistorted RGB px
    rgb_intrinsics: Intrinsics | None = None
    event_intrinsics: Intrinsics | None = None
    power_dpt: float | None = None           #: focal power the target was recorded at
    n_views: int = 0
    #: Transfer error of the target's corners, event → RGB, in RGB px: mean, rms, max, per_view (list of means).
    error_px: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h = np.asarray(self.homography, np.float64)
        if h.shape != (3, 3) or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
            raise CalibrationError(f"homography must be a finite, invertible 3x3 matrix, got {h.tolist()}")
        object.__setattr__(self, "homography", h / h[2, 2])
        for name in ("rgb_size", "event_size"):
            size = tuple(int(v) for v in getattr(self, name))
            if len(size) != 2 or min(size) <= 0:
                raise CalibrationError(f"{name} must be (width, height) > 0, got {getattr(self, name)}")
            object.__setattr__(self, name, size)

    @property
    def mirrored(self) -> bool:
        """True when the event view is a mirror image of the RGB view (det H < 0)."""
        return bool(np.linalg.det(self.homography[:2, :2]) < 0)

    def event_to_rgb(self, pts: np.ndarray) -> np.ndarray:
        """Raw event px (N, 2) → raw RGB px (N, 2) at the same focal power."""
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        if self.event_intrinsics is not None:
            p = self.event_intrinsics.undistort(p)
        p = cv2.perspectiveTransform(p.reshape(-1, 1, 2), self.homography).reshape(-1, 2)
        return self.rgb_intrinsics.distort(p) if self.rgb_intrinsics is not None else p

    def rgb_to_event(self, pts: np.ndarray) -> np.ndarray:
        """Raw RGB px (N, 2) → raw event px (N, 2) at the same focal power."""
        p = np.asarray(pts, np.float64).reshape(-1, 2)
        if self.rgb_intrinsics is not None:
            p = self.rgb_intrinsics.undistort(p)
        p = cv2.perspectiveTransform(p.reshape(-1, 1, 2), np.linalg.inv(self.homography)).reshape(-1, 2)
        return self.event_intrinsics.distort(p) if self.event_intrinsics is not None else p

    def to_dict(self) -> dict:
        return {"rgb_size": list(self.rgb_size), "event_size": list(self.event_size),
                "homography_event_to_rgb": self.homography.tolist(), "mirrored": self.mirrored,
                "rgb_intrinsics": None if self.rgb_intrinsics is None else self.rgb_intrinsics.to_dict(),
                "event_intrinsics": None if self.event_intrinsics is None else self.event_intrinsics.to_dict(),
                "power_dpt": self.power_dpt, "n_views": self.n_views, "error_px": self.error_px}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> SpatialCalibration:
        rgb_i, ev_i = d.get("rgb_intrinsics"), d.get("event_intrinsics")
        out = cls(tuple(_get(d, "rgb_size", where)), tuple(_get(d, "event_size", where)),
                  np.asarray(_get(d, "homography_event_to_rgb", where), np.float64),
                  None if rgb_i is None else Intrinsics.from_dict(rgb_i, f"{where}.rgb_intrinsics"),
                  None if ev_i is None else Intrinsics.from_dict(ev_i, f"{where}.event_intrinsics"),
                  d.get("power_dpt"), int(d.get("n_views", 0)), dict(d.get("error_px", {})))
        for name, intr, size in (("rgb", out.rgb_intrinsics, out.rgb_size), ("event", out.event_intrinsics,
                                                                              out.event_size)):
            if intr is not None:
                cx, cy = intr.camera_matrix[0, 2], intr.camera_matrix[1, 2]
                if not (0 <= cx < size[0] and 0 <= cy < size[1]):
                    raise CalibrationError(f"{where}.{name}_intrinsics: principal point ({cx:.1f}, {cy:.1f}) lies "
                                           f"outside the {size[0]}x{size[1]} {name} image: inconsistent sizes")
        return out


@dataclass(frozen=True)
class Breathing:
    """Focus breathing (§7.2): the image at power D is the reference image scaled by s(D) about ``centre_px``.

    s(D) = 1 + Σ_i coeffs[i]·(D − ref_dpt)^(i+1), so s(ref_dpt) = 1. Both cameras breathe together when the sweep
    lens is in the common path (case A); the correction is applied in the RGB grid to frames and warped events.
    """

    ref_dpt: float
    coeffs: tuple[float, ...]
    centre_px: tuple[float, float]
    n_frames: int = 0
    residual: float = 0.0          #: RMS of the per-frame scale estimates about the fit

    def scale(self, power_dpt) -> np.ndarray | float:
        x = np.asarray(power_dpt, np.float64) - self.ref_dpt
        return 1.0 + sum(c * x ** (i + 1) for i, c in enumerate(self.coeffs))

    def matrix(self, power_dpt: float) -> np.ndarray:
        """3x3: reference-grid px → px of an image taken at ``power_dpt``."""
        s = float(self.scale(power_dpt))
        cx, cy = self.centre_px
        return np.array([[s, 0.0, cx * (1 - s)], [0.0, s, cy * (1 - s)], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        return {"ref_dpt": self.ref_dpt, "coeffs": list(self.coeffs), "centre_px": list(self.centre_px),
                "n_frames": self.n_frames, "residual": self.residual}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> Breathing:
        centre = tuple(float(v) for v in _get(d, "centre_px", where))
        if len(centre) != 2:
            raise CalibrationError(f"{where}.centre_px must be [x, y]")
        return cls(float(_get(d, "ref_dpt", where)), tuple(float(c) for c in _get(d, "coeffs", where)), centre,
                   int(d.get("n_frames", 0)), float(d.get("residual", 0.0)))


@dataclass(frozen=True)
class TemporalCalibration:
    """Lens timing (§8): actual power D(t) = mid + offset + gain·(D_c(t − lag) − mid) for the commanded D_c."""

    lag_us: float
    residual_us: float = 0.0       #: RMS spread of the per-patch lag estimates
    gain: float = 1.0
    offset_dpt: float = 0.0
    n_patches: int = 0

    def to_dict(self) -> dict:
        return {"lag_us": self.lag_us, "residual_us": self.residual_us, "gain": self.gain,
                "offset_dpt": self.offset_dpt, "n_patches": self.n_patches}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> TemporalCalibration:
        out = cls(float(_get(d, "lag_us", where)), float(d.get("residual_us", 0.0)), float(d.get("gain", 1.0)),
                  float(d.get("offset_dpt", 0.0)), int(d.get("n_patches", 0)))
        if not (math.isfinite(out.lag_us) and math.isfinite(out.gain) and out.gain > 0):
            raise CalibrationError(f"{where}: lag_us must be finite and gain > 0, got {out.lag_us}, {out.gain}")
        return out


_PARTS = {"spatial": SpatialCalibration, "temporal": TemporalCalibration, "breathing": Breathing}


@dataclass(frozen=True)
class Calibration:
    spatial: SpatialCalibration | None = None
    temporal: TemporalCalibration | None = None
    breathing: Breathing | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: Provenance: source recordings, board, settings (JSON-serialisable).
    meta: dict[str, Any] = field(default_factory=dict)

    def require(self, *parts: str) -> None:
        """Raise a CalibrationError naming the parts this calibration lacks."""
        missing = [p for p in parts if getattr(self, p) is None]
        if missing:
            how = {"spatial": "record a blinking chessboard and run `focalrig calibrate` on it",
                   "temporal": "record a sweep of a static textured scene with the lens sync wired",
                   "breathing": "record a sweep with frames of a static textured scene"}
            raise CalibrationError(f"calibration {self.id} has no {' or '.join(missing)} part; "
                                   + "; ".join(how[p] for p in missing))

    def merged(self, other: Calibration) -> Calibration:
        """A new calibration (new id) with ``other``'s parts where it has them, this one's elsewhere."""
        parts = {p: getattr(other, p) if getattr(other, p) is not None else getattr(self, p) for p in _PARTS}
        return Calibration(**parts, meta={**self.meta, **other.meta, "merged_from": [self.id, other.id]})

    def with_meta(self, **meta: Any) -> Calibration:
        return replace(self, meta={**self.meta, **meta})

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"format": FILE_FORMAT, "version": FILE_VERSION, "id": self.id,
                               "created": self.created, "meta": self.meta}
        for name in _PARTS:
            part = getattr(self, name)
            out[name] = None if part is None else part.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibration") -> Calibration:
        if not isinstance(d, dict) or d.get("format") != FILE_FORMAT:
            fmt = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise CalibrationError(f"{source}: not a focalrig calibration (format {fmt!r}, "
                                   f"expected {FILE_FORMAT!r})")
        version = d.get("version")
        if not isinstance(version, int) or version < 1:
            raise CalibrationError(f"{source}: missing or invalid 'version' (got {version!r})")
        if version > FILE_VERSION:
            raise CalibrationError(f"{source}: calibration version {version} is newer than this focalrig reads "
                                   f"({FILE_VERSION}); upgrade focalrig")
        ident = _get(d, "id", source)
        try:
            uuid.UUID(str(ident))
        except ValueError:
            raise CalibrationError(f"{source}: 'id' {ident!r} is not a uuid") from None
        parts = {}
        for name, kind in _PARTS.items():
            if name not in d:
                raise CalibrationError(f"{source}: missing key {name!r} (use null for a part that was not "
                                       f"calibrated)")
            value = d[name]
            if value is not None and not isinstance(value, dict):
                raise CalibrationError(f"{source}: {name!r} must be an object or null")
            try:
                parts[name] = None if value is None else kind.from_dict(value, f"{source}: {name}")
            except (TypeError, ValueError) as exc:  # CalibrationError included: say which file and part
                msg = str(exc)
                raise CalibrationError(msg if msg.startswith(source) else f"{source}: {name}: {msg}") from exc
        if all(p is None for p in parts.values()):
            raise CalibrationError(f"{source}: has no spatial, temporal or breathing part")
        return cls(**parts, id=str(ident), created=str(d.get("created", "")), meta=dict(d.get("meta") or {}))

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"{path}: no such calibration file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, str(path))


def _get(d: dict, key: str, where: str):
    if key not in d:
        raise CalibrationError(f"{where}: missing key {key!r}")
    return d[key]
