"""Reading a recording folder (or a bare RAW/HDF5 event file from any software) back as sweeps.

A recording cut off by a crash opens like any other: everything flushed before the crash is there, and
``status`` says ``incomplete`` (no stop document) rather than failing. HDF5 files left "open for write" by a
killed SWMR writer are opened in SWMR read mode, which HDF5 allows without ``h5clear``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from capture.formats import EventFileError, EventFileReader, open_events
from capture.plan import PlanError, SweepPlan
from capture.recording import layout
from capture.recording.metadata import read_run_log
from capture.recording.writer import SWEEP_DTYPE, TIME_SOURCES
from capture.sweep import CommandedSweep, SweepData
from drivers.camera import Frame
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events


def open_h5(path: Path) -> h5py.File:
    """Open read-only; a file whose SWMR writer was killed is opened in SWMR read mode instead of refused."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "open for write" not in str(exc) and "consistency flags" not in str(exc):
            raise layout.RecordingError(f"{path}: unreadable HDF5 file ({exc})") from None
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError as exc:
        raise layout.RecordingError(f"{path}: unreadable HDF5 file even in SWMR mode ({exc})") from None


class FrameStore:
    """The frames of a recording: ``len``, ``store[i]`` → Frame, and the per-frame time arrays (event clock µs)."""

    def __init__(self, path: Path | None) -> None:
        self._file = open_h5(path) if path is not None and path.is_file() else None
        g = self._file["frames"] if self._file is not None else None
        self._image = g["image"] if g is not None else None
        n = self._image.shape[0] if g is not None else 0
        # A killed writer may have grown one dataset before the others: trust only rows every dataset has.
        if g is not None:
            n = min(g[name].shape[0] for name in g)
        self._n = n

        def col(name: str, dtype: str) -> np.ndarray:
            return g[name][:n] if g is not None else np.empty(0, dtype)

        self.index = col("index", "<i8")
        self.exposure_start_us = col("exposure_start_us", "<i8")
        self.exposure_end_us = col("exposure_end_us", "<i8")
        self.focal_power_dpt = col("focal_power_dpt", "<f8")
        self.time_source = col("time_source", "u1")

    def __len__(self) -> int:
        return self._n

    @property
    def mid_us(self) -> np.ndarray:
        return (self.exposure_start_us + self.exposure_end_us) / 2

    @property
    def on_event_clock(self) -> np.ndarray:
        """Frames whose times are on the event clock (strobe-paired, event-timed source, or host-mapped)."""
        return self.time_source != TIME_SOURCES.index("camera")

    @property
    def geometry(self) -> tuple[int, int] | None:
        """(width, height) of the frames, None without frames."""
        if self._image is None:
            return None
        return int(self._image.shape[2]), int(self._image.shape[1])

    def __getitem__(self, i: int) -> Frame:
        if not -self._n <= i < self._n:
            raise IndexError(f"frame {i} of {self._n}")
        i %= self._n
        source = TIME_SOURCES[int(self.time_source[i])]
        power = float(self.focal_power_dpt[i])
        return Frame(np.asarray(self._image[i]), int(self.index[i]), int(self.exposure_start_us[i]),
                     int(self.exposure_end_us[i]), "camera" if source == "camera" else "event",
                     None if np.isnan(power) else power)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Recording:
    """A recording opened for reading. Use :meth:`open`; close it (or use ``with``) to release the files."""

    def __init__(self, path: Path, folder: Path | None, events_path: Path | None, metadata: dict,
                 docs: list[dict]) -> None:
        self.path = path
        self.folder = folder
        self.events_path = events_path
        self.metadata = metadata
        self.docs = docs
        stop = [d for d in docs if d.get("doc") == "stop"]
        self._stop = stop[-1] if stop else None
        self._sync = open_h5(folder / layout.SYNC_FILE) if folder and (folder / layout.SYNC_FILE).is_file() else None
        self.frames = FrameStore(folder / layout.FRAMES_FILE if folder else None)

    @classmethod
    def open(cls, path: str | Path) -> Recording:
        """A recording folder, or a bare event file (.raw/.hdf5/...) as an events-only recording."""
        path = Path(path)
        if path.is_dir():
            meta_path = path / layout.METADATA
            if not meta_path.is_file() and not (path / layout.RUN_LOG).is_file():
                raise layout.RecordingError(f"{path}: not a focalrig recording (no {layout.METADATA} or "
                                            f"{layout.RUN_LOG})")
            try:
                metadata = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
            except json.JSONDecodeError as exc:
                raise layout.RecordingError(f"{meta_path}: not valid JSON ({exc})") from None
            events = path / layout.EVENTS_FILE
            return cls(path, path, events if events.is_file() else None, metadata, read_run_log(path / layout.RUN_LOG))
        if path.is_file():
            with _events(path) as reader:
                info = reader.info
            meta = {"format": "bare event file", "source_format": info.format, "event_geometry": [info.width,
                                                                                                  info.height]}
            return cls(path, None, path, meta, [])
        raise layout.RecordingError(f"{path}: no such recording folder or event file")

    # -- outcome -------------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True when the run ended in an orderly way (stop document written), whatever its exit status."""
        return self.folder is None or self._stop is not None

    @property
    def exit_status(self) -> str | None:
        """success / aborted / failed, or None for an incomplete recording or a bare event file."""
        return self._stop.get("exit_status") if self._stop else None

    @property
    def status(self) -> str:
        """exit_status, ``incomplete`` (cut off by a crash or kill), or ``events-only`` for a bare file."""
        if self.folder is None:
            return "events-only"
        return self.exit_status or "incomplete"

    @property
    def reason(self) -> str | None:
        return self._stop.get("reason") if self._stop else None

    @property
    def uid(self) -> str | None:
        return self.metadata.get("uid")

    @property
    def plan(self) -> SweepPlan | None:
        data = self.metadata.get("plan")
        if not data:
            return None
        try:
            return SweepPlan.from_dict(data, source=f"{self.path}/{layout.METADATA} plan")
        except PlanError:
            return None

    @property
    def soft_synced(self) -> bool | None:
        table = self.sweep_table
        if len(table):
            return bool(table["soft_synced"].any())
        return self.metadata.get("soft_synced")

    # -- streams -------------------------------------------------------------------------------------
    def events(self, block_bytes: int | None = None) -> EventFileReader:
        """A fresh reader of the event file (the caller closes it); ``block_bytes``: RAW decoding block size."""
        if self.events_path is None:
            raise layout.RecordingError(f"{self.path}: this recording has no event file")
        return _events(self.events_path, block_bytes)

    @property
    def event_geometry(self) -> tuple[int, int] | None:
        geom = self.metadata.get("event_geometry")
        return tuple(geom) if geom else None

    @property
    def frame_geometry(self) -> tuple[int, int] | None:
        geom = self.metadata.get("frame_geometry")
        return tuple(geom) if geom else self.frames.geometry

    def _sync_ds(self, name: str, dtype: np.dtype, shape: tuple = (0,)) -> np.ndarray:
        if self._sync is None or name not in self._sync:
            return np.zeros(shape, dtype)
        return self._sync[name][()]

    @property
    def triggers(self) -> np.ndarray:
        """Every trigger edge recorded (EVENT_EXT_TRIGGER), from ``sync.h5`` (or the event file when bare)."""
        if self._sync is not None:
            return self._sync_ds("triggers", EVENT_EXT_TRIGGER)
        if self.events_path is None:
            return np.empty(0, EVENT_EXT_TRIGGER)
        with self.events() as reader:
            return concat_events([t for _, t in reader.read_chunks()], EVENT_EXT_TRIGGER)

    @property
    def lens_measured(self) -> np.ndarray:
        """(k, 4) rows t_us, position, focal_power_dpt, temperature_c (NaN where the lens did not say)."""
        return self._sync_ds("lens/measured", np.float64, (0, 4))

    @property
    def lens_commanded(self) -> np.ndarray:
        """(k, 2) rows t_us, commanded focal power (sampled per sweep from the commanded waveform)."""
        return self._sync_ds("lens/commanded", np.float64, (0, 2))

    @property
    def sweep_table(self) -> np.ndarray:
        return self._sync_ds("sweeps", SWEEP_DTYPE)

    def __len__(self) -> int:
        return len(self.sweep_table)

    # -- sweeps --------------------------------------------------------------------------------------
    def commanded(self, row: np.void) -> CommandedSweep:
        c = self.metadata.get("commanded")
        if not c:
            raise layout.RecordingError(f"{self.path}: metadata has no commanded sweep")
        return CommandedSweep(c["waveform"], c["low_dpt"], c["high_dpt"], float(row["t0_us"]),
                              frequency_hz=c.get("frequency_hz", 0.0),
                              step_powers_dpt=tuple(c.get("step_powers_dpt", ())), dwell_us=c.get("dwell_us", 0.0),
                              soft_synced=bool(row["soft_synced"]))

    def sweeps(self) -> Iterator[SweepData]:
        """Every recorded sweep in order, reading the event file once."""
        yield from self._sweeps(self._require_sweeps())

    def sweep(self, k: int) -> SweepData:
        table = self._require_sweeps()
        if not 0 <= k < len(table):
            raise IndexError(f"{self.path}: sweep {k} of {len(table)}")
        return next(self._sweeps(table[k:k + 1], seek=True))

    def _require_sweeps(self) -> np.ndarray:
        if self.folder is None:
            raise layout.RecordingError(f"{self.path}: a bare event file has no sweep table; replay it through the "
                                        "capture engine (ReplayRig) with a plan to cut it into sweeps")
        return self.sweep_table

    def _sweeps(self, table: np.ndarray, seek: bool = False) -> Iterator[SweepData]:
        if not len(table):
            return
        frames = self.frames
        mids = frames.mid_us
        usable = frames.on_event_clock
        measured = self.lens_measured
        event_geom = self.event_geometry or (0, 0)
        frame_geom = self.frame_geometry or (0, 0)
        meta = {"recording_uid": self.uid, "recording": str(self.path), "plan": self.metadata.get("plan", {}).get(
            "name"), "calibration_file": self.metadata.get("calibration_file")}
        windows = [(int(r["t_start_us"]), int(r["t_end_us"])) for r in table]
        if self.events_path is not None:
            reader = self.events()
            if seek:
                reader.seek_time(windows[0][0])
            parts = _windowed(reader, windows)
        else:
            reader = None
            parts = ((np.empty(0, EVENT_CD), np.empty(0, EVENT_EXT_TRIGGER)) for _ in windows)
        try:
            for row, (t0, t1), (cd, trig) in zip(table, windows, parts, strict=True):
                sel = np.flatnonzero(usable & (mids >= t0) & (mids < t1))
                m = measured[(measured[:, 0] >= t0) & (measured[:, 0] < t1)] if len(measured) else measured
                yield SweepData(int(row["index"]), t0, t1, cd, trig, tuple(frames[int(i)] for i in sel),
                                self.commanded(row), event_geom, frame_geom,
                                measured_dpt=m[:, [0, 2]][~np.isnan(m[:, 2])] if len(m) else np.empty((0, 2)),
                                meta=meta)
        finally:
            if reader is not None:
                reader.close()

    def close(self) -> None:
        self.frames.close()
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _events(path: Path, block_bytes: int | None = None) -> EventFileReader:
    try:
        return open_events(path, block_bytes=block_bytes)
    except EventFileError as exc:
        raise layout.RecordingError(str(exc)) from None


def _windowed(reader: EventFileReader, windows: list[tuple[int, int]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(cd, triggers) of each [t0, t1) window, in order (windows sorted and disjoint), in one pass over the file."""
    cd_parts: list[np.ndarray] = []
    tr_parts: list[np.ndarray] = []
    chunks = reader.read_chunks()
    last = -1  # latest time read so far
    done = False
    for t0, t1 in windows:
        while not done and last < t1:
            nxt = next(chunks, None)
            if nxt is None:
                done = True
                break
            cd_parts.append(nxt[0])
            tr_parts.append(nxt[1])
            last = max([last] + [int(a["t"][-1]) for a in nxt if len(a)])
        cd = concat_events(cd_parts, EVENT_CD)
        tr = concat_events(tr_parts, EVENT_EXT_TRIGGER)
        a, b = np.searchsorted(cd["t"], [t0, t1])
        c, d = np.searchsorted(tr["t"], [t0, t1])
        yield cd[a:b], tr[c:d]
        cd_parts, tr_parts = [cd[b:]], [tr[d:]]
