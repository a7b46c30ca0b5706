"""A disk that fills up mid-recording: one clear error, and room kept back to close the recording properly.

The pre-capture check estimates the space a plan needs, but estimates are estimates (and other programs write
too). When the disk fills, every later write fails, including the ones that finalise a recording — its stop
document and the final metadata — so it read as killed, and HDF5's own error text reached the user several
times. The writer therefore holds a small reserve file from the start and gives it back only to close: the
stop document and metadata then always fit, and the failure is one :class:`DiskFull` saying how long the capture
ran and up to when its data are saved.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from capture.recording.layout import RecordingError

#: Bytes kept back for closing: HDF5 metadata, the stop document and metadata.json (a few tens of kB) with room.
RESERVE_BYTES = 1 << 20
RESERVE_NAME = ".focalrig-reserve"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class DiskFull(RecordingError):
    """The disk filled up while recording; the message says how long it ran and what is saved."""


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" (or an exhausted quota), also when h5py wraps HDF5's report of it as text."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    text = str(exc)
    return "No space left on device" in text or "errno = 28," in text or "Disk quota exceeded" in text


class Reserve:
    """A file of ``size`` bytes actually allocated on the recording's disk, removed by :meth:`release`."""

    def __init__(self, folder: Path, size: int = RESERVE_BYTES) -> None:
        self.path = folder / RESERVE_NAME
        try:
            with open(self.path, "wb") as f:
                try:
                    os.posix_fallocate(f.fileno(), 0, size)
                except (AttributeError, OSError) as exc:  # not every file system allocates: write the bytes
                    if is_disk_full(exc):
                        raise
                    f.write(bytes(size))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            self.release()
            if is_disk_full(exc):
                raise DiskFull(f"{folder.parent}: disk full before the capture began (not even "
                               f"{size >> 10} KiB free); free space or choose another --out") from None
            raise

    def release(self) -> None:
        """Give the space back (idempotent; never raises)."""
        try:
            self.path.unlink()
        except OSError:
            pass
