"""Writes one recording folder while the capture runs; used by the engine's writer thread only.

Events go to ``events.raw`` as the camera's own bytes (EVT3 from an EVK4 or the simulator), so the file is what
the camera sent and OpenEB reads it. When the camera delivers no raw bytes (file replay) or a chunk had to be
dropped (the byte stream's decoder state then no longer matches), the writer encodes the events itself with an
encoder that continues the file's stream state, so the file stays exactly decodable.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from capture.formats.raw import RawEventWriter, make_encoder
from capture.recording import layout
from capture.recording.diskfull import DiskFull, Reserve, is_disk_full
from capture.recording.metadata import RunLog, software_versions, utc_now, write_json_atomic
from drivers.camera import EventChunk, Frame
from drivers.events.dtypes import EVENT_EXT_TRIGGER

#: How a frame's exposure times reached the event clock (``frames.h5`` ``/frames/time_source``).
TIME_SOURCES = ("strobe", "event", "host", "camera")
LENS_COLUMNS = ("t_us", "position", "focal_power_dpt", "temperature_c")
SWEEP_DTYPE = np.dtype([("index", "<i8"), ("t_start_us", "<i8"), ("t_end_us", "<i8"), ("t0_us", "<f8"),
                        ("soft_synced", "u1"), ("n_events", "<i8"), ("n_triggers", "<i8"), ("n_frames", "<i8")])
_WRITABLE_RAW = ("EVT3", "EVT2")
#: Frames buffered before one batched HDF5 write (≈ 0.1 s at 100 fps; flushes write any remainder).
FRAME_BATCH = 8
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)


def _disk_guarded(method: F) -> F:
    """A writing method whose "no space left" becomes the writer's one :class:`DiskFull` (and stays so: every
    later write raises it at once, without touching the files again)."""
    @functools.wraps(method)
    def wrapper(self: RecordingWriter, *args, **kwargs):
        if self.disk_full is not None:
            raise self.disk_full
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            log.debug("disk full while writing %s", self.folder, exc_info=True)
            self.disk_full = DiskFull(f"disk full after {time.monotonic() - self._t_start:.1f} s; everything up "
                                      f"to {self.saved_until_us / 1e6:.2f} s (event clock) is saved")
            raise self.disk_full from None

    return wrapper  # type: ignore[return-value]


class _RawRecorder(RawEventWriter):
    """RAW writer that appends the camera's bytes verbatim, or encodes events continuing the file's state."""

    def __init__(self, path: Path, width: int, height: int, fmt: str, header: dict[str, str]) -> None:
        super().__init__(path, width, height, fmt=fmt, header=header)
        self.fmt = fmt
        self.verbatim = True      # False once the camera's bytes can no longer be appended as they are
        self.last_t = -1          # latest event time in the file
        self.bytes = self._file.tell()

    def append(self, chunk: EventChunk, raw_ok: bool) -> None:
        cd, trig = chunk.cd, chunk.triggers
        if raw_ok and self.verbatim and chunk.raw is not None:
            self._file.write(chunk.raw)
            self.bytes += len(chunk.raw)
            self.events_written += len(cd)
            self.triggers_written += len(trig)
        else:
            if self.verbatim and self.last_t >= 0:
                self._continue_stream()
            self.verbatim = False
            size = self._file.tell()
            self.write(cd, trig)
            self.bytes += self._file.tell() - size
        ends = [int(a["t"][-1]) for a in (cd, trig) if len(a)]
        if ends:
            self.last_t = max(self.last_t, *ends)

    def _continue_stream(self) -> None:
        """Start own encoding where the camera's bytes stopped: same TIME_HIGH, TIME_LOW and row forced anew.

        Used after a dropped chunk (or a camera without raw bytes). The EVT3 encoder's state is (started,
        TIME_HIGH index, TIME_LOW, row); TIME_LOW and row set to -1 make it write both before the next event.
        """
        enc = make_encoder(self.fmt, *self._encoder_geometry)
        if self.fmt == "EVT3":
            enc._state[:] = (1, self.last_t >> 12, -1, -1)
        self._encoder = enc

    @property
    def _encoder_geometry(self) -> tuple[int, int]:
        return self._encoder.width, self._encoder.height


class RecordingWriter:
    """All files of one recording folder. Not thread-safe: one writer thread owns it.

    ``describe`` (rig.describe()), ``plan`` (a pydantic dump) and ``extra`` go into ``metadata.json`` and the
    run log's start document. Every flush hands the data to the OS (a killed process loses nothing flushed);
    sweep ends also fsync, at most every ``fsync_interval_s`` (fsync costs ~10 ms a file on a busy disk, and
    10 Hz sweeps would spend a third of a core on it), which bounds what a power cut can take.
    """

    fsync_interval_s = 0.5

    #: Set once the disk filled up: the error every later write raises; ``close`` then finalises without them.
    disk_full: DiskFull | None = None

    def __init__(self, folder: Path, *, uid: str, plan: dict, describe: dict, event_geometry: tuple[int, int] | None,
                 raw_format: str | None, raw_header: dict[str, str] | None, calibration_path: str | None,
                 extra: dict | None = None) -> None:
        self.folder = folder
        self.uid = uid
        self.started = utc_now()
        self._t_start = time.monotonic()
        #: Event time up to which everything written has been flushed (what a failure leaves readable).
        self.saved_until_us = 0
        self._written_until_us = 0
        self._reserve = Reserve(folder)  # room to close properly, whatever fills the disk meanwhile
        self._meta: dict[str, Any] = {
            "format": layout.FORMAT, "version": layout.VERSION, "uid": uid, "name": folder.name,
            "start_time": self.started, "stop_time": None, "plan": plan, "devices": describe,
            "versions": software_versions(), "calibration_file": calibration_path,
            "exit_status": None, "reason": None, "complete": False, **(extra or {}),
        }
        self.raw: _RawRecorder | None = None
        if event_geometry is not None:
            fmt = raw_format if raw_format in _WRITABLE_RAW else "EVT3"
            header = dict(raw_header or {}) if fmt == raw_format else {}
            header = {k: v for k, v in header.items() if k not in ("date", "evt", "format", "geometry")}
            self.raw = _RawRecorder(folder / layout.EVENTS_FILE, *event_geometry, fmt, header)
            self._raw_ok = fmt == raw_format
        self._sync = h5py.File(folder / layout.SYNC_FILE, "w", libver="latest")
        self._sync.attrs["format"] = layout.FORMAT + ".sync"
        self._sync.attrs["version"] = layout.VERSION
        self._sync.attrs["uid"] = uid
        self._triggers = self._sync.create_dataset("triggers", (0,), EVENT_EXT_TRIGGER, maxshape=(None,),
                                                   chunks=(4096,))
        lens = self._sync.create_group("lens")
        self._measured = lens.create_dataset("measured", (0, 4), "<f8", maxshape=(None, 4), chunks=(1024, 4))
        self._measured.attrs["columns"] = ",".join(LENS_COLUMNS)
        self._commanded = lens.create_dataset("commanded", (0, 2), "<f8", maxshape=(None, 2), chunks=(1024, 2))
        self._commanded.attrs["columns"] = "t_us,focal_power_dpt"
        self._sweeps = self._sync.create_dataset("sweeps", (0,), SWEEP_DTYPE, maxshape=(None,), chunks=(256,))
        self._sync.swmr_mode = True
        self._frames_file: h5py.File | None = None
        self._frame_ds: dict[str, h5py.Dataset] = {}
        self._frame_bytes = 0
        self._frame_buf: list[tuple[Frame, str]] = []
        self.n_frames = 0
        self.n_sweeps = 0
        self._log = RunLog(folder / layout.RUN_LOG)
        write_json_atomic(folder / layout.METADATA, self._meta)
        self._log.write("start", uid=uid, plan=plan, versions=self._meta["versions"], devices=describe,
                        calibration_file=calibration_path)
        self._log.write("descriptor", streams={
            "events": {"file": layout.EVENTS_FILE, "format": self.raw.fmt if self.raw else None,
                       "geometry": list(event_geometry) if event_geometry else None, "clock": "event",
                       "raw_from_camera": raw_format},
            "frames": {"file": layout.FRAMES_FILE, "datasets": ["image", "index", "exposure_start_us",
                                                                 "exposure_end_us", "focal_power_dpt", "time_source"],
                       "units": {"exposure_start_us": "us", "focal_power_dpt": "dpt"}},
            "sync": {"file": layout.SYNC_FILE, "datasets": ["triggers", "lens/measured", "lens/commanded",
                                                             "sweeps"]}})
        self._last_flush = self._last_fsync = time.monotonic()

    # -- data ----------------------------------------------------------------------------------------
    @property
    def bytes_written(self) -> int:
        """Bytes of event and frame data written so far (the disk-throughput figure)."""
        raw = self.raw.bytes if self.raw is not None else 0
        return raw + self.n_frames * self._frame_bytes

    @_disk_guarded
    def write_events(self, chunk: EventChunk) -> None:
        self._written_until_us = max(self._written_until_us, int(chunk.t_end_us))
        if self.raw is not None:
            self.raw.append(chunk, self._raw_ok)
        if len(chunk.triggers):
            _append(self._triggers, chunk.triggers)

    def events_dropped(self) -> None:
        """A chunk never reached the writer: the camera's next bytes would decode wrongly, so encode from now on."""
        self._raw_ok = False

    @_disk_guarded
    def write_frames(self, frames: list[Frame], sources: list[str]) -> None:
        """Queue frames for the next batch write (every ``FRAME_BATCH`` frames and at every flush)."""
        self._frame_buf.extend(zip(frames, sources, strict=True))
        if len(self._frame_buf) >= FRAME_BATCH:
            self._write_frame_batch()

    def _write_frame_batch(self) -> None:
        """One resize per dataset, then each image as its own raw chunk (no filter pipeline, no extra copy)."""
        batch, self._frame_buf = self._frame_buf, []
        if not batch:
            return
        if self._frames_file is None:
            self._open_frames(batch[0][0])
        ds = self._frame_ds
        n0, n = self.n_frames, len(batch)
        try:
            self._write_batch(ds, batch, n0, n)
        except BaseException:
            for name in ds:  # a batch half-written is not recorded: the files keep n0 frames
                try:
                    ds[name].resize(n0, axis=0)
                except Exception:  # the first error is the one to report
                    pass
            raise
        self.n_frames += n

    @staticmethod
    def _write_batch(ds: dict[str, h5py.Dataset], batch: list[tuple[Frame, str]], n0: int, n: int) -> None:
        for name in ds:
            ds[name].resize(n0 + n, axis=0)
        image = ds["image"]
        shape, dtype = image.shape[1:], image.dtype
        for i, (f, _) in enumerate(batch):
            if f.image.shape != shape or f.image.dtype != dtype:
                raise ValueError(f"frame {f.index}: image {f.image.shape} {f.image.dtype} differs from the first "
                                 f"frame's {shape} {dtype}; a recording holds one frame format")
            image.id.write_direct_chunk((n0 + i,) + (0,) * len(shape), np.ascontiguousarray(f.image))
        ds["index"][n0:n0 + n] = [f.index for f, _ in batch]
        ds["exposure_start_us"][n0:n0 + n] = [f.exposure_start_us for f, _ in batch]
        ds["exposure_end_us"][n0:n0 + n] = [f.exposure_end_us for f, _ in batch]
        ds["focal_power_dpt"][n0:n0 + n] = [np.nan if f.focal_power_dpt is None else f.focal_power_dpt
                                            for f, _ in batch]
        ds["time_source"][n0:n0 + n] = [TIME_SOURCES.index(src) for _, src in batch]

    def _open_frames(self, first: Frame) -> None:
        """Create ``frames.h5`` at the first frame (its shape and dtype are known only then), then enter SWMR."""
        shape, dtype = first.image.shape, first.image.dtype
        f = h5py.File(self.folder / layout.FRAMES_FILE, "w", libver="latest")
        f.attrs["format"] = layout.FORMAT + ".frames"
        f.attrs["version"] = layout.VERSION
        f.attrs["uid"] = self.uid
        f.attrs["time_sources"] = ",".join(TIME_SOURCES)
        g = f.create_group("frames")
        self._frame_ds = {
            "image": g.create_dataset("image", (0, *shape), dtype, maxshape=(None, *shape), chunks=(1, *shape)),
            "index": g.create_dataset("index", (0,), "<i8", maxshape=(None,), chunks=(1024,)),
            "exposure_start_us": g.create_dataset("exposure_start_us", (0,), "<i8", maxshape=(None,), chunks=(1024,)),
            "exposure_end_us": g.create_dataset("exposure_end_us", (0,), "<i8", maxshape=(None,), chunks=(1024,)),
            "focal_power_dpt": g.create_dataset("focal_power_dpt", (0,), "<f8", maxshape=(None,), chunks=(1024,)),
            "time_source": g.create_dataset("time_source", (0,), "u1", maxshape=(None,), chunks=(1024,)),
        }
        f.swmr_mode = True
        self._frames_file = f
        self._frame_bytes = int(np.prod(shape)) * dtype.itemsize

    @_disk_guarded
    def write_lens(self, samples: np.ndarray) -> None:
        """Measured lens samples, rows (t_us, position, focal_power_dpt, temperature_c); NaN where unknown."""
        if len(samples):
            _append(self._measured, np.asarray(samples, "<f8").reshape(-1, 4))

    @_disk_guarded
    def write_sweep(self, record: dict, commanded: np.ndarray) -> None:
        """One finished sweep: its row in ``sync.h5`` /sweeps, commanded samples, and a run-log event document."""
        row = np.zeros(1, SWEEP_DTYPE)
        for name in SWEEP_DTYPE.names:
            row[name] = record[name]
        _append(self._sweeps, row)
        if len(commanded):
            _append(self._commanded, commanded)
        self.n_sweeps += 1
        self.flush(durable=True)
        self._log.write("event", stream="sweeps", raw_bytes=self.raw.bytes if self.raw else 0,
                        frames_written=self.n_frames, **record)

    @_disk_guarded
    def flush(self, durable: bool = False) -> None:
        """Push everything to the OS (survives a crash of this process); ``durable`` also fsyncs (power loss)."""
        written_until = self._written_until_us
        self._write_frame_batch()
        if self.raw is not None:
            self.raw._file.flush()
        for f in (self._sync, self._frames_file):
            if f is not None:
                f.flush()
        now = time.monotonic()
        if durable and now - self._last_fsync >= self.fsync_interval_s:
            for name in (layout.EVENTS_FILE, layout.SYNC_FILE, layout.FRAMES_FILE):
                _fsync_path(self.folder / name)
            self._log.sync()
            self._last_fsync = now
        self._last_flush = now
        self.saved_until_us = written_until

    def flush_due(self, interval_s: float) -> bool:
        return time.monotonic() - self._last_flush >= interval_s

    # -- end -----------------------------------------------------------------------------------------
    def close(self, exit_status: str, reason: str | None, results: dict) -> None:
        """Close every file, then write the stop document and the final metadata (in that order: the stop
        document is the marker of a complete recording).

        The reserve is given back first, so both always fit. After the disk filled up, frames still buffered are
        not written (they would take that room) and the files' own errors on closing are not the reason: the
        recording fails as "disk full", readable up to its last flush.
        """
        self._reserve.release()
        full = self.disk_full is not None
        errors = []
        try:
            if not full:
                self._write_frame_batch()
        except (OSError, RuntimeError, ValueError) as exc:
            errors.append(str(exc))
        for closer in (lambda: self.raw and self.raw.close(), self._sync.close,
                       lambda: self._frames_file and self._frames_file.close()):
            try:
                closer()
            except (OSError, RuntimeError, ValueError) as exc:  # a failing disk: still try to finish the rest
                if full or is_disk_full(exc):
                    log.debug("closing %s on a full disk: %s", self.folder, exc)
                    full = True
                else:
                    errors.append(str(exc))
        if full and exit_status != "failed":
            exit_status, reason = "failed", str(self.disk_full or "disk full while closing the recording")
        if errors:
            reason = "; ".join(filter(None, [reason, *errors]))
            exit_status = "failed"
        stop = utc_now()
        self._log.write("stop", exit_status=exit_status, reason=reason, **results)
        self._log.close()
        self._meta.update(stop_time=stop, exit_status=exit_status, reason=reason, complete=True,
                          n_sweeps=self.n_sweeps, n_frames=self.n_frames,
                          n_events=self.raw.events_written if self.raw else 0,
                          n_triggers=self.raw.triggers_written if self.raw else 0,
                          raw_verbatim=self.raw.verbatim if self.raw else None, **results)
        write_json_atomic(self.folder / layout.METADATA, self._meta)


def _append(ds: h5py.Dataset, rows: np.ndarray) -> None:
    """Append ``rows``; when writing them fails, the dataset keeps its previous length (no half-written rows)."""
    n = ds.shape[0]
    ds.resize(n + len(rows), axis=0)
    try:
        ds[n:] = rows
    except BaseException:
        try:
            ds.resize(n, axis=0)
        except Exception:  # the first error is the one to report
            pass
        raise


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

