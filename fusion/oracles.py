"""What the frames of a stack allow, read from the ground truth: the yardsticks printed beside every method.

- :func:`single_frame_oracle`: each pixel copied from the plane closest to the truth around it (mean squared error
  over a small window, so the choice is a plane's, not a noise sample's): the best a method that copies one plane
  per pixel can do with these frames.
- :func:`near_best_oracle`: each pixel the mean of its m locally best planes, m chosen per pixel by the truth:
  where several planes are near-sharp, averaging them beats any single copy because their noise averages out;
  where one plane is clearly sharpest, m = 1. No method that only weights real frames can beat it.
- :func:`depth_errors`: absolute depth error (dioptres) on the pixels whose texture lets focus be seen at all.

None of these is a fusion method: they need the answer.
"""

from __future__ import annotations

import cv2
import numpy as np

from capture.focal_stack import FocalStack

#: Window (px) of the local error that ranks planes.
WINDOW = 5


def _float(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32)


def _local_mse(a: np.ndarray, truth: np.ndarray, window: int) -> np.ndarray:
    d = (a - truth) ** 2
    if d.ndim == 3:
        d = d.mean(axis=-1)
    return cv2.boxFilter(d.astype(np.float32), cv2.CV_32F, (window, window))


def _as_output(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return np.clip(np.rint(image), 0, np.iinfo(dtype).max).astype(dtype)
    return image.astype(dtype)


def local_errors(stack: FocalStack, truth: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """(N, H, W) float32: each plane's mean squared error against ``truth`` over a ``window``² neighbourhood."""
    t = truth.astype(np.float32)
    return np.stack([_local_mse(_float(stack.frames[k]), t, window) for k in range(stack.n_planes)])


def single_frame_oracle(stack: FocalStack, truth: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The best single-plane copy: (image in the frames' dtype, plane index per pixel)."""
    best = local_errors(stack, truth, window).argmin(axis=0)
    idx = best[None, ..., None] if stack.is_color else best[None]
    return np.take_along_axis(stack.frames, idx, axis=0)[0], best


def near_best_oracle(stack: FocalStack, truth: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Per pixel, the mean of its m locally best planes with the m (1..N) whose mean is locally closest to truth."""
    t = truth.astype(np.float32)
    order = np.argsort(local_errors(stack, truth, window), axis=0)  # (N, H, W), best plane first
    frames = _float(stack.frames)
    total = np.zeros_like(frames[0])
    best_err = np.full(stack.shape, np.inf, np.float32)
    out = np.zeros_like(frames[0])
    for m in range(stack.n_planes):
        idx = order[m][None, ..., None] if stack.is_color else order[m][None]
        total += np.take_along_axis(frames, idx, axis=0)[0]
        mean = total / np.float32(m + 1)
        err = _local_mse(mean, t, window)
        better = err < best_err
        best_err[better] = err[better]
        out[better] = mean[better]
    return _as_output(out, stack.frames.dtype)


def textured(truth: np.ndarray, *, window: int = 7, min_contrast: float = 0.02) -> np.ndarray:
    """Pixels where focus can be told at all: local standard deviation of the truth's luma ≥ ``min_contrast`` of
    its data range (depth from focus is undefined on a flat patch)."""
    y = truth.astype(np.float32)
    if y.ndim == 3:
        y = y @ np.array([0.299, 0.587, 0.114], np.float32)
    peak = float(np.iinfo(truth.dtype).max) if np.issubdtype(truth.dtype, np.integer) else 1.0
    mean = cv2.boxFilter(y, cv2.CV_32F, (window, window))
    var = cv2.boxFilter(y * y, cv2.CV_32F, (window, window)) - mean * mean
    return np.sqrt(np.maximum(var, 0.0)) >= min_contrast * peak


def depth_errors(depth_dpt: np.ndarray, truth_dpt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Median absolute and RMS depth error (dpt) over ``mask``, and the fraction of the image it covers."""
    err = np.abs(depth_dpt.astype(np.float64) - truth_dpt.astype(np.float64))[mask]
    if err.size == 0:
        return {"depth_median_dpt": float("nan"), "depth_rmse_dpt": float("nan"), "depth_pixels": 0.0}
    return {"depth_median_dpt": float(np.median(err)), "depth_rmse_dpt": float(np.sqrt(np.mean(err ** 2))),
            "depth_pixels": float(mask.mean())}
