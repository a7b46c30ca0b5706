"""The GUI's fusion process says why it ended: killed (out of memory?), crashed with a status, or shut down."""

import multiprocessing
import os
import signal
import sys

from app.gui.fusion_job import _exit_reason


def _exit_with(code: int) -> None:
    sys.exit(code)


def _sleep() -> None:
    import time

    time.sleep(30)


def test_exit_reasons_name_the_cause():
    ctx = multiprocessing.get_context("spawn")
    crashed = ctx.Process(target=_exit_with, args=(3,))
    crashed.start()
    crashed.join(30)
    assert "status 3" in _exit_reason(crashed)
    killed = ctx.Process(target=_sleep)
    killed.start()
    os.kill(killed.pid, signal.SIGKILL)
    assert "signal 9" in _exit_reason(killed) and "out of memory" in _exit_reason(killed)
    assert _exit_reason(None) == "the window is closing"
