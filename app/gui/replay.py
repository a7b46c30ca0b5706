"""Replay of a recording folder or a bare RAW/HDF5 event file, as a time cursor the live views can read.

:class:`ReplaySession` opens a :class:`~capture.recording.Recording` and answers the live feed's questions
(:class:`~app.gui.live.LiveSource`) *at the cursor* instead of at "now": the newest frame exposed before the
cursor, the events of the accumulation window ending at it (the event file is seeked, never loaded whole), and
the focal-power and event-rate traces of the seconds before it. Opening makes one streaming pass over the
event file to learn its time span and an event-rate profile (10 ms bins), so the timeline and the rate plot
are exact and scrubbing needs no further pass. The cursor is moved by the GUI (play, speed, scrub, sweep).

Playback speed follows app-notes §5.2: the cursor advances ``speed`` × wall time, independently of the
display rate and the accumulation time. Readers are used only by the feed thread (under a lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from capture.recording import Recording
from drivers.camera import Frame
from drivers.events.dtypes import EVENT_CD, concat_events

RATE_BIN_US = 10_000
#: Playback decodes this far ahead of the cursor in one go (at most CACHE_EVENTS events): short, so that one
#: refill (seek + decode + concatenate, on the live-feed thread) costs a few ms, not a skipped display frame
#: (200 ms of a 3.7 Mev/s VGA recording took 60-120 ms to refill; 50 ms takes ~10 ms).
LOOKAHEAD_US = 50_000
CACHE_EVENTS = 1 << 21
#: RAW decoding block for playback: each block is decoded in one go on the live-feed thread, so it is small
#: (~64 k events, 2-3 ms) where the default 4 MiB block (~1 M events) took 25-50 ms, a skipped display frame.
REPLAY_BLOCK_BYTES = 256 * 1024
#: Seconds of history the replay plots show before the cursor (as the live plots do).
TRACE_SPAN_US = 2_000_000


class ReplaySession:
    """A recording opened for replay; ``t_us`` is the cursor on the event clock (µs)."""

    def __init__(self, path: str | Path, progress: Callable[[float], None] | None = None) -> None:
        self.path = Path(path)
        self.recording = Recording.open(self.path)
        self._lock = threading.Lock()
        self._reader = (self.recording.events(REPLAY_BLOCK_BYTES) if self.recording.events_path is not None
                        else None)
        self.event_geometry = (self.recording.event_geometry or
                               ((self._reader.info.width, self._reader.info.height) if self._reader else None))
        self.sweeps = self.recording.sweep_table if self.recording.folder is not None else None
        self._frame_mid = np.asarray(self.recording.frames.mid_us, np.float64)
        self._scan_events(progress)
        self._cache = np.empty(0, EVENT_CD)
        self._cache_t0 = self._cache_t1 = 0
        self._chunks = None  # the reader's chunk iterator, positioned right after the cache's last event
        spans = [s for s in (self._event_span, self._frame_span(), self._sweep_span()) if s is not None]
        if not spans:
            raise ValueError(f"{self.path}: the recording holds no events, frames or sweeps to replay")
        self.t_start_us = int(min(s[0] for s in spans))
        self.t_end_us = int(max(s[1] for s in spans))
        self.t_us = self.t_start_us
        lens = self.recording.lens_measured
        measured = lens[~np.isnan(lens[:, 2])][:, [0, 2]] if len(lens) else np.empty((0, 2))
        self._lens = measured if len(measured) else np.asarray(self.recording.lens_commanded).reshape(-1, 2)

    # -- what the timeline needs ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def duration_us(self) -> int:
        return self.t_end_us - self.t_start_us

    @property
    def n_sweeps(self) -> int:
        return 0 if self.sweeps is None else len(self.sweeps)

    def sweep_at(self, t_us: float) -> int | None:
        """Index (row) of the sweep whose window holds ``t_us``, else the last one before it."""
        if not self.n_sweeps:
            return None
        row = int(np.searchsorted(self.sweeps["t_start_us"], t_us, side="right")) - 1
        return max(row, 0)

    def sweep_window(self, row: int) -> tuple[int, int]:
        r = self.sweeps[row]
        return int(r["t_start_us"]), int(r["t_end_us"])

    def no_sweeps_message(self) -> str:
        """Why a bare event file cannot be fused (it has no sweep table)."""
        return (f"{self.name}: a bare event file has no sweeps to fuse; record through focalrig (or replay it "
                "through the capture engine with a plan) to cut it into sweeps")

    def seek(self, t_us: float) -> None:
        self.t_us = int(min(max(t_us, self.t_start_us), self.t_end_us))

    # -- LiveSource ---------------------------------------------------------------------------------------
    def latest_frame(self) -> Frame | None:
        n = int(np.searchsorted(self._frame_mid, self.t_us, side="right"))
        return self.recording.frames[n - 1] if n else None

    def latest_events(self, window_us: int) -> np.ndarray:
        if self._reader is None:
            return np.empty(0, EVENT_CD)
        t1 = self.t_us
        t0 = t1 - int(window_us)
        with self._lock:
            if not (self._cache_t0 <= t0 and t1 <= self._cache_t1):
                self._fill(t0, t1)
            cd = self._cache
        a, b = np.searchsorted(cd["t"], [t0, t1])
        return cd[a:b]

    def _fill(self, t0: int, t1: int) -> None:
        """Decode from ``t0`` to at least ``t1`` and up to :data:`LOOKAHEAD_US` beyond (bounded by
        :data:`CACHE_EVENTS`), so playback reads the file sequentially instead of seeking on every tick.

        Playing forwards, ``t0`` is still inside the cache: decoding then continues from where the last fill
        stopped (no seek, which would restart at the index point before ``t0`` and decode that stretch again —
        30-70 ms per fill on a 3.7 Mev/s VGA recording, a skipped display frame each time).
        """
        if self._chunks is not None and self._cache_t0 <= t0 <= self._cache_t1:
            parts, start = [self._cache], t0
        else:
            self._reader.seek_time(max(t0, 0))
            self._chunks = self._reader.read_chunks(max_events=1 << 18)
            parts, start = [], t0
        n, last, complete = sum(p.shape[0] for p in parts), self._cache_t1 if parts else t0, False
        for cd, _ in self._chunks:
            if cd.shape[0]:
                parts.append(cd)
                n += cd.shape[0]
                last = int(cd["t"][-1])
                if last >= t1 and (last >= t0 + LOOKAHEAD_US or n >= CACHE_EVENTS):
                    break
        else:
            complete = True  # end of file: nothing after the last event
            self._chunks = None
        cd = concat_events(parts, EVENT_CD)
        self._cache = cd[int(np.searchsorted(cd["t"], start)):]  # time-sorted: a view, not a masked copy
        self._cache_t0 = start
        # events sharing the last timestamp may continue in the next chunk: only times before it are complete
        self._cache_t1 = np.iinfo(np.int64).max if complete else last

    def lens_history(self) -> np.ndarray:
        lens = self._lens
        if not len(lens):
            return lens
        keep = (lens[:, 0] > self.t_us - TRACE_SPAN_US) & (lens[:, 0] <= self.t_us)
        return lens[keep]

    def rate_history(self) -> np.ndarray:
        if self._rate is None:
            return np.empty((0, 2))
        t = self._rate[:, 0]
        return self._rate[(t > self.t_us - TRACE_SPAN_US) & (t <= self.t_us)]

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self.recording.close()

    # -- opening ------------------------------------------------------------------------------------------
    def _scan_events(self, progress: Callable[[float], None] | None) -> None:
        """One streaming pass: first/last event time and counts per 10 ms bin (vectorised per chunk)."""
        self._event_span: tuple[int, int] | None = None
        self._rate: np.ndarray | None = None
        if self._reader is None:
            return
        bins_parts: list[np.ndarray] = []
        count_parts: list[np.ndarray] = []
        first = last = None
        for cd, _ in self._reader.read_chunks():
            if cd.shape[0]:
                t = cd["t"]
                first = int(t[0]) if first is None else first
                last = int(t[-1])
                bins, n = np.unique(t // RATE_BIN_US, return_counts=True)
                bins_parts.append(bins)
                count_parts.append(n)
            if progress is not None:
                progress(self._reader.progress() or 0.0)
        if first is None:
            return
        self._event_span = (first, last + 1)
        b0 = first // RATE_BIN_US
        counts = np.bincount(np.concatenate(bins_parts) - b0, weights=np.concatenate(count_parts),
                             minlength=last // RATE_BIN_US - b0 + 1)
        ends = (np.arange(counts.size) + b0 + 1) * RATE_BIN_US
        self._rate = np.column_stack([ends, counts * (1e6 / RATE_BIN_US)])

    def _frame_span(self) -> tuple[int, int] | None:
        return (int(self._frame_mid[0]), int(self._frame_mid[-1]) + 1) if self._frame_mid.size else None

    def _sweep_span(self) -> tuple[int, int] | None:
        if not self.n_sweeps:
            return None
        return int(self.sweeps["t_start_us"][0]), int(self.sweeps["t_end_us"][-1])
