"""NumPy ``.npz`` event files: ``cd`` (EventCD) and ``triggers`` (EventExtTrigger) arrays.

This is the layout of the shared OpenEB reference decodes. focalrig adds scalar ``width`` and
``height`` entries when it knows the geometry. NPZ is loaded whole, so it suits small files only.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from capture.formats.base import EventFileError, EventFileInfo, EventFileWriter
from capture.formats.memory import InMemoryEventReader
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events


def read_npz(path: str | Path, *, width: int | None = None, height: int | None = None) -> InMemoryEventReader:
    """Open an NPZ event file; ``width``/``height`` supply a geometry the file does not carry."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise EventFileError(path, f"not a readable .npz file ({exc})") from exc
    with data:
        if "cd" not in data.files:
            raise EventFileError(path, f"no 'cd' array (found: {', '.join(data.files) or 'nothing'})")
        cd = data["cd"]
        triggers = data["triggers"] if "triggers" in data.files else np.empty(0, EVENT_EXT_TRIGGER)
        stored = (int(data["width"]), int(data["height"])) if {"width", "height"} <= set(data.files) else None
    if cd.dtype != EVENT_CD:
        raise EventFileError(path, f"'cd' has dtype {cd.dtype}, expected Metavision EventCD (x,y,p,t)")
    if triggers.dtype != EVENT_EXT_TRIGGER:
        raise EventFileError(path, f"'triggers' has dtype {triggers.dtype}, expected EventExtTrigger (p,t,id)")
    inferred = []
    if width is not None and height is not None:
        geometry = (width, height)
    elif stored is not None:
        geometry = stored
    else:
        geometry = (int(cd["x"].max()) + 1 if cd.shape[0] else 0, int(cd["y"].max()) + 1 if cd.shape[0] else 0)
        inferred.append(f"geometry {geometry[0]}x{geometry[1]} guessed from the largest x/y (pass --width/--height)")
    info = EventFileInfo(path, "NPZ", geometry[0], geometry[1], {}, inferred)
    return InMemoryEventReader(cd, triggers, info)


class NpzEventWriter(EventFileWriter):
    """Collects events and writes one compressed ``.npz`` on close (NPZ cannot be appended to)."""

    def __init__(self, path: str | Path, width: int, height: int) -> None:
        self.path = Path(path)
        self._geometry = (width, height)
        self._cd: list[np.ndarray] = []
        self._triggers: list[np.ndarray] = []
        self._closed = False

    def write(self, cd: np.ndarray | None, triggers: np.ndarray | None = None) -> None:
        if cd is not None and len(cd):
            self._cd.append(np.asarray(cd, EVENT_CD))
        if triggers is not None and len(triggers):
            self._triggers.append(np.asarray(triggers, EVENT_EXT_TRIGGER))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        cd = concat_events(self._cd, EVENT_CD)
        trig = concat_events(self._triggers, EVENT_EXT_TRIGGER)
        try:
            np.savez_compressed(self.path, cd=cd, triggers=trig, width=self._geometry[0], height=self._geometry[1])
        except OSError as exc:
            raise EventFileError(self.path, f"cannot write: {exc.strerror or exc}") from exc
