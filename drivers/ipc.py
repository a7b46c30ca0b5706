"""Objects through a ``multiprocessing`` pipe without holding the GIL for the bulk of the copy.

``Connection.send`` pickles the whole object into one bytes string first: for a sweep of 640x480 frames that is
tens of MB copied while the GIL is held, which stalls every other thread of the process (the GUI thread above
all) for a few hundred milliseconds. :func:`send` pickles with protocol 5 and out-of-band buffers instead: the
pickle itself holds only the small object structure, and each large array buffer goes through the pipe on its
own, written straight from the array's memory by ``os.write`` — a system call that releases the GIL. :func:`recv`
reads them the same way into writable buffers and rebuilds the arrays on top of them (no further copy).
"""

from __future__ import annotations

import pickle
from typing import Any


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
