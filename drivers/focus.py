"""What the rest of focalrig needs from a focus actuator, whatever drives the focus.

Capture code sweeps focus through this interface so that a liquid lens, a motorised focus ring or a
simulator are interchangeable. Positions come in two units: focal power in dioptres where the device
knows its own optical calibration, and the device's raw actuator unit (mA for a liquid-lens current
driver) where it does not. Every implementation promises that ``close()`` leaves the lens in its safe
state, so an aborted acquisition never leaves a lens driven hard.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

Unit = Literal["dpt", "raw"]


class FocusError(OSError):
    """A focus device failed; the message names the device and port and says what to try.

    A subclass of OSError because every failure is one of talking to hardware, so callers that
    already report I/O errors (the CLI) report these too.
    """


class Waveform(enum.Enum):
    """Periodic sweep shapes an actuator's own generator can run."""

    SINE = "sine"
    TRIANGLE = "triangle"
    RECTANGLE = "rectangle"


class FocusMode(enum.Enum):
    """What the actuator is doing now."""

    CURRENT = "current"          # holds a raw position (DC current for a liquid lens)
    FOCAL_POWER = "focal-power"  # holds a focal power, compensating temperature
    SINE = "sine"
    TRIANGLE = "triangle"
    RECTANGLE = "rectangle"
    ANALOG = "analog"            # follows an external analog input
    OTHER = "other"


#: How far past a range end a value may lie and still count as that end: float noise (a range decoded from the
#: wire, a stepped plan's last set point computed as low + k·step), far below an LD4's 0.005 dpt and 0.07 mA steps.
RANGE_SLACK = 1e-6


def within_range(value: float, lo_hi: tuple[float, float]) -> bool:
    """``value`` inside ``lo_hi``, give or take float noise (:data:`RANGE_SLACK`)."""
    return lo_hi[0] - RANGE_SLACK <= value <= lo_hi[1] + RANGE_SLACK


@dataclass(frozen=True)
class FocusIdentity:
    vendor: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class FocusCapabilities:
    """Ranges are (low, high); None where the device does not say (and the vendor does not document it)."""

    position_unit: str
    position_range: tuple[float, float]
    focal_power_range_dpt: tuple[float, float] | None
    waveforms: frozenset[Waveform]
    frequency_range_hz: tuple[float, float] | None
    has_sync_output: bool


@dataclass(frozen=True)
class FocusStatus:
    mode: FocusMode
    position: float | None          # raw unit (mA for a liquid lens), None where unknown
    focal_power_dpt: float | None   # the set point in focal-power mode, None otherwise
    temperature_c: float | None


class FocusActuator(ABC):
    """A connected focus device. Use as a context manager: ``with Driver(port) as lens: ...``."""

    @abstractmethod
    def connect(self) -> None:
        """Open the link and read identity and capabilities; raises FocusError."""

    @abstractmethod
    def close(self) -> None:
        """Put the lens in its safe state as far as the link allows, then release the link. Idempotent."""

    @property
    @abstractmethod
    def identity(self) -> FocusIdentity: ...

    @property
    @abstractmethod
    def capabilities(self) -> FocusCapabilities: ...

    @abstractmethod
    def set_focal_power(self, dpt: float) -> None:
        """Hold ``dpt`` dioptres (the device compensates temperature where it can)."""

    @abstractmethod
    def set_position(self, raw: float) -> None:
        """Hold a raw actuator position (``capabilities.position_unit``)."""

    @abstractmethod
    def start_sweep(self, waveform: Waveform, frequency_hz: float, low: float, high: float,
                    unit: Unit = "dpt") -> None:
        """Run the device's own periodic sweep between ``low`` and ``high`` (dioptres or raw units)."""

    @abstractmethod
    def stop_sweep(self) -> None:
        """End a sweep; the lens is left in its safe state."""

    @abstractmethod
    def status(self) -> FocusStatus: ...

    @abstractmethod
    def temperature_c(self) -> float: ...

    @abstractmethod
    def safe_state(self) -> None:
        """Drive the lens to the state it may stay in unattended (for a liquid lens: DC, zero current)."""

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
