"""What a fusion result's confidence means, one definition for every method.

Per pixel, confidence = (how clearly the chosen depth beats any *other* depth) × (how much the chosen plane stands
out of the stack at all):

- the competitor is the highest separate peak of the method's per-plane volume (cost volume or probability) — a
  local maximum outside the chosen peak's lobe, the run of planes around it that stay above half its height.
  Planes on the chosen peak's own shoulders are not competitors: they show the same depth, slightly defocused
  (in a frame-true stack two frames may sit 0.05 dpt apart). margin = 1 − competitor / peak;
- where every plane is about as sharp as every other (flat, untextured regions) nothing stands out and the index
  is a guess: peakedness = the peak's share of the volume, scaled so a peak holding 1 + (N − 1)/4 planes' worth
  (of N) counts as fully distinct.

So 1 means one focus fits and it stands out; values near 0 mean either no texture to judge by (the all-in-focus
pixel is fine there, its depth is not) or two depths fitting about equally (an occlusion edge, a reflection).
Measured on the product path's recordings (default rig, low light, weak texture): classical 0.49–0.70 where the
chosen plane is the truth's best, 0.18–0.22 where it is not; the network, whose probabilities are sharper,
0.96–0.97 against 0.25–0.39.
"""

from __future__ import annotations

import cv2
import numpy as np

LOBE = 0.5       #: a plane belongs to the chosen peak's lobe while it stays above this fraction of the peak
DISTINCT = 4.0   #: the peak counts as fully distinct when it holds 1 + (N − 1)/DISTINCT planes' worth of the volume


def peak_confidence(volume: np.ndarray, best: np.ndarray, *, step: int = 2) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a non-negative per-plane volume (N, H, W) and the chosen plane (H, W).

    Evaluated every ``step`` pixels and interpolated back: the volumes it reads are smooth at that scale (guided-
    filtered at half resolution), and a plane-by-plane pass over the full volume would cost as much as the fusion.
    """
    n = volume.shape[0]
    h, w = best.shape
    if n < 2:
        return np.zeros((h, w), np.float32)
    v = np.maximum(volume[:, ::step, ::step], 0.0)
    b = best[::step, ::step]
    top = np.take_along_axis(v, b[None], axis=0)[0]
    half = np.float32(LOBE) * top
    lobe_end = np.full(b.shape, n, np.int32)     # first plane above the chosen one that falls out of its lobe
    lobe_start = np.full(b.shape, -1, np.int32)  # ... and below it
    for k in range(n):
        lobe_end[(v[k] < half) & (b < k) & (lobe_end == n)] = k
    for k in range(n - 1, -1, -1):
        lobe_start[(v[k] < half) & (b > k) & (lobe_start == -1)] = k
    competitor = np.zeros_like(top)
    total = np.zeros_like(top)
    for k in range(n):  # the highest separate peak: a local maximum outside the chosen lobe
        total += v[k]
        peak = np.ones(b.shape, bool)
        if k > 0:
            peak &= v[k] >= v[k - 1]
        if k < n - 1:
            peak &= v[k] >= v[k + 1]
        outside = (lobe_end <= k) | (lobe_start >= k)
        np.maximum(competitor, np.where(peak & outside, v[k], 0.0), out=competitor)
    margin = 1.0 - competitor / np.maximum(top, np.float32(1e-12))
    share = top / np.maximum(total, np.float32(1e-12))
    peaked = np.clip((share * n - 1.0) / (n - 1.0) * DISTINCT, 0.0, 1.0)
    conf = np.clip(margin * peaked, 0.0, 1.0).astype(np.float32)
    if step == 1:
        return conf
    # Sample j sits at pixel step·j: an affine upsampling puts pixel x at sample x/step.
    return cv2.warpAffine(conf, np.array([[1.0 / step, 0, 0], [0, 1.0 / step, 0]]), (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
