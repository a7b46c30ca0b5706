"""The evaluation harness behind ``focalrig eval``: every method and peer on the same stacks, one row each.

A stack with ground truth (synthetic, or a dataset with ``AiF/``) is scored by PSNR/SSIM against the all-in-focus
reference and, when a ground-truth focal index exists, by index accuracy; every stack is also scored by the
N-source Qabf against its own frames and by no-reference sharpness (spatial frequency), which is all that real
stacks without ground truth allow (fusion-notes §7.1). Time is the method's or tool's own wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from capture.focal_stack import FocalStack
from fusion import metrics
from fusion.engine import fuse
from fusion.peers import PeerError, run_peer

#: A stack to evaluate, loaded lazily so a long dataset never sits in memory at once.
StackSource = tuple[str, str, Callable[[], FocalStack]]   # (group, name, loader)


@dataclass
class EvalRow:
    group: str
    stack: str
    method: str
    time_s: float
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""


def score(stack: FocalStack, fused: np.ndarray, index: np.ndarray | None = None) -> dict[str, float]:
    """Every metric that applies to ``stack``: PSNR/SSIM (+ index accuracy) with ground truth, Qabf and SF always."""
    out: dict[str, float] = {}
    gt = stack.ground_truth.get("all_in_focus")
    if gt is not None:
        gt = np.asarray(gt)
        if gt.dtype != fused.dtype:  # e.g. float ground truth of an 8-bit stack: compare on [0, 1]
            gt, fused = _unit(gt), _unit(fused)
        out["psnr"] = metrics.psnr(gt, fused)
        out["ssim"] = metrics.ssim(gt, fused)
    truth = stack.ground_truth.get("focal_index")
    if truth is not None and index is not None:
        acc = metrics.index_accuracy(index, np.asarray(truth))
        out["index_within1"] = acc["within_tol"]
        out["index_mae"] = acc["index_mae"]
    out["qabf"] = metrics.qabf(stack.frames, fused)
    out["sf"] = metrics.spatial_frequency(fused)
    return out


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / np.float32(metrics.data_range(image))


def evaluate(sources: Iterable[StackSource], methods: Iterable[str], peers: Iterable[str], *,
             prepare: Callable[[FocalStack], FocalStack] | None = None,
             method_options: dict[str, dict] | None = None) -> Iterator[EvalRow]:
    """Yield one :class:`EvalRow` per (stack, method or peer); a failing peer yields a row with ``error``."""
    methods, peers = list(methods), list(peers)
    for group, name, load in sources:
        stack = load()
        if prepare is not None:
            stack = prepare(stack)
        for method in methods:
            t0 = time.perf_counter()
            result = fuse(stack, method=method, **(method_options or {}).get(method, {}))
            elapsed = result.timings_s.get("total", time.perf_counter() - t0)
            yield EvalRow(group, name, method, elapsed, score(stack, result.all_in_focus, result.focal_index))
        for peer in peers:
            try:
                r = run_peer(peer, stack)
            except PeerError as exc:
                yield EvalRow(group, name, peer, math.nan, error=str(exc))
                continue
            yield EvalRow(group, name, peer, r.time_s, score(stack, r.image))


def summarise(rows: Iterable[EvalRow]) -> list[dict]:
    """Mean of every score and of the time per (group, method), in first-seen order."""
    table: dict[tuple[str, str], list[EvalRow]] = {}
    for row in rows:
        if not row.error:
            table.setdefault((row.group, row.method), []).append(row)
    out = []
    for (group, method), rs in table.items():
        keys = sorted({k for r in rs for k in r.scores})
        means = {k: float(np.mean([r.scores[k] for r in rs if k in r.scores])) for k in keys}
        out.append({"group": group, "method": method, "stacks": len(rs),
                    "time_s": float(np.mean([r.time_s for r in rs])), **means})
    return out
