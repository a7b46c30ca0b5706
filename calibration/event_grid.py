"""Where each RGB pixel of the focal-stack grid falls on the event sensor, at any focal power: the maps that
resample event data (per-plane counts, focus maps) into the RGB grid.
"""

from __future__ import annotations

import math
import weakref

import cv2
import numpy as np

from calibration.model import Breathing, SpatialCalibration


class _RgbToEventMap:
    """The RGB → event pixel map of one spatial calibration on a grid a little larger than the RGB image.

    Computing ``rgb_to_event`` (iterative undistortion, homography, distortion) for every RGB pixel costs ~45 ms at
    320×240, too much to repeat for every plane. Breathing only rescales the RGB grid about a centre, so the map at
    power D is this one sampled at S(D)·x: a bilinear remap of a smooth field, done on a grid 4× coarser and
    upsampled (the field is nearly affine: within 3e-4 px of the full-resolution map). The margin covers the largest
    breathing scale a sane lens shows (a few %), so S(D)·x stays inside the grid.
    """

    COARSE = 4  #: the per-plane map is sampled every COARSE pixels, then upsampled

    MARGIN = 0.04  #: of the larger side, on every side

    def __init__(self, spatial: SpatialCalibration) -> None:
        w, h = spatial.rgb_size
        self.pad = m = math.ceil(self.MARGIN * max(w, h)) + 2
        xs, ys = np.arange(-m, w + m, dtype=np.float64), np.arange(-m, h + m, dtype=np.float64)
        gx, gy = np.meshgrid(xs, ys)
        ev = spatial.rgb_to_event(np.column_stack([gx.ravel(), gy.ravel()])).reshape((*gy.shape, 2))
        mx, my = ev[..., 0], ev[..., 1]
        area = np.abs(np.gradient(mx, axis=1) * np.gradient(my, axis=0) - np.gradient(mx, axis=0)
                      * np.gradient(my, axis=1))
        self.maps = np.stack([mx, my, area], -1).astype(np.float32)
        self.size = (w, h)
        self._identity = tuple(cv2.split(np.ascontiguousarray(self.maps[m:m + h, m:m + w])))

    def at(self, breathing: Breathing | None, power_dpt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """remap() maps (RGB reference grid → event px) at ``power_dpt`` and the area ratio (event px per RGB px),
        each a contiguous float32 array."""
        if breathing is None:
            return self._identity
        a = breathing.matrix(power_dpt)
        s = float(a[0, 0])
        w, h = self.size
        c = self.COARSE
        wc, hc = -(-w // c) + 1, -(-h // c) + 1  # coarse nodes at 0, c, 2c ... covering the last pixel
        ux = (a[0, 0] * (c * np.arange(wc)) + a[0, 2] + self.pad).astype(np.float32)
        uy = (a[1, 1] * (c * np.arange(hc)) + a[1, 2] + self.pad).astype(np.float32)
        coarse = cv2.remap(self.maps, np.broadcast_to(ux, (hc, wc)).copy(),
                           np.broadcast_to(uy[:, None], (hc, wc)).copy(), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        # Node j sits at pixel c·j: an affine upsampling puts pixel x at node x/c (bilinear between nodes). Each
        # map is upsampled on its own, so each is a contiguous array: a channel view of one 3-channel map would be
        # copied by every remap() that reads it (measured: 0.98 against 0.46 ms per 640x480 remap).
        mx, my, area = (cv2.warpAffine(part, np.array([[1.0 / c, 0, 0], [0, 1.0 / c, 0]]), (w, h),
                                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
                        for part in cv2.split(coarse))
        return mx, my, area * np.float32(s * s)


_MAPS: weakref.WeakKeyDictionary[SpatialCalibration, _RgbToEventMap] = weakref.WeakKeyDictionary()


def event_maps(spatial: SpatialCalibration, breathing: Breathing | None,
               power_dpt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """remap() maps (RGB reference grid → event px) at ``power_dpt`` and the area ratio (event px per RGB px)."""
    table = _MAPS.get(spatial)
    if table is None:
        table = _MAPS[spatial] = _RgbToEventMap(spatial)
    return table.at(breathing, power_dpt)


