"""Focus breathing from the sweep itself (docs/hardware-protocols.md §7.2): magnification s(D) from RGB frames.

Frames of a static scene taken at different focal powers differ by defocus and by a scaling about a fixed centre.
Neighbouring frames in focal power are registered with ``cv2.findTransformECC`` (MOTION_AFFINE) on low-passed
images — low-passing makes the two defocus levels alike, so what remains is the geometric change — and the scale
√det(A) of each pair is chained into log s per frame. s(D) = 1 + c₁(D − D_ref) + c₂(D − D_ref)² is fitted to
them (the quadratic term optional), normalised so that s(D_ref) = 1, and the centre comes from the pairs'
translations: a scaling by s about c moves the origin by (1 − s)·c.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.model import Breathing, CalibrationError
from calibration.spatial import to_gray8


def _register(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray | None:
    """2x3 affine A with b(A·x) ≈ a(x) (float64), or None when ECC does not converge.

    The low-passed images carry nothing finer than ``sigma``, so ECC runs on them shrunk by f = ⌊σ/2⌋ (at most 4)
    and the affine is mapped back exactly: with x_s = (x + ½)/f − ½ (pixel centres under INTER_AREA), the linear
    part is unchanged and t = f·t_s + f·(L − I)·c, c = ½/f − ½.
    """
    fa = cv2.GaussianBlur(a, (0, 0), sigma)
    fb = cv2.GaussianBlur(b, (0, 0), sigma)
    f = int(min(4, max(1, sigma // 2)))
    if f > 1:
        size = (a.shape[1] // f, a.shape[0] // f)
        fa = cv2.resize(fa[:size[1] * f, :size[0] * f], size, interpolation=cv2.INTER_AREA)
        fb = cv2.resize(fb[:size[1] * f, :size[0] * f], size, interpolation=cv2.INTER_AREA)
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-7)
    try:
        _, warp = cv2.findTransformECC(fa, fb, warp, cv2.MOTION_AFFINE, criteria, None, 5)
    except cv2.error:
        return None
    warp = warp.astype(np.float64)
    if f > 1:
        lin, c = warp[:, :2], 0.5 / f - 0.5
        warp = np.column_stack([lin, f * warp[:, 2] + f * (lin - np.eye(2)) @ np.array([c, c])])
    return warp


def estimate_breathing(images: list[np.ndarray], powers_dpt: np.ndarray, *, ref_dpt: float | None = None,
                       sigma_px: float | None = None, degree: int = 1) -> Breathing:
    """Fit s(D) from frames ``images`` taken at ``powers_dpt`` (static scene); ``ref_dpt`` defaults to the middle.

    ``sigma_px`` (default 2 % of the image width) is the low-pass applied before registration; it should exceed
    the largest blur-circle radius difference between neighbouring frames. ``degree`` 2 adds the quadratic term
    (needs many frames: in simulation one sweep's dozen frames gave a spurious c₂ ≈ 0.005). The scene must be
    one plane: at occlusion edges between depths defocus itself looks like a scale change (≈ 0.01/dpt in
    simulation).
    """
    powers = np.asarray(powers_dpt, np.float64)
    if len(images) != powers.size or powers.size < 3:
        raise CalibrationError(f"breathing needs at least 3 frames with a focal power each, got {len(images)} "
                               f"frames and {powers.size} powers; record a slower sweep or a faster frame rate")
    order = np.argsort(powers)
    powers = powers[order]
    grey = [to_gray8(images[i]).astype(np.float32) / 255.0 for i in order]
    shapes = {g.shape for g in grey}
    if len(shapes) != 1:
        raise CalibrationError(f"frames of different sizes {sorted(shapes)}: inconsistent sizes")
    h, w = grey[0].shape
    sigma = sigma_px or max(1.0, 0.02 * w)
    if degree not in (1, 2) or powers.size < degree + 2:
        raise CalibrationError(f"breathing degree must be 1 or 2 with at least degree + 2 frames, got {degree} "
                               f"with {powers.size} frames")
    log_s = [0.0]
    rows, rhs = [], []
    for i in range(1, len(grey)):
        warp = _register(grey[i - 1], grey[i], sigma)
        if warp is None:
            raise CalibrationError(f"frames at {powers[i - 1]:.3f} and {powers[i]:.3f} dpt could not be registered; "
                                   "the scene must be static and textured")
        s = float(np.sqrt(abs(np.linalg.det(warp[:, :2]))))
        log_s.append(log_s[-1] + np.log(s))
        rows.append(1.0 - s)
        rhs.append(warp[:, 2])
    log_s = np.asarray(log_s)
    ref = float(np.median(powers)) if ref_dpt is None else float(ref_dpt)
    poly = np.polyfit(powers - ref, np.exp(log_s), degree)  # highest power first; constant term last
    scale = poly / poly[-1]
    fit = np.polyval(scale, powers - ref)
    residual = float(np.sqrt(np.mean((np.exp(log_s) / poly[-1] - fit) ** 2)))
    coeffs = tuple(float(c) for c in scale[:-1][::-1])
    k = np.asarray(rows)
    if float(np.sum(k ** 2)) > 1e-8:
        centre = tuple(float(v) for v in (k[:, None] * np.asarray(rhs)).sum(axis=0) / np.sum(k ** 2))
    else:
        centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    if not (0 <= centre[0] < w and 0 <= centre[1] < h):
        centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    return Breathing(ref, coeffs, centre, int(powers.size), residual)
