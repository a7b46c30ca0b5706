"""``focalrig bench net``: the network's figures — synthetic data rate, inference time, held-out quality.

Quality is measured on synthetic stacks whose seeds training never draws (``fusion.net.data.validation_specs``),
for the network with events, the same network with the events zeroed (the event ablation), and the classical
method, all through :func:`fusion.engine.fuse`. Figures are printed, never asserted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from app.bench.timing import Stopwatch
from fusion import metrics
from fusion.classical import gather
from fusion.engine import fuse, get_method
from fusion.net.data import validation_specs
from fusion.net.method import load_weights
from fusion.synthetic import synthetic_stack


def synthetic_rate(size: int, planes: int, count: int) -> float:
    """Training stacks rendered per second (events included), after one warm-up render."""
    synthetic_stack(0, size=(size, size), n_planes=planes)
    with Stopwatch() as sw:
        for seed in range(1, count + 1):
            synthetic_stack(seed, size=(size, size), n_planes=planes)
    return count / sw.wall_s


def inference_time(device: str, width: int, height: int, planes: int, repeat: int, weights: Path | None,
                   compile: bool = False) -> float:
    """Best-of-``repeat`` seconds of ``fuse(method="net")`` on one synthetic stack with events (after a warm-up
    call, which with ``compile`` also pays torch.compile's one-off compilation)."""
    stack = synthetic_stack(0, size=(width, height), n_planes=planes, event_substeps=1)
    kwargs = {"device": device, "weights": weights, "compile": compile}
    fuse(stack, method="net", **kwargs)  # warm-up (weights, allocator, cuDNN autotune, compilation)
    return min(fuse(stack, method="net", **kwargs).timings_s["total"] for _ in range(repeat))


#: Row name of the ground-truth plane gathered from the same frames: the best a method that copies pixels can do.
CEILING = "ground-truth plane (ceiling)"


def _plane_of(index: np.ndarray, n: int) -> np.ndarray:
    return np.clip(np.rint(index), 0, n - 1).astype(np.intp)


def held_out_quality(count: int, size: int, weights: Path | None = None) -> dict[str, float]:
    """Mean PSNR (dB) and ±1-plane index accuracy over ``count`` held-out stacks: net, net without events,
    classical, and the ceiling: each pixel copied from its ground-truth best plane (the noisy frames bound what
    any gather-based method can score, so a target above classical is only reachable below this line)."""
    scores: dict[str, list[float]] = {}
    for spec in validation_specs(count):
        stack = synthetic_stack(spec.seed, size=(size, size), n_planes=spec.n_planes,
                                sweep_margin_dpt=spec.margin_dpt)
        gt, truth = stack.ground_truth["all_in_focus"], stack.ground_truth["focal_index"]
        runs = {"net": fuse(stack, method="net", weights=weights),
                "net, events zeroed": fuse(stack, method="net", weights=weights, use_events=False),
                "classical": fuse(stack, method="classical")}
        for name, r in runs.items():
            scores.setdefault(f"{name} psnr", []).append(metrics.psnr(gt, r.all_in_focus))
            scores.setdefault(f"{name} within1", []).append(metrics.index_accuracy(r.focal_index, truth)["within_tol"])
        scores.setdefault(f"{CEILING} psnr", []).append(metrics.psnr(gt, gather(stack.frames, _plane_of(truth,
                                                                                                    stack.n_planes))))
        scores.setdefault(f"{CEILING} within1", []).append(1.0)
    return {k: float(np.mean(v)) for k, v in scores.items()}


def run_net_benchmarks(console: Console, *, quality: int, quality_size: int, repeat: int,
                       weights: Path | None = None, speed: bool = True, compile: bool = False) -> None:
    get_method("classical")
    _, recipe = load_weights(weights)
    console.print(f"weights: step {recipe.get('step')} of `{recipe.get('command', '?')}` "
                  f"({recipe.get('parameters', '?')} parameters); torch threads {torch.get_num_threads()}, "
                  f"{os.cpu_count()} CPU cores")
    if speed:
        console.print(f"synthetic training stacks (128x128, N=12, events): {synthetic_rate(128, 12, 5):.2f} stacks/s")
        table = Table(title=f"net inference, 640x480, best of {repeat}", title_justify="left")
        for col in ("device", "N", "seconds", *(["compiled"] if compile else [])):
            table.add_column(col, justify="right")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            for n in (8, 16):
                row = [device, str(n), f"{inference_time(device, 640, 480, n, repeat, weights):.3f}"]
                if compile:
                    row.append(f"{inference_time(device, 640, 480, n, repeat, weights, compile=True):.3f}")
                table.add_row(*row)
        console.print(table)
    if quality:
        q = held_out_quality(quality, quality_size, weights)
        table = Table(title=f"held-out synthetic stacks ({quality}, {quality_size}x{quality_size}, N 8/16, "
                            "seeds 2**31+i)", title_justify="left")
        for col in ("method", "PSNR dB", "index within ±1"):
            table.add_column(col, justify="right")
        for name in ("net", "net, events zeroed", "classical", CEILING):
            table.add_row(name, f"{q[f'{name} psnr']:.2f}", f"{q[f'{name} within1']:.3f}")
        console.print(table)
        console.print(f"net − classical: {q['net psnr'] - q['classical psnr']:+.2f} dB; "
                      f"events' gain: {q['net psnr'] - q['net, events zeroed psnr']:+.2f} dB; "
                      f"ceiling − classical: {q[f'{CEILING} psnr'] - q['classical psnr']:+.2f} dB")
