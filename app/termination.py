"""Ending focalrig by a signal the way Ctrl-C ends it: lens released, recording finalised, exit 128 + signal.

A user presses Ctrl-C (SIGINT), a service manager stops a program with SIGTERM, a closed terminal sends SIGHUP.
Python's default for SIGTERM and SIGHUP is to die on the spot without running a single ``finally``: a capture
killed that way left the lens sweeping and its recording without a stop document. Every command that drives
the lens (the CLI's and the GUI's) therefore holds handlers from here while it runs; they only *record* the
signal and ask the running work to stop, so the ordinary clean-up path — the same as Ctrl-C's — does the rest,
and the process then exits with 128 + the signal's number, as a shell reports a process a signal ended.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: The signals that end focalrig in an orderly way (SIGKILL cannot be caught; its recordings are *incomplete*).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on (the name recordings and messages use)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int) -> int:
    """The exit status of a process ended by ``signum``: 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(signum)


@contextmanager
def handling(handler: Callable[[int], None], signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Call ``handler(signum)`` for each of ``signals`` while the block runs, then restore the previous handlers.

    The handler runs on a watcher thread of its own, never inside the signal handler: a Python signal handler runs
    between two bytecodes of the main thread, so one that takes a lock the main thread holds at that moment (an
    ``Event.set`` while the main thread is inside ``Event.wait``, a ``request_stop`` while it reads the engine's
    status) waits for itself forever. The interpreter's C-level handler writes each signal's number to a pipe
    (``signal.set_wakeup_fd``), even while the main thread is inside C++ (Qt's event loop); the watcher reads it
    and calls ``handler``, which should ask the running work to stop rather than do it.

    Signals belong to the main thread: from any other thread this installs nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {s: signal.signal(s, _record_only) for s in signals}
    wanted = {int(s) for s in signals}

    def watch() -> None:
        while data := os.read(read_fd, 64):  # b"" once the block has ended and closed the write end
            for signum in data:
                if signum in wanted:
                    handler(signum)

    watcher = threading.Thread(target=watch, name="stop-signal watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)
        watcher.join(5.0)
        os.close(read_fd)


def _record_only(_signum: int, _frame: object) -> None:
    """The Python-level handler: nothing (installing it makes the interpreter catch the signal and write it to the
    wakeup pipe, where :func:`handling`'s watcher picks it up)."""


class StopSignal:
    """The first stop signal received (``signum``), for work that polls for it rather than being interrupted."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._event = threading.Event()

    def __call__(self, signum: int) -> None:
        if self.signum is None:
            self.signum = int(signum)
        self._event.set()

    @property
    def received(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal_name(self.signum)

    def wait(self, timeout_s: float | None) -> bool:
        """Sleep until a stop signal arrives or ``timeout_s`` passes; True when one arrived."""
        return self._event.wait(timeout_s)
