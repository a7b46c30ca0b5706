"""``focalrig bench batch``: ``batch fuse --method classical`` over simulated recordings on 1 and 2 worker processes
of the embedded Dask cluster — speed-up, scheduler overhead, peak memory per worker — and the same batch with a
worker SIGKILLed mid-job.

Recordings are made on the simulated rig and calibrated as ``focalrig bench stack`` does (timing and breathing
from their own sweeps, the simulator's true event→RGB geometry for the rest). Each batch runs on a cluster that
is already up (its start-up is reported apart), through the same planner and runner as ``focalrig batch``.

- **speed-up**: wall time of the batch on 1 worker over that on 2 (target ≥ 1.7× on 2 cores);
- **scheduler overhead**: the share of the workers' time not spent inside a job, 1 − Σ job seconds / (workers ×
  wall) — dispatch, result hand-back, and workers idle at the tail (target ≤ 5 %);
- **memory**: each worker's resident memory when idle, and its peak over the batch (one recording at a time);
- **cores used**: the jobs' CPU seconds over the wall time — on a machine shared with other work, how much of its
  cores the batch actually got (a speed-up cannot exceed the ratio of these);
- **fault**: a worker killed with SIGKILL as soon as a job of its has written part of its output; the batch must
  complete with every output exactly once and the same bytes as the undisturbed run (timing fields aside).

Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from app.bench.timing import Stopwatch
from app.config import load_config
from app.jobs.fuse import FuseSettings
from app.jobs.keyed import PARTIAL, Task
from app.jobs.runner import Session, plan, run, session
from calibration.model import Calibration, SpatialCalibration
from calibration.pipeline import calibrate
from capture.plan import SweepPlan
from capture.recording import Recording
from capture.recording.simulated import record_simulation

SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET = 0.05
#: Fields of the JSON outputs that say when and where a job ran, left out of the byte comparison.
RUN_FIELDS = {"result.json": ("timings_s",),
              "provenance.json": ("started", "finished", "seconds", "worker", "pid", "peak_rss_mib", "host")}


def make_recordings(root: Path, n: int, size: tuple[int, int], sweeps: int) -> tuple[list[Path], Path]:
    """``n`` simulated recordings (different scenes) and one calibration for all of them (the rig is the same)."""
    w, h = size
    recordings = []
    for seed in range(n):
        cfg = load_config(None, overrides=[f"sim.rgb_size=[{w},{h}]", f"sim.event_size=[{w},{h}]",
                                           "sim.realtime=false", f"sim.seed={seed}"])
        plan_ = SweepPlan.load(None, [("sweeps", sweeps), ("duration_s", "none")])
        recordings.append(record_simulation(cfg, plan_, root / "recordings").recording)
    with Recording.open(recordings[0]) as rec:
        data = list(rec.sweeps())
    truth = json.loads((recordings[0] / "ground_truth" / "homography_event_to_rgb.json").read_text())
    spatial = SpatialCalibration(tuple(data[0].frame_geometry), tuple(data[0].event_geometry),
                                 np.asarray(truth["matrix"], np.float64))
    cal = calibrate(sweeps=data).calibration
    return recordings, cal.merged(Calibration(spatial=spatial)).save(root / "calib.json")


def _worker_rss_mib(client) -> dict[str, float]:
    import psutil

    return {addr: rss / (1 << 20) for addr, rss in client.run(lambda: psutil.Process().memory_info().rss).items()}


def timed_batch(tasks: list[Task], workers: int, killer: bool = False) -> dict[str, Any]:
    """Run ``tasks`` on a fresh embedded cluster of ``workers`` processes: start-up, wall time, job seconds, memory;
    with ``killer``, one worker is SIGKILLed mid-job."""
    with session(workers=workers, dashboard=False) as s, Stopwatch() as start:
        client = s.prepare("fuse", len(tasks))
        client.wait_for_workers(workers)
        start_s = start.wall_s
        idle = _worker_rss_mib(client)
        kill: dict[str, Any] = {}
        if killer:
            threading.Thread(target=_kill_mid_job, args=(s, tasks[0].out, kill), daemon=True).start()
        with Stopwatch() as sw:
            rows = run(s, tasks)
        wall = sw.wall_s
    work = sum(r.get("seconds", 0.0) for r in rows)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in rows)
    peaks: dict[int, float] = {}
    for r in rows:
        peaks[r["pid"]] = max(peaks.get(r["pid"], 0.0), r.get("peak_rss_mib", 0.0))
    return {"workers": workers, "start_s": start_s, "wall_s": wall, "work_s": work, "cpu_s": cpu,
            "overhead": 1.0 - work / (workers * wall), "idle_rss_mib": max(idle.values()),
            "peak_rss_mib": max(peaks.values()), "statuses": [r["status"] for r in rows], "kill": kill}


def _kill_mid_job(s: Session, out: Path, kill: dict[str, Any]) -> None:
    """SIGKILL the worker whose job has written part of its output first (its ``.partial-`` folder holds a file)."""
    client = s.client()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for partial in out.glob(f"{PARTIAL}*"):
            if not any(p.is_file() for p in partial.rglob("*")):
                continue
            key = partial.name[len(PARTIAL):].rsplit(".", 1)[0]
            for addr, keys in client.processing().items():
                if any(key in str(k) for k in keys):
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)
                    kill.update(pid=pid, worker=addr, job=key, files=sum(1 for p in partial.rglob("*") if p.is_file()))
                    return
        time.sleep(0.005)


def output_bytes(out: Path, *, run_fields: dict[str, tuple[str, ...]] = RUN_FIELDS,
                 skip: tuple[str, ...] = ("summary.json",)) -> dict[str, bytes]:
    """Every file under ``out`` (relative path → bytes; names in ``skip`` aside) with the JSON files' run fields
    (``run_fields``: what differs between two runs of the same work) dropped."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name not in skip):
        data = path.read_bytes()
        if path.name in run_fields:
            doc = json.loads(data)
            for key in run_fields[path.name]:
                doc.pop(key, None)
            data = json.dumps(doc, sort_keys=True).encode()
        files[str(path.relative_to(out))] = data
    return files


def run_batch_benchmark(console: Console, *, recordings: int, size: tuple[int, int], sweeps: int, repeat: int = 2,
                        keep: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="focalrig-bench-batch-") as tmp:
        root = keep or Path(tmp)
        with console.status(f"recording {recordings} simulated recordings of {sweeps} sweeps at {size[0]}x{size[1]}"):
            recs, calib = make_recordings(root, recordings, size, sweeps)
        settings = FuseSettings(calib=calib, sweeps=None, method="classical")
        results: dict[str, dict[str, Any]] = {}
        runs = [(1, False), (2, False)] * repeat + [(2, True)]  # alternated, so a change of load hits both
        for i, (workers, killer) in enumerate(runs):
            name = f"{workers}w" + ("-killed" if killer else "")
            out = root / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)  # every run does the whole batch
            tasks, _ = plan("fuse", settings, [str(r) for r in recs], out)
            with console.status(f"run {i + 1}/{len(runs)}: batch fuse on {workers} worker(s)"
                                + (", one killed mid-job" if killer else "")):
                result = timed_batch(tasks, workers, killer)
            if name not in results or result["wall_s"] < results[name]["wall_s"]:
                results[name] = result
        one, two, killed = results["1w"], results["2w"], results["2w-killed"]
        speedup = one["wall_s"] / two["wall_s"]
        undisturbed, disturbed = output_bytes(root / "out-2w"), output_bytes(root / "out-2w-killed")
        folders = sorted(p.name for p in (root / "out-2w-killed").iterdir() if p.is_dir())
        exactly_once = folders == sorted(p.name for p in (root / "out-2w").iterdir() if p.is_dir()) and \
            not any(name.startswith(PARTIAL) for name in folders)
        identical = undisturbed == disturbed
        disk_mib = sum(p.stat().st_size for p in recs[0].rglob("*") if p.is_file()) / (1 << 20)

    load = os.getloadavg()[0]
    table = Table(title=f"batch fuse --method classical: {recordings} recordings of {sweeps} sweeps at "
                        f"{size[0]}x{size[1]} ({disk_mib:.1f} MiB each), {os.cpu_count()} cores, load average "
                        f"{load:.1f} (best of {repeat})", title_justify="left")
    for col in ("workers", "cluster start s", "batch wall s", "job s (sum)", "job CPU s (sum)", "cores used",
                "scheduler overhead", "worker idle MiB", "worker peak MiB"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        label = name.replace("w", " worker(s)", 1).replace("-killed", ", one SIGKILLed")
        table.add_row(label, f"{r['start_s']:.2f}", f"{r['wall_s']:.2f}", f"{r['work_s']:.2f}", f"{r['cpu_s']:.2f}",
                      f"{r['cpu_s'] / r['wall_s']:.2f}", f"{100 * r['overhead']:.1f} %", f"{r['idle_rss_mib']:.0f}",
                      f"{r['peak_rss_mib']:.0f}")
    console.print(table)
    console.print(f"speed-up 2 workers vs 1: {speedup:.2f}x (target >= {SPEEDUP_TARGET}x); scheduler overhead "
                  f"{100 * one['overhead']:.1f} % / {100 * two['overhead']:.1f} % (target <= "
                  f"{100 * OVERHEAD_TARGET:.0f} %)", highlight=False)
    kill = killed["kill"]
    if kill:
        console.print(f"fault: worker pid {kill['pid']} SIGKILLed while its job had written {kill['files']} file(s); "
                      f"batch {'completed' if set(killed['statuses']) == {'done'} else 'did NOT complete'}: "
                      f"{killed['statuses'].count('done')}/{len(killed['statuses'])} done, every output exactly "
                      f"once: {'yes' if exactly_once else 'NO'}, same bytes as the undisturbed run: "
                      f"{'yes' if identical else 'NO'}", highlight=False)
    else:
        console.print("fault: no job was caught mid-write (the batch ended first); rerun with more sweeps",
                      highlight=False)
    return {"speedup": speedup, "results": results, "exactly_once": exactly_once, "identical": identical}
