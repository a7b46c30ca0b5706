"""Run many fuzz cases through worker processes and count what happened to each.

Every case gets a per-file time limit; a worker that exceeds it is killed and counted as a **hang**, one that
dies is a **crash** (its exit status says how), and a fresh worker takes its place, so one bad file never ends
the run. The tally's categories:

- ``ok``: read to the end (possibly with warnings);
- ``clean``: a user error (one line on the command line) whose message names the file or recording;
- ``unnamed``: a user error that does not say which file it is about;
- ``traceback``: any other exception — the user would see a Python traceback;
- ``memory``: a MemoryError under the worker's address-space cap;
- ``hang`` and ``crash`` as above.

A run passes when only ``ok`` and ``clean`` occur and the peak resident memory of every worker stays under
the limit.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from capture.fuzz.mutate import Case, make_case
from capture.fuzz.seeds import Seed, write_seeds

FAILURES = ("unnamed", "traceback", "memory", "hang", "crash")
CATEGORIES = ("ok", "clean", *FAILURES)


@dataclass
class Finding:
    """A case that failed: enough to rebuild it (run seed and index) and to read what went wrong."""

    index: int
    category: str
    seed_kind: str
    mutations: tuple[str, ...]
    message: str
    kept: Path | None = None


@dataclass
class Tally:
    """Counts per category and per seed kind, the slowest case and the workers' peak resident memory."""

    counts: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    slowest_s: float = 0.0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def passed(self, max_rss_mib: float) -> bool:
        return not any(self.counts[c] for c in FAILURES) and self.peak_rss_mib <= max_rss_mib

    def add(self, case: Case, category: str, message: str = "") -> Finding | None:
        self.counts[category] += 1
        self.by_kind.setdefault(case.seed.kind, Counter())[category] += 1
        if category in FAILURES:
            finding = Finding(case.index, category, case.seed.kind, case.mutations, message)
            self.findings.append(finding)
            return finding
        return None

    def lines(self) -> list[str]:
        """The tally as plain text lines (what ``focalrig bench fuzz`` prints)."""
        out = [f"{self.total} files in {self.seconds:.0f} s: "
               + ", ".join(f"{c} {self.counts[c]}" for c in CATEGORIES),
               f"peak worker memory {self.peak_rss_mib:.0f} MiB, slowest file {self.slowest_s:.2f} s"]
        for kind, counts in self.by_kind.items():
            out.append(f"  {kind:<13} " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES if counts[c]))
        return out


class _Worker:
    """One worker process and the case it is working on."""

    def __init__(self, command: list[str], log: Path) -> None:
        self._stderr = open(log, "ab")  # closed in stop()
        self.log = log
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.case: Case | None = None
        self.started = 0.0
        self.ready = False

    def send(self, case: Case, time_shift: bool) -> None:
        assert self.proc.stdin is not None
        kind = "recording" if case.is_recording else case.seed.kind
        self.proc.stdin.write(f"{case.index}\t{kind}\t{case.path}\t{int(time_shift)}\n")
        self.proc.stdin.flush()
        self.case = case
        self.started = time.monotonic()

    def stderr_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-600:].strip()
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        elif self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def _classify(case: Case, result: dict) -> tuple[str, str]:
    outcome, message = result["outcome"], result["message"]
    if outcome == "ok":
        return "ok", ""
    if outcome == "error":
        named = case.path.stem in message or case.path.name in message
        return ("clean" if named else "unnamed"), f"[{result['step']}] {message}"
    return outcome, f"[{result['step']}] {message}"


def run_fuzz(
    n_files: int,
    *,
    run_seed: int = 0,
    workers: int = 2,
    timeout_s: float = 30.0,
    mem_limit_mib: int = 1024,
    extra_seeds: list[Seed] | None = None,
    extra_files: list[Path] | None = None,
    kinds: tuple[str, ...] = (),
    keep: Path | None = None,
    progress: Callable[[Tally], None] | None = None,
    worker_command: list[str] | None = None,
) -> Tally:
    """Generate ``n_files`` cases (round-robin over the seeds), probe them in ``workers`` processes, tally.

    ``extra_seeds`` are mutated like the built-in seeds; ``extra_files`` (event files or recording folders,
    such as the crafted files of past bugs) are probed once each as they are, before the mutated cases.
    ``kinds``: only the seeds of these kinds (default: all). ``keep``: a folder to copy every failing case
    into (kept for reproduction). Cases are deleted as soon as they are probed, so disk use stays at a few
    seeds' size. ``worker_command`` replaces the worker process (the runner's own tests use a fake one).
    """
    tally = Tally()
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="focalrig-fuzz-") as tmp:
        root = Path(tmp)
        (root / "seeds").mkdir()
        seeds = write_seeds(root / "seeds") + list(extra_seeds or [])
        if kinds:
            seeds = [s for s in seeds if s.kind in kinds]
            if not seeds:
                raise ValueError(f"no seed of kind {', '.join(kinds)}")
        cases_dir = root / "cases"
        cases_dir.mkdir()
        pool: list[_Worker] = []
        sel = selectors.DefaultSelector()
        spawned = 0

        def spawn() -> _Worker:
            nonlocal spawned
            spawned += 1
            command = worker_command or [sys.executable, "-m", "capture.fuzz.worker", str(root / f"work{spawned}"),
                                         str(mem_limit_mib)]
            w = _Worker(command, root / f"worker{spawned}.log")
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            pool.append(w)
            return w

        def retire(w: _Worker, kill: bool) -> None:
            sel.unregister(w.proc.stdout)
            w.stop(kill=kill)
            pool.remove(w)

        def finish(w: _Worker, category: str, message: str) -> None:
            case = w.case
            assert case is not None
            w.case = None
            finding = tally.add(case, category, message)
            if finding is not None and keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                dst = keep / case.path.name
                if case.path.is_dir():
                    shutil.copytree(case.path, dst, dirs_exist_ok=True)
                elif case.path.exists():
                    shutil.copyfile(case.path, dst)
                finding.kept = dst
            _remove(case.path)
            if progress is not None:
                progress(tally)

        given = [_copy_in(Path(p), i, cases_dir) for i, p in enumerate(extra_files or [])]
        n_total = len(given) + n_files

        def next_case(i: int) -> Case:
            return given[i] if i < len(given) else make_case(seeds, run_seed, i - len(given), cases_dir)

        next_index = 0
        try:
            for _ in range(max(1, min(workers, n_total))):
                spawn()
            while next_index < n_total or any(w.case is not None for w in pool):
                for w in list(pool):  # hand out work to idle, warmed-up workers
                    if w.ready and w.case is None and next_index < n_total:
                        case = next_case(next_index)
                        w.send(case, time_shift=bool(next_index % 2))
                        next_index += 1
                for key, _ in sel.select(timeout=0.2):
                    w = key.data
                    line = w.proc.stdout.readline()
                    if not line:  # the worker died: a crash if it was busy
                        busy = w.case is not None
                        code = w.proc.wait()
                        if busy:
                            finish(w, "crash", f"worker exit status {code}: {w.stderr_tail()}")
                        elif not w.ready:
                            raise RuntimeError(f"fuzz worker failed to start (exit {code}): {w.stderr_tail()}")
                        retire(w, kill=False)
                        spawn()
                        continue
                    if line.strip() == "ready":
                        w.ready = True
                        continue
                    result = json.loads(line)
                    tally.peak_rss_mib = max(tally.peak_rss_mib, float(result["rss_mib"]))
                    tally.slowest_s = max(tally.slowest_s, float(result["seconds"]))
                    finish(w, *_classify(w.case, result))
                now = time.monotonic()
                for w in list(pool):
                    if w.case is not None and now - w.started > timeout_s:
                        finish(w, "hang", f"no result after {timeout_s:.0f} s")
                        retire(w, kill=True)
                        spawn()
        finally:
            for w in list(pool):
                retire(w, kill=True)
            sel.close()
    tally.seconds = time.monotonic() - t_start
    return tally


def _copy_in(src: Path, i: int, folder: Path) -> Case:
    """A case for a given file or folder, probed unchanged from a copy (the runner deletes cases it has probed)."""
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder to fuzz")
    dst = folder / f"given{i:03d}_{src.name}"
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    kind = "recording" if src.is_dir() else "given"
    return Case(-1 - i, Seed(kind, src), dst, ("as given",))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
