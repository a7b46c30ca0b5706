"""OpenEB's own figures beside focalrig's for ``focalrig bench io``: the same files, in the same run.

Two comparisons. In-process decoding of a RAW file to event arrays: focalrig's ``RawEventReader`` and
``EventsIterator`` against OpenEB's ``RawReader`` and ``EventsIterator`` (1 M-event batches, time shifting off,
so both produce absolute times). Whole processes, file to file: ``focalrig events convert`` against
``metavision_file_to_hdf5`` / ``metavision_file_to_csv``, start-up included, as a user runs them.

OpenEB's Python API runs in this process when its bindings import here (:func:`drivers.openeb.import_hal`
finds an install); otherwise in OpenEB's own interpreter (:mod:`capture.formats.openeb`), timed inside that
process so its start-up is not counted. Figures are printed, never asserted.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.bench.timing import Stopwatch, best_time
from capture.formats import EventsIterator
from capture.formats.openeb import Oracle
from capture.formats.raw import RawEventReader
from drivers.openeb import OpenEB, import_hal

BATCH = 1_000_000


@dataclass(frozen=True)
class Timing:
    """Best wall seconds to turn a whole file into events (or another file), and how many CD events it held."""

    seconds: float
    events: int

    @property
    def mevs(self) -> float:
        return self.events / self.seconds / 1e6


def focalrig_decoders(path: Path, repeat: int) -> dict[str, Timing]:
    """focalrig's in-process readers on ``path``: the block reader and the OpenEB-style iterator."""

    def reader() -> int:
        with RawEventReader(path) as r:
            return sum(c.shape[0] for c, _ in r.read_chunks(BATCH))

    def iterator() -> int:
        return sum(s.events.shape[0] for s in EventsIterator(path, mode="n_events", n_events=BATCH))

    return {name: Timing(best_time(fn, repeat), fn()) for name, fn in
            (("RawEventReader", reader), ("EventsIterator", iterator))}


def openeb_decoders(path: Path, repeat: int) -> tuple[dict[str, Timing], str]:
    """OpenEB's ``RawReader`` and ``EventsIterator`` on ``path``, and where they ran (this process or OpenEB's)."""
    try:
        import_hal()
        from metavision_core.event_io import EventsIterator as OpenEBIterator
        from metavision_core.event_io import RawReader
    except ImportError:
        got = Oracle().time_decoders(path, repeat)
        return {k: Timing(v["seconds"], v["events"]) for k, v in got.items()}, "OpenEB's own interpreter"

    def raw_reader() -> int:
        reader, n = RawReader(str(path), do_time_shifting=False), 0
        while not reader.is_done():
            n += len(reader.load_n_events(BATCH))
        return n

    def iterator() -> int:
        it = OpenEBIterator(str(path), mode="n_events", n_events=BATCH, do_time_shifting=False)
        return sum(len(events) for events in it)

    timings = {name: Timing(best_time(fn, repeat), fn()) for name, fn in
               (("RawReader", raw_reader), ("EventsIterator", iterator))}
    return timings, "in process"


def whole_process(install: OpenEB, src: Path, tmp: Path, n_events: int, repeat: int) -> list[tuple[str, Timing]]:
    """File to file as separate processes: focalrig's converter against OpenEB's tools, same input and format."""
    focalrig = [sys.executable, "-m", "app.cli", "events", "convert", "--force"]
    jobs: list[tuple[str, Callable[[], list[str]]]] = [
        ("focalrig events convert → .hdf5", lambda: [*focalrig, str(src), str(tmp / "f.hdf5")]),
        ("metavision_file_to_hdf5", lambda: [str(install.tool("metavision_file_to_hdf5")), "-i", str(src),
                                             "-o", str(tmp / "m.hdf5")]),
        ("focalrig events convert → .csv", lambda: [*focalrig, str(src), str(tmp / "f.csv")]),
        ("metavision_file_to_csv -d", lambda: [str(install.tool("metavision_file_to_csv")), "-i", str(src),
                                               "-o", str(tmp / "m.csv"), "-d"]),
    ]
    rows = []
    for label, cmd in jobs:
        env = install.env() if label.startswith("metavision") else None
        best = float("inf")
        for _ in range(repeat):
            for out in tmp.glob("m*" if env else "f*"):
                out.unlink()
            with Stopwatch() as sw:
                subprocess.run(cmd(), env=env, cwd=tmp, check=True, capture_output=True)
            best = min(best, sw.wall_s)
        rows.append((label, Timing(best, n_events)))
    return rows
