"""Copy every event of one open file into a new file of another format: what ``focalrig events convert`` runs.

Writers check what they are given (time order, coordinates inside the sensor, trigger ids, time spans their
format can hold). When a check fails during a conversion the fault lies in the *source's* events, so the
error names the source and says how much of it reached the output; a failure to write (disk full, no
permission) stays an error about the output file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from capture.formats.base import EventFileError, EventFileReader
from capture.formats.registry import create_writer


def convert_events(
    reader: EventFileReader,
    dst: str | Path,
    *,
    evt: int = 3,
    metadata: dict[str, str] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Stream ``reader`` from its position to the end into a writer for ``dst``; returns (CD, trigger) counts.

    ``metadata`` goes to the writer (the CLI passes the source's header fields); ``on_chunk`` is called with
    the running counts after each chunk (progress bars).
    """
    dst = Path(dst)
    src = reader.info.path
    width, height = reader.info.width, reader.info.height
    if width <= 0 or height <= 0:
        notes = "; ".join(reader.info.inferred)
        raise EventFileError(src, f"the sensor size is unknown{f' ({notes})' if notes else ''}, and {dst.name} "
                                  "needs one: pass --width and --height")
    n_cd = n_trig = 0
    with create_writer(dst, width, height, evt=evt, metadata=metadata) as writer:
        for cd, trig in reader.read_chunks():
            try:
                writer.write(cd, trig)
            except EventFileError as exc:
                if not isinstance(exc.__cause__, (ValueError, TypeError)):
                    raise  # the output could not be written: an error about the output file
                raise EventFileError(
                    src, f"events after the first {n_cd:,} cannot be stored in {dst.name}: {exc.problem} "
                         f"({dst.name} keeps the {n_cd:,} CD and {n_trig:,} trigger events before them)"
                ) from exc
            n_cd += cd.shape[0]
            n_trig += trig.shape[0]
            if on_chunk is not None:
                on_chunk(n_cd, n_trig)
    return n_cd, n_trig
