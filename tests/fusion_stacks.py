"""Constructed focal stacks whose sharp plane is known per region, shared by the fusion tests.

Each region holds its own seeded pixel-noise texture and is sharp in exactly one plane; plane k shows it blurred
by a Gaussian of σ = ``blur_per_plane``·|k − t_region|. No occlusion is modelled, so away from region borders
the true plane and the true all-in-focus image are exact.
"""

from __future__ import annotations

import cv2
import numpy as np

from capture.focal_stack import FocalStack


def region_stack(true_planes: list[int], n_planes: int, *, size: tuple[int, int] = (64, 96), color: bool = True,
                 dtype=np.uint8, blur_per_plane: float = 1.2, seed: int = 0) -> tuple[FocalStack, np.ndarray,
                                                                                       np.ndarray]:
    """(stack, true plane map (H, W) int, all-in-focus image) with vertical strips, one per entry of ``true_planes``."""
    h, w = size
    rng = np.random.default_rng(seed)
    strips = np.array_split(np.arange(w), len(true_planes))
    plane_map = np.empty((h, w), np.int64)
    channels = 3 if color else 1
    sharp = rng.uniform(0.1, 0.9, (h, w, channels)).astype(np.float32)
    frames = np.empty((n_planes, h, w, channels), np.float32)
    for cols, t in zip(strips, true_planes, strict=True):
        plane_map[:, cols] = t
    for k in range(n_planes):
        for cols, t in zip(strips, true_planes, strict=True):
            sigma = blur_per_plane * abs(k - t)
            img = sharp if sigma == 0 else cv2.GaussianBlur(sharp, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
            frames[k][:, cols] = img.reshape(h, w, channels)[:, cols]
    if dtype != np.float32:
        peak = np.iinfo(dtype).max
        frames = (frames * peak + 0.5).astype(dtype)
        sharp = (sharp * peak + 0.5).astype(dtype)
    if not color:
        frames, sharp = frames[..., 0], sharp[..., 0]
    stack = FocalStack(frames, np.linspace(1.0, 3.0, n_planes), name="constructed")
    return stack, plane_map, sharp


def interior(plane_map: np.ndarray, margin: int = 8) -> np.ndarray:
    """Pixels at least ``margin`` px from a region border and from the image edge."""
    edges = np.zeros(plane_map.shape, np.uint8)
    edges[:, 1:] |= (plane_map[:, 1:] != plane_map[:, :-1]).astype(np.uint8)
    edges[:, :-1] |= (plane_map[:, 1:] != plane_map[:, :-1]).astype(np.uint8)
    near = cv2.dilate(edges, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0
    mask = ~near
    mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:] = False, False, False, False
    return mask
