"""The shared world of the simulated cameras: one scene, one lens path, one event clock.

The simulated event and frame cameras never talk to each other; both derive what they deliver from
this object deterministically (scene, optics, lens path, frame timing, seed), so their outputs agree
exactly — the frame strobe edges in the event stream match the frames' exposure windows — without a
shared thread or queue. Times are µs on the event clock, which starts at 0 when the rig is built.

The lens path is a fixed sweep unless the rig follows a simulated Lens Driver 4 (:meth:`SimRig.follow_lens`):
then every drive change the simulator publishes becomes a new segment of the path, starting at the rig's
present on the event clock (:meth:`SimRig.now_us`), so a sweep commanded through the real driver code is what
both cameras see, and its sync edges are what the event camera records.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from drivers.config import SimConfig
from drivers.sim.exposure import FrameSchedule, SensorNoise
from drivers.sim.moving import MovingObject
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics
from drivers.sim.optotune_sim import LensDrive, LensDriver4Sim
from drivers.sim.scene import make_scene
from drivers.sim.trajectory import ConstantTrajectory, LensPath, Segment, SweepTrajectory, Waveform


@dataclass
class SimRig:
    renderer: DefocusRenderer
    #: The lens' focal power before any change (the initial segment of ``lens_path``).
    initial_trajectory: Segment
    frame_rate_hz: float = 30.0
    exposure_us: float = 2000.0
    noise: SensorNoise = field(default_factory=SensorNoise)
    #: Trigger-in channel of the event camera wired to the frame camera's strobe output.
    strobe_channel: int = 0
    #: Trigger-in channel wired to the lens driver's sync output (None: lens sync not wired).
    sync_channel: int | None = 1
    seed: int = 0
    #: The event clock runs with the wall clock once a camera starts (True), or only as far as the cameras have
    #: simulated (False); this decides :meth:`now_us`, i.e. when on the event clock a lens command takes effect.
    realtime: bool = False
    #: An optional object moving in front of the scene (drawn by both cameras); None: a static scene.
    moving: MovingObject | None = None
    lens_path: LensPath = field(init=False)

    def __post_init__(self) -> None:
        self.lens_path = LensPath(self.initial_trajectory)
        self._lock = threading.Lock()
        self._present_us = 0.0
        self._wall_origin_s: float | None = None
        self._following: tuple[LensDriver4Sim, object] | None = None
        self._last_drive: LensDrive | None = None

    @classmethod
    def default(cls, rgb_size: tuple[int, int] = (320, 240), event_size: tuple[int, int] | None = None, *,
                depths_dpt: tuple[float, ...] = (0.5, 1.5, 3.0), sweep_hz: float = 10.0,
                sweep_dpt: tuple[float, float] = (0.0, 4.0), waveform: Waveform = "sine", seed: int = 0,
                image: np.ndarray | None = None, slant: tuple[float, float] | None = None,
                texture_contrast: float = 1.0, splitter: dict | None = None, **kwargs) -> SimRig:
        """A layered scene seen through a mirrored beam splitter, swept (default: a sine from 0 to 4 dpt at 10 Hz).

        ``splitter`` holds :meth:`EventGeometry.beam_splitter`'s angle_deg/shift_px/perspective; ``kwargs`` set the
        other fields (frame rate, noise, channels, realtime).
        """
        width, height = rgb_size
        scene = make_scene(width, height, depths=depths_dpt, seed=seed, image=image, slant=slant,
                           contrast=texture_contrast)
        geometry = EventGeometry.beam_splitter(rgb_size, event_size or rgb_size, **(splitter or {}))
        renderer = DefocusRenderer(scene, SweepOptics(blur_px_per_dpt=width / 40.0), geometry)
        return cls(renderer, SweepTrajectory(sweep_hz, *sweep_dpt, waveform=waveform), seed=seed, **kwargs)

    @classmethod
    def from_config(cls, cfg: SimConfig) -> SimRig:
        """The rig a ``[sim]`` config section describes."""
        noise = SensorNoise.for_light(cfg.white_e, full_well_e=cfg.full_well_e, read_noise_e=cfg.read_noise_e,
                                      bit_depth=cfg.bit_depth, gaussian_above_e=cfg.gaussian_shot_noise_above_e)
        image = None
        if cfg.background_image:
            image = cv2.imread(cfg.background_image, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"sim.background_image: cannot read {cfg.background_image} as an image")
            image = image[..., ::-1]  # OpenCV's BGR -> RGB
        m = cfg.moving_object
        moving = None if m is None else MovingObject(m.depth_dpt, m.radius_px, tuple(m.start_xy),
                                                     tuple(m.velocity_px_s), tuple(cfg.rgb_size), seed=cfg.seed)
        return cls.default(tuple(cfg.rgb_size), tuple(cfg.event_size), depths_dpt=tuple(cfg.depths_dpt),
                           sweep_hz=cfg.sweep_hz, sweep_dpt=(cfg.sweep_low_dpt, cfg.sweep_high_dpt),
                           waveform=cfg.sweep_waveform, seed=cfg.seed, noise=noise, strobe_channel=cfg.strobe_channel,
                           sync_channel=cfg.sync, realtime=cfg.realtime, moving=moving, image=image,
                           slant=None if cfg.slant_dpt is None else tuple(cfg.slant_dpt),
                           texture_contrast=cfg.texture_contrast,
                           splitter={"angle_deg": cfg.splitter_angle_deg, "shift_px": tuple(cfg.splitter_shift_px),
                                     "perspective": tuple(cfg.splitter_perspective)})

    def describe(self) -> dict:
        """What the simulated world is (for provenance): sizes, depths, wiring and the lens path's segments."""
        scene, geometry = self.renderer.scene, self.renderer.geometry
        return {
            "rgb_size": [scene.width, scene.height],
            "event_size": [geometry.width, geometry.height] if geometry is not None else [scene.width, scene.height],
            "layer_depths_dpt": [float(np.mean(layer.depth)) for layer in scene.layers],
            "seed": self.seed, "realtime": self.realtime,
            "strobe_channel": self.strobe_channel, "sync_channel": self.sync_channel,
            "frame_rate_hz": self.frame_rate_hz, "exposure_us": self.exposure_us,
            "lens_path": [describe_segment(start, seg) for start, seg in self.lens_path.segments],
            "moving_object": None if self.moving is None else self.moving.describe(),
        }

    @property
    def trajectory(self) -> Segment:
        """The trajectory in force now (since the last lens change); ``lens_path`` has the whole history."""
        return self.lens_path.latest

    def frames_starting(self, t0_us: float, t1_us: float) -> FrameSchedule:
        """Exposures of the free-running frame camera that start in [t0_us, t1_us) (frame k starts at k / fps)."""
        return FrameSchedule.free_running(self.frame_rate_hz, self.exposure_us, t0_us, t1_us, first_start_us=0.0)

    # -- the event clock ------------------------------------------------------------------------------
    def start_clock(self) -> None:
        """Called by each camera's ``start()``: the first one starts the wall-clock mapping of a realtime rig."""
        with self._lock:
            if self._wall_origin_s is None:
                self._wall_origin_s = time.monotonic()

    def advance(self, t_us: float) -> None:
        """A camera has delivered everything before ``t_us``: the rig's present is at least there."""
        with self._lock:
            self._present_us = max(self._present_us, float(t_us))

    def simulated_us(self) -> float:
        """How far the cameras have simulated on the event clock (the present of a rig that is not realtime)."""
        with self._lock:
            return self._present_us

    def now_us(self) -> float:
        """The present on the event clock: how far the cameras have simulated, or (realtime, once started) the
        wall time since the first camera started, whichever is later. 0 before anything ran."""
        with self._lock:
            present = self._present_us
            if self.realtime and self._wall_origin_s is not None:
                present = max(present, (time.monotonic() - self._wall_origin_s) * 1e6)
            return present

    # -- following a simulated lens driver ------------------------------------------------------------
    def follow_lens(self, sim: LensDriver4Sim) -> None:
        """Make the lens path follow ``sim`` from now on (its present drive is applied at once)."""
        self.unfollow_lens()
        listener = self._on_drive
        sim.add_listener(listener)
        self._following = (sim, listener)

    def unfollow_lens(self) -> None:
        """Stop following (the path keeps what it has); safe to call when not following."""
        if self._following is not None:
            sim, listener = self._following
            sim.remove_listener(listener)  # type: ignore[arg-type]
            self._following = None

    def poll_lens(self) -> None:
        """Bring the lens path up to date with commands already sent to a followed simulator (cameras call this
        before each step); nothing to do when not following."""
        following = self._following
        if following is not None:
            following[0].deliver_pending()

    def _on_drive(self, drive: LensDrive) -> None:
        """Start a new path segment at the present for the published drive (phase origin mapped to this clock).

        Before any camera has started or delivered anything, the drive replaces the whole path: nothing has been
        simulated yet, so it is what the lens has always been doing.
        """
        now = self.now_us()
        with self._lock:
            running = self._present_us > 0 or (self.realtime and self._wall_origin_s is not None)
            last, self._last_drive = self._last_drive, drive
        phase0_us = now - drive.phase_s * 1e6
        if last is not None and running and drive.phase_origin_s is not None and \
                (last.phase_origin_s, last.frequency_hz) == (drive.phase_origin_s, drive.frequency_hz):
            current = self.lens_path.latest  # the generator kept its phase: so does the path
            if isinstance(current, SweepTrajectory):
                phase0_us = current.t0_us - (0.5e6 / drive.frequency_hz if last.upper_dpt < last.lower_dpt else 0.0)
        self.lens_path.set(now if running else -math.inf, trajectory_for(drive, phase0_us))


def trajectory_for(drive: LensDrive, phase0_us: float) -> Segment:
    """The trajectory an LD4 drive produces with its generator phase 0 at ``phase0_us`` on the event clock.

    The LD4 generator starts sine and triangle at the lower current and the rectangle at the upper one, which is
    :class:`SweepTrajectory`'s convention with low = lower; an upper code below the lower one is the same wave
    between the swapped ends, half a period later. Equal ends (or DC) hold one power.
    """
    lo, hi = drive.lower_dpt, drive.upper_dpt
    if drive.waveform == "dc" or lo == hi or drive.frequency_hz <= 0:
        return ConstantTrajectory(lo)
    if hi < lo:
        lo, hi = hi, lo
        phase0_us += 0.5e6 / drive.frequency_hz
    return SweepTrajectory(drive.frequency_hz, lo, hi, waveform=drive.waveform, t0_us=phase0_us, lens=drive.lens)


def describe_segment(start_us: float, seg: Segment) -> dict:
    """One lens-path segment as plain data."""
    out: dict = {"from_us": None if start_us == -math.inf else start_us}
    if isinstance(seg, ConstantTrajectory):
        out.update(waveform="dc", dpt=seg.dpt)
    else:
        out.update(waveform=seg.waveform, frequency_hz=seg.freq_hz, low_dpt=seg.low_dpt, high_dpt=seg.high_dpt,
                   t0_us=seg.t0_us)
    return out
