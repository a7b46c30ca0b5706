"""Background work with results delivered to the GUI thread: one daemon thread per runner, newest job wins.

Fusing a sweep takes longer than a sweep lasts on a CPU, so a ``latest_only`` runner holds at most one pending
job: submitting while busy replaces the pending one (continuous mode shows the newest sweep, never a growing
backlog). Device jobs must all run, in order (a disconnect may not be replaced by a poll), so other runners keep
a FIFO. Results and errors come back as Qt signals emitted from the worker thread; Qt queues them to the
receiver's thread.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

log = logging.getLogger("focalrig.gui")


class JobRunner(QObject):
    """Runs submitted callables one at a time on its own thread.

    ``finished(tag, result)`` / ``failed(tag, message)`` are emitted from that thread (queued to the GUI).
    ``busy`` is true from submit until the last job is done; ``skipped`` counts jobs replaced before they ran.
    """

    finished = pyqtSignal(object, object)
    failed = pyqtSignal(object, str)
    started = pyqtSignal(object)

    def __init__(self, name: str, parent: QObject | None = None, *, latest_only: bool = True) -> None:
        super().__init__(parent)
        self.name = name
        self.latest_only = latest_only
        self.skipped = 0
        self._cond = threading.Condition()
        self._pending: deque[tuple[Any, Callable[[], Any]]] = deque()
        self._running = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"gui-{name}", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running or bool(self._pending)

    def submit(self, tag: Any, job: Callable[[], Any]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name} worker is shut down")
            if self.latest_only and self._pending:
                self.skipped += len(self._pending)
                self._pending.clear()
            self._pending.append((tag, job))
            self._cond.notify()

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Drop the pending job, let the running one finish (up to ``timeout_s``); True when the thread ended."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                tag, job = self._pending.popleft()
                self._running = True
            try:
                self.started.emit(tag)
                result = job()
            except Exception as exc:  # every failure is reported to the GUI, none kills the worker
                log.debug("%s job %r failed:\n%s", self.name, tag, traceback.format_exc())
                self.failed.emit(tag, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            else:
                self.finished.emit(tag, result)
            finally:
                with self._cond:
                    self._running = False
