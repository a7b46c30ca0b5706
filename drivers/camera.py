"""What capture needs from the cameras, whatever they are: Qt-free pull interfaces.

Both cameras are pulled, never pushed: the capture engine's reader threads call ``read(timeout_s)``
in a loop and hand results to bounded queues. Every timestamp is in integer microseconds, and says
which clock it is on, because the event camera's clock is the rig's master time base and frames
reach it only through strobe edges on the event camera's trigger-in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal, Self

import numpy as np

#: ``event``: the event camera's µs clock (hardware-synchronised or simulated); ``host``: time.monotonic_ns // 1000
#: of this computer; ``camera``: the frame camera's own tick counter converted to µs.
ClockDomain = Literal["event", "host", "camera"]


class CameraError(OSError):
    """A camera failed or is missing; the message names the camera and says what to do."""


class NotSupportedError(CameraError):
    """The camera (or this backend, e.g. file replay) lacks the facility asked for."""


@dataclass(frozen=True)
class CameraIdentity:
    vendor: str
    model: str
    serial: str
    firmware: str = ""
    #: Anything else worth recording in provenance (sensor generation, plugin name, ...).
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventChunk:
    """Everything an event camera delivered for the stream time up to ``t_end_us`` (exclusive).

    ``raw`` is the same stretch in the camera's native encoding (``EventCamera.raw_format``), so a
    recorder appends it to a RAW file without re-encoding; None for sources that have no raw form.
    """

    cd: np.ndarray            # EVENT_CD, time-sorted
    triggers: np.ndarray      # EVENT_EXT_TRIGGER, time-sorted
    t_end_us: int
    raw: bytes | None = None


@dataclass(frozen=True)
class Frame:
    """One image and when it was exposed."""

    image: np.ndarray          # (H, W) or (H, W, 3), uint8 or uint16
    index: int                 # frame counter since start(); gaps mean dropped frames
    exposure_start_us: int
    exposure_end_us: int
    clock: ClockDomain
    #: Focal power at mid-exposure where the source knows it (simulators, replay); capture computes it otherwise.
    focal_power_dpt: float | None = None


class Camera(ABC):
    """What every camera has: an identity, a sensor size, and a ``close()`` that never raises."""

    @property
    @abstractmethod
    def identity(self) -> CameraIdentity: ...

    @property
    @abstractmethod
    def geometry(self) -> tuple[int, int]:
        """(width, height) in pixels."""

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing
        """Stop and release the camera; never raises."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventCamera(Camera):
    """An event camera (live, simulated or replayed). Use as a context manager."""

    #: True once a finite source (a recording played as a camera) has delivered its last chunk; a camera's
    #: stream never ends this way.
    at_end: bool = False

    @property
    def paced(self) -> bool:
        """True when data come at the pace of the world (a camera): capture drops what it cannot keep up with.

        False for a source that delivers as fast as it is read (a recording played as a camera): capture
        then waits for room instead, since nothing is lost by waiting.
        """
        return True

    @property
    def raw_format(self) -> str | None:
        """Native encoding of ``EventChunk.raw`` ("EVT3", "EVT2"), or None when chunks carry no raw bytes."""
        return None

    @property
    def raw_header(self) -> dict[str, str]:
        """RAW header keys describing this camera (written verbatim at the top of a recording)."""
        return {}

    @abstractmethod
    def start(self) -> None:
        """Start streaming; events before this call are not delivered."""

    @abstractmethod
    def stop(self) -> None:
        """Stop streaming; ``read`` then returns what is still buffered, then None."""

    @abstractmethod
    def read(self, timeout_s: float) -> EventChunk | None:
        """The next chunk, or None if nothing arrived within ``timeout_s``; raises CameraError if the camera is gone."""

    def enable_trigger_in(self, channel: int) -> None:
        """Deliver edges on trigger-in ``channel`` as trigger events (off at camera start on Prophesee cameras)."""
        raise NotSupportedError(f"{self.identity.model}: no trigger input")

    def set_biases(self, biases: dict[str, int]) -> None:
        """Set sensor biases by name (Metavision's offsets from the factory default for IMX636)."""
        raise NotSupportedError(f"{self.identity.model}: biases cannot be set")

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Restrict events to one rectangular window."""
        raise NotSupportedError(f"{self.identity.model}: no region of interest")


class FrameCamera(Camera):
    """A frame (RGB or mono) camera. Use as a context manager."""

    @abstractmethod
    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        """Set exposure, frame rate and trigger mode before ``start()``; raises CameraError if out of range."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def read(self, timeout_s: float) -> Frame | None:
        """The next frame, or None if none arrived within ``timeout_s``; raises CameraError if the camera is gone."""
