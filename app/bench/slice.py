"""``focalrig bench slice``: focal-index assignment throughput (events labelled per second, one core).

A synthetic, time-sorted event stream over a 10 Hz sine sweep is labelled with N equal-dioptre planes by
:func:`calibration.temporal.assign_focal_index` (the lookup-table numba kernel the stack builder uses), and the
whole per-polarity count volume is built as :func:`calibration.stack.build_focal_stack` does. Figures are printed,
never asserted; the target is ≥ 50 Mev/s for slicing (labelling and counting).
"""

from __future__ import annotations

import numba
import numpy as np
from rich.console import Console

from app.bench.timing import best_time
from calibration.stack import count_planes
from calibration.temporal import FocalBins, FocalModel, assign_focal_index
from capture.sweep import CommandedSweep
from drivers.events.dtypes import make_cd


def run_slice_benchmark(console: Console, *, n_events: int, n_planes: int, repeat: int) -> dict:
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 2_000_000, n_events)).astype(np.int64)  # 2 s = 20 periods
    x = rng.integers(0, 1280, n_events)
    y = rng.integers(0, 720, n_events)
    p = rng.integers(0, 2, n_events)
    model = FocalModel(CommandedSweep("sine", 0.0, 4.0, 0.0, frequency_hz=10.0), lag_us=2300.0)
    bins = FocalBins.for_model(model, n_planes)
    assign_focal_index(t[:1000], model, bins)  # compile outside the timing
    label_s = best_time(lambda: assign_focal_index(t, model, bins), repeat)
    cd = make_cd(x, y, p, t)
    k = assign_focal_index(t, model, bins)
    count_planes(cd[:1000], k[:1000], n_planes, 1280, 720)
    count_s = best_time(lambda: count_planes(cd, k, n_planes, 1280, 720), repeat)
    out = {"events": n_events, "planes": n_planes, "label_mev_s": n_events / label_s / 1e6,
           "count_mev_s": n_events / count_s / 1e6, "slice_mev_s": n_events / (label_s + count_s) / 1e6,
           "dropped_fraction": float(np.mean(k < 0))}
    console.print(f"focal-index labelling: {out['label_mev_s']:.0f} Mev/s (one core, {n_events / 1e6:.0f} M events, "
                  f"{n_planes} planes, {100 * out['dropped_fraction']:.1f} % in turnaround guards)", highlight=False)
    console.print(f"per-polarity counting (numba) into {n_planes}x2x720x1280: {out['count_mev_s']:.0f} Mev/s",
                  highlight=False)
    console.print(f"slicing end to end (label + count): {out['slice_mev_s']:.0f} Mev/s", highlight=False)
    return out
