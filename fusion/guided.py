"""Edge-aware smoothing of a per-plane cost or probability volume: the guided filter, shared by the fusion methods.

Smoothing the *volume* plane by plane, with the stack's mean luma as guide, and taking the argmax afterwards keeps
depth edges where the image has edges and fills weak-texture areas from their surroundings, without inventing
planes between the two sides of a depth edge as smoothing an index map would (fusion-notes §6.1). The classical
method filters its focus-energy distribution with it; the network filters its probability volume.
"""

from __future__ import annotations

import cv2
import numpy as np


class GuidedFilter:
    """Guided-filter statistics of one guide image, shared by every plane of the cost volume (He et al. 2013).

    With ``subsample`` s > 1 it is the fast guided filter (He & Sun 2015): the linear coefficients are fitted on
    s×s block means and bilinearly upsampled, which costs ~1/s² of the box filtering and changes the result by
    hundredths of a dB. Inputs are reflect-padded to multiples of s so a band starting on a multiple of s sees
    exactly the blocks the whole image does.
    """

    def __init__(self, guide: np.ndarray, radius: int, eps: float, subsample: int = 1):
        self.s = subsample
        self.shape = guide.shape
        self.guide = guide
        small = self._down(guide)
        r = max(1, round(radius / subsample))
        self.ksize = (2 * r + 1, 2 * r + 1)
        self.small = small
        self.mean = self._box(small)
        var = self._box(cv2.multiply(small, small)) - cv2.multiply(self.mean, self.mean)
        self.inv = 1.0 / (var + np.float32(eps))

    def _down(self, a: np.ndarray) -> np.ndarray:
        if self.s == 1:
            return a
        h, w = a.shape
        ph, pw = -h % self.s, -w % self.s
        if ph or pw:
            a = cv2.copyMakeBorder(a, 0, ph, 0, pw, cv2.BORDER_REFLECT)
        return cv2.resize(a, ((w + pw) // self.s, (h + ph) // self.s), interpolation=cv2.INTER_AREA)

    def _up(self, a: np.ndarray) -> np.ndarray:
        if self.s == 1:
            return a
        up = cv2.resize(a, (a.shape[1] * self.s, a.shape[0] * self.s), interpolation=cv2.INTER_LINEAR)
        return up[: self.shape[0], : self.shape[1]]

    def _box(self, a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, self.ksize)

    def filter(self, p: np.ndarray) -> np.ndarray:
        p = self._down(p)
        mean_p = self._box(p)
        a = cv2.multiply(self._box(cv2.multiply(self.small, p)) - cv2.multiply(self.mean, mean_p), self.inv)
        b = mean_p - cv2.multiply(a, self.mean)
        return cv2.multiply(self._up(self._box(a)), self.guide) + self._up(self._box(b))


def filter_volume(volume: np.ndarray, guide: np.ndarray, radius: int, eps: float, subsample: int = 1) -> np.ndarray:
    """Guided-filter every plane of ``volume`` (N, H, W) float32 in place with one guide (H, W); returns it."""
    gf = GuidedFilter(guide, radius, eps, subsample)
    for k in range(volume.shape[0]):
        volume[k] = gf.filter(volume[k])
    return volume
