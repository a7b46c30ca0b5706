"""Putting frames and the lens phase on the event clock, and cutting the streams into sweeps.

hardware-protocols.md §6: the event camera's clock is the master. Frames reach it through their strobe edges on
a trigger-in channel (frame i ↔ i-th strobe pulse; gaps in the frame counter skip pulses, so dropped frames are
detected rather than shifting every later frame); the lens phase comes from the lens sync edges when wired,
otherwise from the time the sweep was commanded, mapped from the host clock (``soft_synced``). Everything here
is plain bookkeeping on numpy arrays, fed by the engine's pipeline thread, and unit-testable without devices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from capture.sweep import CommandedSweep, SweepData
from drivers.camera import Frame
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events


class HostClockMap:
    """Host µs → event µs, from when chunks arrive: offset = min over chunks of (arrival − chunk end).

    A chunk cannot arrive before its end has happened, so the smallest difference is the best estimate of the
    clock offset (its error is the smallest transport latency seen: ms-level, as soft sync promises).
    """

    def __init__(self) -> None:
        self.offset_us: float | None = None

    def observe(self, host_us: float, event_end_us: int) -> None:
        d = host_us - event_end_us
        if self.offset_us is None or d < self.offset_us:
            self.offset_us = d

    def to_event(self, host_us: float) -> float | None:
        return None if self.offset_us is None else host_us - self.offset_us


@dataclass
class SyncStats:
    """Sync quality figures kept while capturing (stored in the metadata, shown by ``focalrig inspect``)."""

    frames_paired: int = 0            # frames placed by their strobe pulse
    frames_unpaired: int = 0          # frames for which no strobe pulse came (kept on their own clock)
    frames_dropped: int = 0           # gaps in the frame counter (strobe pulses without a frame)
    exposure_mismatch: int = 0        # pulse width disagrees with the frame's exposure (pairing suspect)
    max_exposure_error_us: float = 0.0
    sync_edges: int = 0               # rising lens-sync edges seen
    sync_missed: int = 0              # sweeps closed without their sync edge (edge missing)
    sync_restarts: int = 0            # sweeps cut short by a generator restart (discarded, not handed out)
    late_frames: int = 0              # frames that arrived after their sweep had been handed out
    frames_after_events: int = 0      # frames dated after the last event received: not placed, not recorded

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class StrobeMatcher:
    """Pairs frames with strobe pulses on one trigger channel: frame index k ↔ pulse (k − k_first).

    Frames wait here until their pulse's falling edge has arrived in the event stream; a frame whose pulse has
    not come by the time the event stream is ``give_up_us`` past the frame's expected time is released unpaired.
    """

    def __init__(self, channel: int, stats: SyncStats, give_up_us: float = 1_000_000.0) -> None:
        self.channel = channel
        self.stats = stats
        self.give_up_us = give_up_us
        self._rise = np.empty(0, np.int64)
        self._fall = np.empty(0, np.int64)
        self._base = 0  # pulse number of _rise[0] (pulses before it are no longer needed)
        self._first_index: int | None = None
        self._last_index: int | None = None
        self._pending: list[Frame] = []

    def add_triggers(self, triggers: np.ndarray) -> None:
        mine = triggers[triggers["id"] == self.channel]
        if not len(mine):
            return
        rise = mine["t"][mine["p"] == 1]
        fall = mine["t"][mine["p"] == 0]
        if not len(self._rise) and len(fall) and (not len(rise) or fall[0] < rise[0]):
            fall = fall[1:]  # the stream started inside a pulse: its falling edge has no rising edge
        self._rise = np.concatenate([self._rise, rise])
        self._fall = np.concatenate([self._fall, fall])

    def add_frame(self, frame: Frame) -> None:
        if self._first_index is None:
            self._first_index = frame.index
        if self._last_index is not None and frame.index > self._last_index + 1:
            self.stats.frames_dropped += frame.index - self._last_index - 1
        self._last_index = frame.index if self._last_index is None else max(self._last_index, frame.index)
        self._pending.append(frame)

    def ready(self, event_time_us: int) -> list[Frame]:
        """Frames now placed on the event clock (pulse found), or released unpaired after the give-up time."""
        out: list[Frame] = []
        keep: list[Frame] = []
        for frame in self._pending:
            j = frame.index - (self._first_index or 0) - self._base
            if 0 <= j < len(self._fall) and j < len(self._rise):
                out.append(self._placed(frame, int(self._rise[j]), int(self._fall[j])))
            elif j < 0 or (len(self._rise) and event_time_us > self._expected(j) + self.give_up_us):
                self.stats.frames_unpaired += 1
                out.append(frame)
            else:  # later frames have later pulses: none of them is ready either
                keep = self._pending[len(out):]
                break
        self._pending = keep
        self._trim()
        return out

    def _trim(self) -> None:
        """Forget pulses no frame can still claim (frame indices only grow), keeping a few for the period."""
        newest = self._last_index if self._last_index is not None else -1
        oldest_needed = min((f.index for f in self._pending), default=newest + 1) - (self._first_index or 0)
        drop = min(oldest_needed - self._base, len(self._rise), len(self._fall)) - 2
        if drop > 64:
            self._rise, self._fall = self._rise[drop:], self._fall[drop:]
            self._base += drop

    def flush(self) -> list[Frame]:
        """At the end of a capture: frames still waiting stay on their own clock."""
        out, self._pending = self._pending, []
        self.stats.frames_unpaired += len(out)
        return out

    def _expected(self, j: int) -> float:
        """Where pulse j should be, extrapolated from the pulses seen (their mean period)."""
        n = len(self._rise)
        period = (self._rise[-1] - self._rise[0]) / (n - 1) if n > 1 else 0.0
        return float(self._rise[-1] + (j - n + 1) * period)

    def _placed(self, frame: Frame, rise: int, fall: int) -> Frame:
        self.stats.frames_paired += 1
        own = frame.exposure_end_us - frame.exposure_start_us
        err = abs((fall - rise) - own)
        self.stats.max_exposure_error_us = max(self.stats.max_exposure_error_us, float(err))
        if err > max(50.0, 0.02 * own):
            self.stats.exposure_mismatch += 1
        return dataclasses.replace(frame, exposure_start_us=rise, exposure_end_us=fall, clock="event")


@dataclass
class _Open:
    """A sweep being assembled."""

    index: int
    start_us: int
    commanded: CommandedSweep
    end_us: int | None = None


#: A sync edge sooner than this fraction of a period after the last one ends a sweep that never completed.
RESTART_FRACTION = 0.95


@dataclass
class SweepAssembler:
    """Cuts the event stream and the placed frames into :class:`SweepData`, one per sweep.

    Sweep starts come from one of three sources: rising edges of the lens sync (``sync_channel``, hard sync),
    a periodic origin (``set_origin``: soft sync, start k = t0 + k·T), or explicit starts (``add_start``: stepped
    sweeps, replays of soft-synced recordings; the caller adds one more start as the last sweep's end). A sweep
    ends where the next one starts; with hard sync a missing edge is bridged after 1.25 periods (counted in
    ``stats.sync_missed``), and edges closer than half a period are ignored as glitches, while an edge between half
    and ``RESTART_FRACTION`` of a period after the last marks a generator restart: the short sweep is dropped
    (``stats.sync_restarts``) and the sweep starts at the new edge. ``keep`` False only counts each sweep's
    events and frames (headless recording without consumers): only event times are buffered.
    """

    template: CommandedSweep
    event_geometry: tuple[int, int]
    frame_geometry: tuple[int, int]
    stats: SyncStats
    sync_channel: int | None = None
    keep: bool = True
    meta: dict = field(default_factory=dict)
    wait_for_frames: bool = True

    def __post_init__(self) -> None:
        self._starts: list[tuple[float, bool]] = []   # (t0 on the event clock, soft-synced)
        self._origin: tuple[float, float] | None = None
        self._next = 0                               # index of the next sweep to hand out
        self._cd: list[np.ndarray] = []
        self._tr: list[np.ndarray] = []
        self._frames: list[tuple[float, Frame | None]] = []   # (mid-exposure, frame; None when not keeping)
        self._event_time = 0
        self._frame_time = -np.inf
        self.period_us = self.template.period_us

    # -- inputs --------------------------------------------------------------------------------------
    def set_origin(self, t0_us: float) -> None:
        """Soft sync: sweep k starts at t0 + k·period."""
        self._origin = (float(t0_us), self.period_us)

    def add_start(self, t0_us: float, soft: bool = True) -> None:
        self._starts.append((float(t0_us), soft))

    def add_events(self, cd: np.ndarray, triggers: np.ndarray, t_end_us: int) -> None:
        if self.sync_channel is not None and len(triggers):
            edges = triggers["t"][(triggers["id"] == self.sync_channel) & (triggers["p"] == 1)]
            self.stats.sync_edges += len(edges)
            for t in edges:
                if self._starts and len(self._starts) > self._next and \
                        0.5 * self.period_us < t - self._starts[-1][0] < RESTART_FRACTION * self.period_us:
                    # The lens generator restarted its phase (a sweep command landing while it ran, e.g. the
                    # first sweep after start-up): the cut-short sweep's commanded waveform is wrong; skip it.
                    self._starts[-1] = (float(t), False)
                    self.stats.sync_restarts += 1
                elif not self._starts or t > self._starts[-1][0] + 0.5 * self.period_us:
                    self._starts.append((float(t), False))
        if len(cd) or len(triggers):
            # Without consumers only the times are kept, to count each sweep's events at half the memory.
            self._cd.append(cd if self.keep else cd["t"].copy())
            self._tr.append(triggers)
        self._event_time = max(self._event_time, int(t_end_us))

    def add_frame(self, frame: Frame) -> None:
        mid = (frame.exposure_start_us + frame.exposure_end_us) / 2
        self._frame_time = max(self._frame_time, mid)
        if frame.clock != "event":
            return
        if self._next > 0 and mid < self._window(self._next - 1)[1]:
            self.stats.late_frames += 1
            return
        self._frames.append((mid, frame if self.keep else None))

    def commanded_at(self, t_us: float) -> float | None:
        """Commanded focal power at an event-clock time (None before the first sweep start is known)."""
        k = self._sweep_containing(t_us)
        if k is None:
            return None
        return float(self.commanded(k).commanded_dpt(t_us))

    @property
    def started(self) -> bool:
        """True once the first sweep start is known."""
        return self._start(0) is not None

    # -- outputs -------------------------------------------------------------------------------------
    def pop_ready(self, final: bool = False) -> list[tuple[dict, SweepData | None]]:
        """Sweeps whose window the event stream (and, unless ``final``, the frame stream) has passed.

        Each item is (record for the sweep table, SweepData or None when not keeping data).
        """
        out = []
        while True:
            window = self._closable(self._next, final)
            if window is None:
                break
            out.append(self._emit(self._next, *window))
            self._next += 1
        return out

    @property
    def sweeps_done(self) -> int:
        return self._next

    # -- internals -----------------------------------------------------------------------------------
    def _start(self, k: int) -> tuple[float, bool] | None:
        if self._origin is not None:
            t0, period = self._origin
            return t0 + k * period, True
        return self._starts[k] if k < len(self._starts) else None

    def _window(self, k: int) -> tuple[int, int]:
        start = self._start(k)
        nxt = self._start(k + 1)
        assert start is not None
        end = nxt[0] if nxt is not None else start[0] + self.period_us
        return round(start[0]), round(end)

    def _sweep_containing(self, t_us: float) -> int | None:
        if self._origin is not None:
            t0, period = self._origin
            return max(0, int((t_us - t0) // period))
        if not self._starts:
            return None
        k = len(self._starts) - 1  # asked about recent times: search back from the newest start
        while k > 0 and self._starts[k][0] > t_us:
            k -= 1
        return k

    def commanded(self, k: int) -> CommandedSweep:
        """The commanded sweep of sweep ``k`` (its start must be known)."""
        start = self._start(k)
        assert start is not None
        return dataclasses.replace(self.template, t0_us=start[0], soft_synced=start[1])

    def _closable(self, k: int, final: bool) -> tuple[int, int] | None:
        start = self._start(k)
        if start is None:
            return None
        nxt = self._start(k + 1)
        if nxt is None:
            if self._origin is None and start[1]:
                return None  # explicit starts (stepped, replayed soft sync): the next start closes this sweep
            hard = self._origin is None and not start[1]
            grace = 1.25 if hard else 1.0
            if self._event_time < start[0] + grace * self.period_us:
                return None
            if hard:
                self.stats.sync_missed += 1
            self._starts.insert(k + 1, (start[0] + self.period_us, start[1]))
        t0, t1 = self._window(k)
        if self._event_time < t1:
            return None
        if not final and self.wait_for_frames and self._frame_time < t1 and self._event_time < t1 + 1_000_000:
            return None
        return t0, t1

    def _emit(self, k: int, t0: int, t1: int) -> tuple[dict, SweepData | None]:
        cd, self._cd = _window(self._cd, t0, t1, EVENT_CD if self.keep else None)
        tr, self._tr = _window(self._tr, t0, t1, EVENT_EXT_TRIGGER)
        frames = tuple(f for m, f in self._frames if t0 <= m < t1)
        self._frames = [(m, f) for m, f in self._frames if m >= t1]
        commanded = self.commanded(k)
        record = {"index": k, "t_start_us": t0, "t_end_us": t1, "t0_us": commanded.t0_us,
                  "soft_synced": commanded.soft_synced, "n_events": len(cd), "n_triggers": len(tr),
                  "n_frames": len(frames)}
        if not self.keep:
            return record, None
        data = SweepData(k, t0, t1, cd, tr, frames, commanded, self.event_geometry, self.frame_geometry,
                         meta=dict(self.meta))
        return record, data


def _times(part: np.ndarray) -> np.ndarray:
    return part if part.dtype.names is None else part["t"]


def _window(parts: list[np.ndarray], t0: int, t1: int, dtype: np.dtype | None) -> tuple[np.ndarray, list]:
    """The events of [t0, t1) from time-ordered ``parts`` (copied once, exactly), and the parts after t1.

    ``dtype`` None: the parts are plain time arrays (counting only).
    """
    inside: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for part in parts:
        t = _times(part)
        if not len(t) or t[-1] < t0:
            continue
        if t[0] >= t1:
            rest.append(part)
            continue
        a, b = np.searchsorted(t, [t0, t1])
        inside.append(part[a:b])
        if b < len(t):
            rest.append(part[b:])
    if dtype is None:
        return (np.concatenate(inside) if inside else np.empty(0, np.int64)), rest
    return concat_events(inside, dtype) if inside else np.empty(0, dtype), rest


def commanded_samples(commanded: CommandedSweep, t0: int, t1: int, n: int = 64) -> np.ndarray:
    """(n, 2) rows (t_us, commanded dpt) over [t0, t1): the commanded lens trajectory stored per sweep."""
    t = np.linspace(t0, t1, n, endpoint=False)
    return np.column_stack([t, commanded.commanded_dpt(t)])

