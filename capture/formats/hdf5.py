"""Prophesee HDF5 event files (OpenEB's layout, ECF-compressed CD events), with plain h5py.

Metavision Studio and the OpenEB command-line tools read HDF5 event files only when ``/CD/events``
holds ECF chunks (filter 36559), and the ECF plugin is on no package index. This module therefore
never runs the filter through HDF5: the writer declares it (optional, so HDF5 does not need the
plugin) and stores chunks it encoded itself with ``write_direct_chunk``; the reader fetches the raw
chunks with ``read_direct_chunk`` and decodes them with :mod:`capture.formats.ecf`. Layout,
attributes and the index rule follow docs/prophesee-formats.md §6; files written here match the
files OpenEB 5.1.1 writes for the same events, indexes and chunk bytes included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from capture.formats.base import EventFileError, EventFileInfo, EventFileReader, EventFileWriter
from capture.formats.ecf import (
    COORD_LIMIT,
    decode_ecf_block,
    ecf_block_length,
    encode_ecf_block,
)
from capture.formats.hdf5_attributes import read_attributes
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, HDF5_INDEX, as_events, concat_events
from drivers.events.validate import check_cd, check_triggers

log = logging.getLogger(__name__)

#: Events per ``/CD/events`` chunk (one ECF block), and rows per chunk of the other datasets, as OpenEB.
CHUNK_EVENTS = 16384
#: Period of the ``indexes`` tables (µs).
INDEX_PERIOD_US = 2000
#: HDF5 filter id of ECF (0x8ECF), registered with the HDF Group.
ECF_FILTER_ID = 36559
#: ``generation`` attribute written when the caller gives none: ``metavision_file_info`` crashes without one.
DEFAULT_GENERATION = "4.2"

_ASCII = h5py.string_dtype("ascii")
_TRIGGER_BATCH = 16384  # trigger rows read at a time
#: EventExtTrigger ids are int16.
TRIGGER_ID_LIMIT = 32767
_INDEX_ROWS_PER_WRITE = 1 << 16  # bounds memory when a long time gap adds many index rows at once
#: Most index rows one write may add (128 MiB, a silence of 4.7 hours): beyond that the times are refused as
#: corrupt, since the index grows with the time span, not with the events.
MAX_INDEX_ROWS_PER_WRITE = 1 << 23


def _ascii_attribute(obj: h5py.HLObject, key: str, value: str) -> None:
    """Store a scalar variable-length ASCII string: OpenEB (HDF5 1.10) refuses h5py's default UTF-8."""
    obj.attrs.create(key, value, dtype=_ASCII)


# -- writing ---------------------------------------------------------------------------------------
class _IndexTable:
    """Appends one ``indexes`` table as events stream in, following OpenEB's rule (§6.4).

    Row k ≥ 1 is ``(id, t − t_first)`` of the first event with ``t − t_first`` in
    ``[2000(k−1), 2000k)``, an empty period repeats the row before, row 0 is ``(0, −1)``, and one
    last row (the latest period's first event) is added on close. Rows are final as soon as a later
    period starts, so each batch of events appends its finished rows right away.
    """

    def __init__(self, dataset: h5py.Dataset) -> None:
        self._ds = dataset
        self._rows = 0  # rows written = latest period number seen
        self._current = (0, -1)  # first event of the latest non-empty period (OpenEB's pending row)
        self._t_first: int | None = None
        self._n_events = 0

    def check(self, t: np.ndarray) -> None:
        """Raise ValueError when adding these times would add more than MAX_INDEX_ROWS_PER_WRITE rows."""
        if t.shape[0] == 0:
            return
        t_first = int(t[0]) if self._t_first is None else self._t_first
        new_rows = (int(t[-1]) - t_first) // INDEX_PERIOD_US + 1 - self._rows
        if new_rows > MAX_INDEX_ROWS_PER_WRITE:
            raise ValueError(
                f"events up to t={int(t[-1])} µs would add {new_rows:,} rows to {self._ds.name} (one per "
                f"{INDEX_PERIOD_US} µs of time; at most {MAX_INDEX_ROWS_PER_WRITE:,} at once): the timestamps are "
                "probably corrupt"
            )

    def add(self, t: np.ndarray) -> None:
        """Account for the next time-sorted events of this stream.

        Works on period boundaries with binary searches, never on per-event temporaries, so a
        batch of a million dense events costs a few dozen lookups.
        """
        if t.shape[0] == 0:
            return
        if self._t_first is None:
            self._t_first = int(t[0])
            _ascii_attribute(self._ds, "offset", str(-self._t_first))
        t_first = self._t_first
        last_period = (int(t[-1]) - t_first) // INDEX_PERIOD_US + 1
        if last_period > self._rows:
            for lo in range(self._rows, last_period, _INDEX_ROWS_PER_WRITE):
                periods = np.arange(lo, min(lo + _INDEX_ROWS_PER_WRITE, last_period), dtype=np.int64)
                # Row p: the latest event of this batch in a period <= p, if its period is new here,
                # gives the row (that period's first event); otherwise the pending row repeats.
                latest = np.searchsorted(t, t_first + INDEX_PERIOD_US * periods, side="left") - 1
                its_period = (t[np.maximum(latest, 0)] - t_first) // INDEX_PERIOD_US + 1
                new = (latest >= 0) & (its_period > self._rows)
                first = np.searchsorted(t, t_first + INDEX_PERIOD_US * (its_period - 1), side="left")
                rows = np.empty(periods.shape[0], HDF5_INDEX)
                rows["id"] = np.where(new, first + self._n_events, self._current[0])
                rows["ts"] = np.where(new, t[first] - t_first, self._current[1])
                self._append(rows)
            first = int(np.searchsorted(t, t_first + INDEX_PERIOD_US * (last_period - 1), side="left"))
            self._current = (first + self._n_events, int(t[first]) - t_first)
            self._rows = last_period
        self._n_events += t.shape[0]

    def close(self) -> None:
        if self._rows:
            row = np.empty(1, HDF5_INDEX)
            row["id"], row["ts"] = self._current
            self._append(row)

    def _append(self, rows: np.ndarray) -> None:
        size = self._ds.shape[0]
        self._ds.resize((size + rows.shape[0],))
        self._ds[size:] = rows


def _copy_events(dst: np.ndarray, src: np.ndarray) -> None:
    """Copy EVENT_CD events by raw bytes (see :func:`drivers.events.dtypes.concat_events` for why)."""
    dst.view(np.uint8)[:] = np.ascontiguousarray(src).view(np.uint8)


def _create_table(group: h5py.Group, name: str, dtype: np.dtype) -> h5py.Dataset:
    return group.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(CHUNK_EVENTS,), dtype=dtype)


def _create_ecf_dataset(group: h5py.Group) -> h5py.Dataset:
    """``/CD/events`` with the ECF filter declared optional, so HDF5 accepts it without the plugin."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((CHUNK_EVENTS,))
    dcpl.set_filter(ECF_FILTER_ID, h5py.h5z.FLAG_OPTIONAL, ())
    space = h5py.h5s.create_simple((0,), (h5py.h5s.UNLIMITED,))
    dtype = h5py.h5t.py_create(EVENT_CD, logical=True)
    return h5py.Dataset(h5py.h5d.create(group.id, b"events", dtype, space, dcpl=dcpl))


class Hdf5EventWriter(EventFileWriter):
    """Writes a Prophesee HDF5 file that Metavision Studio and the OpenEB tools open.

    CD events are buffered until a chunk of 16 384 is full, then ECF-encoded and stored; the last,
    partial chunk is stored on :meth:`close` with only its real events. Triggers and the index
    tables are appended as they arrive.

    Crash behaviour: :meth:`flush` stores the partial chunk as well (it is rewritten once it fills)
    and flushes HDF5's caches to the operating system, so a file whose writing process dies after a
    flush normally opens with everything flushed. HDF5 has no journal, though: dying in the middle
    of a later write can leave the file's metadata inconsistent and the whole file unreadable. For
    recordings that must survive crashes, record RAW and convert afterwards.
    """

    def __init__(
        self, path: str | Path, width: int, height: int, metadata: dict[str, str] | None = None
    ) -> None:
        """Create the file with all four datasets (OpenEB needs them even when empty).

        ``metadata`` becomes root attributes (``serial_number``, ``generation``, …); a ``format`` or
        ``generation`` there replaces the default, ``version`` and ``geometry`` are always the writer's.
        """
        self.path = Path(path)
        self.width, self.height = width, height = int(width), int(height)
        if not (0 < width <= COORD_LIMIT and 0 < height <= COORD_LIMIT):
            raise EventFileError(
                self.path,
                f"ECF stores 11-bit coordinates: sensors up to {COORD_LIMIT}x{COORD_LIMIT}, not {width}x{height}",
            )
        attributes = {"version": "1.0", "geometry": f"{width}x{height}",
                      "format": f"EVT3;height={height};width={width}", "generation": DEFAULT_GENERATION}
        for key, value in (metadata or {}).items():
            if key not in ("version", "geometry"):
                attributes[str(key)] = str(value)
        bad = [k for k, v in attributes.items() if not (k.isascii() and v.isascii() and k)]
        if bad:
            raise EventFileError(self.path, f"HDF5 attribute names and values must be ASCII: {bad}")
        try:
            self._file = h5py.File(self.path, "w")
        except OSError as exc:
            raise EventFileError(self.path, f"cannot create: {exc}") from exc
        try:
            for key, value in attributes.items():
                _ascii_attribute(self._file, key, value)
            cd_group = self._file.create_group("CD")
            self._cd = _create_ecf_dataset(cd_group)
            self._cd_index = _IndexTable(_create_table(cd_group, "indexes", HDF5_INDEX))
            trig_group = self._file.create_group("EXT_TRIGGER")
            self._triggers = _create_table(trig_group, "events", EVENT_EXT_TRIGGER)
            self._trig_index = _IndexTable(_create_table(trig_group, "indexes", HDF5_INDEX))
        except Exception:
            self._file.close()
            raise
        # One buffer reused for every chunk, 5 events longer than a chunk, as OpenEB's encoder buffer:
        # what a partial chunk leaves of the previous one fills the ECF padding, making bytes identical.
        self._chunk = np.zeros(CHUNK_EVENTS + 5, EVENT_CD)
        self._chunk_words = self._chunk.view(np.uint64)
        self._n_buffered = 0
        self._n_stored_partial = 0  # events of the buffered chunk already stored by flush()
        self._full_chunks = 0
        self._last_cd_t = 0
        self._last_trig_t = 0
        self.events_written = 0
        self.triggers_written = 0

    def write(self, cd: np.ndarray | None, triggers: np.ndarray | None = None) -> None:
        if not self._file:
            raise EventFileError(self.path, "write after close")
        try:
            cd = as_events(cd, EVENT_CD) if cd is not None and len(cd) else None
            if triggers is not None and len(triggers):
                triggers = as_events(triggers, EVENT_EXT_TRIGGER, zero_padding=True)
            else:
                triggers = None
            if cd is not None:
                check_cd(cd, width=self.width, height=self.height, after_t=self._last_cd_t, who="HDF5 writer")
                self._cd_index.check(cd["t"])
            if triggers is not None:
                check_triggers(triggers, max_id=TRIGGER_ID_LIMIT, after_t=self._last_trig_t, who="HDF5 writer")
                self._trig_index.check(triggers["t"])
        except ValueError as exc:
            raise EventFileError(self.path, str(exc)) from exc
        try:
            if cd is not None:
                self._append_cd(cd)
            if triggers is not None:
                size = self._triggers.shape[0]
                self._triggers.resize((size + triggers.shape[0],))
                self._triggers[size:] = triggers
                self._trig_index.add(triggers["t"])
                self._last_trig_t = int(triggers["t"][-1])
                self.triggers_written += triggers.shape[0]
        except OSError as exc:
            raise EventFileError(self.path, f"cannot write: {exc}") from exc

    def flush(self) -> None:
        """Store everything received so far, the partial CD chunk included, and flush HDF5 to the OS."""
        if not self._file:
            return
        try:
            self._store_partial_chunk()
            self._file.flush()
        except OSError as exc:
            raise EventFileError(self.path, f"cannot write: {exc}") from exc

    def close(self) -> None:
        if not self._file:
            return
        try:
            self._store_partial_chunk()
            self._cd_index.close()
            self._trig_index.close()
        except OSError as exc:
            raise EventFileError(self.path, f"cannot finish the file: {exc}") from exc
        finally:
            self._file.close()

    # -- internals -----------------------------------------------------------------------------------
    def _append_cd(self, cd: np.ndarray) -> None:
        cd_words = cd.view(np.uint64)
        done = 0
        while done < cd.shape[0]:
            take = min(CHUNK_EVENTS - self._n_buffered, cd.shape[0] - done)
            # Raw 8-byte words: structured assignment converts field by field, five times slower.
            at = self._n_buffered
            self._chunk_words[2 * at : 2 * (at + take)] = cd_words[2 * done : 2 * (done + take)]
            self._n_buffered += take
            done += take
            if self._n_buffered == CHUNK_EVENTS:
                self._store_chunk(CHUNK_EVENTS)
                self._full_chunks += 1
                self._n_buffered = self._n_stored_partial = 0
        self._cd_index.add(cd["t"])
        self._last_cd_t = int(cd["t"][-1])
        self.events_written += cd.shape[0]

    def _store_partial_chunk(self) -> None:
        if self._n_buffered > self._n_stored_partial:
            self._store_chunk(self._n_buffered)
            self._n_stored_partial = self._n_buffered

    def _store_chunk(self, n: int) -> None:
        """ECF-encode the first ``n`` buffered events (write() checked them) and store them as one chunk."""
        block = encode_ecf_block(self._chunk[:n], stale=self._chunk[n : n + 5], validate=False)
        start = self._full_chunks * CHUNK_EVENTS
        if self._cd.shape[0] < start + n:
            self._cd.resize((start + n,))
        self._cd.id.write_direct_chunk((start,), block, 0)


# -- reading ---------------------------------------------------------------------------------------
def _find_dataset(file: h5py.File, name: str, fields: tuple[str, ...], what: str) -> h5py.Dataset:
    obj = file.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise EventFileError(file.filename, f"no /{name} dataset: not a Prophesee HDF5 event file")
    names = obj.dtype.names or ()
    if obj.ndim != 1 or not set(fields) <= set(names):
        raise EventFileError(
            file.filename,
            f"/{name} has shape {obj.shape} and dtype {obj.dtype}, expected 1-D {what} ({', '.join(fields)})",
        )
    return obj


#: What h5py raises for a damaged file: OSError from HDF5's error stack, RuntimeError from iterations,
#: KeyError from failed lookups, ValueError/TypeError from impossible shapes and types.
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)
#: Best compression ratio of a standard HDF5 filter (deflate's limit is about 1032:1): rows a file of a
#: given size can really hold, whatever its (possibly corrupt) extent claims.
_MAX_COMPRESSION = 1100


def _stored_rows(ds: h5py.Dataset, file_size: int, notes: list[str]) -> int:
    """Rows of a plain (non-ECF) dataset that the file can really hold; never more than its extent.

    HDF5 returns fill values for chunks that were never written, so a corrupt extent (a flipped size field)
    would otherwise make a reader return billions of zero events from a small file. The allocated chunks,
    and the file size, bound the rows actually present.
    """
    rows = ds.shape[0]
    if ds.chunks:
        stored = ds.id.get_num_chunks() * ds.chunks[0]
    else:
        stored = ds.id.get_storage_size() // max(ds.dtype.itemsize, 1)
    stored = min(stored, file_size * _MAX_COMPRESSION // max(ds.dtype.itemsize, 1))
    if stored < rows:
        notes.append(f"{ds.name} claims {rows} rows but the file stores at most {stored}: only those are read")
        log.warning("%s: %s", ds.file.filename, notes[-1])
        return stored
    return rows


def _geometry(metadata: dict[str, str]) -> tuple[int, int] | None:
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", metadata.get("geometry", ""))
    if match:
        return int(match[1]), int(match[2])
    fields = dict(part.split("=", 1) for part in metadata.get("format", "").split(";") if "=" in part)
    try:
        return int(fields["width"]), int(fields["height"])
    except (KeyError, ValueError):
        return None


class Hdf5EventReader(EventFileReader):
    """Streams a Prophesee HDF5 file chunk by chunk; memory stays at about one ``max_events`` piece.

    ECF chunks are decoded here (no plugin needed); ``/CD/events`` stored uncompressed or with a
    standard filter (other tools' files) is read through h5py. Times are absolute, as OpenEB
    writes them. Attributes are never read in this process: :mod:`capture.formats.hdf5_attributes`
    reads them in a child that can be stopped, since a damaged string heap makes HDF5 loop forever.
    """

    def __init__(self, path: str | Path, *, width: int | None = None, height: int | None = None) -> None:
        """Open ``path``; ``width``/``height`` stand in for a sensor size the file's attributes do not give."""
        self.path = Path(path)
        self._given_geometry = (width, height) if width and height else None
        if not self.path.is_file():
            raise EventFileError(self.path, "no such file")
        try:
            is_hdf5 = h5py.is_hdf5(self.path)
        except OSError as exc:
            raise EventFileError(self.path, f"cannot open: {exc}") from exc
        if not is_hdf5:
            raise EventFileError(self.path, "not an HDF5 file (no HDF5 signature)")
        try:
            self._file = h5py.File(self.path, "r")
        except _H5_ERRORS as exc:
            raise EventFileError(self.path, f"cannot open as HDF5: {exc}") from exc
        try:
            self._open_datasets()
        except _H5_ERRORS as exc:
            self._file.close()
            raise EventFileError(self.path, f"corrupt HDF5 structure: {exc}") from exc
        except BaseException:
            self._file.close()
            raise
        self._cd_pos = 0
        self._trig_pos = 0
        self._cached_block: tuple[int, np.ndarray] | None = None  # left by seek_time for the next read
        self._trig_buf = np.empty(0, EVENT_EXT_TRIGGER)
        self._trig_buf_start = 0

    # -- public API ----------------------------------------------------------------------------------
    def read_chunks(self, max_events: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield time-ordered ``(cd, triggers)``; each pair's triggers are those up to its last CD time.

        If a chunk cannot be decoded, everything before it is yielded first, then EventFileError.
        """
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        pos = self._cd_pos
        while pos < self._n_cd:
            piece = np.empty(min(max_events, self._n_cd - pos), EVENT_CD)
            filled = 0
            while filled < piece.shape[0]:
                try:
                    filled += self._read_into(pos + filled, piece[filled:])
                except EventFileError:
                    if filled:
                        yield self._emit(piece[:filled], pos + filled)
                    raise
            pos += filled
            yield self._emit(piece, pos)
        while self._trig_pos < self._n_trig:
            trig = self._buffered_triggers()
            self._trig_pos += trig.shape[0]
            yield np.empty(0, EVENT_CD), trig

    def seek_time(self, t_us: int) -> None:
        t_us = int(t_us)
        self._cd_pos = self._seek_cd(t_us)
        self._trig_pos = self._seek_triggers(t_us)

    def progress(self) -> float | None:
        total = self._n_cd + self._n_trig
        return (self._cd_pos + self._trig_pos) / total if total else 1.0

    def close(self) -> None:
        self._file.close()

    # -- opening -------------------------------------------------------------------------------------
    def _open_datasets(self) -> None:
        f = self._file
        self._cd = _find_dataset(f, "CD/events", EVENT_CD.names, "EventCD")
        self._cd_index = _find_dataset(f, "CD/indexes", HDF5_INDEX.names, "index")
        inferred: list[str] = []
        self._trig: h5py.Dataset | None = None
        self._trig_index: h5py.Dataset | None = None
        if "EXT_TRIGGER" in f:  # OpenEB always writes it; other tools may leave it out
            self._trig = _find_dataset(f, "EXT_TRIGGER/events", EVENT_EXT_TRIGGER.names, "EventExtTrigger")
            self._trig_index = _find_dataset(f, "EXT_TRIGGER/indexes", HDF5_INDEX.names, "index")
        else:
            inferred.append("no /EXT_TRIGGER group: the file holds no trigger events")
        self._n_cd = self._cd.shape[0]
        self._n_trig = 0 if self._trig is None else _stored_rows(self._trig, self.path.stat().st_size, inferred)

        dcpl = self._cd.id.get_create_plist()
        filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())] if self._cd.chunks else []
        self._ecf = ECF_FILTER_ID in filters
        if self._ecf and len(filters) > 1:
            raise EventFileError(self.path, f"/CD/events mixes ECF with filters {filters}: unsupported")
        if self._ecf:
            self._block_rows = self._cd.chunks[0]
        else:
            self._n_cd = _stored_rows(self._cd, self.path.stat().st_size, inferred)
            rows = self._cd.chunks[0] if self._cd.chunks else 1
            self._block_rows = -(-CHUNK_EVENTS // rows) * rows  # whole HDF5 chunks per read
            inferred.append(
                f"/CD/events is {'filtered with ' + str(filters) if filters else 'uncompressed'}, not ECF: "
                "Metavision's C++ tools cannot read this file"
            )

        attributes = read_attributes(self.path)
        metadata = dict(attributes["root"])
        self._offsets: dict[str, str] = attributes["offsets"]
        for problem in attributes["problems"]:
            inferred.append(problem)
            log.warning("%s: %s", self.path, problem)
        geometry = _geometry(metadata)
        if geometry is None and self._given_geometry is not None:
            geometry = self._given_geometry
            inferred.append(f"geometry {geometry[0]}x{geometry[1]} given by the user (the attributes have none)")
        elif geometry is None:
            geometry = (0, 0)
            inferred.append("no 'geometry' or 'format' attribute: sensor size unknown (0x0)")
        self.info = EventFileInfo(self.path, "HDF5", geometry[0], geometry[1], metadata, inferred)

    # -- CD events -----------------------------------------------------------------------------------
    def _read_into(self, at: int, out: np.ndarray) -> int:
        """Copy events from global index ``at`` to the end of their chunk, or as many as fit, into ``out``.

        A whole chunk that fits is decoded straight into ``out``: no intermediate array, no copy.
        """
        k = at // self._block_rows
        start = k * self._block_rows
        rows = min(start + self._block_rows, self._n_cd) - start
        take = min(start + rows - at, out.shape[0])
        if at == start and take == rows:
            self._read_block(k, out[:take])
        else:
            _copy_events(out[:take], self._read_block(k)[at - start : at - start + take])
        return take

    def _read_block(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Events of block ``k`` (one ECF chunk, or a run of plain HDF5 chunks), trimmed to the extent.

        With ``out`` (exactly the block's length) the events land there and ``out`` is returned.
        """
        start = k * self._block_rows
        stop = min(start + self._block_rows, self._n_cd)
        if self._cached_block is not None and self._cached_block[0] == k:
            events = self._cached_block[1]
            self._cached_block = None
        elif not self._ecf:
            events = np.empty(stop - start, EVENT_CD) if out is None else out
            try:
                self._cd.read_direct(events, np.s_[start:stop])  # HDF5 converts any x/y/p/t compound
            except _H5_ERRORS as exc:
                where = f"/CD/events rows {start}..{stop - 1}"
                raise EventFileError(self.path, f"{where}: cannot read: {exc}") from exc
            return events
        else:
            events = self._decode_chunk(k, start, stop, out)
        if out is None:
            return events
        if events is not out:
            _copy_events(out, events)
        return out

    def _decode_chunk(self, k: int, start: int, stop: int, out: np.ndarray | None) -> np.ndarray:
        where = f"/CD/events chunk {k} (events {start}..{stop - 1})"
        try:
            mask, data = self._cd.id.read_direct_chunk((start,))
        except _H5_ERRORS as exc:
            raise EventFileError(self.path, f"{where}: chunk missing or unreadable ({exc})") from exc
        try:
            if mask & 1:  # HDF5 skipped the optional filter when this chunk was written: raw EventCD
                if len(data) < (stop - start) * EVENT_CD.itemsize:
                    raise ValueError(f"unfiltered chunk of {len(data)} bytes is too short")
                return np.frombuffer(data, EVENT_CD, count=stop - start)
            if out is not None and ecf_block_length(data) == stop - start:
                return decode_ecf_block(data, out)
            events = decode_ecf_block(data)
        except ValueError as exc:
            raise EventFileError(self.path, f"{where}: {exc}") from exc
        if events.shape[0] < stop - start:
            raise EventFileError(
                self.path, f"{where}: ECF block holds {events.shape[0]} events, extent needs {stop - start}"
            )
        return events[: stop - start]

    def _emit(self, cd: np.ndarray, pos: int) -> tuple[np.ndarray, np.ndarray]:
        """Close one output piece ending at event ``pos``: its events and the triggers up to its last time."""
        self._cd_pos = pos
        return cd, self._take_triggers_until(int(cd["t"][-1]))

    def _seek_cd(self, t_us: int) -> int:
        """Index of the first CD event with ``t >= t_us``: /CD/indexes gives a lower bound, then scan."""
        pos = self._index_lower_bound(self._cd_index, t_us, self._n_cd)
        while pos < self._n_cd:
            k = pos // self._block_rows
            block = self._read_block(k)
            first = pos - k * self._block_rows
            hit = first + int(np.searchsorted(block["t"][first:], t_us, side="left"))
            if hit < block.shape[0]:
                self._cached_block = (k, block)
                return k * self._block_rows + hit
            pos = (k + 1) * self._block_rows
        return self._n_cd

    def _index_lower_bound(self, index: h5py.Dataset | None, t_us: int, n_events: int) -> int:
        """First event of the index period before ``t_us`` (OpenEB reads one period early, §6.4).

        Falls back to 0 (a full scan) when the table is empty or inconsistent, e.g. a file from a
        writer that died before closing it.
        """
        if index is None or index.shape[0] == 0:
            return 0
        try:
            offset = int(self._offsets[index.name.lstrip("/")])
        except (KeyError, ValueError):
            log.warning("%s: %s has no usable 'offset' attribute; seeking by scanning", self.path, index.name)
            return 0
        rel = t_us + offset
        if rel < 0:
            return 0
        try:
            row = index[min(rel // INDEX_PERIOD_US, index.shape[0] - 1)]
        except _H5_ERRORS as exc:
            log.warning("%s: %s is unreadable (%s); seeking by scanning", self.path, index.name, exc)
            return 0
        event_id, ts = int(row["id"]), int(row["ts"])
        if event_id > n_events or ts > rel:
            log.warning("%s: %s is inconsistent with the events; seeking by scanning", self.path, index.name)
            return 0
        return event_id

    # -- triggers ------------------------------------------------------------------------------------
    def _buffered_triggers(self) -> np.ndarray:
        """Triggers from the current trigger position on, at least one batch unless at the end."""
        offset = self._trig_pos - self._trig_buf_start
        if not 0 <= offset < self._trig_buf.shape[0]:
            assert self._trig is not None
            stop = min(self._trig_pos + _TRIGGER_BATCH, self._n_trig)
            try:
                self._trig_buf = as_events(self._trig[self._trig_pos : stop], EVENT_EXT_TRIGGER)
            except _H5_ERRORS as exc:
                raise EventFileError(
                    self.path, f"/EXT_TRIGGER/events rows {self._trig_pos}..{stop - 1}: cannot read: {exc}"
                ) from exc
            self._trig_buf_start = self._trig_pos
            offset = 0
        return self._trig_buf[offset:]

    def _take_triggers_until(self, t_last: int) -> np.ndarray:
        parts = []
        while self._trig_pos < self._n_trig:
            buf = self._buffered_triggers()
            k = int(np.searchsorted(buf["t"], t_last, side="right"))
            parts.append(buf[:k])
            self._trig_pos += k
            if k < buf.shape[0]:
                break
        if not parts:
            return np.empty(0, EVENT_EXT_TRIGGER)
        return concat_events(parts, EVENT_EXT_TRIGGER)

    def _seek_triggers(self, t_us: int) -> int:
        self._trig_pos = self._index_lower_bound(self._trig_index, t_us, self._n_trig)
        while self._trig_pos < self._n_trig:
            buf = self._buffered_triggers()
            k = int(np.searchsorted(buf["t"], t_us, side="left"))
            self._trig_pos += k
            if k < buf.shape[0]:
                break
        return self._trig_pos
