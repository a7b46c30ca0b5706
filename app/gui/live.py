"""The live-view feed: a thread that turns the newest engine (or replay) data into display-ready arrays.

At the display rate it pulls the newest frame and the newest ``accumulation`` of events from a
:class:`LiveSource`, accumulates the events into an ON/OFF colour image (``capture.render.accumulate``), and
posts a :class:`LivePicture` into a mailbox; at a third of that rate it also posts the focal-power and
event-rate histories for the plots, cut to the plots' time span and decimated to their width. The GUI timer
only takes the newest picture and calls ``setImage``, so event accumulation, dtype handling and copies never
run on the GUI thread (app-notes §3.2, §5.1).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.gui.imaging import Levels, display_image
from app.gui.timing import Mailbox
from capture.render import accumulate
from drivers.camera import Frame


class LiveSource(Protocol):
    """What the feed reads; ``capture.engine.CaptureEngine`` and the replay cursor both provide it."""

    def latest_frame(self) -> Frame | None: ...
    def latest_events(self, window_us: int) -> np.ndarray: ...
    def lens_history(self) -> np.ndarray: ...
    def rate_history(self) -> np.ndarray: ...


@dataclass(frozen=True)
class LivePicture:
    frame: np.ndarray | None            # display-ready RGB/mono frame (None: no new frame since last picture)
    frame_levels: Levels
    frame_index: int | None
    focal_power_dpt: float | None       # of the frame, at mid-exposure, where known
    events_rgb: np.ndarray | None       # ON/OFF accumulation image (None: no event camera)
    n_events: int
    t_us: int | None                    # newest event time shown


@dataclass(frozen=True)
class LiveTraces:
    lens: np.ndarray                    # (k, 2) [t_s, dpt]
    rate: np.ndarray                    # (k, 2) [t_s, Mev/s] (the unit of every event-rate readout)
    t_ref_us: float                     # event-clock time of t_s = 0


def decimate_trace(t_s: np.ndarray, y: np.ndarray, span_s: float, buckets: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """The samples of the last ``span_s`` seconds (t ≤ 0, newest at 0), at most ``2·buckets`` of them.

    Longer traces keep, per bucket of equal time, the minimum at the bucket's first time and the maximum at its
    last, so peaks stay visible (min/max decimation) while the GUI draws a few hundred points, not thousands.
    """
    keep = t_s >= -span_s
    t_s, y = t_s[keep], y[keep]
    if t_s.size <= 2 * buckets:
        return t_s, y
    bucket = np.minimum(((t_s - t_s[0]) / max(t_s[-1] - t_s[0], 1e-12) * buckets).astype(np.int64), buckets - 1)
    first = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    last = np.r_[first[1:], t_s.size] - 1
    t_out = np.column_stack([t_s[first], t_s[last]]).ravel()
    y_out = np.column_stack([np.minimum.reduceat(y, first), np.maximum.reduceat(y, first)]).ravel()
    return t_out, y_out


def next_deadline(deadline: float, now: float, period: float) -> float:
    """The next poll time on a fixed 1/fps grid.

    A poll that ran late by less than a period is made up at once (so one slow poll, a GC pass or a busy core,
    costs no displayed frame and the average rate stays at fps); past a whole period the missed slots are
    skipped rather than burst, and the grid restarts from now.
    """
    deadline += period
    return now if deadline < now - period else deadline


class LiveFeed:
    """Pulls from ``source`` on its own thread; :meth:`set_source` swaps the source (None pauses)."""

    def __init__(self, *, fps: float = 30.0, accumulation_us: int = 10_000, trace_span_s: float = 2.0) -> None:
        self.pictures: Mailbox[LivePicture] = Mailbox()
        self.traces: Mailbox[LiveTraces] = Mailbox()
        self.fps = fps
        self.accumulation_us = accumulation_us
        self.trace_span_s = trace_span_s
        self.errors: Mailbox[str] = Mailbox()
        self._lock = threading.Lock()
        self._source: LiveSource | None = None
        self._geometry: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_frame_index: int | None = None
        self._last_events_key: tuple[int, int, int] | None = None

    def set_source(self, source: LiveSource | None, event_geometry: tuple[int, int] | None = None) -> None:
        with self._lock:
            self._source, self._geometry = source, event_geometry
            self._last_frame_index = self._last_events_key = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gui-live-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def poll_once(self, with_traces: bool = True) -> None:
        """One pull (the thread calls this at the display rate; tests call it directly)."""
        with self._lock:
            source, geometry = self._source, self._geometry
        if source is None:
            return
        picture = self._picture(source, geometry)
        if picture is not None:
            self.pictures.put(picture)
        if with_traces:
            self.traces.put(self._traces(source))

    def _run(self) -> None:
        """Poll on a fixed schedule (deadlines every 1/fps, not sleeps of 1/fps after the work)."""
        tick = 0
        deadline = time.perf_counter()
        while not self._stop.is_set():
            try:
                self.poll_once(with_traces=tick % 3 == 0)
            except Exception as exc:  # a source torn down mid-read: report, keep the feed alive
                self.errors.put(f"live view: {exc}")
            tick += 1
            deadline = next_deadline(deadline, time.perf_counter(), 1.0 / self.fps)
            self._stop.wait(deadline - time.perf_counter())

    def _picture(self, source: LiveSource, geometry: tuple[int, int] | None) -> LivePicture | None:
        frame = source.latest_frame()
        new_frame = frame is not None and frame.index != self._last_frame_index
        image, levels = (None, (0.0, 255.0))
        if new_frame:
            image, levels = display_image(frame.image)
            self._last_frame_index = frame.index
        events_rgb, n, t_last = None, 0, None
        if geometry is not None:
            cd = source.latest_events(int(self.accumulation_us))
            n = int(cd.shape[0])
            t_last = int(cd["t"][-1]) if n else None
            key = (n, t_last or -1, int(self.accumulation_us))
            if key != self._last_events_key:
                self._last_events_key = key
                events_rgb = accumulate(cd, *geometry)
        if image is None and events_rgb is None:
            return None
        return LivePicture(image, levels, frame.index if frame is not None else None,
                           frame.focal_power_dpt if frame is not None else None, events_rgb, n, t_last)

    def _traces(self, source: LiveSource) -> LiveTraces:
        lens = np.asarray(source.lens_history(), np.float64).reshape(-1, 2)
        rate = np.asarray(source.rate_history(), np.float64).reshape(-1, 2)
        t_ref = float(max(lens[-1, 0] if lens.size else 0.0, rate[-1, 0] if rate.size else 0.0))

        def relative(trace: np.ndarray, scale: float = 1.0) -> np.ndarray:
            return np.column_stack(decimate_trace((trace[:, 0] - t_ref) * 1e-6, trace[:, 1] * scale,
                                                  self.trace_span_s))

        return LiveTraces(relative(lens), relative(rate, 1e-6), t_ref)
