"""A fuzz worker process: probes the files named on stdin, one JSON result per line on its own pipe.

Run as ``python -m capture.fuzz.worker WORK_DIR MEM_LIMIT_MIB``. Bad input must be caught inside the library,
but a worker also has to survive what is not: so it runs in its own process (a segfault or a hang in HDF5's C
code costs the worker, not the run), and caps its address space at its warmed-up size plus ``MEM_LIMIT_MIB``,
so an oversized allocation fails here as a MemoryError instead of pushing the machine into swap. Plain
``multiprocessing`` is not used: its pools die with a hung or killed worker, and forking a parent that holds
HDF5 handles is unsafe.

Protocol: the parent writes ``index<TAB>kind<TAB>path<TAB>time_shift`` lines; the worker answers each with a
JSON object ``{"index", "outcome", "message", "step", "seconds", "rss_mib"}``; a line ``ready`` first, once the
worker has warmed up.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

from capture.fuzz.probe import probe


def _vm_size_bytes() -> int:
    """This process's virtual memory size, from /proc (Linux); 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _warm_up(work: Path) -> None:
    """Load every reader and compile (or load cached) decoding kernels before the memory cap is set."""
    from capture.fuzz.seeds import write_raw_seeds

    folder = work / "warmup"
    folder.mkdir(exist_ok=True)
    for seed in write_raw_seeds(folder):
        probe(seed.path, recording=False, work=folder)
    import h5py  # noqa: F401 - the recording and HDF5 readers import it lazily

    import capture.recording.summary  # noqa: F401


def main(argv: list[str]) -> int:
    work, limit_mib = Path(argv[0]), int(argv[1])
    work.mkdir(parents=True, exist_ok=True)
    # Results travel on a private copy of stdout; C libraries printing to fd 1 land on stderr instead.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)
    _warm_up(work)
    vm = _vm_size_bytes()
    if limit_mib > 0 and vm:
        cap = vm + limit_mib * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    channel.write("ready\n")
    for line in sys.stdin:
        index, kind, path, time_shift = line.rstrip("\n").split("\t")
        start = time.perf_counter()
        result = probe(Path(path), recording=kind == "recording", work=work, time_shift=time_shift == "1")
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        channel.write(json.dumps({"index": int(index), "outcome": result.outcome, "message": result.message,
                                  "step": result.step, "seconds": time.perf_counter() - start,
                                  "rss_mib": rss_mib}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
