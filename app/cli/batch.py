"""``focalrig batch fuse|stack|calibrate|convert|inspect PATHS… --out DIR``: a single command's work over many
recordings, on Dask distributed (:mod:`app.jobs.runner`).

Each sub-command takes the options of its single command, runs that command's own function per recording
(:mod:`app.jobs`), shows a progress bar over recordings, prints a summary table, writes ``OUT/summary.json`` and
exits 0 only when every recording succeeded (1 when any failed, 2 when the command itself was given bad input).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.calibration import BoardOpt, BreathingOpt, FormatOpt, GuardOpt, MinViewsOpt, StackSweepOpt
from app.cli.common import console, err_console, friendly_errors, parse_board
from app.cli.fusion import BlendOpt, ExposureOpt

if TYPE_CHECKING:
    from app.jobs.runner import Session

batch_app = typer.Typer(
    help="Run fuse, stack, calibrate, convert or inspect over many recordings, on a local Dask cluster or an "
         "existing one. Outputs go to OUT/<recording>-<uid>-<settings hash>/ with their provenance; a re-run skips "
         "what is done, so an interrupted batch resumes. Exit status 1 when any recording failed.",
    no_args_is_help=True)

PathsArg = Annotated[list[str], typer.Argument(metavar="PATHS", show_default=False,
                                               help="Recording folders, event files, folders holding them, or quoted "
                                                    "globs ('recordings/2026-*').")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder: one sub-folder per recording and "
                                      "summary.json.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, show_default=False,
                                                help="Worker processes of the local cluster (default: one per core, "
                                                     "at most one per recording).")]
ThreadsOpt = Annotated[int, typer.Option("--threads-per-worker", min=1,
                                         help="Recordings each worker runs at once. 1 keeps a worker's memory to one "
                                              "recording's working set; the cores are shared among all of them.")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", envvar="DASK_SCHEDULER_ADDRESS", show_default=False,
    help="Run on an existing Dask cluster at this address (tcp://host:8786) instead of starting one here. Its "
         "workers need focalrig installed and must see the recordings and OUT at the same paths.")]
#: Rows listed one by one in the summary table; beyond this only the failed ones are (summary.json has all).
TABLE_ROWS = 40
CalibOpt = Annotated[Path | None, typer.Option("--calib", help="Calibration JSON for every recording (default: the "
                                               "one each recording was captured with).")]


def _run(kind: str, settings: Any, paths: list[str], out: Path, workers: int | None, threads: int,
         scheduler: str | None) -> None:
    """Plan, run and report a batch; exit 1 when any input failed."""
    from app.jobs.runner import plan, resolve_settings, run, session, write_summary
    from capture.recording.metadata import utc_now

    started, t0 = utc_now(), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)  # an OUT that cannot be made is one error, before any work
    with session(scheduler, workers=workers, threads_per_worker=threads) as s:
        settings = resolve_settings(kind, settings, s)
        tasks, problems = plan(kind, settings, paths, out)
        for row in problems:
            _say_failed(row["input"], row["message"])
        order = {task.key: i for i, task in enumerate(tasks)}
        display = _Display(kind, len(tasks))
        with display.bar:
            rows = run(s, tasks, on_row=display.row, on_start=display.start)
        cluster = s.describe()
    rows.sort(key=lambda r: order.get(r["key"], len(order)))
    rows = problems + rows
    summary = write_summary(out, kind, settings, rows, cluster, time.perf_counter() - t0, started)
    _print_table(kind, rows, summary)
    if any(r["status"] == "failed" for r in rows):
        raise typer.Exit(1)


class _Display:
    """The progress bar over recordings (throughput and failures so far) and the cluster's line."""

    def __init__(self, kind: str, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), console=err_console, transient=True)
        self.task = self.bar.add_task(f"batch {kind}", total=total, detail="")
        self.t_start: float | None = None
        self.done = self.failed = 0

    def start(self, session: Session) -> None:
        self.t_start = time.perf_counter()
        info = session.describe()
        where = "this machine" if session.embedded else str(session.scheduler)
        line = (f"cluster: {where}, {info.get('workers', 0)} worker(s), {info.get('threads', 0)} thread(s), "
                f"{info.get('task_threads', 1)} maths thread(s) per task")
        link = session.dashboard_link()
        err_console.print(line + (f"; dashboard {link}" if link else ""), highlight=False, markup=False)

    def row(self, row: dict[str, Any]) -> None:
        if row["status"] == "done":
            self.done += 1
        elif row["status"] == "failed":
            self.failed += 1
            _say_failed(row["name"], row["message"])
        detail = ""
        if self.t_start is not None and self.done:
            rate = self.done / max(time.perf_counter() - self.t_start, 1e-9)
            detail = f"{rate * 60:.1f} rec/min" if rate < 1 else f"{rate:.2f} rec/s"
        if self.failed:
            detail += f"{', ' if detail else ''}{self.failed} failed"
        self.bar.update(self.task, advance=1, detail=detail)


def _say_failed(name: str, message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[red]failed:[/] {escape(name)}: {escape(message)}", highlight=False)


def _print_table(kind: str, rows: list[dict[str, Any]], summary: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    counts = {status: sum(r["status"] == status for r in rows) for status in ("done", "skipped", "failed")}
    shown = rows if len(rows) <= TABLE_ROWS else [r for r in rows if r["status"] == "failed"]
    if shown:
        table = Table(title=f"batch {kind}", title_justify="left")
        for col in ("recording", "status", "s", "result"):
            table.add_column(col, justify="right" if col == "s" else "left", overflow="fold")
        colour = {"done": "green", "skipped": "dim", "failed": "red"}
        for r in shown:
            seconds = f"{r['seconds']:.1f}" if isinstance(r.get("seconds"), float) else ""
            result = r["message"] + "".join(f"; note: {n}" for n in r.get("notes", []))
            table.add_row(escape(r["name"]), f"[{colour[r['status']]}]{r['status']}[/]", seconds, escape(result))
        console.print(table)
    console.print(f"{counts['done']} done, {counts['skipped']} already done, {counts['failed']} failed; "
                  f"summary → {summary}", highlight=False)


@batch_app.command("fuse")
@friendly_errors
def batch_fuse(
    paths: PathsArg,
    out: OutOpt,
    calib: CalibOpt = None,
    sweep: Annotated[list[int] | None, typer.Option("--sweep", help="Sweep index to fuse (repeatable; default: "
                                                    "every sweep).")] = None,
    planes: Annotated[int | None, typer.Option("--planes", min=2, show_default=False,
                                               help="Most planes per stack (default: each recording's plan).")] = None,
    span: Annotated[str | None, typer.Option("--span", show_default=False,
                                             help="period (both halves) or half (default: each recording's plan).")]
    = None,
    method: Annotated[str, typer.Option("--method", help="auto (net where the cluster has GPUs, else classical), "
                                        "classical or net.")] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    events: Annotated[bool, typer.Option("--events/--no-events", help="Slice the sweeps' events into the stacks "
                                         "(needs the calibration's event→RGB geometry).")] = True,
    event_weight: Annotated[float, typer.Option("--event-weight", help="classical: weight of the event-activity "
                                                "term.")] = 0.0,
    single_frame: Annotated[bool, typer.Option("--single-frame", help="Single exposure: one frame of each sweep "
                                               "refocused to every plane by the sweep's events (focalrig fuse "
                                               "--single-frame).")] = False,
    blend: BlendOpt = "soft",
    exposure: ExposureOpt = True,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Fuse many recordings (focalrig fuse per recording, every sweep by default): OUT/<recording>-<uid>-<hash>/
    holds one folder per sweep and provenance.json."""
    from app.jobs.fuse import FuseSettings, method_options
    from fusion.engine import AUTO, available_methods

    if method != AUTO and method not in available_methods():
        raise ValueError(f"unknown fusion method {method!r}; choose auto or one of {', '.join(available_methods())}")
    if calib is not None:
        _check_calibration(calib)
    settings = FuseSettings(calib=calib.resolve() if calib else None, sweeps=tuple(sweep) if sweep else None,
                            planes=planes, span=span, method=method, device=device, events=events,
                            event_weight=event_weight, single_frame=single_frame, blend=blend, exposure=exposure)
    method_options(method, event_weight, blend, exposure)  # a wrong --blend is said before any cluster starts
    _run("fuse", settings, paths, out, workers, threads_per_worker, scheduler)


@batch_app.command("stack")
@friendly_errors
def batch_stack(
    paths: PathsArg,
    out: OutOpt,
    calib: CalibOpt = None,
    fmt: FormatOpt = "eventstackmff",
    planes: Annotated[int | None, typer.Option(min=2, show_default=False,
                                               help="Most planes per stack (default: each recording's plan).")] = None,
    span: Annotated[str | None, typer.Option(show_default=False, help="period or half (default: each recording's "
                                                                       "plan).")] = None,
    sweep: StackSweepOpt = None,
    guard: GuardOpt = 0.05,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Export many recordings' sweeps as aligned focal stacks (focalrig stack per recording)."""
    from app.jobs.stack import FORMATS, StackSettings

    if fmt not in FORMATS:
        raise ValueError(f"--format must be eventstackmff or npz, got {fmt!r}")
    if calib is not None:
        _check_calibration(calib)
    settings = StackSettings(calib=calib.resolve() if calib else None, fmt=fmt, planes=planes, span=span,
                             sweeps=tuple(sweep) if sweep else None, guard=guard)
    _run("stack", settings, paths, out, workers, threads_per_worker, scheduler)


@batch_app.command("calibrate")
@friendly_errors
def batch_calibrate(
    paths: PathsArg,
    out: OutOpt,
    target: Annotated[Path | None, typer.Option(help="Blinking-chessboard recording for the event→RGB geometry of "
                                                     "every calibration.")] = None,
    board: BoardOpt = "9x6",
    sweeps: Annotated[int, typer.Option(help="Sweeps of each recording used for lag and breathing.", min=1)] = 5,
    min_views: MinViewsOpt = 8,
    breathing: BreathingOpt = True,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Calibrate from many recordings (focalrig calibrate per recording): calib.json and calib.png each."""
    from app.jobs.calibrate import CalibrateSettings
    from app.jobs.inputs import is_recording

    if target is not None and not is_recording(target):
        raise ValueError(f"--target {target}: not a recording folder")
    settings = CalibrateSettings(target=target.resolve() if target else None, board=parse_board(board),
                                 sweeps=sweeps, min_views=min_views, breathing=breathing)
    _run("calibrate", settings, paths, out, workers, threads_per_worker, scheduler)


@batch_app.command("convert")
@friendly_errors
def batch_convert(
    paths: PathsArg,
    out: OutOpt,
    to: Annotated[str, typer.Option("--to", help="Output format: hdf5 (Prophesee ECF), raw (EVT 3.0, or 2.0 with "
                                    "--evt 2), npz or csv.")],
    evt: Annotated[int | None, typer.Option(help="RAW output encoding: 3 or 2; default from config "
                                                 "io.default_evt.")] = None,
    width: Annotated[int | None, typer.Option(help="Sensor width for files that carry no geometry.")] = None,
    height: Annotated[int | None, typer.Option(help="Sensor height for files that carry no geometry.")] = None,
    time_shift: Annotated[bool | None, typer.Option("--time-shift/--absolute", show_default=False,
                                                    help="RAW: subtract OpenEB's time shift, or keep absolute µs "
                                                         "(default from config io.time_shift).")] = None,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Convert many event files, or recordings' events, to one format (focalrig events convert per file)."""
    from app.cli.events import convert_settings
    from app.jobs.convert import SUFFIXES

    suffix = "." + to.lower().lstrip(".")
    if suffix not in SUFFIXES:
        raise ValueError(f"--to must be one of {', '.join(s[1:] for s in SUFFIXES)} (got {to!r})")
    _run("convert", convert_settings(evt, width, height, time_shift, suffix), paths, out, workers,
         threads_per_worker, scheduler)


@batch_app.command("inspect")
@friendly_errors
def batch_inspect(
    paths: PathsArg,
    out: OutOpt,
    workers: WorkersOpt = None,
    threads_per_worker: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
) -> None:
    """Summarise many recordings or event files (focalrig inspect per input): summary.json and rate.npy each;
    the table shows each one's status (success, incomplete, damaged parts)."""
    _run("inspect", None, paths, out, workers, threads_per_worker, scheduler)


def _check_calibration(path: Path) -> None:
    """A calibration given for every recording is read once here: a bad file is one error, before any work."""
    from calibration.model import Calibration

    Calibration.load(path)
