"""A rig: the focus actuator and the two cameras opened together, described together and released together.

``drivers.registry.open_rig`` builds one from a configuration; the capture engine, the CLI and the GUI use
it as a context manager. ``close()`` is the one place that guarantees the lens ends in its safe state whatever
failed before, so it never raises.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Self

from drivers.camera import Camera, EventCamera, FrameCamera
from drivers.focus import FocusActuator

if TYPE_CHECKING:
    from drivers.sim.rig import SimRig

log = logging.getLogger(__name__)


@dataclass
class Rig:
    lens: FocusActuator
    event_camera: EventCamera | None = None
    frame_camera: FrameCamera | None = None
    #: The shared simulated world when simulated cameras are used (their scene, lens path and event clock).
    sim: SimRig | None = None
    #: The configuration sections the rig was opened from (JSON-serialisable), kept for provenance.
    config: dict = field(default_factory=dict)
    _closed: bool = field(default=False, init=False, repr=False)

    def describe(self) -> dict:
        """Identity and configuration of every device, JSON-serialisable (recordings store it as provenance)."""
        out: dict = {"lens": _describe_lens(self.lens),
                     "event_camera": _describe_camera(self.event_camera),
                     "frame_camera": _describe_camera(self.frame_camera),
                     "sim": self.sim.describe() if self.sim is not None else None,
                     "config": self.config}
        if self.event_camera is not None:
            out["event_camera"]["raw_format"] = self.event_camera.raw_format
        return out

    def close(self) -> None:
        """Stop and release the cameras, then put the lens in its safe state and release it. Never raises.

        Safe to call twice; every failure is logged (the lens is still attempted when a camera fails).
        """
        if self._closed:
            return
        self._closed = True
        for name, cam in (("event camera", self.event_camera), ("frame camera", self.frame_camera)):
            if cam is not None:
                _quietly(f"closing the {name}", cam.close)
        _quietly("putting the lens in its safe state", self.lens.close)
        if self.sim is not None:
            _quietly("detaching the simulated rig from the lens", self.sim.unfollow_lens)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _quietly(what: str, fn) -> None:
    try:
        fn()
    except Exception:  # close() must go on to the lens whatever a device raised
        log.exception("rig: %s failed", what)


def _plain(value):
    """Dataclasses, tuples, frozensets and enums as JSON-friendly values."""
    if is_dataclass(value):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _describe_lens(lens: FocusActuator) -> dict:
    out: dict = {"class": type(lens).__name__, "port": getattr(lens, "port", None)}
    try:
        out["identity"] = _plain(lens.identity)
        out["capabilities"] = _plain(lens.capabilities)
    except Exception as exc:  # an unconnected lens is still described by what is known
        out["error"] = str(exc)
    return out


def _describe_camera(cam: Camera | None) -> dict | None:
    if cam is None:
        return None
    width, height = cam.geometry
    return {"class": type(cam).__name__, "identity": _plain(cam.identity), "geometry": [width, height]}
