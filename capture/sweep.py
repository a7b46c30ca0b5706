"""One focal sweep's worth of data on the event clock: what the engine emits live and a recording yields on replay.

A sweep is one full period of the lens waveform (up half then down half) for periodic waveforms, or
one pass over the steps of a stepped plan. Calibration turns a :class:`SweepData` into a
:class:`~capture.focal_stack.FocalStack`; the GUI and ``focalrig fuse`` hand it over without caring
whether it came from live devices or from a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from drivers.camera import Frame

CommandedWaveform = Literal["sine", "triangle", "stepped"]


@dataclass(frozen=True)
class CommandedSweep:
    """What the lens was told to do, placed on the event clock.

    Periodic waveforms: at ``t0_us`` + k·period the command is at ``low_dpt`` and rising, at
    ``t0_us`` + (k + ½)·period it is at ``high_dpt`` (the LD4 generator's phase, and the simulator's).
    Stepped: ``step_powers_dpt[i]`` is held from ``t0_us + i·dwell_us`` for ``dwell_us``.
    ``t0_us`` comes from the lens sync trigger when wired (``soft_synced`` False); otherwise from the
    host clock at the moment the sweep was commanded (``soft_synced`` True: expect ms-level error).
    """

    waveform: CommandedWaveform
    low_dpt: float
    high_dpt: float
    t0_us: float
    frequency_hz: float = 0.0
    step_powers_dpt: tuple[float, ...] = ()
    dwell_us: float = 0.0
    soft_synced: bool = False

    def __post_init__(self) -> None:
        holding = self.waveform == "stepped" and len(self.step_powers_dpt) == 1  # one set point held
        if self.high_dpt <= self.low_dpt and not (holding and self.high_dpt == self.low_dpt):
            raise ValueError(f"high_dpt ({self.high_dpt}) must exceed low_dpt ({self.low_dpt})")
        if self.waveform == "stepped":
            if not self.step_powers_dpt or self.dwell_us <= 0:
                raise ValueError("a stepped sweep needs step_powers_dpt and dwell_us > 0")
        elif self.frequency_hz <= 0:
            raise ValueError("a periodic sweep needs frequency_hz > 0")

    @property
    def period_us(self) -> float:
        if self.waveform == "stepped":
            return self.dwell_us * len(self.step_powers_dpt)
        return 1e6 / self.frequency_hz

    def commanded_dpt(self, t_us: np.ndarray | float) -> np.ndarray:
        """Commanded focal power at event-clock times (vectorised; periodic beyond one period)."""
        t = np.asarray(t_us, dtype=np.float64) - self.t0_us
        if self.waveform == "stepped":
            steps = np.asarray(self.step_powers_dpt, dtype=np.float64)
            i = np.floor(t / self.dwell_us).astype(np.int64) % steps.size
            return steps[i]
        phase = np.mod(t / self.period_us, 1.0)
        mid, amp = (self.high_dpt + self.low_dpt) / 2, (self.high_dpt - self.low_dpt) / 2
        if self.waveform == "sine":
            return mid - amp * np.cos(2 * math.pi * phase)
        return self.low_dpt + (self.high_dpt - self.low_dpt) * (1 - np.abs(2 * phase - 1))


@dataclass(frozen=True)
class SweepData:
    """Everything captured during one sweep, all times µs on the event clock, window [t_start_us, t_end_us)."""

    index: int
    t_start_us: int
    t_end_us: int
    cd: np.ndarray                      # EVENT_CD, time-sorted, inside the window
    triggers: np.ndarray                # EVENT_EXT_TRIGGER inside the window (strobe and sync channels)
    frames: tuple[Frame, ...]           # exposure times on the event clock (clock == "event") where synced
    commanded: CommandedSweep
    event_geometry: tuple[int, int]     # (width, height) of the event sensor
    frame_geometry: tuple[int, int]     # (width, height) of the frame camera
    #: Measured focal power samples (t_us, dpt) where the driver reports them; empty otherwise.
    measured_dpt: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    #: Provenance: recording uid, plan name, trigger channels, calibration id ... (JSON-serialisable).
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.t_end_us <= self.t_start_us:
            raise ValueError("a sweep's window must not be empty")

    @property
    def duration_us(self) -> int:
        return self.t_end_us - self.t_start_us
