"""An optional moving object in front of the simulated scene: a textured disc gliding across the view.

Real rigs see things move during a sweep; events then fire from motion as well as from focus changes, which is
what fusion must not mistake for focus cues. The object is a dead-leaves textured disc at its own depth, nearer
than every layer (so compositing it over the static scene is occlusion-correct), moving at constant velocity and
bouncing off the image borders. It is rendered on top of the static scene's images — the frame camera's
exposure sub-frames and the event camera's log-luminance samples — so the static scene keeps its caches.

Defocus: the disc and its texture are blurred by the disc PSF of the object's own depth at the lens power of each
sample, premultiplied (colour·alpha and alpha blurred together), then composited "over" the scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from drivers.sim.optics import SweepOptics, disc_kernel
from drivers.sim.scene import LUMA_WEIGHTS, dead_leaves


def _bounce(x0: float, v: float, lo: float, hi: float, t_s):
    """Position at ``t_s`` (scalar or array) of a point from ``x0`` at speed ``v`` reflecting between ``lo``, ``hi``."""
    span = hi - lo
    if span <= 0 or v == 0:
        return np.clip(x0 + 0.0 * np.asarray(t_s, np.float64), lo, hi)
    u = np.mod(x0 - lo + v * np.asarray(t_s, np.float64), 2 * span)
    return lo + np.where(u <= span, u, 2 * span - u)


@dataclass
class MovingObject:
    """A textured disc of ``radius_px`` at ``depth_dpt`` moving at ``velocity_px_s`` from ``start_xy`` (RGB px)."""

    depth_dpt: float
    radius_px: float
    start_xy: tuple[float, float]
    velocity_px_s: tuple[float, float]
    frame_size: tuple[int, int]               #: (width, height) of the RGB image it moves in
    seed: int = 0
    _sprite: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = 2 * math.ceil(self.radius_px) + 1
        texture = dead_leaves(n, n, np.random.default_rng([self.seed, 77]), r_max=max(2.0, self.radius_px / 3))
        yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
        alpha = np.clip(self.radius_px + 0.5 - np.hypot(xx, yy), 0.0, 1.0).astype(np.float32)
        self._sprite = (texture * alpha[..., None]).astype(np.float32), alpha

    def centre(self, t_us: float) -> tuple[float, float]:
        """The disc's centre (RGB px) at event-clock time ``t_us``; it stays wholly inside the image."""
        x, y = self.track(np.asarray([t_us], np.float64))[0]
        return float(x), float(y)

    def track(self, t_us: np.ndarray) -> np.ndarray:
        """Centres (N, 2) at event-clock times ``t_us`` (N,) — the ground-truth track, vectorised."""
        w, h = self.frame_size
        r, t = self.radius_px, np.asarray(t_us, np.float64) * 1e-6
        return np.column_stack([_bounce(self.start_xy[0], self.velocity_px_s[0], r, w - 1 - r, t),
                                _bounce(self.start_xy[1], self.velocity_px_s[1], r, h - 1 - r, t)])

    def speed_px_per_us(self) -> float:
        return math.hypot(*self.velocity_px_s) * 1e-6

    def layers(self, t_us: float, power: float, optics: SweepOptics) -> tuple[np.ndarray, np.ndarray]:
        """Premultiplied linear RGB (H, W, 3) and coverage (H, W) of the defocused disc at ``t_us``, full frame."""
        colour, alpha = self._sprite
        radius = 0.5 * float(optics.blur_diameter_px(power, self.depth_dpt))
        if radius > 0.5:
            k = disc_kernel(radius)
            pad = k.shape[0] // 2 + 1  # room for the blur to spread into: nothing is cut off
            colour = cv2.filter2D(np.pad(colour, ((pad, pad), (pad, pad), (0, 0))), -1, k,
                                  borderType=cv2.BORDER_CONSTANT)
            alpha = cv2.filter2D(np.pad(alpha, pad), -1, k, borderType=cv2.BORDER_CONSTANT)
        n = alpha.shape[0]
        cx, cy = self.centre(t_us)
        place = np.array([[1.0, 0, cx - (n - 1) / 2], [0, 1.0, cy - (n - 1) / 2], [0, 0, 1.0]])  # sub-pixel
        w, h = self.frame_size
        m = (optics.breathing_matrix(power, w, h) @ place)[:2].astype(np.float32)  # breathes like the scene
        return (cv2.warpAffine(colour, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0),
                cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0))

    def over_rgb(self, image: np.ndarray, t_us: float, power: float, optics: SweepOptics) -> np.ndarray:
        """``image`` (linear RGB, the static scene at ``power``) with the disc composited over it."""
        colour, alpha = self.layers(t_us, power, optics)
        return colour + (1.0 - alpha[..., None]) * image

    def over_log_luma(self, log_luma: np.ndarray, t_us: float, power: float, optics: SweepOptics,
                      event_homography: np.ndarray | None) -> np.ndarray:
        """The event grid's log luminance with the disc over it, warped like the scene: ``event_homography`` is the
        beam splitter's H (RGB px → event px; breathing is already in :meth:`layers`), None for the same grid."""
        colour, alpha = self.layers(t_us, power, optics)
        luma = colour @ LUMA_WEIGHTS
        if event_homography is not None:
            h, w = log_luma.shape
            luma = cv2.warpPerspective(luma, event_homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
            alpha = cv2.warpPerspective(alpha, event_homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
        eps = np.float32(optics.log_eps)
        scene = np.exp(log_luma) - eps
        return np.log(np.maximum(luma + (1.0 - alpha) * scene, 0.0) + eps).astype(np.float32)

    def describe(self) -> dict:
        return {"depth_dpt": self.depth_dpt, "radius_px": self.radius_px, "start_xy": list(self.start_xy),
                "velocity_px_s": list(self.velocity_px_s), "bounces_inside": list(self.frame_size)}
