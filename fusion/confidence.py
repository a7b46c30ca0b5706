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

import numpy as np

LOBE = 0.5       #: a plane belongs to the chosen peak's lobe while it stays above this fraction of the peak
DISTINCT = 4.0   #: the peak counts as fully distinct when it holds 1 + (N − 1)/DISTINCT planes' worth of the volume


def peak_confidence(volume: np.ndarray, best: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1] from a non-negative per-plane volume (N, H, W) and the chosen plane (H, W)."""
    n = volume.shape[0]
    volume = np.maximum(volume, 0.0)
    top = np.take_along_axis(volume, best[None], axis=0)[0]
    if n < 2:
        return np.zeros(top.shape, np.float32)
    k = np.arange(n).reshape(-1, 1, 1)
    below = volume < LOBE * top[None]
    lobe_end = np.where((k > best) & below, k, n).min(axis=0)       # first plane past the lobe, upwards
    lobe_start = np.where((k < best) & below, k, -1).max(axis=0)    # first plane past the lobe, downwards
    outside = (k >= lobe_end[None]) | (k <= lobe_start[None])
    pad = np.full_like(volume[:1], -1.0)
    is_peak = (volume >= np.concatenate([pad, volume[:-1]])) & (volume >= np.concatenate([volume[1:], pad]))
    competitor = np.where(outside & is_peak, volume, 0.0).max(axis=0)
    safe_top = np.maximum(top, np.float32(1e-12))
    margin = 1.0 - competitor / safe_top
    share = top / np.maximum(volume.sum(axis=0), np.float32(1e-12))
    peaked = np.clip((share * n - 1.0) / (n - 1.0) * DISTINCT, 0.0, 1.0)
    return np.clip(margin * peaked, 0.0, 1.0).astype(np.float32)
