"""The shared world of the simulated cameras: one scene, one lens trajectory, one event clock.

The simulated event and frame cameras never talk to each other; both derive what they deliver from
this object deterministically (scene, optics, sweep, frame timing, seed), so their outputs agree
exactly — the frame strobe edges in the event stream match the frames' exposure windows — without a
shared thread or queue. Times are µs on the event clock, which starts at 0 when the rig is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.sim.exposure import FrameSchedule, SensorNoise
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics
from drivers.sim.scene import make_scene
from drivers.sim.trajectory import SweepTrajectory


@dataclass
class SimRig:
    renderer: DefocusRenderer
    trajectory: SweepTrajectory
    frame_rate_hz: float = 30.0
    exposure_us: float = 2000.0
    noise: SensorNoise = field(default_factory=SensorNoise)
    #: Trigger-in channel of the event camera wired to the frame camera's strobe output.
    strobe_channel: int = 0
    #: Trigger-in channel wired to the lens driver's sync output (None: lens sync not wired).
    sync_channel: int | None = 1
    seed: int = 0

    @classmethod
    def default(cls, rgb_size: tuple[int, int] = (320, 240), event_size: tuple[int, int] | None = None, *,
                depths_dpt: tuple[float, ...] = (0.5, 1.5, 3.0), sweep_hz: float = 10.0,
                sweep_dpt: tuple[float, float] = (0.0, 4.0), seed: int = 0) -> SimRig:
        """A three-layer scene seen through a mirrored beam splitter, swept by a sine from 0 to 4 dpt."""
        width, height = rgb_size
        scene = make_scene(width, height, depths=depths_dpt, seed=seed)
        geometry = EventGeometry.beam_splitter(rgb_size, event_size or rgb_size)
        renderer = DefocusRenderer(scene, SweepOptics(blur_px_per_dpt=width / 40.0), geometry)
        return cls(renderer, SweepTrajectory(sweep_hz, *sweep_dpt), seed=seed)

    def frames_starting(self, t0_us: float, t1_us: float) -> FrameSchedule:
        """Exposures of the free-running frame camera that start in [t0_us, t1_us) (frame k starts at k / fps)."""
        return FrameSchedule.free_running(self.frame_rate_hz, self.exposure_us, t0_us, t1_us, first_start_us=0.0)
