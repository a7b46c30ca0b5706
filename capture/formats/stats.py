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


def window_counts(t: np.ndarray, window_us: int) -> tuple[np.ndarray, np.ndarray]:
    """The occupied ``window_us`` windows of times ``t`` (sorted window numbers) and their event counts.

    Memory follows the number of events, never the time span: a dense histogram (``bincount``) is used
    only while it has at most a few bins per event; a sparse span — a long gap, or a corrupt file whose
    few events lie hours apart — is counted with a sort instead of allocating a bin for every empty window.
    """
    bins = t // window_us
    lo, hi = int(bins.min()), int(bins.max())
    if hi - lo < 4 * bins.shape[0] + 1024:
        counts = np.bincount(bins - lo)
        keys = np.flatnonzero(counts)
        return keys + lo, counts[keys]
    return np.unique(bins, return_counts=True)


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
            keys, counts = window_counts(t, peak_window_us)
            if open_bin is not None:
                at = int(np.searchsorted(keys, open_bin))
                if at < keys.shape[0] and keys[at] == open_bin:
                    counts[at] += open_count
                else:
                    s.peak_count = max(s.peak_count, open_count)
            s.peak_count = max(s.peak_count, int(counts[:-1].max()) if counts.shape[0] > 1 else 0)
            open_bin, open_count = int(keys[-1]), int(counts[-1])
        if trig.shape[0]:
            s.n_triggers += trig.shape[0]
            keys, counts = np.unique(np.stack([trig["id"], trig["p"]], axis=1), axis=0, return_counts=True)
            for (ch, edge), n in zip(keys.tolist(), counts.tolist(), strict=True):
                s.trigger_edges[(ch, edge)] = s.trigger_edges.get((ch, edge), 0) + n
        if on_chunk is not None:
            on_chunk(s)
    s.peak_count = max(s.peak_count, open_count)
    return s
