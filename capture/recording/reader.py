"""Reading a recording folder (or a bare RAW/HDF5 event file from any software) back as sweeps.

A recording cut off by a crash opens like any other: everything flushed before the crash is there, and
``status`` says ``incomplete`` (no stop document) rather than failing. HDF5 files left "open for write" by a
killed SWMR writer are opened in SWMR read mode, which HDF5 allows without ``h5clear``.

A recording with a part missing, empty or damaged (copied without ``sync.h5``, a truncated ``frames.h5``, an
unreadable ``metadata.json``) opens too, so that whatever is intact stays readable: :attr:`Recording.problems`
names each damaged part and what is wrong with it, ``status`` becomes ``incomplete``, and any step that needs
a damaged part (sweeps need ``sync.h5`` and the commanded sweep of ``metadata.json``) raises a
:class:`~capture.recording.layout.RecordingError` naming that file instead of quietly working with nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

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

#: What h5py raises for a damaged file (HDF5's error stack as OSError, failed lookups as KeyError, ...).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def open_h5(path: Path) -> h5py.File:
    """Open read-only; a file whose SWMR writer was killed is opened in SWMR read mode instead of refused."""
    if path.is_file() and path.stat().st_size == 0:
        raise layout.RecordingError(f"{path}: empty file (0 bytes)")
    try:
        return h5py.File(path, "r")
    except H5_ERRORS as exc:
        if "open for write" not in str(exc) and "consistency flags" not in str(exc):
            raise layout.RecordingError(f"{path}: unreadable HDF5 file ({exc})") from None
    try:
        return h5py.File(path, "r", swmr=True)
    except H5_ERRORS as exc:
        raise layout.RecordingError(f"{path}: unreadable HDF5 file even in SWMR mode ({exc})") from None


def _part_problem(path: Path) -> str | None:
    """``missing`` or ``empty (0 bytes)`` for a recording part that holds nothing, else None."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    return None


class FrameStore:
    """The frames of a recording: ``len``, ``store[i]`` → Frame, and the per-frame time arrays (event clock µs)."""

    #: Per-frame datasets next to ``image`` and their dtypes.
    COLUMNS: ClassVar[dict[str, str]] = {
        "index": "<i8", "exposure_start_us": "<i8", "exposure_end_us": "<i8", "focal_power_dpt": "<f8",
        "time_source": "u1",
    }

    def __init__(self, path: Path | None) -> None:
        """Open ``frames.h5`` (None or an absent file: no frames); raises RecordingError naming a damaged file."""
        self.path = path
        self._file = open_h5(path) if path is not None and path.is_file() else None
        try:
            self._load()
        except H5_ERRORS as exc:
            self.close()
            raise layout.RecordingError(f"{path}: damaged frames file ({exc})") from None

    def _load(self) -> None:
        g = self._file["frames"] if self._file is not None else None
        self._image = g["image"] if g is not None else None
        if self._image is not None and (self._image.ndim not in (3, 4) or self._image.dtype.kind != "u"):
            raise ValueError(f"/frames/image has shape {self._image.shape} and dtype {self._image.dtype}")
        n = self._image.shape[0] if g is not None else 0
        # A killed writer may have grown one dataset before the others: trust only rows every dataset has.
        if g is not None:
            n = min([n] + [g[name].shape[0] for name in self.COLUMNS])
        self._n = n
        for name, dtype in self.COLUMNS.items():
            col = np.asarray(g[name][:n], dtype) if g is not None else np.empty(0, dtype)
            if col.shape != (n,):
                raise ValueError(f"/frames/{name} has shape {col.shape}, expected ({n},)")
            setattr(self, name, col)
        if n and not np.all(self.time_source < len(TIME_SOURCES)):
            raise ValueError("/frames/time_source holds codes outside " + ", ".join(TIME_SOURCES))

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
        try:
            image = np.asarray(self._image[i])
        except H5_ERRORS as exc:
            raise layout.RecordingError(f"{self.path}: frame {i} is unreadable ({exc})") from None
        return Frame(image, int(self.index[i]), int(self.exposure_start_us[i]),
                     int(self.exposure_end_us[i]), "camera" if source == "camera" else "event",
                     None if np.isnan(power) else power)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Recording:
    """A recording opened for reading. Use :meth:`open`; close it (or use ``with``) to release the files."""

    def __init__(self, path: Path, folder: Path | None, events_path: Path | None, metadata: dict,
                 docs: list[dict], problems: dict[str, str] | None = None) -> None:
        self.path = path
        self.folder = folder
        self.events_path = events_path
        self.metadata = metadata
        self.docs = docs
        #: Damaged parts of a recording folder: file name -> what is wrong with it (empty when all is well).
        self.problems: dict[str, str] = dict(problems or {})
        stop = [d for d in docs if d.get("doc") == "stop"]
        self._stop = stop[-1] if stop else None
        self._sync: h5py.File | None = None
        self.frames = FrameStore(None)
        if folder is None:
            return
        for name in self.expected_parts():
            problem = _part_problem(folder / name)
            if problem is not None:
                self.problems.setdefault(name, problem)
        if layout.SYNC_FILE not in self.problems:
            try:
                self._sync = open_h5(folder / layout.SYNC_FILE)
            except layout.RecordingError as exc:
                self.problems[layout.SYNC_FILE] = _problem_text(exc, folder / layout.SYNC_FILE)
        if layout.FRAMES_FILE not in self.problems and (folder / layout.FRAMES_FILE).is_file():
            try:
                self.frames = FrameStore(folder / layout.FRAMES_FILE)
            except layout.RecordingError as exc:
                self.problems[layout.FRAMES_FILE] = _problem_text(exc, folder / layout.FRAMES_FILE)

    @classmethod
    def open(cls, path: str | Path) -> Recording:
        """A recording folder, or a bare event file (.raw/.hdf5/...) as an events-only recording.

        A folder opens whenever it holds a ``metadata.json`` or a ``run.jsonl``, whatever state the other
        parts are in: see :attr:`problems`.
        """
        path = Path(path)
        if path.is_dir():
            meta_path = path / layout.METADATA
            if not meta_path.is_file() and not (path / layout.RUN_LOG).is_file():
                raise layout.RecordingError(f"{path}: not a focalrig recording (no {layout.METADATA} or "
                                            f"{layout.RUN_LOG})")
            problems: dict[str, str] = {}
            metadata: dict = {}
            if meta_path.is_file() and meta_path.stat().st_size:
                try:
                    metadata = json.loads(meta_path.read_bytes().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    problems[layout.METADATA] = f"not valid JSON ({exc})"
                if not isinstance(metadata, dict):
                    problems[layout.METADATA] = f"holds a JSON {type(metadata).__name__}, not an object"
                    metadata = {}
                wrong = {k: v for k, v in metadata.items() if k in _METADATA_TYPES and v is not None
                         and not isinstance(v, _METADATA_TYPES[k])}
                if wrong:  # left out, so that no reader trips over them; the rest of the file still counts
                    problems[layout.METADATA] = "values of the wrong type, ignored: " + ", ".join(
                        f"{k}={v!r}"[:80] for k, v in wrong.items())
                    metadata = {k: v for k, v in metadata.items() if k not in wrong}
            events = path / layout.EVENTS_FILE
            return cls(path, path, events if events.is_file() else None, metadata, read_run_log(path / layout.RUN_LOG),
                       problems)
        if path.is_file():
            with _events(path) as reader:
                info = reader.info
            meta = {"format": "bare event file", "source_format": info.format, "event_geometry": [info.width,
                                                                                                  info.height]}
            return cls(path, None, path, meta, [])
        raise layout.RecordingError(f"{path}: no such recording folder or event file")

    def expected_parts(self) -> list[str]:
        """The files this recording should have, from what its documents say was recorded.

        ``frames.h5`` is created at the first frame and ``events.raw`` only with an event camera, so each is
        expected only when the metadata or the run log says that stream was recorded (or cannot tell).
        """
        parts = [layout.METADATA, layout.RUN_LOG, layout.SYNC_FILE]
        descriptor = next((d for d in self.docs if d.get("doc") == "descriptor"), None)
        streams = descriptor.get("streams") if isinstance(descriptor, dict) else None
        streams = streams if isinstance(streams, dict) else {}
        events = streams.get("events")
        if not (isinstance(events, dict) and events.get("format") is None):
            parts.append(layout.EVENTS_FILE)
        # The final frame count when the run ended in order, else what the sweeps logged so far: a capture
        # still running (or killed) before its first frame batch has no frames.h5 yet, and is not damaged.
        n_frames = self.metadata.get("n_frames")
        if not _number(n_frames):
            n_frames = max([n for d in self.docs if d.get("doc") == "event" and _number(n := d.get("frames_written"))],
                           default=0)
        if n_frames > 0:
            parts.append(layout.FRAMES_FILE)
        return parts

    def part_error(self, name: str, needed_for: str) -> layout.RecordingError | None:
        """A RecordingError naming part ``name`` and what it is needed for, if that part is damaged."""
        problem = self.problems.get(name)
        if problem is None:
            return None
        return layout.RecordingError(f"{self.path / name}: {problem}; it holds {needed_for}. Copy the complete "
                                     "recording folder again, or recover the file from the capture machine")

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
        """exit_status; ``incomplete`` when cut off by a crash or kill, or when a part is missing or damaged
        (see :attr:`problems`); ``events-only`` for a bare file."""
        if self.folder is None:
            return "events-only"
        if self.problems:
            return "incomplete"
        return str(self.exit_status or "incomplete")

    @property
    def reason(self) -> str | None:
        """Why the run ended as it did (the stop document's reason), then each damaged part and its problem."""
        parts = [f"{name} {problem}" for name, problem in self.problems.items()]
        stated = self._stop.get("reason") if self._stop else None
        return "; ".join([str(stated)] * bool(stated) + parts) or None

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
        damaged = self.part_error(layout.EVENTS_FILE, "the recording's events")
        if damaged is not None:
            raise damaged
        if self.events_path is None:
            raise layout.RecordingError(f"{self.path}: this recording has no event file")
        return _events(self.events_path, block_bytes)

    @property
    def event_geometry(self) -> tuple[int, int] | None:
        return self._geometry("event_geometry")

    @property
    def frame_geometry(self) -> tuple[int, int] | None:
        return self._geometry("frame_geometry") or self.frames.geometry

    def _geometry(self, key: str) -> tuple[int, int] | None:
        geom = self.metadata.get(key)
        if not geom:
            return None
        if not (isinstance(geom, list) and len(geom) == 2 and all(type(v) is int and v > 0 for v in geom)):
            raise layout.RecordingError(f"{self.path / layout.METADATA}: '{key}' is {geom!r}, not [width, height]")
        return geom[0], geom[1]

    def _sync_ds(self, name: str, dtype: np.dtype, shape: tuple = (0,)) -> np.ndarray:
        if self._sync is None:
            return np.zeros(shape, dtype)
        try:
            if name not in self._sync:
                return np.zeros(shape, dtype)
            data = self._sync[name][()]
        except H5_ERRORS as exc:
            raise layout.RecordingError(f"{self.folder / layout.SYNC_FILE}: /{name} is unreadable ({exc})") from None
        if data.dtype != dtype or data.shape[1:] != shape[1:]:
            raise layout.RecordingError(f"{self.folder / layout.SYNC_FILE}: /{name} has shape {data.shape} and "
                                        f"dtype {data.dtype}, expected {dtype} rows of shape {shape[1:]}")
        return data

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
        where = self.path / layout.METADATA
        damaged = self.part_error(layout.METADATA, "the commanded sweep (waveform, range, frequency)")
        if not c and damaged is not None:
            raise damaged
        if not c:
            raise layout.RecordingError(f"{where}: no commanded sweep (waveform, range, frequency); it is written "
                                        "at the start of every sweep capture, so this is not a sweep recording or "
                                        "the file was replaced")
        try:
            return CommandedSweep(c["waveform"], float(c["low_dpt"]), float(c["high_dpt"]), float(row["t0_us"]),
                                  frequency_hz=float(c.get("frequency_hz", 0.0)),
                                  step_powers_dpt=tuple(float(v) for v in c.get("step_powers_dpt", ())),
                                  dwell_us=float(c.get("dwell_us", 0.0)), soft_synced=bool(row["soft_synced"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise layout.RecordingError(f"{where}: unusable commanded sweep {c!r} ({exc})") from None

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
        damaged = self.part_error(layout.SYNC_FILE, "the sweep table, trigger edges and lens samples")
        if damaged is not None:
            raise damaged
        table = self.sweep_table
        t0, t1 = table["t_start_us"], table["t_end_us"]
        bad = np.flatnonzero((t1 <= t0) | np.r_[False, t0[1:] < t1[:-1]])
        if len(bad):  # the capture writes non-empty windows in time order; anything else is damage
            k = int(bad[0])
            raise layout.RecordingError(f"{self.folder / layout.SYNC_FILE}: sweep table row {k} has the window "
                                        f"[{int(t0[k])}, {int(t1[k])}) µs, which is empty or overlaps the row "
                                        "before: the file is damaged")
        return table

    def no_sweeps_reason(self) -> str | None:
        """Why this recording has no sweep to read (None when it has some): for commands that need sweeps."""
        if self.folder is None:
            return (f"{self.path}: a bare event file has no sweep table; replay it through the capture engine "
                    "(ReplayRig) with a plan to cut it into sweeps")
        damaged = self.part_error(layout.SYNC_FILE, "the sweep table, trigger edges and lens samples")
        if damaged is not None:
            return str(damaged)
        if len(self.sweep_table):
            return None
        return (f"{self.path}: the recording holds no complete sweep ({layout.SYNC_FILE} has an empty sweep table); "
                "the capture stopped before its first sweep ended, or it is a target recording")

    def _sweeps(self, table: np.ndarray, seek: bool = False) -> Iterator[SweepData]:
        if not len(table):
            return
        for part, holds in ((layout.FRAMES_FILE, "the frames of every sweep"),
                            (layout.EVENTS_FILE, "the events of every sweep")):
            damaged = self.part_error(part, holds)
            if damaged is not None:
                raise damaged
        frames = self.frames
        mids = frames.mid_us
        usable = frames.on_event_clock
        measured = self.lens_measured
        event_geom = self.event_geometry or (0, 0)
        frame_geom = self.frame_geometry or (0, 0)
        meta = {"recording_uid": self.uid, "recording": str(self.path), "plan": (self.metadata.get("plan") or {}).get(
            "name"), "calibration_file": self.metadata.get("calibration_file")}  # types checked at opening
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


#: Types of the metadata.json values readers use (None is allowed for each); a value of another type is left out.
_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "uid": str, "plan": dict, "commanded": dict, "calibration_file": str, "event_geometry": list,
    "frame_geometry": list, "soft_synced": bool, "t_first_event_us": (int, float), "t_last_event_us": (int, float),
    "n_frames": int, "n_events": int, "drops": dict, "sync": dict, "counts": dict, "exit_status": str, "reason": str,
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem_text(exc: Exception, path: Path) -> str:
    """The problem part of a RecordingError about ``path`` (its message without the leading path)."""
    text = str(exc)
    return text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text


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
