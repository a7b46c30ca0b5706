"""A minimal thread-safe signal (the psygnal/Qt pattern without a dependency): ``connect`` slots, ``emit`` calls them.

The capture engine emits from its own threads; a GUI connects slots that hop to its event loop (a Qt signal
with a queued connection), the CLI connects plain functions. A slot that raises is logged and does not stop the
capture or the other slots.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Signal:
    def __init__(self, name: str) -> None:
        self.name = name
        self._slots: list[Callable[..., Any]] = []
        self._lock = threading.Lock()

    def connect(self, slot: Callable[..., Any]) -> Callable[..., Any]:
        """Add ``slot`` (returned, so this works as a decorator)."""
        with self._lock:
            self._slots.append(slot)
        return slot

    def disconnect(self, slot: Callable[..., Any]) -> None:
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            try:
                slot(*args)
            except Exception:
                log.exception("slot %r of signal %s failed", slot, self.name)
