"""How a batch's Dask workers are set up before their first job: threads per task, the memory allocator, and the
modules the jobs need.

- **Threads.** torch, numba, OpenCV and BLAS each start a thread per core by default: eight workers on an
  eight-core machine would run 64 threads of fused maths and go slower than one. Each task gets its share of the
  cores instead — on the embedded cluster the machine's cores divided by the tasks that run at once, on an
  existing cluster one thread per Dask thread (Dask's own convention: a worker's threads are its cores).
- **Allocator.** Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to the
  system sooner). With any malloc threshold set, glibc stops adapting its mmap threshold, so every numpy
  temporary above 128 KiB is mapped and unmapped afresh, its pages faulted in and zeroed each time: measured, a
  320x240 recording's classical fusion took 1.4-1.8 CPU seconds in a worker against 0.6-0.7 s in a plain
  process. Workers are set to where glibc's adaptive thresholds settle (mmap above 32 MiB, trim above 64 MiB),
  which brings them back to 0.6-0.8 s; memory beyond one job's working set is still returned.
- **Preload.** A worker imports the job's modules when it starts, so its first job is not also its start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import sys

from distributed import WorkerPlugin

#: Environment variables the numeric libraries read when they start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: glibc's mallopt parameters, and the values its adaptive thresholds reach on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a batch scheduler's allocation narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def limit_threads(n: int) -> None:
    """Make torch, numba, OpenCV and BLAS in this process use ``n`` threads: by the environment for libraries not
    yet loaded, by their own calls for those that are."""
    n = max(1, int(n))
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    import cv2

    cv2.setNumThreads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def settle_allocator() -> bool:
    """Set glibc's mmap and trim thresholds to where its adaptive ones settle; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False


class WorkerSetup(WorkerPlugin):
    """Sets up every worker of the cluster, including those that join or restart later (see the module's notes)."""

    name = "focalrig-worker-setup"

    def __init__(self, threads: int, preload: tuple[str, ...] = ()) -> None:
        self.threads = threads
        self.preload = preload

    def setup(self, worker) -> None:
        limit_threads(self.threads)
        settle_allocator()
        for module in self.preload:
            importlib.import_module(module)
