"""Statistically sensor-like event streams for benchmarks and tests (not a physical simulation).

The physically based event camera simulator lives in ``drivers/sim``; this generator only needs to
exercise codecs the way real bursts do (runs of neighbouring pixels, many events per microsecond).
"""

from __future__ import annotations

import numpy as np

from drivers.events.dtypes import make_cd, make_triggers


def synthetic_events(n: int, width: int = 1280, height: int = 720, rate: float = 20e6, seed: int = 0):
    """A dense, sensor-like stream: short horizontal runs of same-polarity events (moving edges).

    Runs (geometric length, mean 8) arrive as a Poisson process at ``rate`` events/s, so many
    runs share a microsecond, as in a real burst. Also returns 1 kHz strobe trigger edges.
    """
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.geometric(1 / 8, size=n // 4 + 16), 32)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
    n_runs = lengths.shape[0]
    t_runs = np.cumsum(rng.exponential(lengths.mean() / rate * 1e6, n_runs)).astype(np.int64)
    x0 = rng.integers(0, width - lengths + 1)
    y = rng.integers(0, height, n_runs)
    p = rng.integers(0, 2, n_runs)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    offsets = np.arange(starts.shape[0]) - starts
    cd = make_cd(np.repeat(x0, lengths) + offsets, np.repeat(y, lengths), np.repeat(p, lengths),
                 np.repeat(t_runs, lengths))[:n]
    edges = np.arange(0, int(cd["t"][-1]), 500)
    triggers = make_triggers(np.arange(edges.shape[0]) % 2 ^ 1, edges, np.zeros_like(edges))
    return cd, triggers


def random_events(n: int, width: int = 1280, height: int = 720, rate: float = 20e6, seed: int = 0):
    """Events at uniformly random pixels and polarities, Poisson in time at ``rate`` events/s.

    The worst case for EVT 3.0's vectors (neighbours in one row and microsecond are rare), so every event
    costs its own address words: the figure to quote for random-position decoding.
    """
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1e6 / rate, n)).astype(np.int64)
    cd = make_cd(rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n), t)
    order = np.lexsort((cd["x"], cd["p"], cd["y"], cd["t"]))
    return cd[order]
