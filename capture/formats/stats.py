"""Streaming statistics of an event file (counts, time span, mean and peak event rate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from capture.formats.base import EventFileReader


@dataclass
class EventStats:
    n_cd: int = 0
    n_on: int = 0
    n_triggers: int = 0
    #: (channel id, edge) -> count; edge 1 rising, 0 falling.
    trigger_edges: dict[tuple[int, int], int] = field(default_factory=dict)
    t_first: int | None = None
    t_last: int | None = None
    x_max: int = -1
    y_max: int = -1
    #: Most CD events in one ``peak_window_us`` window aligned to multiples of it.
    peak_count: int = 0
    peak_window_us: int = 1000

    @property
    def n_off(self) -> int:
        return self.n_cd - self.n_on

    @property
    def duration_us(self) -> int:
        return 0 if self.t_first is None or self.t_last is None else self.t_last - self.t_first

    @property
    def mean_rate(self) -> float:
        """CD events per second over the recording (0 for fewer than two distinct times)."""
        return self.n_cd / (self.duration_us * 1e-6) if self.duration_us > 0 else 0.0

    @property
    def peak_rate(self) -> float:
        """CD events per second in the busiest window."""
        return self.peak_count / (self.peak_window_us * 1e-6)


def compute_stats(
    reader: EventFileReader,
    *,
    peak_window_us: int = 1000,
    on_chunk: Callable[[EventStats], None] | None = None,
) -> EventStats:
    """Read ``reader`` to the end once, in bounded memory, and summarise it."""
    s = EventStats(peak_window_us=peak_window_us)
    open_bin, open_count = None, 0  # the window that may continue into the next chunk
    for cd, trig in reader.read_chunks():
        if cd.shape[0]:
            t = cd["t"]
            s.n_cd += cd.shape[0]
            s.n_on += int(np.count_nonzero(cd["p"] == 1))
            s.x_max = max(s.x_max, int(cd["x"].max()))
            s.y_max = max(s.y_max, int(cd["y"].max()))
            t_min, t_max = int(t.min()), int(t.max())
            s.t_first = t_min if s.t_first is None else min(s.t_first, t_min)
            s.t_last = t_max if s.t_last is None else max(s.t_last, t_max)
            bins = t // peak_window_us
            lo = int(bins.min())
            counts = np.bincount(bins - lo)
            if open_bin is not None and lo <= open_bin < lo + counts.shape[0]:
                counts[open_bin - lo] += open_count
            elif open_bin is not None:
                s.peak_count = max(s.peak_count, open_count)
            s.peak_count = max(s.peak_count, int(counts[:-1].max()) if counts.shape[0] > 1 else 0)
            open_bin, open_count = lo + counts.shape[0] - 1, int(counts[-1])
        if trig.shape[0]:
            s.n_triggers += trig.shape[0]
            keys, counts = np.unique(np.stack([trig["id"], trig["p"]], axis=1), axis=0, return_counts=True)
            for (ch, edge), n in zip(keys.tolist(), counts.tolist(), strict=True):
                s.trigger_edges[(ch, edge)] = s.trigger_edges.get((ch, edge), 0) + n
        if on_chunk is not None:
            on_chunk(s)
    s.peak_count = max(s.peak_count, open_count)
    return s
