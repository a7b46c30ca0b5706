"""Frame-camera physics: exposure integrated over the lens trajectory, sensor noise, frame timing and strobe edges.

docs/hardware-protocols.md §9.4: a fake frame source must render from the same scene and lens model as the event
simulator, integrate the exposure over the lens trajectory (focus blur during exposure) and emit strobe edges into
the event camera's trigger-in (§6 item 1: rising at exposure start, falling at exposure end; frame time = mid-exposure).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from drivers.sim.moving import MovingObject
from drivers.sim.optics import DefocusRenderer
from drivers.sim.trajectory import SweepTrajectory

MAX_SUBFRAMES = 256  #: cap on renders per exposure (a long exposure over a full sweep is a smooth average anyway)
_PROBES = 64  #: samples of D(t) per exposure used to measure how far the focal power travels


def subframe_count(renderer: DefocusRenderer, trajectory: SweepTrajectory, t_start_us: float, t_end_us: float,
                   *, max_step_px: float = 0.5) -> int:
    """Renders needed so no image feature moves more than ``max_step_px`` between consecutive sub-exposures.

    Two things change with D during an exposure: the blur-circle diameter (blur_px_per_dpt·focus_gain px per dpt)
    and, with breathing, the magnification (breathing_per_dpt·half-diagonal px per dpt at the corners). The focal
    power's path length Σ|ΔD| (not just D_end − D_start, which is ~0 across a turnaround) times the larger of the
    two rates gives the image-space travel; sub-samples at ≤ ``max_step_px`` make the sum a faithful blur integral.
    """
    optics = renderer.optics
    d = trajectory.actual_dpt(np.linspace(t_start_us, t_end_us, _PROBES + 1))
    travel_dpt = float(np.sum(np.abs(np.diff(d))))
    half_diag = 0.5 * math.hypot(renderer.scene.width, renderer.scene.height)
    px_per_dpt = max(optics.blur_px_per_dpt * abs(optics.focus_gain), abs(optics.breathing_per_dpt) * half_diag)
    return int(min(MAX_SUBFRAMES, max(1, math.ceil(travel_dpt * px_per_dpt / max_step_px))))


def expose(renderer: DefocusRenderer, trajectory: SweepTrajectory, t_start_us: float, t_end_us: float, *,
           n_sub: int | None = None, moving: MovingObject | None = None,
           render: Callable[[float], np.ndarray] | None = None) -> np.ndarray:
    """Mean linear irradiance (H, W, 3) float32 over the exposure [t_start_us, t_end_us] along actual_dpt(t).

    Midpoint rule over ``n_sub`` equal sub-intervals (default: :func:`subframe_count`), so an exposure during
    which the lens barely moves is exactly one render at the mid-exposure power, and a long one averages the
    images seen while the focus travels (focus blur during exposure), and a ``moving`` object is drawn at each
    sub-frame's time (motion blur). The result is time-averaged, in the
    renderer's radiance units; the exposure time's effect on signal level belongs to :class:`SensorNoise`.
    ``render`` replaces ``renderer.render_rgb`` (e.g. an :class:`~drivers.sim.optics.RgbCache` of it).
    """
    if t_end_us <= t_start_us:
        raise ValueError("exposure must have t_end_us > t_start_us")
    if n_sub is None:
        n_sub = subframe_count(renderer, trajectory, t_start_us, t_end_us)
        if moving is not None:  # motion blur: a sub-frame per pixel the object travels
            n_sub = min(MAX_SUBFRAMES, max(n_sub, math.ceil(moving.speed_px_per_us() * (t_end_us - t_start_us))))
    dt = (t_end_us - t_start_us) / n_sub
    times = t_start_us + dt * (np.arange(n_sub) + 0.5)
    powers = trajectory.actual_dpt(times)
    render = renderer.render_rgb if render is None else render
    acc = np.zeros((renderer.scene.height, renderer.scene.width, 3), np.float64)
    for t, d in zip(times, powers, strict=True):
        image = render(float(d))
        acc += image if moving is None else moving.over_rgb(image, float(t), float(d), renderer.optics)
    return (acc / n_sub).astype(np.float32)


def _srgb_encode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


@dataclass(frozen=True)
class SensorNoise:
    """Poisson–Gaussian sensor: photo-electrons ~ Poisson, well clips at full well, Gaussian read noise, ADC.

    ``electrons_per_unit`` is the mean photo-electron count for linear irradiance 1.0 with the chosen exposure
    time, aperture and QE (exposure time scales it linearly). ``e_per_dn`` is the conversion gain (default: full
    well maps to the top code). In linear output the DN mean is e/e_per_dn and its variance
    (signal_e + read_noise_e²)/e_per_dn² + 1/12 (quantisation) below saturation. ``output`` "srgb" or "gamma"
    (1/``gamma``) re-encodes the normalised linear DN to the same bit depth, as a camera's output LUT does.

    ``gaussian_above_e``: pixels expecting at least this many photo-electrons draw shot and read noise together
    from the Gaussian limit N(μ, μ + σ_read²) in float32 (about 4x faster: the live simulated camera uses 100 e⁻;
    Poisson(100) has skewness 0.1, invisible after a conversion gain of tens of e⁻/DN), the others from Poisson(μ)
    plus Gaussian read noise. The default (inf) draws Poisson everywhere, bit for bit as synthetic data always
    has. Either way the well clips at ``full_well_e``.
    """

    full_well_e: float = 10_000.0
    electrons_per_unit: float = 5_000.0
    read_noise_e: float = 3.0
    bit_depth: int = 8
    e_per_dn: float | None = None
    output: Literal["linear", "srgb", "gamma"] = "linear"
    gamma: float = 2.2
    gaussian_above_e: float = math.inf

    def __post_init__(self) -> None:
        if not 1 <= self.bit_depth <= 16:
            raise ValueError("bit_depth must be 1..16")

    @classmethod
    def for_light(cls, white_e: float, **kwargs) -> SensorNoise:
        """A sensor whose white surface collects ``white_e`` photo-electrons per exposure, with the gain a camera's
        auto-gain would set: white stays at the code it has at the default light level (half of full scale), so
        less light makes a noisier image, not a darker one."""
        noise = cls(electrons_per_unit=white_e, **kwargs)
        return replace(noise, e_per_dn=noise.gain_e_per_dn * white_e / cls.electrons_per_unit)

    @property
    def max_dn(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def gain_e_per_dn(self) -> float:
        return self.full_well_e / self.max_dn if self.e_per_dn is None else self.e_per_dn

    def apply(self, linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy, quantised image: uint8 for bit_depth ≤ 8, else uint16; same shape as ``linear``."""
        dn = np.clip(self._electrons(linear, rng) / self.gain_e_per_dn, 0.0, self.max_dn)
        if self.output != "linear":
            v = dn / self.max_dn
            dn = self.max_dn * (_srgb_encode(v) if self.output == "srgb" else np.power(v, 1 / self.gamma))
        return np.round(dn).astype(np.uint8 if self.bit_depth <= 8 else np.uint16)

    def _electrons(self, linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Photo-electrons (the well clipped) plus read noise, per pixel."""
        if math.isinf(self.gaussian_above_e):
            mean_e = np.clip(np.asarray(linear, np.float64), 0.0, None) * self.electrons_per_unit
            electrons = np.minimum(rng.poisson(mean_e).astype(np.float64), self.full_well_e)
            electrons += rng.normal(0.0, self.read_noise_e, electrons.shape)
            return electrons
        mean_e = np.clip(np.asarray(linear, np.float32), 0.0, None) * np.float32(self.electrons_per_unit)
        sigma = np.sqrt(mean_e + np.float32(self.read_noise_e ** 2))
        electrons = mean_e + sigma * rng.standard_normal(mean_e.shape, dtype=np.float32)
        low = mean_e < self.gaussian_above_e
        if low.any():
            few = mean_e[low].astype(np.float64)
            electrons[low] = np.minimum(rng.poisson(few), self.full_well_e) + rng.normal(0.0, self.read_noise_e,
                                                                                           few.shape)
        return np.minimum(electrons, np.float32(self.full_well_e))


class FrameSchedule:
    """Exposure windows of a free-running or externally triggered camera, and the strobe edges they produce.

    Free-running: exposure i starts at ``first_start_us`` + i/fps. Triggered: each trigger starts an exposure
    ``trigger_delay_us`` later, except a trigger arriving while the previous exposure is still open, which the
    camera ignores (overtrigger) — that frame is dropped, exactly what pairing against strobe edges must detect.
    """

    def __init__(self, starts_us: np.ndarray, exposure_us: float) -> None:
        if exposure_us <= 0:
            raise ValueError("exposure_us must be positive")
        self.starts_us = np.asarray(starts_us, np.float64)
        self.exposure_us = float(exposure_us)
        if np.any(np.diff(self.starts_us) < self.exposure_us):
            raise ValueError("exposures overlap")

    @classmethod
    def free_running(cls, fps: float, exposure_us: float, t0_us: float, t1_us: float, *,
                     first_start_us: float | None = None) -> FrameSchedule:
        """Frames starting in [t0_us, t1_us); the exposure must fit in the frame period."""
        period = 1e6 / fps
        if exposure_us > period:
            raise ValueError("exposure longer than the frame period")
        first = t0_us if first_start_us is None else first_start_us
        i = np.arange(math.ceil((t0_us - first) / period), math.ceil((t1_us - first) / period))
        return cls(first + i * period, exposure_us)

    @classmethod
    def triggered(cls, trigger_times_us, exposure_us: float, *, trigger_delay_us: float = 0.0) -> FrameSchedule:
        starts: list[float] = []
        for t in np.sort(np.asarray(trigger_times_us, np.float64)):
            start = float(t) + trigger_delay_us
            if not starts or start >= starts[-1] + exposure_us:
                starts.append(start)
        return cls(np.array(starts), exposure_us)

    @property
    def ends_us(self) -> np.ndarray:
        return self.starts_us + self.exposure_us

    @property
    def mid_us(self) -> np.ndarray:
        """Frame timestamps (§6: frame time = mid-exposure)."""
        return self.starts_us + 0.5 * self.exposure_us

    def strobe_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Strobe edge times (µs) and polarity (int16, 1 rising at exposure start, 0 falling at its end), sorted."""
        times = np.column_stack([self.starts_us, self.ends_us]).ravel()
        polarity = np.tile(np.array([1, 0], np.int16), self.starts_us.size)
        return times, polarity

    def mid_dpt(self, trajectory: SweepTrajectory) -> np.ndarray:
        """The lens' focal power at each frame's mid-exposure."""
        return trajectory.actual_dpt(self.mid_us)
