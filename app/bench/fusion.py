"""``focalrig bench fusion``: classical fusion time per stack size, and enfuse on the same stack when installed.

Stacks come from :func:`fusion.synthetic.synthetic_stack` (frames only; events do not change the default
classical path). The classical figure is the engine's total (focus measure, filtering, decision, gather) with
the stack in memory, as wall time and as process CPU time (summed over OpenCV's threads: on a shared machine
the wall time grows with the load, the CPU time much less); enfuse's is its subprocess wall time on TIFFs
already written. Best of ``repeat`` runs. Figures are printed, never asserted.
"""

from __future__ import annotations

import os

import cv2
from rich.console import Console
from rich.table import Table

from app.bench.timing import best_of
from fusion.engine import fuse
from fusion.peers import available_peers, run_peer
from fusion.synthetic import synthetic_stack


def benchmark_stack(width: int, height: int, n_planes: int, repeat: int) -> dict:
    """Best-of-``repeat`` seconds of classical fusion and of each installed peer on one synthetic stack."""
    stack = synthetic_stack(0, size=(width, height), n_planes=n_planes, with_events=False)
    best = best_of(lambda: fuse(stack), repeat)  # after a warm-up: first-call allocations, OpenCV's thread pool
    row = {"planes": n_planes, "width": width, "height": height, "classical_s": best.wall_s,
           "classical_cpu_s": best.cpu_s}
    for peer in available_peers():
        row[f"{peer}_s"] = min(run_peer(peer, stack).time_s for _ in range(max(1, min(repeat, 3))))
    return row


def run_fusion_benchmarks(console: Console, *, size: tuple[int, int], planes: list[int], repeat: int) -> None:
    width, height = size
    peers = available_peers()
    table = Table(title=f"fusion at {width}x{height}, best of {repeat} ({os.cpu_count()} CPU cores, "
                        f"OpenCV threads {cv2.getNumThreads()})", title_justify="left")
    table.add_column("planes", justify="right")
    table.add_column("classical s", justify="right")
    table.add_column("CPU s", justify="right")
    for peer in peers:
        table.add_column(f"{peer} s", justify="right")
        table.add_column("ratio", justify="right")
    for n in planes:
        row = benchmark_stack(width, height, n, repeat)
        cells = [str(n), f"{row['classical_s']:.3f}", f"{row['classical_cpu_s']:.3f}"]
        for peer in peers:
            cells += [f"{row[f'{peer}_s']:.3f}", f"{row[f'{peer}_s'] / row['classical_s']:.1f}x"]
        table.add_row(*cells)
    console.print(table)
    if not peers:
        console.print("enfuse not found on PATH: install it (apt-get install enfuse) to compare.")
