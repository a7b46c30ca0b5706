"""Event→RGB geometry from a chessboard seen by both cameras (docs/hardware-protocols.md §7.1).

Per view (one pose of the target) the RGB frame and an accumulation image of the event camera's view of a blinking
board are searched with ``cv2.findChessboardCornersSB``. With enough views each camera's intrinsics and distortion
come from ``cv2.calibrateCamera`` (fewer views: skipped, and said so); the corners are undistorted and the event→RGB
homography is fitted with RANSAC over all views' corners together.

Corner order: the detector numbers corners in its own order per image, and a mirrored view (beam splitter) or a
rotated board may number them differently in the two images. Each view's event grid is tried in the four orders of
the board's symmetries (as is, columns reversed, rows reversed, both); a flipped order also fits *one* view
perfectly (a mirror about the board's own axis is a homography too), but only the true order fits one homography
for all views of a board that moved between them. With a single view (or a board that never moved) the order
closest to an unrotated view, allowing a left-right mirror, is chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.model import CalibrationError, Intrinsics, SpatialCalibration
from capture.render import accumulate

#: accumulate() palette for detection: no event grey, ON white, OFF black.
DETECTION_PALETTE = ((128, 128, 128), (255, 255, 255), (0, 0, 0))


@dataclass(frozen=True)
class Board:
    """A chessboard target: ``corners`` = (cols, rows) of inner corners, ``square`` side length (any unit)."""

    corners: tuple[int, int] = (9, 6)
    square: float = 1.0

    def __post_init__(self) -> None:
        cols, rows = self.corners
        if cols < 3 or rows < 3 or cols == rows:
            raise CalibrationError(f"board corners must be (cols, rows) >= 3 with cols != rows (a square grid "
                                   f"has no defined orientation), got {self.corners}")

    @property
    def n(self) -> int:
        return self.corners[0] * self.corners[1]

    def object_points(self) -> np.ndarray:
        """(N, 3) float32 board coordinates in the detector's row-major order."""
        cols, rows = self.corners
        g = np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), -1).reshape(-1, 2) * self.square
        return np.column_stack([g, np.zeros(len(g))]).astype(np.float32)

    def orders(self) -> list[np.ndarray]:
        """Index permutations of the board's four symmetries (identity, columns/rows/both reversed)."""
        cols, rows = self.corners
        idx = np.arange(self.n).reshape(rows, cols)
        return [idx.ravel(), idx[:, ::-1].ravel(), idx[::-1, :].ravel(), idx[::-1, ::-1].ravel()]


def to_gray8(image: np.ndarray) -> np.ndarray:
    """8-bit grey of a mono/RGB uint8, uint16 or float image (detectors need 8-bit)."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, np.uint8)
    return np.round((img - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def event_image(cd: np.ndarray, width: int, height: int) -> np.ndarray:
    """8-bit grey accumulation of a blink's events (ON white, OFF black, no event grey), slightly smoothed."""
    if len(cd) and (int(cd["x"].max()) >= width or int(cd["y"].max()) >= height):
        raise CalibrationError(f"events reach ({int(cd['x'].max())}, {int(cd['y'].max())}) outside the "
                               f"{width}x{height} event sensor: inconsistent sizes")
    rgb = accumulate(cd, width, height, DETECTION_PALETTE)
    return cv2.GaussianBlur(rgb[..., 0], (0, 0), 0.7)


def detect_corners(image: np.ndarray, board: Board) -> np.ndarray | None:
    """Sub-pixel inner corners (N, 2) float64 in the detector's order, or None when the board is not found."""
    flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
    found, corners = cv2.findChessboardCornersSB(to_gray8(image), board.corners, flags=flags)
    if not found:
        return None
    return corners.reshape(-1, 2).astype(np.float64)


@dataclass(frozen=True)
class TargetView:
    """Corners of one pose in both cameras (either may be None when not found), for reports and fitting."""

    rgb: np.ndarray | None
    event: np.ndarray | None
    label: str = ""


def _intrinsics(views: list[np.ndarray], board: Board, size: tuple[int, int]) -> Intrinsics:
    obj = [board.object_points()] * len(views)
    img = [v.astype(np.float32).reshape(-1, 1, 2) for v in views]
    rms, k, d, _, _ = cv2.calibrateCamera(obj, img, size, None, None, flags=cv2.CALIB_FIX_K3)
    return Intrinsics(k, d.ravel(), float(rms), len(views))


def _rotation_deg(h: np.ndarray, centre: np.ndarray) -> float:
    """Rotation of ``h`` at ``centre`` after removing a left-right mirror (|angle| in degrees)."""
    eps = 1.0
    p = (np.asarray(centre, np.float64) + np.array([[0, 0], [eps, 0], [0, eps]])).reshape(-1, 1, 2)
    q = cv2.perspectiveTransform(p, h).reshape(-1, 2)
    jac = np.column_stack([q[1] - q[0], q[2] - q[0]])
    if np.linalg.det(jac) < 0:
        jac = jac @ np.diag([-1.0, 1.0])
    return abs(math.degrees(math.atan2(jac[1, 0], jac[0, 0])))


def _transfer(h: np.ndarray, src: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(src.reshape(-1, 1, 2), h).reshape(-1, 2)


def _choose_orders(ev: list[np.ndarray], rgb: list[np.ndarray], board: Board, centre: np.ndarray) -> list[int]:
    """Per view, the event-grid order (index into ``board.orders()``) consistent with one homography."""
    orders = board.orders()
    seeds = []
    for v in range(len(ev)):
        for order in orders:
            h, _ = cv2.findHomography(ev[v][order], rgb[v], 0)
            if h is None:
                continue
            choice, total = [], 0.0
            for w in range(len(ev)):
                errs = [float(np.mean(np.linalg.norm(_transfer(h, ev[w][o]) - rgb[w], axis=1))) for o in orders]
                choice.append(int(np.argmin(errs)))
                total += min(errs)
            seeds.append((total / len(ev), _rotation_deg(h, centre), choice))
    if not seeds:
        raise CalibrationError("no homography fits the detected corners (degenerate corner sets)")
    best = min(s[0] for s in seeds)
    near = [s for s in seeds if s[0] <= 1.5 * best + 0.5]  # all fit: single view or the board never moved
    return min(near, key=lambda s: s[1])[2]


def calibrate_spatial(views: list[TargetView], board: Board, rgb_size: tuple[int, int],
                      event_size: tuple[int, int], *, min_views_intrinsics: int = 8, ransac_px: float = 1.0,
                      power_dpt: float | None = None) -> tuple[SpatialCalibration, list[str]]:
    """Fit the event→RGB geometry from ``views``; returns the calibration and notes (what was skipped and why).

    Views where either camera missed the board are ignored for the homography but still count for that
    camera's intrinsics. Raises CalibrationError when no view has the board in both cameras, or corners lie
    outside the given image sizes.
    """
    notes: list[str] = []
    for name, size, key in (("RGB", rgb_size, "rgb"), ("event", event_size, "event")):
        for i, v in enumerate(views):
            pts = getattr(v, key)
            if pts is not None and (pts.shape != (board.n, 2) or pts.min() < -0.5
                                    or np.any(pts.max(axis=0) > np.asarray(size) - 0.5)):
                raise CalibrationError(f"view {v.label or i}: {name} corners do not fit a {size[0]}x{size[1]} "
                                       f"image with a {board.corners} board: inconsistent sizes")
    pairs = [v for v in views if v.rgb is not None and v.event is not None]
    if not pairs:
        found = sum(v.rgb is not None for v in views), sum(v.event is not None for v in views)
        raise CalibrationError(f"the {board.corners[0]}x{board.corners[1]} board was found in both cameras in none "
                               f"of {len(views)} views (RGB: {found[0]}, events: {found[1]}); check the board size "
                               "(inner corners), focus, exposure and that the target blinks during the recording")
    intr = {}
    for name, size, key in (("rgb", rgb_size, "rgb"), ("event", event_size, "event")):
        found = [getattr(v, key) for v in views if getattr(v, key) is not None]
        if len(found) >= min_views_intrinsics:
            intr[name] = _intrinsics(found, board, size)
        else:
            intr[name] = None
            notes.append(f"{name} intrinsics skipped: {len(found)} views with the board < {min_views_intrinsics} "
                         "(the homography is fitted on raw, distorted corners)")
    ev = [p.event if intr["event"] is None else intr["event"].undistort(p.event) for p in pairs]
    rgb = [p.rgb if intr["rgb"] is None else intr["rgb"].undistort(p.rgb) for p in pairs]
    centre = (np.asarray(event_size, np.float64) - 1) / 2
    if len(pairs) == 1:
        notes.append("one view: the corner order was chosen assuming at most a left-right mirror and a small "
                     "rotation; record several poses to make it unambiguous")
    orders = board.orders()
    chosen = _choose_orders(ev, rgb, board, centre)
    src = np.concatenate([e[orders[c]] for e, c in zip(ev, chosen, strict=True)])
    dst = np.concatenate(rgb)
    h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, ransac_px, maxIters=5000, confidence=0.999)
    if h is None:
        raise CalibrationError("RANSAC found no event→RGB homography; check the corner detections in the report")
    spatial = SpatialCalibration(rgb_size, event_size, h, intr["rgb"], intr["event"], power_dpt, len(pairs))
    per_view = []
    for p, c in zip(pairs, chosen, strict=True):
        err = np.linalg.norm(spatial.event_to_rgb(p.event[orders[c]]) - p.rgb, axis=1)
        per_view.append(err)
    allerr = np.concatenate(per_view)
    error = {"mean": float(allerr.mean()), "rms": float(np.sqrt(np.mean(allerr ** 2))), "max": float(allerr.max()),
             "per_view": [float(e.mean()) for e in per_view], "inliers": int(inliers.sum()), "points": len(src)}
    return SpatialCalibration(rgb_size, event_size, h, intr["rgb"], intr["event"], power_dpt, len(pairs),
                              error), notes


def event_order(view: TargetView, spatial: SpatialCalibration, board: Board) -> np.ndarray:
    """The view's event corners re-ordered to match its RGB corners under ``spatial`` (for reports)."""
    errs = [np.mean(np.linalg.norm(spatial.event_to_rgb(view.event[o]) - view.rgb, axis=1)) for o in board.orders()]
    return view.event[board.orders()[int(np.argmin(errs))]]
