"""Reader over events already in memory; serves NPZ files and tests through the same interface."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from capture.formats.base import EventFileInfo, EventFileReader
from capture.formats.raw import split_by_count


class InMemoryEventReader(EventFileReader):
    """Chunks and time seeks over ``(cd, triggers)`` arrays sorted by time."""

    def __init__(self, cd: np.ndarray, triggers: np.ndarray, info: EventFileInfo) -> None:
        self.info = info
        self._cd = cd
        self._triggers = triggers
        self._cd_pos = 0
        self._trig_pos = 0

    def read_chunks(self, max_events: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        cd = self._cd[self._cd_pos :]
        trig = self._triggers[self._trig_pos :]
        self._cd_pos, self._trig_pos = self._cd.shape[0], self._triggers.shape[0]
        if cd.shape[0] or trig.shape[0]:
            yield from split_by_count(cd, trig, max_events)

    def seek_time(self, t_us: int) -> None:
        self._cd_pos = int(np.searchsorted(self._cd["t"], t_us, side="left"))
        self._trig_pos = int(np.searchsorted(self._triggers["t"], t_us, side="left"))
