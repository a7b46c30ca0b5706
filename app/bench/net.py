"""``focalrig bench net``: the network's figures — synthetic data rate, inference time, held-out quality.

Quality is measured on synthetic stacks whose seeds training never draws (``fusion.net.data.validation_specs``),
for the network with events, the same network with the events zeroed (the event ablation), and the classical
method with its soft output and with the gathered one, all through :func:`fusion.engine.fuse`, beside two oracles
that read the same frames with the truth in hand. Figures are printed, never asserted.
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
from fusion.oracles import near_best_oracle
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


#: Row names of the two oracles, computed from the same noisy frames with the truth in hand: each pixel copied from
#: its ground-truth best plane, and the mean of its locally best planes (:func:`fusion.oracles.near_best_oracle`),
#: which averages noise out and is what a soft output can approach.
TRUE_PLANE = "oracle: ground-truth plane"
NEAR_BEST = "oracle: near-best average"
METHOD_ROWS = ("net", "net, events zeroed", "classical", "classical, gather")


def _plane_of(index: np.ndarray, n: int) -> np.ndarray:
    return np.clip(np.rint(index), 0, n - 1).astype(np.intp)


def held_out_quality(count: int, size: int, weights: Path | None = None) -> dict[str, float]:
    """Mean PSNR (dB) and ±1-plane index accuracy over ``count`` held-out stacks: the net with and without its
    events, classical with its soft output and with the gathered one, and the two oracles on the same frames."""
    scores: dict[str, list[float]] = {}
    for spec in validation_specs(count):
        stack = synthetic_stack(spec.seed, size=(size, size), n_planes=spec.n_planes,
                                sweep_margin_dpt=spec.margin_dpt)
        gt, truth = stack.ground_truth["all_in_focus"], stack.ground_truth["focal_index"]
        runs = {"net": fuse(stack, method="net", weights=weights),
                "net, events zeroed": fuse(stack, method="net", weights=weights, use_events=False),
                "classical": fuse(stack, method="classical"),
                "classical, gather": fuse(stack, method="classical", output="gather")}
        for name, r in runs.items():
            scores.setdefault(f"{name} psnr", []).append(metrics.psnr(gt, r.all_in_focus))
            scores.setdefault(f"{name} within1", []).append(metrics.index_accuracy(r.focal_index, truth)["within_tol"])
        scores.setdefault(f"{TRUE_PLANE} psnr", []).append(metrics.psnr(gt, gather(stack.frames, _plane_of(truth,
                                                                                                   stack.n_planes))))
        scores.setdefault(f"{TRUE_PLANE} within1", []).append(1.0)
        scores.setdefault(f"{NEAR_BEST} psnr", []).append(metrics.psnr(gt, near_best_oracle(stack, gt)))
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
        for name in (*METHOD_ROWS, TRUE_PLANE, NEAR_BEST):
            within = q.get(f"{name} within1")
            table.add_row(name, f"{q[f'{name} psnr']:.2f}", "—" if within is None else f"{within:.3f}")
        console.print(table)
        console.print(f"classical soft − gather: {q['classical psnr'] - q['classical, gather psnr']:+.2f} dB; "
                      f"net − classical: {q['net psnr'] - q['classical psnr']:+.2f} dB; "
                      f"events' gain: {q['net psnr'] - q['net, events zeroed psnr']:+.2f} dB; "
                      f"near-best oracle − net: {q[f'{NEAR_BEST} psnr'] - q['net psnr']:+.2f} dB")
