"""Hand-over and measurement primitives between worker threads and the GUI thread.

:class:`Mailbox` is the latest-value slot of app-notes §3.2 (producers overwrite, the GUI timer takes the
newest, nothing queues up). :class:`StallMeter` is a heartbeat timer on the GUI thread whose lateness is the
longest time the event loop was blocked; :class:`RateMeter` counts display updates per second.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

from PyQt6.QtCore import QObject, Qt, QTimer

T = TypeVar("T")


class Mailbox(Generic[T]):
    """One slot: ``put`` overwrites, ``take`` returns the newest value once (None when nothing new)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._fresh = False
        self.overwritten = 0  # values replaced before anyone took them (display drops, never data drops)

    def put(self, value: T) -> None:
        with self._lock:
            self.overwritten += self._fresh
            self._value, self._fresh = value, True

    def take(self) -> T | None:
        with self._lock:
            if not self._fresh:
                return None
            self._fresh = False
            return self._value

    def peek(self) -> T | None:
        with self._lock:
            return self._value


class StallMeter(QObject):
    """A precise ``interval_ms`` heartbeat on the GUI thread; how late each beat fires is how long the loop stalled.

    ``max_stall_ms`` is the worst lateness since :meth:`reset` (Qt's own timer jitter, ~1 ms, included).
    """

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._beat)
        self._last = 0.0
        self.max_stall_ms = 0.0
        self.beats = 0

    def start(self) -> None:
        self.reset()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        self._last = time.perf_counter()
        self.max_stall_ms = 0.0
        self.beats = 0

    def _beat(self) -> None:
        now = time.perf_counter()
        late_ms = (now - self._last) * 1e3 - self.interval_ms
        self._last = now
        self.beats += 1
        self.max_stall_ms = max(self.max_stall_ms, late_ms)


class RateMeter:
    """Counts ticks and reports their rate over the last completed window (1 s), like pyqtgraph's FrameCounter."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self._t0 = time.perf_counter()
        self._n = 0
        self.rate = 0.0
        self.total = 0
        #: perf_counter() of the first and the latest tick (0 before the first).
        self.first_tick = self.last_tick = 0.0

    def tick(self) -> None:
        self._n += 1
        self.total += 1
        now = self.last_tick = time.perf_counter()
        if self.total == 1:
            self.first_tick = now
        if now - self._t0 >= self.window_s:
            self.rate = self._n / (now - self._t0)
            self._t0, self._n = now, 0

    def snapshot(self) -> tuple[int, float]:
        """(ticks so far, time of the latest): where :meth:`rate_since` starts counting."""
        return self.total, self.last_tick

    def rate_since(self, snapshot: tuple[int, float]) -> float:
        """Ticks per second from ``snapshot`` to the latest tick, as intervals over the time they span (no
        ±1-tick edge error); from the first tick when none had come by the snapshot; 0 without two ticks."""
        count0, t0 = snapshot if snapshot[1] > 0 else (1, self.first_tick)
        return (self.total - count0) / (self.last_tick - t0) if self.total > count0 else 0.0
