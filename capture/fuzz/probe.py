"""One fuzz case through the library calls behind ``focalrig events info``, ``events convert`` and ``inspect``.

The command-line wrapper turns :data:`USER_ERRORS` into one red line and exit status 2; anything else escaping
these calls would reach the user as a Python traceback. So a probe's outcome is ``ok``, ``error`` (a user
error: it must name the file it is about), or ``traceback`` (any other exception: a bug). ``memory`` is kept
apart from ``traceback``: a MemoryError under the worker's address-space limit means a reader sized an
allocation by something other than the data present.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from capture.formats.base import EventFileError
from capture.formats.convert import convert_events
from capture.formats.registry import open_events
from capture.formats.stats import compute_stats

#: Exceptions the command line reports as one line (app's ``friendly_errors``, which adds only the config's
#: ConfigError: no reader raises that).
USER_ERRORS: tuple[type[BaseException], ...] = (EventFileError, ValueError, OSError)


@dataclass
class ProbeResult:
    """What happened to one input: ``outcome`` is ok / error / traceback / memory; ``message`` the error text."""

    outcome: str
    message: str = ""
    step: str = ""

    def names(self, *names: str) -> bool:
        """True when the message mentions one of ``names`` (file or folder names)."""
        return any(name and name in self.message for name in names)


def _info(path: Path, time_shift: bool) -> None:
    """``events info``: open, read every event once for the statistics, look at the header fields."""
    with open_events(path, time_shift=time_shift) as reader:
        stats = compute_stats(reader)
        info = reader.info
        _ = (info.format, info.width, info.height, list(info.inferred), getattr(reader, "truncated", False))
        _ = (stats.mean_rate, stats.peak_rate, stats.duration_us)


def _convert(path: Path, out: Path, time_shift: bool) -> None:
    """``events convert``: stream every chunk into a writer of another format."""
    with open_events(path, time_shift=time_shift) as reader:
        convert_events(reader, out, evt=3, metadata=dict(reader.info.metadata))


def _seek(path: Path) -> None:
    """Replay's access pattern: seek to the middle of the time span, read to the end."""
    with open_events(path) as reader:
        first = last = None
        for cd, _ in reader.read_chunks():
            if len(cd):
                first = int(cd["t"][0]) if first is None else first
                last = int(cd["t"][-1])
        if first is not None and last is not None:
            reader.seek_time((first + last) // 2)
            for _ in reader.read_chunks():
                pass


def _inspect(path: Path) -> None:
    """``inspect`` on a recording folder: open it and summarise it (one streaming pass over the events)."""
    from capture.recording import Recording
    from capture.recording.summary import summarize

    with Recording.open(path) as rec:
        summarize(rec)


def _sweeps(path: Path) -> None:
    """What ``fuse --all``, ``calibrate`` and ``stack`` read: every sweep with its events and frames.

    As ``fuse`` does, a recording without any sweep is an error saying why, not an empty success.
    """
    from capture.recording import Recording, RecordingError

    with Recording.open(path) as rec:
        reason = rec.no_sweeps_reason()
        if reason is not None:
            raise RecordingError(reason)
        for _ in rec.sweeps():
            pass


def probe(path: Path, *, recording: bool, work: Path, time_shift: bool = False) -> ProbeResult:
    """Run ``path`` through every step of its kind; the first step that fails decides the outcome."""
    if recording:
        steps = [("inspect", lambda: _inspect(path)), ("sweeps", lambda: _sweeps(path))]
    else:
        out = work / (path.stem + (".converted.raw" if path.suffix.lower() in (".hdf5", ".h5")
                                   else ".converted.hdf5"))
        steps = [("info", lambda: _info(path, time_shift)), ("convert", lambda: _convert(path, out, time_shift)),
                 ("seek", lambda: _seek(path))]
    try:
        for step, run in steps:
            try:
                run()
            except MemoryError as exc:
                return ProbeResult("memory", f"{type(exc).__name__}: {exc}", step)
            except USER_ERRORS as exc:
                return ProbeResult("error", str(exc), step)
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                return ProbeResult("traceback", f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
                                   step)
    finally:
        for leftover in work.glob(path.stem + ".converted*"):
            leftover.unlink(missing_ok=True)
    return ProbeResult("ok")
