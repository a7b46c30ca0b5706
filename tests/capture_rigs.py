"""Small simulated rigs for the capture tests: the shared SimRig, its two cameras and an LD4 on optosim://."""

from __future__ import annotations

import itertools
import os

from capture.plan import SweepPlan
from drivers.camera import CameraError, EventChunk
from drivers.optotune import OptotuneLensDriver4
from drivers.rig import Rig
from drivers.sim import get_simulator
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.rig import SimRig

SIZE = (48, 36)
SWEEP_HZ = 25.0
_names = itertools.count()


def plan(**changes) -> SweepPlan:
    """A short sine plan matching the rig below: 25 Hz over 0..2 dpt, 200 fps frames, both triggers wired."""
    base = dict(name="test", waveform="sine", low_dpt=0.0, high_dpt=2.0, frequency_hz=SWEEP_HZ, sweeps=3,
                frame_rate_hz=200.0, exposure_us=1000.0, strobe_channel=0, sync_channel=1, min_free_mib=0.0)
    base.update(changes)
    return SweepPlan(**base)


def lens_port() -> str:
    return f"optosim://capture-test-{os.getpid()}-{next(_names)}"


def sim_rig(*, event_camera_cls=SimEventCamera, sync_channel: int | None = 1, drop_every: int | None = None,
            waveform: str = "sine") -> tuple[Rig, str]:
    """(rig, lens port) — the simulated world sweeps as the plan above commands."""
    sim = SimRig.default(SIZE, sweep_hz=SWEEP_HZ, sweep_dpt=(0.0, 2.0), seed=3, sync_channel=sync_channel,
                         waveform=waveform)
    port = lens_port()
    lens = OptotuneLensDriver4(port)
    return Rig(lens, event_camera_cls(sim, chunk_us=5000), SimFrameCamera(sim, drop_every=drop_every), sim), port


def lens_is_safe(port: str) -> bool:
    """The simulated LD4 is in DC mode at zero current (its safe state)."""
    sim = get_simulator(port.removeprefix("optosim://"))
    return sim.mode == 1 and sim.dc_raw == 0


class FailingEventCamera(SimEventCamera):
    """A simulated event camera whose USB link dies after ``fail_after`` chunks."""

    fail_after = 30

    def read(self, timeout_s: float) -> EventChunk | None:
        self.fail_after -= 1
        if self.fail_after < 0:
            raise CameraError("simulated event camera: USB transfer failed (device unplugged?)")
        return super().read(timeout_s)
