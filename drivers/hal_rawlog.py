"""The camera's own bytes out of OpenEB's HAL, read back from the HAL's RAW recorder.

Why not from the buffers: OpenEB 5.1.1's Python bindings hand out each raw buffer
(``I_EventsStream.get_latest_raw_data``) as an opaque ``RawBuffer`` that tells its ``size()`` and nothing
else — no buffer protocol, no indexing — so Python cannot see the bytes. The one facility that gets them
out unaltered is the HAL's recorder, ``I_EventsStream.log_raw_data(path)``: ``get_latest_raw_data``
writes every buffer it hands out to that file (after a RAW header), on the calling thread, through a
C++ ``ofstream``. :class:`HalRawLog` reads those bytes back as they land.

The ``ofstream`` keeps small writes in its 8 KiB buffer, so at low event rates the newest bytes can sit
there; :meth:`HalRawLog.read` with ``flush=True`` closes the log (which writes them out) and opens the
next one, and the backend does that when bytes have waited longer than it allows. Logs are also rotated
every ``rotate_bytes`` so the spool never grows with the recording. Every byte is accounted for: the
bytes read back must add up to the buffer sizes the HAL reported, else the stream is reported broken.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from drivers.camera import CameraError

_HEADER_PREFIX = b"% "
_HEADER_END = b"% end"


class HalRawLog:
    """Bytes the HAL's ``log_raw_data`` recorder writes for ``stream``, without the RAW headers of its logs."""

    def __init__(self, stream, *, rotate_bytes: int = 64 << 20, label: str = "prophesee") -> None:
        self._stream = stream
        self.rotate_bytes = int(rotate_bytes)
        self._label = label
        self._dir: Path | None = None
        self._path: Path | None = None
        self._file = None
        self._count = 0
        self._in_header = True
        self._head = b""              # start of the current log while its header is incomplete
        self.expected = 0             # bytes the HAL reported handing out since start()
        self.delivered = 0            # bytes read back from the logs
        self._pending_since: float | None = None
        self._log_start = 0

    @property
    def active(self) -> bool:
        return self._file is not None

    def start(self) -> None:
        """Open the first log (before the stream's first buffer is taken, or its bytes are lost)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="focalrig-hal-rawlog-"))
        self._open_next()

    def note(self, n_bytes: int) -> None:
        """The HAL has just handed out (and logged) a buffer of ``n_bytes``."""
        self.expected += int(n_bytes)
        if self.expected > self.delivered and self._pending_since is None:
            self._pending_since = time.monotonic()

    def waiting_s(self) -> float:
        """How long bytes the HAL logged have been waiting in its stream buffer (0 when none)."""
        return 0.0 if self._pending_since is None else time.monotonic() - self._pending_since

    def read(self, *, flush: bool = False) -> bytes:
        """The bytes logged since the last call; ``flush`` also collects what the HAL still buffers.

        A flush, or a log grown past ``rotate_bytes``, closes the current log and opens the next one.
        """
        if self._file is None:
            return b""
        data = self._take()
        if flush or self.expected - self._log_start >= self.rotate_bytes:
            self._stream.stop_log_raw_data()   # the HAL's ofstream writes out what it holds, then closes
            data += self._take()
            self._close_current()
            self._open_next()
        self._account(len(data), exact=flush)
        return data

    def finish(self) -> bytes:
        """Everything still logged, after the stream stopped (which also closes the HAL's log)."""
        if self._file is None:
            return b""
        self._stream.stop_log_raw_data()
        data = self._take()
        self._close_current()
        self._account(len(data), exact=True)
        return data

    def close(self) -> None:
        """Drop the spool folder; never raises."""
        try:
            if self._file is not None:
                self._stream.stop_log_raw_data()
        except Exception:  # a stream being torn down may refuse; its files are removed anyway
            pass
        self._close_current()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- internals -----------------------------------------------------------------------------------
    def _open_next(self) -> None:
        assert self._dir is not None
        self._count += 1
        path = self._dir / f"log{self._count:06d}.raw"
        if not self._stream.log_raw_data(str(path)):
            raise CameraError(f"{self._label}: the HAL refused to record raw data to {path} (is {self._dir} "
                              "writable?)")
        self._path, self._file = path, open(path, "rb")  # read across calls; closed in _close_current
        self._in_header, self._head = True, b""
        self._log_start = self.expected  # bytes logged before this log: its size is what was noted since

    def _close_current(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            self._path = None

    def _take(self) -> bytes:
        """New bytes of the current log, its header skipped (OpenEB's rule: ``% `` lines up to ``% end``)."""
        assert self._file is not None
        data = self._file.read()
        if not self._in_header:
            return data
        self._head += data
        pos = 0
        while self._head.startswith(_HEADER_PREFIX, pos):
            nl = self._head.find(b"\n", pos)
            if nl < 0:
                return b""  # the header is not all written yet
            line, pos = self._head[pos:nl].rstrip(b"\r"), nl + 1
            if line == _HEADER_END:
                break
        else:
            if len(self._head) - pos < 2:
                return b""  # cannot tell yet whether another header line follows
        self._in_header = False
        data, self._head = self._head[pos:], b""
        return data

    def _account(self, n: int, *, exact: bool) -> None:
        self.delivered += n
        if self.delivered > self.expected or (exact and self.delivered != self.expected):
            raise CameraError(f"{self._label}: the HAL's raw log holds {self.delivered} bytes where the stream handed "
                          f"out {self.expected}; the recorded bytes cannot be trusted (disk full?)")
        self._pending_since = None if self.delivered == self.expected else self._pending_since
