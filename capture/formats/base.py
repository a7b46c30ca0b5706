"""Reader/writer interfaces shared by every event file format.

Readers hand out bounded chunks in stream order and can seek by time, so a file of any size is
processed in constant memory; :class:`capture.formats.iterator.EventsIterator` re-slices those
chunks by event count or time window for users.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class EventFileError(Exception):
    """A file that cannot be read or written as events; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class EventFileInfo:
    """What a reader knows about its file before decoding any event."""

    path: Path
    format: str  # "EVT3", "EVT2", "EVT21", "HDF5", "NPZ", "CSV"
    width: int
    height: int
    metadata: dict[str, str] = field(default_factory=dict)
    #: Human-readable notes on anything inferred rather than read (legacy headers, defaults).
    inferred: list[str] = field(default_factory=list)


class EventFileReader(ABC):
    """Sequential, seekable access to one event file."""

    info: EventFileInfo

    @abstractmethod
    def read_chunks(self, max_events: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(cd, triggers)`` pairs from the current position to the end of the file.

        Each pair covers a contiguous stretch of the stream; ``cd`` holds at most ``max_events``
        events. Either array may be empty. Iteration leaves the reader at the end of the file.
        """

    @abstractmethod
    def seek_time(self, t_us: int) -> None:
        """Position the reader so that the next chunk starts at the first event with ``t >= t_us``."""

    def progress(self) -> float | None:
        """Fraction of the file consumed so far, for progress bars; None when unknown."""
        return None

    def close(self) -> None:  # noqa: B027 - optional for readers that hold no resources
        """Release the file."""

    def __enter__(self) -> EventFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventFileWriter(ABC):
    """Append-only writer of one event file; events must arrive in time order."""

    @abstractmethod
    def write(self, cd: np.ndarray | None, triggers: np.ndarray | None = None) -> None:
        """Append events (each array time-sorted, not earlier than what was written before)."""

    def flush(self) -> None:  # noqa: B027 - optional for writers without buffers
        """Push buffered data to the operating system, so it survives a crash of this process."""

    @abstractmethod
    def close(self) -> None:
        """Finish the file; it is complete and valid afterwards."""

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
