"""Prophesee RAW files (EVT 2.0 / 2.1 / 3.0): a streaming, seekable reader and an append-only writer.

The reader decodes the file in fixed-size blocks, so memory stays bounded whatever the file size.
Seeking by time uses a sparse index of decoder snapshots built by one decoding pass on first use
(OpenEB builds a similar index); the snapshots carry the full decoder state, so decoding resumes at
a block boundary exactly as if the file had been read from the start.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.formats.base import EventFileError, EventFileInfo, EventFileReader, EventFileWriter
from capture.formats.rawheader import RawHeaderError, build_raw_header, parse_raw_header
from drivers.events.codec import DecoderSnapshot
from drivers.events.formats import make_decoder, make_encoder

log = logging.getLogger(__name__)

_HEADER_PROBE_BYTES = 1 << 16
DEFAULT_BLOCK_BYTES = 4 << 20


def split_by_count(
    cd: np.ndarray, triggers: np.ndarray, max_events: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut one decoded stretch into pieces of at most ``max_events`` CD events.

    Each trigger goes with the piece during which it happened, so pieces stay in stream order.
    """
    if cd.shape[0] <= max_events:
        yield cd, triggers
        return
    starts = np.arange(0, cd.shape[0], max_events)
    trig_piece = np.searchsorted(cd["t"][starts], triggers["t"], side="right") - 1
    trig_bounds = np.searchsorted(np.maximum(trig_piece, 0), np.arange(starts.shape[0] + 1))
    for i, s in enumerate(starts):
        yield cd[s : s + max_events], triggers[trig_bounds[i] : trig_bounds[i + 1]]


@dataclass(frozen=True)
class _Checkpoint:
    offset: int  # file offset of the next block
    snapshot: DecoderSnapshot
    max_t_before: int  # latest event time decoded before this point (-1 if none)


class RawEventReader(EventFileReader):
    """Stream a RAW file as ``(cd, triggers)`` chunks; absolute timestamps unless ``time_shift``.

    ``time_shift=True`` reproduces OpenEB's default of subtracting the first TIME_HIGH (EVT2:
    ×64 µs; EVT3: (value − 1) × 4096 µs), so times match Metavision tools with shifting on.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        time_shift: bool = False,
        width: int | None = None,
        height: int | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise EventFileError(path, f"cannot open: {exc.strerror or exc}") from exc
        try:
            head = self._file.read(_HEADER_PROBE_BYTES)
            self.header = parse_raw_header(head, width=width, height=height)
        except RawHeaderError as exc:
            self._file.close()
            raise EventFileError(path, str(exc)) from exc
        h = self.header
        metadata = h.fields
        if h.generation is not None:
            metadata.setdefault("generation", h.generation)
        self.info = EventFileInfo(self.path, h.format, h.width, h.height, metadata, list(h.inferred))
        for note in h.inferred:
            log.info("%s: %s", self.path.name, note)
        self.file_size = os.fstat(self._file.fileno()).st_size
        self._decoder = make_decoder(h.format, h.width, h.height, h.endianness)
        self._block_bytes = int(block_bytes)
        self._time_shift = time_shift
        self._index: list[_Checkpoint] | None = None
        self._seek_floor: int | None = None
        #: Set once a read reaches an end that is not a word boundary: bytes of an incomplete word or group.
        #: A writer flushes whole words, so such a file was cut short or damaged, not stopped at a flush.
        self.truncated = False
        #: What :attr:`truncated` found, in words (None while the end looks whole).
        self.truncation: str | None = None
        self._rewind()

    # -- public API ------------------------------------------------------------------------
    @property
    def time_shift_us(self) -> int:
        """What is subtracted from every timestamp (0 unless ``time_shift``); known after the first block."""
        if not self._time_shift:
            return 0
        shift = self._decoder.time_shift_us
        if shift is None:  # nothing decoded yet: the first TIME_HIGH is near the start
            shift = self._probe_time_shift()
        return shift

    def read_chunks(self, max_events: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for cd, trig in self._read_blocks():
            if self._seek_floor is not None:
                cd, trig = self._apply_seek_floor(cd, trig)
                if cd.shape[0] == 0 and trig.shape[0] == 0:
                    continue
            if self._time_shift:
                shift = self.time_shift_us
                if shift:
                    cd = cd.copy()
                    cd["t"] -= shift
                    trig = trig.copy()
                    trig["t"] -= shift
            yield from split_by_count(cd, trig, max_events)
            del cd, trig  # free this block's events before the next block is decoded

    def seek_time(self, t_us: int) -> None:
        target = int(t_us) + self.time_shift_us
        index = self._build_index()
        keys = [c.max_t_before for c in index]
        i = max(bisect.bisect_left(keys, target) - 1, 0)
        cp = index[i]
        self._file.seek(cp.offset)
        self._decoder.restore(cp.snapshot)
        self._seek_floor = target

    def progress(self) -> float | None:
        if self._file.closed:
            return None
        done = self._file.tell() - self.header.payload_offset
        return min(max(done / max(self.file_size - self.header.payload_offset, 1), 0.0), 1.0)

    def close(self) -> None:
        self._file.close()

    # -- internals -------------------------------------------------------------------------
    def _rewind(self) -> None:
        self._file.seek(self.header.payload_offset)
        self._decoder.reset()
        self._seek_floor = None

    def _read_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Decode from the current position to the end of the file, block by block."""
        dropped_before = getattr(self._decoder, "dropped_vector_groups", 0)
        while True:
            block = self._file.read(self._block_bytes)
            if not block:
                break
            cd, trig = self._decoder.decode(block)
            if cd.shape[0] or trig.shape[0]:
                yield cd, trig
            del cd, trig
        self._report_end(dropped_before)

    def _report_end(self, dropped_before: int) -> None:
        dec = self._decoder
        problems = []
        if dec.pending_bytes:
            problems.append(f"{dec.pending_bytes} trailing byte(s) of an incomplete word")
        if dec.group_pending:
            problems.append("an incomplete multi-word group")
        if problems:
            self.truncated = True
            self.truncation = f"cut mid-word: ignored {' and '.join(problems)} at the end"
            log.warning("%s: file looks truncated: ignored %s at the end", self.path, " and ".join(problems))
        dropped = getattr(dec, "dropped_vector_groups", 0) - dropped_before
        if dropped:
            log.warning(
                "%s: dropped %d vector group(s) reaching past the sensor's right edge (as OpenEB does)",
                self.path, dropped,
            )

    def _apply_seek_floor(self, cd: np.ndarray, trig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop what precedes the seek target, up to the first CD event at or after it."""
        floor = self._seek_floor
        assert floor is not None
        trig = trig[trig["t"] >= floor]
        hit = np.flatnonzero(cd["t"] >= floor)
        if hit.shape[0] == 0:
            return cd[:0], trig
        self._seek_floor = None
        return cd[int(hit[0]) :], trig

    def _probe_time_shift(self) -> int:
        """Decode just enough of the file's start to learn its first TIME_HIGH."""
        probe = make_decoder(self.header.format, self.header.width, self.header.height, self.header.endianness)
        pos = self._file.tell()
        self._file.seek(self.header.payload_offset)
        try:
            while probe.time_shift_us is None:
                block = self._file.read(1 << 16)
                if not block:
                    return 0
                probe.decode(block)
            return probe.time_shift_us
        finally:
            self._file.seek(pos)

    def _build_index(self) -> list[_Checkpoint]:
        """One decoding pass over the whole file, keeping a decoder snapshot per block."""
        if self._index is not None:
            return self._index
        self._rewind()
        index: list[_Checkpoint] = []
        max_t = -1
        while True:
            offset = self._file.tell()
            index.append(_Checkpoint(offset, self._decoder.snapshot(), max_t))
            block = self._file.read(self._block_bytes)
            if not block:
                break
            cd, _ = self._decoder.decode(block)
            if cd.shape[0]:
                max_t = max(max_t, int(cd["t"].max()))
        self._index = index
        self._rewind()
        return index


class RawEventWriter(EventFileWriter):
    """Append-only RAW writer (EVT3 by default, or EVT2) with an OpenEB-compatible header.

    Bytes reach the operating system at every :meth:`flush` (and when the internal buffer fills),
    so after a crash the file holds every flushed event and decodes up to that point.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        *,
        fmt: str = "EVT3",
        header: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._encoder = make_encoder(fmt, width, height)
        try:
            self._file = open(self.path, "wb")
        except OSError as exc:
            raise EventFileError(path, f"cannot create: {exc.strerror or exc}") from exc
        self._file.write(build_raw_header(fmt, width, height, header))
        self.events_written = 0
        self.triggers_written = 0

    def write(self, cd: np.ndarray | None, triggers: np.ndarray | None = None) -> None:
        try:
            data = self._encoder.encode(cd, triggers)
        except (TypeError, ValueError) as exc:
            raise EventFileError(self.path, str(exc)) from exc
        self._file.write(data)
        self.events_written += 0 if cd is None else len(cd)
        self.triggers_written += 0 if triggers is None else len(triggers)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()

