"""A blinking chessboard shown to the simulated rig at several poses, for calibration with known ground truth.

docs/hardware-protocols.md §7.1: the event camera sees a static target only when something changes, so spatial
calibration uses a target that blinks (a chessboard on a monitor alternating with its inverse). Each view here is
one pose of the board with the sweep lens held at a fixed power: the RGB camera takes one frame of the board and the
event camera records the switch to the inverted board (the monitor's luminance ramps linearly over ``switch_us``).

The event lens may be distorted (``event_camera_matrix``/``event_distortion``, OpenCV's model): the rig's
:class:`~drivers.sim.optics.EventGeometry` homography then maps RGB px to *undistorted* event px, and the image is
resampled through the distortion afterwards, exactly what a real distorted lens does to an ideal pinhole image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from drivers.camera import Frame
from drivers.events.dtypes import EVENT_CD, concat_events
from drivers.sim.esim import EventSensorModel, adaptive_samples
from drivers.sim.exposure import SensorNoise
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics
from drivers.sim.scene import checkerboard_scene


def board_homography(camera_matrix: np.ndarray, rvec, tvec, square: float = 1.0) -> np.ndarray:
    """Board units → image px of a pinhole camera for a board at pose (rvec, tvec), squares ``square`` long."""
    r, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    h = np.asarray(camera_matrix, np.float64) @ np.column_stack([r[:, 0] * square, r[:, 1] * square,
                                                                 np.asarray(tvec, np.float64)])
    return h / h[2, 2]


def distortion_maps(camera_matrix: np.ndarray, distortion: np.ndarray, size: tuple[int, int]):
    """remap() maps that show an ideal (undistorted) image as the distorted lens would: dst(d) = src(undistort(d))."""
    w, h = size
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9)
    und = cv2.undistortPoints(grid, camera_matrix, distortion, None, None, camera_matrix, criteria).reshape(h, w, 2)
    return und[..., 0].astype(np.float32), und[..., 1].astype(np.float32)


@dataclass
class TargetView:
    """One pose: the RGB frame, the events of the blink, and the ground truth that produced them."""

    frame: Frame
    cd: np.ndarray
    board_to_rgb: np.ndarray           #: board units → RGB px (ground truth)
    t_switch_us: tuple[float, float]   #: the blink's luminance ramp on the event clock


@dataclass
class BlinkingTargetRig:
    """RGB camera and (mirrored, possibly distorted, lower-resolution) event camera looking at a blinking board."""

    rgb_size: tuple[int, int]
    geometry: EventGeometry
    corners: tuple[int, int] = (9, 6)
    power_dpt: float = 2.0                       #: sweep-lens power held during calibration (board in focus)
    optics: SweepOptics = field(default_factory=lambda: SweepOptics(blur_px_per_dpt=8.0))
    event_camera_matrix: np.ndarray | None = None
    event_distortion: np.ndarray | None = None
    noise: SensorNoise = field(default_factory=SensorNoise)
    threshold: float = 0.2
    switch_us: float = 2000.0
    exposure_us: float = 2000.0
    seed: int = 0
    _maps: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)

    def event_point(self, rgb_points: np.ndarray) -> np.ndarray:
        """Ground truth: where RGB px (N, 2) land on the event sensor (homography, then lens distortion)."""
        und = self.geometry.map_points(rgb_points)
        if self.event_distortion is None:
            return und
        k = np.asarray(self.event_camera_matrix, np.float64)
        norm = np.column_stack([(und[:, 0] - k[0, 2]) / k[0, 0], (und[:, 1] - k[1, 2]) / k[1, 1], np.ones(len(und))])
        pts, _ = cv2.projectPoints(norm, np.zeros(3), np.zeros(3), k, np.asarray(self.event_distortion, np.float64))
        return pts.reshape(-1, 2)

    def view(self, board_to_rgb: np.ndarray, index: int, t0_us: float) -> TargetView:
        """Simulate one pose; the RGB frame is exposed just before the blink starts at ``t0_us``."""
        w, h = self.rgb_size
        depth = self.optics.focus_dpt(self.power_dpt)  # the board is in focus at the calibration power
        scenes = [checkerboard_scene(w, h, self.corners, board_to_rgb, depth, inverted=inv) for inv in (False, True)]
        renderers = [DefocusRenderer(s, self.optics, self.geometry) for s in scenes]
        rng = np.random.default_rng([self.seed, index])
        rgb = self.noise.apply(renderers[0].render_rgb(self.power_dpt), rng)
        frame = Frame(rgb, index, round(t0_us - self.exposure_us), round(t0_us), "event", self.power_dpt)
        lumas = [self._event_luma(r) for r in renderers]
        eps = np.float32(self.optics.log_eps)
        t1_us = t0_us + self.switch_us

        def render(t: float) -> np.ndarray:
            a = np.clip((t - t0_us) / self.switch_us, 0.0, 1.0)
            return np.log((1 - a) * lumas[0] + a * lumas[1] + eps)

        sensor = EventSensorModel(self.geometry.width, self.geometry.height, threshold=self.threshold,
                                  seed=self.seed * 1000 + index)
        parts = [sensor.step(img, t) for t, img in adaptive_samples(render, t0_us - 100.0, t1_us + 100.0,
                                                                   threshold=self.threshold, max_dt_us=200.0)]
        cd = concat_events(parts, EVENT_CD)
        return TargetView(frame, cd[np.argsort(cd["t"], kind="stable")], board_to_rgb, (t0_us, t1_us))

    def _event_luma(self, renderer: DefocusRenderer) -> np.ndarray:
        """Linear luminance on the event grid, through the distortion when there is one."""
        luma = np.exp(renderer.render_log_luma(self.power_dpt)) - np.float32(self.optics.log_eps)
        if self.event_distortion is None:
            return luma
        if self._maps is None:
            size = (self.geometry.width, self.geometry.height)
            self._maps = distortion_maps(self.event_camera_matrix, self.event_distortion, size)
        return cv2.remap(luma, *self._maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
