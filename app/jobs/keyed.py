"""One job on one input, into its keyed output folder, exactly once: what a batch worker runs.

The output folder ``OUT/<key>/`` appears complete or not at all: the job writes into ``OUT/.partial-<key>.<random>/``,
which gets the provenance document last, is synced to disk and then renamed to ``OUT/<key>/`` in one step. So:

- a folder named by its key is finished, and a re-run skips it (a batch resumes where it stopped);
- a worker killed mid-job (SIGKILL, out of memory, a lost node) leaves only a ``.partial-`` folder, removed when
  the job runs again, which Dask does on another worker;
- two runs of the same job (a retry racing a worker thought dead) cannot both land: the second rename finds the
  folder there and its copy is dropped.

A job that fails (bad file, missing calibration, a bug) removes its partial folder and comes back as a failed row
with one message; it never raises, so Dask does not retry what would fail again, and the other jobs go on.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import shutil
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.jobs.inputs import Source, file_sha256
from app.jobs.kinds import KINDS, calibration_of, identity, jsonable
from app.jobs.listener import NoteKeeper

FORMAT = "focalrig.batch-output"
VERSION = 1
PROVENANCE = "provenance.json"
PARTIAL = ".partial-"


@dataclass(frozen=True)
class Task:
    """One input, the job to run on it, and where its output goes (``out / key``)."""

    kind: str
    settings: Any
    source: Source
    out: Path
    key: str
    settings_hash: str

    @property
    def folder(self) -> Path:
        return self.out / self.key


def row_of(task: Task, status: str, message: str = "", **extra: Any) -> dict[str, Any]:
    """A batch summary's row for ``task`` (plain JSON)."""
    return {"input": str(task.source.path), "name": task.source.name, "uid": task.source.uid, "key": task.key,
            "output": str(task.folder), "status": status, "message": message, **extra}


def is_done(task: Task) -> bool:
    return task.folder.is_dir()


def run_task(task: Task) -> dict[str, Any]:
    """Run ``task`` unless its output is there; returns its row: ``done``, ``skipped`` or ``failed``."""
    if is_done(task):
        return row_of(task, "skipped", "already done")
    remove_partials(task.out, task.key)
    tmp = task.out / f"{PARTIAL}{task.key}.{uuid.uuid4().hex[:8]}"
    started, t0, cpu0 = _utc_now(), time.perf_counter(), time.process_time()
    keeper = NoteKeeper()
    try:
        tmp.mkdir(parents=True)
        report = KINDS[task.kind].work(task.source.path, tmp, task.settings, keeper)
        _write_provenance(task, tmp, report, keeper.notes, started, time.perf_counter() - t0)
        _sync_tree(tmp)
        try:
            os.rename(tmp, task.folder)
        except OSError:
            if not is_done(task):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run of the same job landed first: keep its copy
            return row_of(task, "skipped", "done meanwhile by another run of the same job")
        from capture.recording.metadata import fsync_dir

        fsync_dir(task.out)
        return row_of(task, "done", str(report.get("summary", "")), notes=keeper.notes,
                      seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - cpu0, **worker_figures())
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        message, trace = error_message(exc)
        return row_of(task, "failed", message, notes=keeper.notes, seconds=time.perf_counter() - t0,
                      **({"traceback": trace} if trace else {}), **worker_figures())


def remove_partials(out: Path, key: str) -> None:
    """Remove the half-written folders earlier runs of ``key`` left (a killed worker, an interrupted batch)."""
    if out.is_dir():
        for path in out.iterdir():
            if path.name.startswith(f"{PARTIAL}{key}.") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def error_message(exc: BaseException) -> tuple[str, str | None]:
    """(one-line message, traceback or None): the library's expected failures (bad input, missing files) are
    their message; anything else is named as unexpected, with its traceback kept for the summary file."""
    expected = isinstance(exc, ValueError | OSError) or type(exc).__name__ == "EventFileError"
    if expected:
        return str(exc), None
    trace = "".join(traceback.format_exception(exc))
    return f"unexpected {type(exc).__name__}: {exc} (a bug; its traceback is in summary.json)", trace


def worker_figures() -> dict[str, Any]:
    """Which worker ran the job and the peak resident memory of its process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = None
    return {"worker": worker, "pid": os.getpid(), "peak_rss_mib": round(peak_mib, 1)}


def provenance(task: Task, report: dict[str, Any], notes: list[str], started: str, seconds: float) -> dict[str, Any]:
    """The output's own provenance document: input and its uid, settings (and what the key hashes), calibration
    used, what the job reports, versions, host, worker and times."""
    cal = calibration_of(task.kind, task.settings, task.source)
    calibration = None
    if cal is not None and cal.is_file():
        calibration = {"path": str(cal), "sha256": file_sha256(cal), "id": calibration_id(cal)}
    return {"format": FORMAT, "version": VERSION, "kind": task.kind, "key": task.key,
            "input": {"path": str(task.source.path), "name": task.source.name, "uid": task.source.uid},
            "settings": jsonable(task.settings), "settings_hash": task.settings_hash,
            "keyed_by": identity(task.kind, task.settings, task.source), "calibration": calibration,
            "result": report, "notes": notes, "versions": dict(versions()),
            "host": platform.node(), **worker_figures(), "started": started, "finished": _utc_now(),
            "seconds": round(seconds, 3)}


@functools.cache
def versions() -> dict[str, Any]:
    """The software versions (focalrig's git state included) and Dask's, read once per worker process: the git
    state takes two subprocesses, and a worker runs one focalrig for its whole life."""
    from importlib.metadata import PackageNotFoundError, version

    from capture.recording.metadata import software_versions

    out = software_versions()
    for name in ("dask", "distributed", "opencv-python-headless"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def calibration_id(path: Path) -> str | None:
    """The ``id`` a calibration file declares (None when it cannot be read)."""
    import json

    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _write_provenance(task: Task, folder: Path, report: dict[str, Any], notes: list[str], started: str,
                      seconds: float) -> None:
    from capture.recording.metadata import write_json_atomic

    doc = provenance(task, report, notes, started, seconds)
    doc["files"] = [str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file()]
    write_json_atomic(folder / PROVENANCE, doc)


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder``, so the rename publishes data that is on disk."""
    from capture.recording.metadata import fsync_dir

    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        elif path.is_dir():
            fsync_dir(path)
    fsync_dir(folder)


def _utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")

