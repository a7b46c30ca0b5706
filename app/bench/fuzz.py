"""``focalrig bench fuzz``: mutated event files and recordings through ``events info``/``convert``/``inspect``.

The harness itself is :mod:`capture.fuzz` (the test suite runs it with a small budget); this module runs it with
a large one, shows progress, and prints the tally and every failing case (rebuild one with its run seed and
index, or keep the files with ``--keep``). A run passes with no hang, crash, traceback, out-of-memory or error
without the file's name, and every worker's peak memory under the limit.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from capture.fuzz.runner import FAILURES, Tally, run_fuzz
from capture.fuzz.seeds import SEED_NAMES, Seed


def _seed_kind(path: Path) -> str:
    """The mutation rules a user-given seed file follows, from its extension (and EVT format for RAW)."""
    if path.is_dir():
        return "recording"
    if path.suffix.lower() in (".hdf5", ".h5"):
        return "hdf5"
    head = path.read_bytes()[:4096]
    for kind, marker in (("evt21-little", b"EVT21"), ("evt2", b"EVT2"), ("evt3", b"EVT3")):
        if marker in head:
            return kind
    return "evt3"


def run_fuzz_benchmark(console: Console, *, files: int, seed: int, workers: int, timeout_s: float,
                       mem_limit_mib: int, kinds: list[str], seed_files: list[Path], keep: Path | None) -> Tally:
    """Run the harness and print its tally; returns it (the command's exit status follows ``passed``)."""
    unknown = sorted(set(kinds) - set(SEED_NAMES))
    if unknown:
        raise ValueError(f"unknown seed kind(s) {', '.join(unknown)}; choose from {', '.join(SEED_NAMES)}")
    extra = [Seed(_seed_kind(p), p) for p in seed_files]
    with Progress(TextColumn("fuzzing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("fuzz", total=files, detail="")

        def tick(t: Tally) -> None:
            bad = sum(t.counts[c] for c in FAILURES)
            bar.update(task, completed=t.total, detail=f"{t.counts['clean']} clean errors, {bad} failures")

        tally = run_fuzz(files, run_seed=seed, workers=workers, timeout_s=timeout_s, mem_limit_mib=mem_limit_mib,
                         extra_seeds=extra, kinds=tuple(kinds) + tuple(s.kind for s in extra) if kinds else (),
                         keep=keep, progress=tick)
    console.print(f"focalrig bench fuzz --files {files} --seed {seed}", highlight=False)
    for line in tally.lines():
        console.print(escape(line), highlight=False)
    for f in tally.findings:
        where = f" (kept: {f.kept})" if f.kept else ""
        console.print(f"[red]{f.category}[/] case {f.index} ({f.seed_kind}; {escape(', '.join(f.mutations))}){where}: "
                      f"{escape(f.message)}", highlight=False)
    verdict = "[green]passed[/]" if tally.passed(mem_limit_mib) else "[red]failed[/]"
    console.print(f"{verdict}: 0 hangs, crashes, tracebacks, out-of-memory and unnamed errors needed; peak worker "
                  f"memory {tally.peak_rss_mib:.0f} MiB of {mem_limit_mib} MiB allowed", highlight=False)
    return tally
