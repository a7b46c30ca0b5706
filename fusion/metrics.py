"""Fusion quality metrics (fusion-notes §7): full-reference, source-referenced and no-reference.

- PSNR and SSIM against an all-in-focus reference (synthetic ground truth). SSIM is Wang et al.'s with an
  11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, population statistics and the border of half a window
  cropped before averaging — skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``; colour images are averaged over channels.
- Q^{AB/F} (Xydeas–Petrović) in its N-source form, exactly as fusion-notes §7.2 defines it (vectorised; the
  seed repositories' per-pixel loops carry two bugs, see §2.4).
- No-reference sharpness: spatial frequency and average gradient of the fused image.
- Index accuracy against a ground-truth focal-index map.

Intensities are compared on the scale of the input dtype (255 for uint8, 65535 for uint16, 1.0 for float).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_QG = (0.9994, -15.0, 0.5)     # Γ_g, κ_g, σ_g
_QA = (0.9879, -22.0, 0.8)     # Γ_α, κ_α, σ_α


def data_range(image: np.ndarray) -> float:
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.asarray(image).dtype, 1.0)


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(reference: np.ndarray, image: np.ndarray, data_range_: float | None = None, *,
         mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images), over the pixels of ``mask`` (H, W) if given."""
    _check_pair(reference, image)
    peak = data_range(reference) if data_range_ is None else data_range_
    sq = (reference.astype(np.float64) - image.astype(np.float64)) ** 2
    mse = float(np.mean(sq if mask is None else sq[mask]))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _ssim_plane(x: np.ndarray, y: np.ndarray, peak: float, mask: np.ndarray | None = None) -> float:
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def blur(a):
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = 5
    if min(s.shape) > 2 * pad:
        s = s[pad:-pad, pad:-pad]
        mask = None if mask is None else mask[pad:-pad, pad:-pad]
    return float(s.mean() if mask is None else s[mask].mean())


def ssim(reference: np.ndarray, image: np.ndarray, data_range_: float | None = None, *,
         mask: np.ndarray | None = None) -> float:
    """Mean SSIM (Gaussian window) over the pixels of ``mask`` (H, W) if given; a colour image's channels are
    averaged."""
    _check_pair(reference, image)
    peak = data_range(reference) if data_range_ is None else data_range_
    x, y = reference.astype(np.float64), image.astype(np.float64)
    if x.ndim == 2:
        return _ssim_plane(x, y, peak, mask)
    return float(np.mean([_ssim_plane(x[..., c], y[..., c], peak, mask) for c in range(x.shape[2])]))


def _luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma as float64 on the image's own scale (grey passes through)."""
    a = image.astype(np.float64)
    return a if a.ndim == 2 else a @ np.array([0.299, 0.587, 0.114])


def _gradients(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel strength g and orientation α = atan(s_y/s_x) (π/2 where s_x = 0), per §7.2."""
    sx = cv2.Sobel(y, cv2.CV_64F, 1, 0, ksize=3)
    sy = cv2.Sobel(y, cv2.CV_64F, 0, 1, ksize=3)
    g = np.hypot(sx, sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
    return g, alpha


def _edge_preservation(gx: np.ndarray, ax: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
    """Q^{XF} = Q_g · Q_α per pixel."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(gx > gf, gf / gx, np.where(gx == gf, 1.0, gx / gf))
    a = 1.0 - np.abs(ax - af) / (np.pi / 2)
    qg = _QG[0] / (1.0 + np.exp(_QG[1] * (g - _QG[2])))
    qa = _QA[0] / (1.0 + np.exp(_QA[1] * (a - _QA[2])))
    return qg * qa


def qabf(sources, fused: np.ndarray) -> float:
    """N-source Q^{1..N/F} = Σ_n Σ_ij Q^{nF}·g_n / Σ_n Σ_ij g_n (L = 1), fusion-notes §7.2; in [0, ~0.975]."""
    gf, af = _gradients(_luma(fused))
    num = den = 0.0
    for src in sources:
        _check_pair(np.asarray(src), fused)
        gn, an = _gradients(_luma(np.asarray(src)))
        num += float(np.sum(_edge_preservation(gn, an, gf, af) * gn))
        den += float(np.sum(gn))
    return num / den if den > 0 else 0.0


def spatial_frequency(image: np.ndarray) -> float:
    """SF = √(RF² + CF²) of the luma, on a [0, 1] scale (higher = more fine detail)."""
    y = _luma(image) / data_range(image)
    rf = np.sqrt(np.mean(np.diff(y, axis=1) ** 2))
    cf = np.sqrt(np.mean(np.diff(y, axis=0) ** 2))
    return float(np.hypot(rf, cf))


def average_gradient(image: np.ndarray) -> float:
    """AG = mean √((∂x² + ∂y²)/2) of the luma on a [0, 1] scale (forward differences)."""
    y = _luma(image) / data_range(image)
    dx = np.diff(y, axis=1)[:-1, :]
    dy = np.diff(y, axis=0)[:, :-1]
    return float(np.mean(np.sqrt((dx * dx + dy * dy) / 2.0)))


def index_accuracy(index: np.ndarray, truth: np.ndarray, tolerance: float = 1.0) -> dict[str, float]:
    """Mean absolute plane error and the share of pixels within ``tolerance`` planes of the truth (NaN = unknown)."""
    err = np.abs(index.astype(np.float64) - truth.astype(np.float64))
    valid = np.isfinite(err)
    if not valid.any():
        return {"index_mae": math.nan, "within_tol": math.nan}
    return {"index_mae": float(err[valid].mean()), "within_tol": float(np.mean(err[valid] <= tolerance))}
