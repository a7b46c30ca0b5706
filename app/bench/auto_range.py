"""``focalrig bench auto-range``: the auto sweep range on simulated scenes with random layer depths.

Each seed builds the simulated rig with 2–4 layers at random depths inside the simulated LD4's range, runs the
auto range exactly as ``capture --auto-range`` does (one pre-sweep over the lens's whole range at the default
plan's 4 Hz, then the analysis) and compares the chosen range with the truth: whether every layer's depth is
inside it, and its width against the tightest covering range (nearest to farthest layer). Targets: every layer
covered, the range at most 1.5× the tightest covering one, and a cost of at most one extra sweep (event-clock time
of the pre-sweep, in periods of the plan). Figures are printed, never asserted.
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from app.auto_range import auto_range
from app.config import load_config
from capture.plan import SweepPlan
from drivers.focus_limits import connected_limits, expected_limits
from drivers.registry import open_rig

#: Layers are drawn this far apart at least (a closer pair is one surface to a focal stack).
MIN_SEPARATION_DPT = 0.2
TARGET_RATIO = 1.5
TARGET_COST = 1.0
_names = itertools.count()


def random_depths(rng: np.random.Generator, low: float, high: float) -> list[float]:
    """2–4 layer depths in [low, high], at least MIN_SEPARATION_DPT apart (rounded to 0.01 dpt)."""
    n = int(rng.integers(2, 5))
    while True:
        depths = np.sort(np.round(rng.uniform(low, high, n), 2))
        if np.all(np.diff(depths) >= MIN_SEPARATION_DPT):
            return [float(d) for d in depths]


def one_scene(seed: int, size: tuple[int, int], depth_range: tuple[float, float] | None) -> dict:
    """Auto range on the simulated scene of ``seed``; the truth beside what was chosen."""
    w, h = size
    port = f"optosim://bench-auto-range-{os.getpid()}-{next(_names)}"
    base = load_config(None, overrides=[f"lens.port='{port}'"])
    lens_range = expected_limits(base.lens).focal_power_range_dpt  # the depths drawn are ones the lens can focus
    lo, hi = depth_range if depth_range is not None else (max(0.0, lens_range[0]), lens_range[1])
    depths = random_depths(np.random.default_rng(seed), lo, hi)
    cfg = load_config(None, overrides=[f"sim.rgb_size=[{w},{h}]", f"sim.event_size=[{w},{h}]", "sim.realtime=false",
                                       f"sim.depths_dpt={depths}", f"sim.seed={seed}", f"lens.port='{port}'"])
    plan = SweepPlan.load(None)
    with open_rig(cfg) as rig:
        t0 = time.monotonic()
        result = auto_range(rig, plan, connected_limits(cfg.lens, rig.lens.capabilities))
        wall = time.monotonic() - t0
    chosen = (result.plan.low_dpt, result.plan.high_dpt)
    span = max(depths) - min(depths)
    r = result.record
    return {"seed": seed, "depths": depths, "chosen": chosen, "scene": tuple(r["scene_dpt"]),
            "covered": all(chosen[0] <= d <= chosen[1] for d in depths),
            "ratio": (chosen[1] - chosen[0]) / span, "cost": r["presweep"]["cost_sweeps"], "wall_s": wall,
            "ends": "".join(e for e, hit in zip("LH", r["extended_to_end"], strict=True) if hit) or "-",
            "lag_ms": r["lag_us"] / 1000, "pixels": r["pixels"]}


def run_auto_range_benchmark(console: Console, *, seeds: int = 8, first_seed: int = 0,
                             size: tuple[int, int] = (160, 120),
                             depth_range: tuple[float, float] | None = None) -> list[dict]:
    """Print one row per seed and a summary against the targets; returns the rows."""
    table = Table(title=f"auto range, simulated {size[0]}x{size[1]}, default plan (4 Hz, 60 fps, 15 planes)")
    for col in ("seed", "layer depths dpt", "true span", "scene seen", "chosen dpt", "ends", "all covered",
                "ratio to tightest", "cost sweeps", "lag ms", "pixels", "wall s"):
        table.add_column(col, justify="right" if col not in ("layer depths dpt", "ends") else "left")
    rows = []
    with console.status("pre-sweeping simulated scenes") as status:
        for seed in range(first_seed, first_seed + seeds):
            status.update(f"seed {seed} ({seed - first_seed + 1} of {seeds})")
            row = one_scene(seed, size, depth_range)
            rows.append(row)
            d = row["depths"]
            table.add_row(str(seed), ", ".join(f"{x:.2f}" for x in d), f"{min(d):.2f}–{max(d):.2f}",
                          f"{row['scene'][0]:.2f}–{row['scene'][1]:.2f}",
                          f"{row['chosen'][0]:.2f}–{row['chosen'][1]:.2f}", row["ends"],
                          "yes" if row["covered"] else "[bold red]NO[/]",
                          f"{row['ratio']:.2f}" if row["ratio"] <= TARGET_RATIO else f"[yellow]{row['ratio']:.2f}[/]",
                          f"{row['cost']:.2f}", f"{row['lag_ms']:.2f}", f"{row['pixels']:,}", f"{row['wall_s']:.1f}")
    console.print(table)
    covered = sum(r["covered"] for r in rows)
    ratios = np.array([r["ratio"] for r in rows])
    within = int(np.sum(ratios <= TARGET_RATIO))
    costs = np.array([r["cost"] for r in rows])
    console.print(f"every layer covered: {covered} of {len(rows)} scenes; ratio to the tightest covering range "
                  f"median {np.median(ratios):.2f}, max {ratios.max():.2f}, ≤ {TARGET_RATIO:g} in {within} of "
                  f"{len(rows)} (target: all); cost max {costs.max():.2f} sweeps (target ≤ {TARGET_COST:g}); "
                  "ends: L/H = extended to the lens's low/high end (a surface too near it to be timed)",
                  highlight=False)
    return rows
