"""Replay through the live device interfaces: ``ReplayEventCamera`` (any event file), ``ReplayFrameCamera`` and
``ReplayFocus`` (a recording's frames and lens), and ``ReplayRig`` (all three as a :class:`~drivers.rig.Rig`).

Capture, calibration and fusion code is written against pulled cameras; replaying a recording through
the same interface lets that code run (and be tested) without hardware, at real time for a faithful
rehearsal or as fast as possible for batch reprocessing — the capture engine runs on a ReplayRig exactly as
on live devices.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from capture.formats import EventFileError, EventFileInfo, EventFileReader, EventsIterator, EventSlice, open_events
from capture.recording.layout import RecordingError
from drivers.camera import CameraError, CameraIdentity, EventCamera, EventChunk, Frame, FrameCamera, NotSupportedError
from drivers.focus import FocusActuator, FocusCapabilities, FocusIdentity, FocusMode, FocusStatus, Unit, Waveform
from drivers.rig import Rig

if TYPE_CHECKING:
    from capture.recording.reader import Recording

log = logging.getLogger(__name__)


class ReplayEventCamera(EventCamera):
    """Plays an event file (any format :func:`capture.formats.open_events` reads) as consecutive
    ``chunk_us`` slices.

    ``speed`` paces delivery against ``clock``: 1.0 is real time, 2.0 twice as fast, None as fast as
    possible. A slice is due when stream time since the first slice's start, divided by ``speed``, has
    elapsed on the clock since the first ``read``; it covers times up to its end, so (as from a live
    camera) it cannot be due before then. ``clock`` and ``sleep`` are injectable so tests never sleep.

    ``start_us`` skips every event before it (slices then start exactly there). With ``loop`` the file
    starts over at its end; each pass is shifted by the span of the previous ones (slice ends minus the
    first slice start), so times keep increasing and chunks stay contiguous, as a downstream consumer of
    a live camera expects.

    As on Prophesee cameras, trigger events are delivered only for channels enabled with
    :meth:`enable_trigger_in`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        chunk_us: int = 10_000,
        speed: float | None = 1.0,
        start_us: int | None = None,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Read the file's header now, so identity and geometry are known before ``start()`` as for a live camera.

        The file is closed again straight away: a camera that is built but never started holds no handle.
        """
        if chunk_us <= 0:
            raise ValueError(f"chunk_us must be positive, not {chunk_us}")
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive or None (as fast as possible), not {speed}")
        self.path = Path(path)
        self.chunk_us = int(chunk_us)
        self.speed = speed
        self.start_us = start_us
        self.loop = loop
        self._clock = clock
        self._sleep = sleep
        reader = self._open()
        self._info: EventFileInfo = reader.info
        reader.close()
        meta = {str(k): str(v) for k, v in self._info.metadata.items()}
        self._identity = CameraIdentity(
            vendor="file replay",
            model=self._info.format,
            serial=meta.get("serial_number", self.path.name),
            extra=meta,
        )
        self._enabled: set[int] = set()
        self._state = "idle"
        self._reader: EventFileReader | None = None
        self._slices: Iterator[EventSlice] = iter(())
        self._pending: EventSlice | None = None
        self._first_start: int | None = None  # stream start of the first slice of the first pass
        self._played_span = 0                  # stream time played so far, passes before this one included
        self._offset = 0                       # added to every time of the current pass
        self._delivered_in_pass = False
        self._host_start: float | None = None  # clock() at the first read
        self.at_end = False                    # True once the file (without loop) has been played to its end

    # -- EventCamera --------------------------------------------------------------------------------
    @property
    def identity(self) -> CameraIdentity:
        return self._identity

    @property
    def geometry(self) -> tuple[int, int]:
        return self._info.width, self._info.height

    @property
    def raw_format(self) -> None:
        """None: chunks carry no raw bytes, because ``chunk_us`` slices do not align with the file's words
        (an EVT 3 time-high word, for one, serves events on both sides of a slice boundary), and other
        formats (HDF5, NPZ, CSV) have no raw form at all. A recorder re-encodes the events instead.
        """
        return None

    def start(self) -> None:
        """Open the file and position it at ``start_us``; a second call while streaming does nothing."""
        if self._state == "stopped":
            raise CameraError(f"{self.path}: replay cannot restart after stop(); build a new camera")
        if self._state == "streaming":
            return
        self._reader = self._open()
        self._slices = self._pass_slices(self.start_us)
        self._state = "streaming"

    def stop(self) -> None:
        """Stop and release the file; a slice held back by a timeout is dropped, so ``read`` then returns None."""
        self._state = "stopped"
        self._pending = None
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except (OSError, EventFileError):
                pass  # stop() never raises: the file is being abandoned anyway

    def close(self) -> None:
        self.stop()

    def read(self, timeout_s: float) -> EventChunk | None:
        """The next slice once it is due, or None if it is not due within ``timeout_s`` (it is kept for the
        next call), at the end of the file without ``loop``, or when not streaming."""
        if self._state != "streaming":
            return None
        if self._pending is None:
            self._pending = self._next_slice()
            if self._pending is None:
                self.at_end = True
                return None
        sl = self._pending
        if self.speed is not None:
            now = self._clock()
            if self._host_start is None:
                self._host_start = now
            assert self._first_start is not None
            due = self._host_start + (sl.t_end - self._first_start) * 1e-6 / self.speed
            wait = due - now
            if wait > timeout_s:
                self._sleep(max(timeout_s, 0.0))
                return None
            if wait > 0:
                self._sleep(wait)
        self._pending = None
        triggers = sl.triggers
        if triggers.shape[0]:
            triggers = triggers[np.isin(triggers["id"], list(self._enabled))]
        return EventChunk(sl.events, triggers, sl.t_end)

    def enable_trigger_in(self, channel: int) -> None:
        """Deliver the file's trigger events on ``channel`` (a channel absent from the file stays silent)."""
        if channel < 0:
            raise NotSupportedError(f"{self._identity.model}: no trigger-in channel {channel}")
        self._enabled.add(int(channel))

    # -- internals ----------------------------------------------------------------------------------
    def _open(self) -> EventFileReader:
        """The file's reader; any failure becomes a CameraError naming the file, as a missing live camera would."""
        try:
            return open_events(self.path)
        except EventFileError as exc:
            raise CameraError(f"cannot replay {exc}") from exc
        except OSError as exc:
            raise CameraError(f"cannot replay {self.path}: {exc}") from exc

    def _pass_slices(self, start_ts: int | None) -> Iterator[EventSlice]:
        assert self._reader is not None
        return iter(EventsIterator(self._reader, mode="delta_t", delta_t=self.chunk_us, start_ts=start_ts))

    def _next_slice(self) -> EventSlice | None:
        """The next slice, shifted into the current pass; at the end of a pass starts the next one if looping."""
        while True:
            try:
                sl = next(self._slices, None)
            except (EventFileError, OSError) as exc:
                raise CameraError(f"{self.path}: replay failed: {exc}") from exc
            if sl is not None:
                if self._first_start is None:
                    self._first_start = sl.t_start
                self._delivered_in_pass = True
                if self._offset:
                    sl = _shifted(sl, self._offset)
                self._played_span = max(self._played_span, sl.t_end - self._first_start)
                return sl
            if not (self.loop and self._delivered_in_pass):  # the end, or a pass with nothing in it
                return None
            assert self._first_start is not None
            self._offset = self._played_span
            self._delivered_in_pass = False
            # Restart at the first pass's first window, so every pass is sliced identically.
            self._slices = self._pass_slices(self._first_start)


def _shifted(sl: EventSlice, offset: int) -> EventSlice:
    """A copy of ``sl`` with every time moved by ``offset`` µs (the reader's arrays are left untouched)."""
    cd, trig = sl.events.copy(), sl.triggers.copy()
    cd["t"] += offset
    trig["t"] += offset
    return EventSlice(cd, trig, sl.t_start + offset, sl.t_end + offset)


class ReplayFrameCamera(FrameCamera):
    """A recording's frames through the live :class:`FrameCamera` interface, with their recorded indices and times.

    Frames come in recorded order with their original indices (gaps — drops — included), on the event clock
    as recorded. ``speed`` 1.0 paces them in real time from the first read (a frame is due once its exposure has
    ended, counted from ``origin_us``), None delivers them as fast as they load. ``configure`` only checks that
    the requested timing is the recorded one, since a file cannot change its frame rate.
    """

    def __init__(self, recording: Recording, *, speed: float | None = None, origin_us: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.recording = recording
        self.frames = recording.frames
        self.speed = speed
        self._clock = clock
        start = self.frames.exposure_start_us
        self._origin_us = origin_us if origin_us is not None else (int(start[0]) if len(start) else 0)
        self._next = 0
        self._host_start: float | None = None
        self._streaming = False
        self._stopped = threading.Event()
        self.at_end = False

    @property
    def identity(self) -> CameraIdentity:
        return CameraIdentity("file replay", "recorded frames", self.recording.uid or self.recording.path.name)

    @property
    def geometry(self) -> tuple[int, int]:
        return self.recording.frame_geometry or (0, 0)

    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        plan = self.recording.plan
        if plan is not None and (abs(plan.frame_rate_hz - frame_rate_hz) > 1e-6 or
                                 abs(plan.exposure_us - exposure_us) > 1e-6):
            log.warning("%s: frames were recorded at %g Hz / %g µs, not %g Hz / %g µs; replaying them as recorded",
                        self.recording.path, plan.frame_rate_hz, plan.exposure_us, frame_rate_hz, exposure_us)

    def start(self) -> None:
        self._streaming = True
        self._stopped.clear()

    def stop(self) -> None:
        self._streaming = False
        self._stopped.set()

    def read(self, timeout_s: float) -> Frame | None:
        if not self._streaming:
            return None
        if self._next >= len(self.frames):
            self.at_end = True
            return None
        if self.speed is not None:
            now = self._clock()
            if self._host_start is None:
                self._host_start = now
            end = int(self.frames.exposure_end_us[self._next])
            wait = self._host_start + (end - self._origin_us) * 1e-6 / self.speed - now
            if wait > timeout_s:
                self._stopped.wait(max(timeout_s, 0.0))
                return None
            if wait > 0 and self._stopped.wait(wait):
                return None
        frame = self.frames[self._next]
        self._next += 1
        return frame

    def close(self) -> None:
        self.stop()


class ReplayFocus(FocusActuator):
    """The lens of a recording: it did what the recording says, so commands are accepted and only compared.

    A command that differs from what was recorded is logged (the replay still shows the recorded sweep); the
    status reports no measurement (the recorded ones are in the recording's ``lens_measured``).
    """

    def __init__(self, recording: Recording | None) -> None:
        self.recording = recording
        self.commands: list[tuple[str, tuple]] = []
        plan = recording.plan if recording is not None else None
        rng = (plan.low_dpt, plan.high_dpt) if plan is not None else None
        self._caps = FocusCapabilities("dpt", rng or (float("-inf"), float("inf")), rng,
                                       frozenset({Waveform.SINE, Waveform.TRIANGLE}), None, False)

    def connect(self) -> None:
        """Nothing to connect: the lens is in the file."""

    def close(self) -> None:
        """Nothing to release."""

    @property
    def identity(self) -> FocusIdentity:
        uid = self.recording.uid if self.recording is not None else None
        return FocusIdentity("file replay", "recorded lens", uid or "", "")

    @property
    def capabilities(self) -> FocusCapabilities:
        return self._caps

    def _record(self, name: str, *args) -> None:
        self.commands.append((name, args))

    def set_focal_power(self, dpt: float) -> None:
        self._record("set_focal_power", dpt)

    def set_position(self, raw: float) -> None:
        self._record("set_position", raw)

    def start_sweep(self, waveform: Waveform, frequency_hz: float, low: float, high: float,
                    unit: Unit = "dpt") -> None:
        self._record("start_sweep", waveform.value, frequency_hz, low, high, unit)
        plan = self.recording.plan if self.recording is not None else None
        if plan is not None and (plan.waveform, plan.frequency_hz, plan.low_dpt, plan.high_dpt) != (
                waveform.value, frequency_hz, low, high):
            log.warning("replay: the recording swept %s %g Hz %g..%g dpt; the plan asks for %s %g Hz %g..%g dpt — "
                        "the recorded sweep is what the data show", plan.waveform, plan.frequency_hz, plan.low_dpt,
                        plan.high_dpt, waveform.value, frequency_hz, low, high)

    def stop_sweep(self) -> None:
        self._record("stop_sweep")

    def status(self) -> FocusStatus:
        return FocusStatus(FocusMode.OTHER, None, None, None)

    def temperature_c(self) -> float:
        raise NotSupportedError("a replayed lens has no live temperature; see the recording's lens samples")

    def safe_state(self) -> None:
        self._record("safe_state")


class ReplayRig(Rig):
    """A recording (folder or bare event file) as a rig: replayed cameras and the recorded lens.

    ``realtime`` paces events and frames as recorded; otherwise they come as fast as they decode. Build it from
    an open :class:`~capture.recording.Recording` or a path; ``close()`` also closes a recording it opened.
    """

    def __init__(self, recording: Recording | str | Path, *, realtime: bool = False, chunk_us: int = 10_000) -> None:
        from capture.recording.reader import Recording

        owns = not isinstance(recording, Recording)
        rec = Recording.open(recording) if owns else recording
        speed = 1.0 if realtime else None
        event_camera = None
        if rec.events_path is not None:
            event_camera = ReplayEventCamera(rec.events_path, chunk_us=chunk_us, speed=speed)
        frame_camera = ReplayFrameCamera(rec, speed=speed, origin_us=rec.metadata.get("t_first_event_us")) \
            if len(rec.frames) else None
        if event_camera is None and frame_camera is None:
            raise RecordingError(f"{rec.path}: nothing to replay (no events and no frames)")
        super().__init__(ReplayFocus(rec), event_camera, frame_camera, None,
                         config={"replay": str(rec.path), "realtime": realtime, "chunk_us": chunk_us})
        self.recording = rec
        self._owns = owns

    def sweep_starts_us(self) -> list[float]:
        """The recorded sweeps' starts on the event clock, then the last one's end (what a soft-synced or stepped
        replay cuts by)."""
        table = self.recording.sweep_table
        if not len(table):
            return []
        return [float(t) for t in table["t_start_us"]] + [float(table["t_end_us"][-1])]

    @property
    def at_end(self) -> bool:
        """True once every replayed stream has been delivered to its end."""
        return all(cam is None or cam.at_end for cam in (self.event_camera, self.frame_camera))

    def close(self) -> None:
        super().close()
        if self._owns:
            self.recording.close()
