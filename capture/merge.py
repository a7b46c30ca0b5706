"""Items of several time-ordered streams released in one time order, whatever order their threads deliver them in.

The capture engine's readers run on threads of their own, so the order in which an event chunk and a frame
reach its pipeline is decided by the scheduler: under load a sweep could be cut before a frame that belongs in
it had arrived (a "late" frame, lost), and two runs of the same simulation wrote different files. For sources
that can wait (a simulation, a replay), the engine puts every item through a :class:`TimeMerge` keyed by the
item's time on the event clock; it releases an item only once no stream can still deliver an earlier one, so
the pipeline sees one order, the order of the data themselves.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Stream:
    rank: int
    queue: deque = field(default_factory=deque)
    #: The next item of this stream will have a key ≥ floor (−inf: nothing known yet).
    floor: float = -math.inf
    finished: bool = False


class TimeMerge:
    """Merge streams named in ``streams`` (their order breaks ties of equal keys: earlier names first).

    Each stream's keys must not decrease, and after an item with key k the stream's next key is taken to be
    > k (:meth:`put`), or ≥ what :meth:`promise` says. Not thread-safe: the caller holds one lock around every
    call and hands the released items on in the order returned.
    """

    def __init__(self, streams: tuple[str, ...] | list[str]) -> None:
        self._streams = {name: _Stream(rank) for rank, name in enumerate(streams)}

    def put(self, stream: str, key: float, item: Any) -> list[Any]:
        """Add ``item`` at time ``key``; returns the items now released, in order."""
        s = self._streams[stream]
        if s.finished:
            raise ValueError(f"stream {stream!r} has finished")
        if key < s.floor:
            raise ValueError(f"stream {stream!r}: key {key} comes before its floor {s.floor}")
        s.queue.append((key, item))
        s.floor = math.nextafter(float(key), math.inf)
        return self._release()

    def promise(self, stream: str, floor: float) -> list[Any]:
        """Stream ``stream`` will deliver nothing before ``floor`` (a producer that knows it is idle until then)."""
        s = self._streams[stream]
        s.floor = max(s.floor, float(floor))
        return self._release()

    def finish(self, stream: str) -> list[Any]:
        """Stream ``stream`` has ended: the others no longer wait for it."""
        self._streams[stream].finished = True
        return self._release()

    def drain(self) -> list[Any]:
        """Everything still held, in key order (at the end, when no stream will deliver more)."""
        for s in self._streams.values():
            s.finished = True
        return self._release()

    def __len__(self) -> int:
        return sum(len(s.queue) for s in self._streams.values())

    def _release(self) -> list[Any]:
        out: list[Any] = []
        while True:
            heads = [(s.queue[0][0], s.rank, name) for name, s in self._streams.items() if s.queue]
            if not heads:
                return out
            key, rank, name = heapq.nsmallest(1, heads)[0]
            for s in self._streams.values():  # an empty, open stream could still deliver something earlier
                if not s.queue and not s.finished and (s.floor < key or (s.floor == key and s.rank < rank)):
                    return out
            out.append(self._streams[name].queue.popleft()[1])
