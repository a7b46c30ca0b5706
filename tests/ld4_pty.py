"""A simulated LD4 in a process of its own (``focalrig sim lens``), reached over a real pty, for signal tests.

The process under test talks real serial to it, exactly as to a lens driver on /dev/ttyACM0; once that process
has ended (by whatever signal), the test opens the same pty and asks the simulator for its mode and output
current over the wire protocol — the state a real lens would be left in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import serial

from drivers.optotune import protocol as p

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
DC_MODE = p.MODE_CURRENT


@contextmanager
def served_ld4() -> Iterator[str]:
    """The pty path of a simulated LD4 served by ``focalrig sim lens`` in a child process (stopped afterwards)."""
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "sim", "lens", "--jitter-ms", "0"], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"(/dev/\S+)", line)
        assert found, line + proc.stderr.read()
        yield found.group(1)
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def lens_state(path: str) -> tuple[int, float]:
    """(mode, output current in mA) of the LD4 on ``path``, read over the wire without changing anything."""
    with serial.Serial(path, timeout=1.0) as port:
        port.reset_input_buffer()
        replies = []
        for request in (p.read_mode(), p.max_current(), p.get_current()):
            port.write(request.data)
            replies.append(p.parse_reply(port.read(request.reply_len + 4), request.reply_len, request.echo))
    mode = replies[0][3]
    imax_ma = p.decode_i16(replies[1], 3) / 100
    return mode, p.raw_to_current(p.decode_i16(replies[2], 1), imax_ma)


class Output:
    """Every line a process writes to one of its pipes, collected by a thread (so the pipe never fills and a
    deadline holds even while the process says nothing)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._new = threading.Condition()
        self.closed = False
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._new:
                self.lines.append(line)
                self._new.notify_all()
        with self._new:
            self.closed = True
            self._new.notify_all()

    def wait_for(self, pattern: str, timeout_s: float = 60.0) -> str:
        """The first line matching ``pattern``; fails with everything said when none comes in time."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise AssertionError(f"no {pattern!r} ({'ended' if self.closed else 'timed out'}):\n{self.text()}")
                self._new.wait(left)

    def text(self, timeout_s: float = 10.0) -> str:
        """All that was said (waits up to ``timeout_s`` for the pipe to close when the process is ending)."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while not self.closed and time.monotonic() < deadline:
                self._new.wait(deadline - time.monotonic())
            return "".join(self.lines)


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Output, Output]:
    """``focalrig ARGS`` in a child process (``env`` added to the environment), its stdout and stderr collected.

    It leads a process group of its own, as a command started from a shell does: ``os.killpg`` then reaches it
    and its children at once, as Ctrl-C or a closed terminal would.
    """
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env={**ENV, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_end_with_the_tests)
    STARTED.append(proc)
    return proc, Output(proc.stdout), Output(proc.stderr)


#: Every command :func:`start` ran, so that :func:`stop_started` can end what a failed test left running.
STARTED: list[subprocess.Popen] = []


def _end_with_the_tests() -> None:
    """In the child before it runs: SIGTERM when the test process dies (a killed pytest leaves no GUI behind)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_started() -> None:
    """Kill the process group of every started command still running (after a test that failed midway)."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
