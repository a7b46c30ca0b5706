"""Optional pre-alignment of hand-held focal stacks (frames not taken on the rig): one warp per frame.

Rig stacks are aligned by calibration (breathing corrected, events warped) and must not be touched here. For a
stack shot by hand or on a focusing rail, each frame is registered to the middle frame by ECC
(``cv2.findTransformECC``, affine or homography) on a downscaled luma, chained through neighbours as focus-stack
does (adjacent planes differ little in blur, distant ones a lot, and ECC needs them similar); a pair where ECC
does not converge falls back to ORB features + RANSAC homography. Frames are resampled to the reference grid
at full resolution (borders reflected, size kept); event counts, when present, move with nearest-neighbour
sampling so counts stay integers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import cv2
import numpy as np

from capture.focal_stack import FocalStack
from fusion.classical import luma_planes

Motion = Literal["affine", "homography"]
_ECC_MOTION = {"affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


class AlignmentError(ValueError):
    """Two frames could not be registered by ECC nor by features; the message names the planes."""


def _ecc(template: np.ndarray, moving: np.ndarray, motion: Motion, iterations: int, eps: float) -> np.ndarray:
    """3x3 map template coords → moving coords by ECC (raises cv2.error when it does not converge)."""
    warp = np.eye(3, dtype=np.float32) if motion == "homography" else np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, eps)
    _, warp = cv2.findTransformECC(template, moving, warp, _ECC_MOTION[motion], criteria, None, 5)
    return warp.astype(np.float64) if warp.shape == (3, 3) else np.vstack([warp, [0, 0, 1]]).astype(np.float64)


def _orb(template: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """3x3 homography template coords → moving coords from ORB matches (RANSAC)."""
    orb = cv2.ORB_create(4000)
    to8 = [(np.clip(a, 0, 1) * 255).astype(np.uint8) for a in (template, moving)]
    (kt, dt), (km, dm) = (orb.detectAndCompute(a, None) for a in to8)
    if dt is None or dm is None or len(kt) < 8 or len(km) < 8:
        raise AlignmentError("too few features")
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(dt, dm)
    if len(matches) < 8:
        raise AlignmentError("too few feature matches")
    src = np.float32([kt[m.queryIdx].pt for m in matches])
    dst = np.float32([km[m.trainIdx].pt for m in matches])
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if h is None:
        raise AlignmentError("no consistent homography")
    return h


def estimate_warps(stack: FocalStack, *, motion: Motion = "affine", reference: int | None = None,
                   max_side: int = 1024, iterations: int = 50, eps: float = 1e-4) -> np.ndarray:
    """(N, 3, 3) maps reference-frame pixel coords → each frame's pixel coords (identity for the reference)."""
    n, (h, w) = stack.n_planes, stack.shape
    ref = n // 2 if reference is None else reference
    s = min(1.0, max_side / max(h, w))
    small = luma_planes(stack.frames)
    if s < 1.0:
        small = np.stack([cv2.resize(p, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for p in small])
    scale = np.diag([s, s, 1.0])
    warps = np.repeat(np.eye(3)[None], n, axis=0)
    order = [*range(ref + 1, n), *range(ref - 1, -1, -1)]
    for k in order:
        j = k - 1 if k > ref else k + 1  # the neighbour already registered to the reference
        try:
            pair = _ecc(small[j], small[k], motion, iterations, eps)
        except cv2.error:
            try:
                pair = _orb(small[j], small[k])
            except AlignmentError as exc:
                raise AlignmentError(f"planes {j} and {k}: ECC did not converge and {exc}; "
                                     "the stack may be too different between planes to align") from None
        full = np.linalg.inv(scale) @ pair @ scale
        warps[k] = full @ warps[j]
    return warps


def apply_warps(stack: FocalStack, warps: np.ndarray, reference: int) -> FocalStack:
    """Resample every frame (and event slice) onto the reference grid given :func:`estimate_warps`' maps."""
    h, w = stack.shape
    frames = np.empty_like(stack.frames)
    events = None if stack.events is None else np.empty_like(stack.events)
    flags = cv2.WARP_INVERSE_MAP
    for k in range(stack.n_planes):
        m = warps[k]
        frames[k] = cv2.warpPerspective(stack.frames[k], m, (w, h), flags=cv2.INTER_LINEAR | flags,
                                        borderMode=cv2.BORDER_REFLECT)
        if events is not None:
            for p in range(2):  # float32 carries any count dtype through OpenCV exactly (counts < 2**24)
                events[k, p] = cv2.warpPerspective(stack.events[k, p].astype(np.float32), m, (w, h),
                                                   flags=cv2.INTER_NEAREST | flags, borderMode=cv2.BORDER_CONSTANT,
                                                   borderValue=0)
    meta = {**stack.meta, "aligned": {"reference": reference, "warps": warps.tolist()}}
    return replace(stack, frames=frames, events=events, meta=meta)


def align_stack(stack: FocalStack, *, motion: Motion = "affine", reference: int | None = None) -> FocalStack:
    """The stack registered to its middle (or ``reference``) plane; see the module docstring."""
    ref = stack.n_planes // 2 if reference is None else reference
    return apply_warps(stack, estimate_warps(stack, motion=motion, reference=ref), ref)
