"""Lockstep between a simulation that is not paced by the wall clock and the capture engine's control thread.

A simulated rig's lens follows the commands of its (simulated) lens driver from "the present" of the
simulation — how far its cameras have simulated — and the engine polls the lens and steps it at moments of its
own. Left free, the cameras' threads run ahead by however much the scheduler lets them, so both the moment a
command takes effect and the samples a poll reads depended on the machine's load: two runs of one seed wrote
different recordings. In lockstep the cameras stop before simulating past the control thread's next action
time (its *horizon*); the control thread acts once every camera stands there, so each action happens at a
present that only the simulation decides, then moves the horizon on.

A camera that says where its next item would end (the simulated ones do) is held before an item that would
cross the horizon, not after it: every camera then stands at or before the horizon when the control thread acts,
so a lens command takes effect exactly at the planned time — a stepped plan's set point after exactly its dwell,
not up to a frame period later, where the slower camera happened to stand. A camera that cannot say is held
once it has delivered up to the horizon or beyond (its last item may run past it).
"""

from __future__ import annotations

import math
import threading


class Lockstep:
    """The horizon the camera reader threads named ``streams`` may not simulate past until the control thread
    has acted there. A reader calls :meth:`wait_turn` before each read and :meth:`delivered` after it, and
    :meth:`finish` when it stops; the control thread waits in :meth:`wait_all_at` and moves on with
    :meth:`advance`."""

    def __init__(self, streams: tuple[str, ...] | list[str], horizon_us: float = 0.0) -> None:
        self._cond = threading.Condition()
        self._horizon = float(horizon_us)
        self._last_end: dict[str, float | None] = dict.fromkeys(streams)
        #: Where each stream's next item would end, as its reader said when it last asked for a turn (None: unknown).
        self._next_end: dict[str, float | None] = dict.fromkeys(streams)
        self._finished: set[str] = set()

    @property
    def horizon_us(self) -> float:
        with self._cond:
            return self._horizon

    def wait_turn(self, stream: str, stop: threading.Event, poll_s: float = 0.05, *,
                  next_end_us: float | None = None) -> None:
        """Block while ``stream`` may not read (until the horizon moves, or ``stop``): it has delivered up to the
        horizon or beyond, or its next item, which would end at ``next_end_us`` (None: unknown), would cross it."""
        with self._cond:
            self._next_end[stream] = None if next_end_us is None else float(next_end_us)
            self._cond.notify_all()
            while not stop.is_set() and self._at_horizon(stream):
                self._cond.wait(poll_s)

    def delivered(self, stream: str, end_us: float) -> None:
        """``stream`` has delivered everything before ``end_us`` (its latest item ends there)."""
        with self._cond:
            self._last_end[stream] = float(end_us)
            self._next_end[stream] = None  # until its reader asks again
            self._cond.notify_all()

    def finish(self, stream: str) -> None:
        """``stream`` reads no more: the control thread no longer waits for it."""
        with self._cond:
            self._finished.add(stream)
            self._cond.notify_all()

    def wait_all_at(self, stop: threading.Event, timeout_s: float) -> bool:
        """True once every stream still reading stands at the horizon (False after ``timeout_s``, or on ``stop``)."""
        with self._cond:
            return self._cond.wait_for(lambda: stop.is_set() or all(
                s in self._finished or self._at_horizon(s) for s in self._last_end), timeout_s) and not stop.is_set()

    def advance(self, horizon_us: float) -> None:
        """Let the cameras simulate up to ``horizon_us`` (inf: freely)."""
        with self._cond:
            self._horizon = max(self._horizon, float(horizon_us))
            self._cond.notify_all()

    def _at_horizon(self, stream: str) -> bool:
        if math.isinf(self._horizon):
            return False
        last, upcoming = self._last_end[stream], self._next_end[stream]
        return (last is not None and last >= self._horizon) or (upcoming is not None and upcoming > self._horizon)
