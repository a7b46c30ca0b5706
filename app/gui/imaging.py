"""Array preparation for display, run on worker threads (never on the GUI thread): levels, event colours.

pyqtgraph draws fastest from C-contiguous uint8/uint16/float32 arrays with explicit levels (app-notes §4.1);
everything here produces exactly that, so the GUI thread only hands arrays to ``ImageItem.setImage``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capture.focal_stack import FocalStack
from capture.render import PALETTE_DARK

Levels = tuple[float, float]


def display_image(image: np.ndarray) -> tuple[np.ndarray, Levels]:
    """A display-ready copy of a camera image and levels that fit its bit depth.

    uint16 images are shown against the smallest ``2**bits - 1`` that holds their maximum, so a 12-bit camera
    fills the range without the flicker a per-frame min/max stretch would cause.
    """
    img = np.ascontiguousarray(image)
    if img.dtype == np.uint8:
        return img, (0.0, 255.0)
    if img.dtype == np.uint16:
        top = int(img.max(initial=1))
        return img, (0.0, float((1 << max(top.bit_length(), 8)) - 1))
    img = np.nan_to_num(img.astype(np.float32, copy=False))
    return img, (0.0, 1.0) if img.max(initial=0.0) <= 1.0 else (0.0, float(img.max()))


def event_counts_rgb(counts: np.ndarray, palette=PALETTE_DARK) -> np.ndarray:
    """An ON/OFF colour image of per-polarity counts ``(2, H, W)`` (index 0 = OFF, 1 = ON): the majority wins."""
    off, on = counts[0], counts[1]
    img = np.empty((*off.shape, 3), np.uint8)
    img[:] = palette[0]
    img[on > off] = palette[1]
    img[off > on] = palette[2]
    return img


def scalar_levels(values: np.ndarray, fallback: Levels = (0.0, 1.0)) -> Levels:
    """(min, max) of the finite values, widened when flat, so a colour bar never gets an empty range."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return fallback
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


@dataclass(frozen=True)
class ResultPictures:
    """Everything the fusion views show for one fused stack, prepared on the fusion worker thread."""

    all_in_focus: np.ndarray
    aif_levels: Levels
    depth_dpt: np.ndarray            # float32 (H, W)
    depth_levels: Levels             # the stack's focal-power range: absolute dioptres, never stretched
    confidence: np.ndarray           # float32 (H, W) in [0, 1]
    planes: np.ndarray               # (N, H, W[, 3]) display-ready frames
    plane_levels: Levels
    focal_powers_dpt: np.ndarray
    event_slices: np.ndarray | None  # (N, H, W, 3) uint8 ON/OFF images, None without events
    #: The events' own depth (float32 (H, W) dpt, NaN where they cannot tell: drawn transparent), None without.
    event_depth_dpt: np.ndarray | None = None


def result_pictures(stack: FocalStack, result) -> ResultPictures:
    """Display arrays for a :class:`~fusion.engine.FusionResult` of ``stack``."""
    aif, aif_levels = display_image(result.all_in_focus)
    planes, plane_levels = display_image(stack.frames)
    powers = np.asarray(stack.focal_powers_dpt, np.float64)
    depth_levels = (float(powers[0]), float(powers[-1])) if powers[-1] > powers[0] else scalar_levels(powers)
    events = None
    if stack.events is not None:
        events = np.stack([event_counts_rgb(stack.events[k]) for k in range(stack.n_planes)])
    event_depth = None if stack.event_focus_dpt is None else np.ascontiguousarray(stack.event_focus_dpt, np.float32)
    return ResultPictures(aif, aif_levels, np.ascontiguousarray(result.depth_dpt, np.float32), depth_levels,
                          np.ascontiguousarray(np.clip(result.confidence, 0, 1), np.float32), planes, plane_levels,
                          powers, events, event_depth)


def event_overlay(frame: np.ndarray, cd: np.ndarray, event_to_rgb, palette=PALETTE_DARK) -> np.ndarray:
    """The RGB frame in grey with each event drawn where the calibration maps it (ON/OFF colours).

    ``event_to_rgb`` maps (N, 2) event pixels to RGB pixels (``SpatialCalibration.event_to_rgb``); a good
    calibration puts the events on the frame's edges, a bad one shows them offset or mirrored.
    """
    img, (lo, hi) = display_image(frame)
    grey = img if img.ndim == 2 else img.astype(np.float32).mean(axis=2)
    grey = np.clip((grey.astype(np.float32) - lo) * (200.0 / max(hi - lo, 1e-9)), 0, 200).astype(np.uint8)
    out = np.repeat(grey[:, :, None], 3, axis=2)
    if cd.shape[0]:
        xy = np.column_stack([cd["x"], cd["y"]]).astype(np.float64)
        uv = np.rint(event_to_rgb(xy)).astype(np.int64)
        h, w = grey.shape
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        colours = np.array([(255, 80, 60), (60, 220, 255)], np.uint8)  # OFF red, ON cyan: visible on grey
        out[uv[inside, 1], uv[inside, 0]] = colours[cd["p"][inside].astype(np.intp)]
    return out
