"""Many recordings, one job each, on Dask distributed: an embedded local cluster by default, or an existing cluster
by its scheduler address (SLURM/PBS/SGE through dask-jobqueue, one worker per GPU through dask-cuda).

The runner keeps Dask out of the work: each task is :func:`app.jobs.keyed.run_task` on one input, the same
function the single command's work goes through, so a task can run anywhere focalrig is installed and sees the
same files (a shared file system on a cluster). A worker that dies mid-task (SIGKILL, out of memory) has the task
rescheduled on another by the scheduler, up to ``distributed.scheduler.allowed-failures`` times (3 by default);
the keyed folder's rename makes sure an output lands once and whole.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.jobs.inputs import expand, identify
from app.jobs.keyed import Task, is_done, row_of, run_task
from app.jobs.kinds import KINDS, jsonable, output_key, settings_hash, wants_gpu
from app.jobs.workers import WorkerSetup, machine_cores

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

SUMMARY = "summary.json"
FORMAT = "focalrig.batch-summary"
VERSION = 1


def problem_row(text: str) -> dict[str, Any]:
    """The failed row of a PATH that names nothing usable (the text says what is wrong)."""
    path, _, message = text.partition(": ")
    return {"input": path, "name": Path(path).name, "uid": None, "key": None, "output": None, "status": "failed",
            "message": message}


def plan(kind: str, settings: Any, paths: list[str], out: Path) -> tuple[list[Task], list[dict[str, Any]]]:
    """(tasks, rows of PATHS that name nothing usable): one task per input, keyed by its identity and settings."""
    inputs, problems = expand(paths, event_files=KINDS[kind].event_files)
    out = out.resolve()
    tasks = []
    for path in inputs:
        source = identify(path)
        digest = settings_hash(kind, settings, source)
        tasks.append(Task(kind, settings, source, out, output_key(source, digest), digest))
    return tasks, [problem_row(p) for p in problems]


@dataclass
class Session:
    """Where a batch runs: an existing scheduler (connected at once), or an embedded LocalCluster started only
    when there is work (a re-run with everything done starts nothing)."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    dashboard: bool = True
    _client: Client | None = field(default=None, repr=False)
    _cluster: LocalCluster | None = field(default=None, repr=False)
    _prepared: str | None = field(default=None, repr=False)
    _started_workers: int | None = field(default=None, repr=False)

    @property
    def embedded(self) -> bool:
        return self.scheduler is None

    def offers_gpu(self) -> bool:
        """Whether the cluster has workers with a ``GPU`` resource (embedded: whether this machine has CUDA)."""
        if self.embedded:
            from fusion.engine import cuda_available

            return cuda_available()
        return any("GPU" in (w.get("resources") or {}) for w in self.client().scheduler_info()["workers"].values())

    def task_threads(self) -> int:
        """Threads each task's numeric libraries get (see :mod:`app.jobs.workers`)."""
        if not self.embedded:
            return 1
        workers = self._started_workers or self.workers or self.default_workers()
        return max(1, machine_cores() // (workers * self.threads_per_worker))

    def default_workers(self, tasks: int | None = None) -> int:
        """As many worker processes as the machine has cores for (never more than there are tasks)."""
        n = max(1, machine_cores() // self.threads_per_worker)
        return min(n, tasks) if tasks else n

    def client(self, tasks: int | None = None) -> Client:
        """The Dask client, starting the embedded cluster (sized for ``tasks``) on first use."""
        if self._client is not None:
            return self._client
        from distributed import Client

        if logging.getLogger().getEffectiveLevel() > logging.INFO:  # Dask's own log lines only with -v
            logging.getLogger("distributed").setLevel(logging.ERROR)

        if self.embedded:
            self._started_workers = self.workers or self.default_workers(tasks)
            self._cluster = _local_cluster(self._started_workers, self.threads_per_worker)
            self._client = Client(self._cluster)
        else:
            import dask

            try:
                self._client = Client(self.scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
            except (OSError, TimeoutError) as exc:
                raise OSError(f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); is it running? Start "
                              "one with `dask scheduler` and workers with `dask worker ADDRESS`, or leave "
                              "--scheduler out to run on this machine") from None
        return self._client

    def prepare(self, kind: str, tasks: int | None = None) -> Client:
        """The client, its workers limited to their share of threads and loading ``kind``'s modules (see
        :mod:`app.jobs.workers`)."""
        client = self.client(tasks)
        if self._prepared != kind:
            client.register_plugin(WorkerSetup(self.task_threads(), KINDS[kind].preload), name=WorkerSetup.name)
            self._prepared = kind
        return client

    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, where the scheduler can draw one (it needs bokeh, which focalrig does not
        install)."""
        if self._client is None or not self.dashboard:
            return None
        if "dashboard" not in (self._client.scheduler_info().get("services") or {}):
            return None
        has_bokeh = self._client.run_on_scheduler(_has_bokeh)
        return self._client.dashboard_link if has_bokeh else None

    def describe(self) -> dict[str, Any]:
        """The cluster in plain words for the summary: address, workers, threads."""
        out: dict[str, Any] = {"embedded": self.embedded, "scheduler": self.scheduler}
        if self._client is not None:
            workers = self._client.scheduler_info()["workers"]
            out.update(address=self._client.scheduler.address, workers=len(workers),
                       threads=sum(w.get("nthreads", 0) for w in workers.values()), task_threads=self.task_threads())
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = self._prepared = None


@contextmanager
def session(scheduler: str | None = None, *, workers: int | None = None, threads_per_worker: int = 1,
            dashboard: bool = True) -> Iterator[Session]:
    """A :class:`Session`, closed (the embedded cluster shut down) on leaving, Ctrl-C included."""
    s = Session(scheduler, workers, threads_per_worker, dashboard)
    try:
        yield s
    finally:
        s.close()


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _local_cluster(workers: int, threads_per_worker: int) -> LocalCluster:
    """Worker processes on this machine, each limited to its share of the cores before it imports anything."""
    import dask
    from distributed import LocalCluster

    share = max(1, machine_cores() // (workers * threads_per_worker))
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # it halves the speed of fusion: see app.jobs.workers
    environ.update({"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share, "OPENBLAS_NUM_THREADS": share,
                    "NUMBA_NUM_THREADS": share})
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                            dashboard_address=":0",  # any free port: batches side by side (it serves one anyway)
                            silence_logs=logging.ERROR)


def killed_message(exc: BaseException) -> str:
    """A task the scheduler gave up on, in words."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return ("the workers running it died each time (killed, or over their memory limit); if the recording needs "
                "more memory than a worker has, run fewer workers")
    return f"the cluster lost it ({type(exc).__name__}: {exc})"


def run(session: Session, tasks: list[Task], *, on_row: Callable[[dict[str, Any]], None] | None = None,
        on_start: Callable[[Session], None] | None = None) -> list[dict[str, Any]]:
    """Run ``tasks`` (their rows in completion order): done ones are skipped without a cluster; the rest are
    submitted to ``session``, ``on_start`` called once it runs, ``on_row`` for every row as it comes."""
    on_row = on_row or (lambda row: None)
    rows = []
    todo = []
    for task in tasks:
        if is_done(task):
            rows.append(row_of(task, "skipped", "already done"))
            on_row(rows[-1])
        else:
            todo.append(task)
    if not todo:
        return rows
    from distributed import as_completed

    client = session.prepare(todo[0].kind, len(todo))
    gpu = not session.embedded and session.offers_gpu()
    if on_start is not None:
        on_start(session)
    futures = {}
    for task in todo:
        resources = {"GPU": 1} if gpu and wants_gpu(task.kind, task.settings) else None
        future = client.submit(run_task, task, key=f"{task.kind}-{task.key}-{uuid.uuid4().hex[:6]}", pure=False,
                               resources=resources)
        futures[future] = task
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # the task never returned: its workers died, or the cluster went away
                row = row_of(task, "failed", killed_message(exc))
            rows.append(row)
            on_row(row)
    except BaseException:
        client.cancel(list(futures))
        raise
    return rows


def resolve_settings(kind: str, settings: Any, session: Session) -> Any:
    """The settings as every worker must run them: ``fuse --method auto`` becomes the network where the cluster
    has GPUs, else classical — decided once here, so the outputs and their keys do not depend on which worker
    ran a recording."""
    if kind == "fuse" and settings.method == "auto":
        use_net = settings.device != "cpu" and session.offers_gpu()
        return replace(settings, method="net" if use_net else "classical")
    return settings


def write_summary(out: Path, kind: str, settings: Any, rows: list[dict[str, Any]], cluster: dict[str, Any],
                  wall_s: float, started: str) -> Path:
    """``OUT/summary.json``: the batch (kind, settings, cluster, times, counts) and one row per input."""
    from capture.recording.metadata import write_json_atomic

    counts = {status: sum(r["status"] == status for r in rows) for status in ("done", "skipped", "failed")}
    doc = {"format": FORMAT, "version": VERSION, "kind": kind, "settings": jsonable(settings), "cluster": cluster,
           "started": started, "wall_s": round(wall_s, 3), "counts": counts, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    path = out / SUMMARY
    write_json_atomic(path, doc)
    return path

