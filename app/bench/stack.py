"""``focalrig bench stack``: time to turn one recorded sweep into its aligned focal stack, per frame size.

A short recording of the simulated rig is made at each size (the default 4 Hz sweep at 60 fps, so 15 frames per
sweep), calibrated as a user would for timing and breathing (from its own sweeps) with the simulator's true
event→RGB geometry standing in for a target recording, and each sweep is stacked — every frame warped to the
breathing reference, every event counted into its plane and resampled into the RGB grid — best of several runs.
The targets are ≤ 50 ms per 320×240 sweep and ≤ 200 ms per 640×480 sweep on 2 cores. Figures are printed, never
asserted.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from app.bench.timing import best_of
from app.config import load_config
from calibration.model import SpatialCalibration
from calibration.pipeline import calibrate
from calibration.stack import build_focal_stack
from capture.plan import SweepPlan
from capture.recording import Recording
from capture.recording.simulated import record_simulation

TARGET_MS = {(320, 240): 50.0, (640, 480): 200.0}


def _calibration(recording: Path, sweeps: list):
    """Timing and breathing from the sweeps, the geometry from the simulator's truth."""
    truth = json.loads((recording / "ground_truth" / "homography_event_to_rgb.json").read_text())
    sweep = sweeps[0]
    spatial = SpatialCalibration(tuple(sweep.frame_geometry), tuple(sweep.event_geometry),
                                 np.asarray(truth["matrix"], np.float64))
    run = calibrate(sweeps=sweeps)
    return run.calibration.merged(type(run.calibration)(spatial=spatial))


def time_stacks(size: tuple[int, int], sweeps: int, repeat: int, planes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="focalrig-bench-stack-") as tmp:
        w, h = size
        cfg = load_config(None, overrides=[f"sim.rgb_size=[{w},{h}]", f"sim.event_size=[{w},{h}]",
                                           "sim.realtime=false"])
        plan = SweepPlan.load(None, [("sweeps", sweeps), ("duration_s", "none")])
        status = record_simulation(cfg, plan, tmp)
        with Recording.open(status.recording) as rec:
            data = list(rec.sweeps())
        cal = _calibration(status.recording, data)
        with_events = [best_of(lambda s=s: build_focal_stack(s, cal, planes), repeat) for s in data]
        frames_only = [best_of(lambda s=s: build_focal_stack(s, cal, planes, with_events=False), repeat)
                       for s in data]
        stack = build_focal_stack(data[0], cal, planes)
        return {"size": f"{w}x{h}", "planes": stack.n_planes, "events_per_sweep": int(np.mean([len(s.cd)
                                                                                                for s in data])),
                "ms": 1e3 * float(np.median([b.wall_s for b in with_events])),
                "cpu_ms": 1e3 * float(np.median([b.cpu_s for b in with_events])),
                "frames_only_ms": 1e3 * float(np.median([b.wall_s for b in frames_only])),
                "target_ms": TARGET_MS.get(size)}


def run_stack_benchmark(console: Console, *, sizes: list[tuple[int, int]], sweeps: int, repeat: int,
                        planes: int) -> list[dict]:
    rows = []
    with console.status("recording and stacking simulated sweeps"):
        for size in sizes:
            rows.append(time_stacks(size, sweeps, repeat, planes))
    table = Table(title=f"focal stack per sweep: frames warped, events sliced and resampled (median over {sweeps} "
                        f"sweeps of the best of {repeat})", title_justify="left")
    for col in ("size", "planes", "events/sweep", "ms", "CPU ms", "frames only ms", "target ms"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["size"], str(r["planes"]), f"{r['events_per_sweep']:,}", f"{r['ms']:.1f}",
                      f"{r['cpu_ms']:.1f}", f"{r['frames_only_ms']:.1f}",
                      "—" if r["target_ms"] is None else f"≤ {r['target_ms']:.0f}")
    console.print(table)
    return rows
