"""Worker child processes: objects through their pipes without holding the GIL, their loop, priority and end.

``Connection.send`` pickles the whole object into one bytes string first: for a sweep of 640x480 frames that is
tens of MB copied while the GIL is held, which stalls every other thread of the process (the GUI thread above
all) for a few hundred milliseconds. :func:`send` pickles with protocol 5 and out-of-band buffers instead: the
pickle itself holds only the small object structure, and each large array buffer goes through the pipe on its
own, written straight from the array's memory by ``os.write`` — a system call that releases the GIL. :func:`recv`
reads them the same way into writable buffers and rebuilds the arrays on top of them (no further copy).

The simulated cameras' and the GUI's fusion children share the rest: :func:`messages` is their request loop,
:func:`lower_priority` makes them yield the CPU to the process they serve, and :func:`exit_reason` says why one
ended when its pipe broke.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Iterator
from typing import Any

#: Niceness a worker child adds to itself: background work yields the CPU to the application it serves.
WORKER_NICENESS = 5


def send(conn: Any, obj: Any) -> None:
    """Send ``obj`` through ``conn`` (a ``multiprocessing.connection.Connection``); the peer calls :func:`recv`."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    conn.send((head, [view.nbytes for view in views]))
    for view in views:
        conn.send_bytes(view)


def recv(conn: Any) -> Any:
    """The next object :func:`send` sent through ``conn``; raises EOFError when the peer has gone."""
    head, sizes = conn.recv()
    buffers = []
    for size in sizes:
        buffer = bytearray(size)  # writable, so the arrays rebuilt on it are too (as after a plain pickle)
        conn.recv_bytes_into(buffer)
        buffers.append(buffer)
    return pickle.loads(head, buffers=buffers)


def messages(conn: Any) -> Iterator[Any]:
    """A child's requests, in order, until the parent sends None or goes away (its end of the pipe closed)."""
    while True:
        try:
            message = recv(conn)
        except (EOFError, OSError):
            return
        if message is None:
            return
        yield message


def detach_from_terminal(*also: int) -> None:
    """Ignore Ctrl-C (SIGINT) and a closed terminal (SIGHUP), and any of ``also``, in a worker child.

    Both signals reach every process of the terminal's foreground group, children included: a child that died
    of them first would turn an orderly stop into a "camera process died" failure and print a traceback. The
    parent owns the devices and decides how to stop; a child ends when the parent closes its pipe or kills it.
    """
    for signum in (signal.SIGINT, signal.SIGHUP, *also):
        signal.signal(signum, signal.SIG_IGN)


def lower_priority(niceness: int = WORKER_NICENESS) -> None:
    """Make the calling process nicer by ``niceness`` (kept at its priority where that is not permitted)."""
    with contextlib.suppress(OSError):
        os.nice(niceness)


def exit_reason(proc: Any) -> str:
    """Why a child ``multiprocessing.Process`` ended, from its exit code: killed (out of memory?), crashed, or shut
    down (waits a second for it to finish ending)."""
    proc.join(1.0)
    code = proc.exitcode
    if code is None:
        return "it stopped answering"
    if code < 0:
        return f"killed by signal {-code}{': out of memory?' if -code == 9 else ''}"
    return f"it exited with status {code}; its traceback is in the terminal" if code else "it was shut down"
