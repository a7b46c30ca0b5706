"""CSV event files in the layout of OpenEB's ``metavision_file_to_csv``.

One CD event per line ``x,y,p,t``; trigger events go to a sibling ``<name>_triggers.csv`` with lines
``p,id,t``. CSV carries no geometry, so readers need ``width``/``height`` from the user. Lines that
do not start with a digit (a header, ``%`` comments) are skipped.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from capture.formats.base import EventFileError, EventFileInfo, EventFileReader, EventFileWriter
from capture.formats.raw import split_by_count
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, make_cd, make_triggers

_BLOCK_BYTES = 8 << 20


def triggers_path(path: str | Path) -> Path:
    """The sibling file holding a CSV's trigger events."""
    path = Path(path)
    return path.with_name(f"{path.stem}_triggers.csv")


def _parse_rows(block: bytes, n_cols: int, path: Path, line_offset: int) -> np.ndarray:
    lines = [ln for ln in block.split(b"\n") if ln[:1].isdigit()]
    if not lines:
        return np.empty((0, n_cols), np.int64)
    try:
        rows = np.loadtxt(io.BytesIO(b"\n".join(lines)), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise EventFileError(path, f"malformed CSV near line {line_offset + 1}: {exc}") from exc
    if rows.shape[1] != n_cols:
        raise EventFileError(path, f"expected {n_cols} comma-separated columns, found {rows.shape[1]}")
    return rows


def _iter_rows(path: Path, n_cols: int) -> Iterator[np.ndarray]:
    """Parse a CSV file block by block (whole lines only), so memory stays bounded."""
    with open(path, "rb") as f:
        carry = b""
        lines_done = 0
        while True:
            block = f.read(_BLOCK_BYTES)
            data = carry + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            if data:
                yield _parse_rows(data, n_cols, path, lines_done)
                lines_done += data.count(b"\n")
            if not block:
                return


class CsvEventReader(EventFileReader):
    """Streaming CSV reader; triggers (a small file) are read whole."""

    def __init__(self, path: str | Path, *, width: int | None = None, height: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise EventFileError(self.path, "no such file")
        if width is None or height is None:
            raise EventFileError(self.path, "CSV files carry no sensor geometry; pass --width and --height")
        self.info = EventFileInfo(self.path, "CSV", width, height)
        tpath = triggers_path(self.path)
        if tpath.is_file():
            rows = np.concatenate(list(_iter_rows(tpath, 3)) or [np.empty((0, 3), np.int64)])
            self._triggers = make_triggers(rows[:, 0], rows[:, 2], rows[:, 1])
        else:
            self._triggers = np.empty(0, EVENT_EXT_TRIGGER)
        self._seek_floor = -1

    def read_chunks(self, max_events: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        trig = self._triggers[self._triggers["t"] >= self._seek_floor]
        for rows in _iter_rows(self.path, 4):
            cd = make_cd(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])
            cd = cd[cd["t"] >= self._seek_floor]
            if cd.shape[0] == 0:
                continue
            upto = np.searchsorted(trig["t"], cd["t"][-1], side="right")
            yield from split_by_count(cd, trig[:upto], max_events)
            trig = trig[upto:]
        if trig.shape[0]:
            yield np.empty(0, EVENT_CD), trig

    def seek_time(self, t_us: int) -> None:
        self._seek_floor = int(t_us)


class CsvEventWriter(EventFileWriter):
    """Append-only CSV writer (``x,y,p,t``), with a ``_triggers.csv`` sibling when triggers are written.

    The text is OpenEB's byte for byte (what ``numpy.savetxt(fmt="%d")`` wrote here before), formatted by a numba
    kernel (:mod:`capture.formats.csvtext`) at tens of M events a second instead of savetxt's 0.4.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "wb")
        except OSError as exc:
            raise EventFileError(path, f"cannot create: {exc.strerror or exc}") from exc
        self._trig_file = None

    def write(self, cd: np.ndarray | None, triggers: np.ndarray | None = None) -> None:
        from capture.formats.csvtext import csv_rows

        if cd is not None and len(cd):
            self._file.write(csv_rows(np.stack([cd["x"], cd["y"], cd["p"], cd["t"]], axis=1)))
        if triggers is not None and len(triggers):
            if self._trig_file is None:
                self._trig_file = open(triggers_path(self.path), "wb")
            self._trig_file.write(csv_rows(np.stack([triggers["p"], triggers["id"], triggers["t"]], axis=1)))

    def flush(self) -> None:
        self._file.flush()
        if self._trig_file is not None:
            self._trig_file.flush()

    def close(self) -> None:
        self._file.close()
        if self._trig_file is not None:
            self._trig_file.close()
