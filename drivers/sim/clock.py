"""Clocks for simulators: virtual time for deterministic tests, real time for live use."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class VirtualClock:
    """A clock that moves only when told to, so tests are deterministic and never sleep."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, dt: float) -> None:
        self._t += max(0.0, dt)

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)


class MonotonicClock:
    """Real time, for the pty server and for hand-driven sessions."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
