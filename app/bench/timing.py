"""The one way the benchmarks time things: wall-clock and process CPU seconds, once or best of several runs.

Wall time is :func:`time.perf_counter`; CPU time is :func:`time.process_time`, summed over every thread of the
process (on a shared machine the wall time grows with the load, the CPU time much less).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType


class Stopwatch:
    """Wall and CPU seconds of a ``with`` block: read :attr:`wall_s` / :attr:`cpu_s` after it (inside it, the
    time so far)."""

    def __init__(self) -> None:
        self._wall0 = self._cpu0 = 0.0
        self._wall: float | None = None
        self._cpu: float | None = None

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = None, None
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._wall, self._cpu = time.perf_counter() - self._wall0, time.process_time() - self._cpu0

    @property
    def wall_s(self) -> float:
        return self._wall if self._wall is not None else time.perf_counter() - self._wall0

    @property
    def cpu_s(self) -> float:
        return self._cpu if self._cpu is not None else time.process_time() - self._cpu0


@dataclass(frozen=True)
class Best:
    """The shortest wall time and the shortest CPU time over a set of runs (each minimum on its own)."""

    wall_s: float
    cpu_s: float


def best_of(fn: Callable[[], object], repeat: int, *, warmup: bool = True) -> Best:
    """Best wall and CPU time of ``repeat`` runs of ``fn``, after one untimed warm-up run (numba compilation,
    first-call allocations, thread pools, page cache) unless ``warmup`` is false."""
    if warmup:
        fn()
    wall = cpu = float("inf")
    for _ in range(repeat):
        with Stopwatch() as sw:
            fn()
        wall, cpu = min(wall, sw.wall_s), min(cpu, sw.cpu_s)
    return Best(wall, cpu)


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` runs of ``fn`` after one warm-up run."""
    return best_of(fn, repeat).wall_s
