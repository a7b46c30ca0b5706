"""``focalrig capture``, ``inspect`` and ``simulate``: headless recording, recording summaries, simulated datasets.

Ctrl-C during a capture stops at the end of the sweep in progress and finalises the recording; a second Ctrl-C
stops at once (the files stay readable); SIGTERM and SIGHUP stop at once the same way. Exit status: 0 success,
3 finished with losses (more than 1 % of the frames or events lost; the last line gives the figures), 128 + the
signal's number when a signal stopped it (130 for Ctrl-C, 143 for SIGTERM), 2 failed.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from app.cli.common import console, err_console, friendly_errors, parse_board
from app.termination import exit_status, handling, signal_name

if TYPE_CHECKING:  # imported where used, so that loading the CLI stays fast
    from app.config import FocalrigConfig
    from capture.engine import CaptureEngine, EngineStatus
    from capture.plan import SweepPlan

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Rig configuration (default: the global "
                                                "--config, else configs/sim.toml).", show_default=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a key: plan.sweeps=20 (plan) or "
                                                  "sim.realtime=false (rig config); TOML values.", show_default=False)]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Parent folder of the recording (default: "
                                             "plan.out_dir).", show_default=False)]
SweepsOpt = Annotated[int | None, typer.Option("--sweeps", "-n", min=1, help="Number of sweeps (overrides the "
                                               "plan).", show_default=False)]
PlanOpt = Annotated[Path | None, typer.Option("--plan", "-p", help="Sweep plan TOML (default "
                                              "configs/plans/default.toml).", show_default=False)]


def _load(ctx: typer.Context, config: Path | None, set_: list[str] | None, plan_path: Path | None,
          sweeps: int | None, duration: float | None) -> tuple[FocalrigConfig, SweepPlan]:
    """The rig config and the plan, with every --set split between them (``plan.*`` keys go to the plan)."""
    from app.config import load_config
    from capture.plan import SweepPlan
    from drivers.focus_limits import expected_limits

    overrides = _overrides(ctx, set_)
    plan = SweepPlan.load(plan_path, _plan_sets(overrides, sweeps, duration))
    cfg_path = config if config is not None else (ctx.obj.config_path if ctx.obj else None)
    cfg = load_config(cfg_path, overrides=[o for o in overrides if not o.strip().startswith("plan.")])
    plan.check_lens(expected_limits(cfg.lens))  # --dry-run included: a plan the lens cannot run fails here
    return cfg, plan


def _overrides(ctx: typer.Context, set_: list[str] | None) -> list[str]:
    """The global --set options, then the command's own (later ones win)."""
    return list(ctx.obj.overrides if ctx.obj else []) + list(set_ or [])


def _plan_sets(overrides: list[str], sweeps: int | None, duration: float | None) -> list[tuple[str, object]]:
    """The ``plan.*`` overrides among ``overrides``, then --sweeps / --duration (each clears the other)."""
    from app.config import parse_override

    plan_sets = [parse_override(o) for o in overrides if o.strip().startswith("plan.")]
    if sweeps is not None and duration is not None:
        raise ValueError("give --sweeps or --duration, not both")
    if sweeps is not None:
        plan_sets += [("sweeps", sweeps), ("duration_s", "none")]
    if duration is not None:
        plan_sets += [("duration_s", duration), ("sweeps", "none")]
    return plan_sets


def _replay_plan(ctx: typer.Context, rig, plan_path: Path | None, set_: list[str] | None, sweeps: int | None,
                 duration: float | None) -> SweepPlan:
    """The plan to re-run a recording with: --plan if given, else the recording's own plan; overrides on top."""
    from capture.plan import SweepPlan

    sets = _plan_sets(_overrides(ctx, set_), sweeps, duration)
    recorded = rig.recording.metadata.get("plan")
    if plan_path is not None or not isinstance(recorded, dict):
        return SweepPlan.load(plan_path, sets)  # a bare event file has no plan: the default one, or --plan
    data = {**recorded, **{k.removeprefix("plan."): v for k, v in sets}}
    return SweepPlan.from_dict(data, source=f"{rig.recording.path}: metadata plan")


def _frame_size(cfg: FocalrigConfig) -> tuple[int, int, int]:
    """Frame size for volume estimates: the simulator's, else a 640x480 RGB assumption."""
    if cfg.frame_camera.backend == "none":
        return (0, 0, 0)
    if cfg.frame_camera.backend == "sim":
        return (*cfg.sim.rgb_size, 3)
    return (640, 480, 3)


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _progress_table(st: EngineStatus) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    total = "∞" if st.sweeps_total is None else str(st.sweeps_total)
    drops = ", ".join(f"{k} {v:,}" for k, v in st.drops.items() if v) or "none"
    table.add_row("state", st.state, "sweeps", f"{st.sweeps_done} / {total}")
    table.add_row("events", f"{st.event_rate_hz / 1e6:.2f} Mev/s", "frames", f"{st.frame_rate_hz:.1f} fps")
    table.add_row("disk", f"{_mib(st.bytes_written)} at {st.write_rate_bps / (1 << 20):.1f} MiB/s", "drops",
                  drops if drops == "none" else f"[bold red]{drops}[/]")
    table.add_row("event clock", f"{st.t_event_us / 1e6:.2f} s", "sync", "soft (host clock)" if st.soft_synced
                  else "hardware trigger")
    return table


class CaptureStop:
    """How signals stop one capture command: Ctrl-C once stops after the sweep in progress, twice at once;
    SIGTERM (a service manager, ``kill``) and SIGHUP (a closed terminal) stop at once. Either way the engine's
    ordinary end runs — recording finalised as ``aborted`` naming the signal, lens to its safe state — and the
    command exits with 128 + the signal's number. A signal that comes before the engine runs keeps it from
    starting. Install it with :func:`app.termination.handling` for the whole command.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.engine: CaptureEngine | None = None
        self._presses = 0
        self._lock = threading.Lock()  # signals arrive on the watcher thread (app.termination.handling)

    def __call__(self, signum: int) -> None:
        with self._lock:
            self.signum = int(signum)
            if signum == signal.SIGINT:
                self._presses += 1
            engine = self.engine
        if engine is not None:
            self._apply(engine)

    def _apply(self, engine: CaptureEngine) -> None:
        assert self.signum is not None
        if self.signum == signal.SIGINT and self._presses == 1:
            _say("[yellow]Ctrl-C: stopping at the end of this sweep (Ctrl-C again to stop at once)[/]")
            engine.request_stop(by="the user (Ctrl-C, SIGINT)")
        elif self.signum == signal.SIGINT:
            _say("[yellow]Ctrl-C again: stopping now[/]")
            engine.request_stop(immediate=True, by="the user (Ctrl-C, SIGINT)")
        else:
            _say(f"[yellow]{signal_name(self.signum)}: stopping now[/]")
            engine.request_stop(immediate=True, by=signal_name(self.signum))

    def run(self, engine: CaptureEngine) -> EngineStatus:
        """Run ``engine`` with progress on the terminal, stoppable by the signals above."""
        from capture.engine import EngineStatus

        with self._lock:  # a signal either sees the engine or keeps it from starting, never neither
            if self.signum is not None:  # stopped while the devices were being opened: do not start
                return EngineStatus(state="finished", exit_status="aborted",
                                    reason=f"stopped by {signal_name(self.signum)} before the capture began")
            self.engine = engine
        return run_with_progress(engine)


def _say(text: str) -> None:
    """One line on stderr; nothing when the terminal is gone (after a hang-up, writes to it fail with EIO)."""
    try:
        err_console.print(text, highlight=False)
    except OSError:
        pass


def run_with_progress(engine: CaptureEngine) -> EngineStatus:
    """Run ``engine`` in its thread while the terminal shows progress (stopping by signal: :class:`CaptureStop`).

    A terminal that went away (hang-up) only ends the progress display; the engine is still waited for.
    """
    engine.start()
    try:
        with Live(_progress_table(engine.status()), console=err_console, refresh_per_second=4,
                  transient=False) as live:
            while engine.status().state != "finished":
                time.sleep(0.25)
                live.update(_progress_table(engine.status()))
            live.update(_progress_table(engine.status()))
    except OSError:
        pass
    return engine.wait()


def _report(st: EngineStatus, stop: CaptureStop) -> None:
    """The last line and the exit code: 0 success, 3 finished with losses (the figures in the line), 128 + the
    signal that stopped it, 2 failed."""
    where = f" → {st.recording}" if st.recording else ""
    counts = f"{st.sweeps_done} sweeps, {st.events_total:,} events, {st.frames_total:,} frames"
    lens = {True: "; lens released (DC, 0 mA)", False: "; [bold red]lens not confirmed safe[/]"}.get(st.lens_safe, "")
    try:
        if st.exit_status == "success":  # the reason says when the data ended before the plan did (a replay)
            why = f" ({st.reason})" if st.reason else ""
            after = st.losses.get("frames_after_events", 0)
            late = f"; {after:,} frames dated after the last event were not recorded" if after else ""
            console.print(f"[green]capture finished[/]{why}: {counts}{late}{where}", highlight=False,
                          soft_wrap=True)
        elif st.exit_status == "success_with_losses":
            console.print(f"[bold yellow]capture finished with losses[/]: {counts}; {st.reason}{where}",
                          highlight=False, soft_wrap=True)
        elif st.exit_status == "aborted":
            console.print(f"[yellow]capture aborted[/] ({st.reason}): {st.sweeps_done} sweeps kept{lens}{where}",
                          highlight=False, soft_wrap=True)
        else:
            err_console.print(f"[bold red]error:[/] capture failed: {st.reason}{lens}{where}", highlight=False,
                              soft_wrap=True)
    except OSError:  # the terminal is gone (hang-up): the exit status and the recording still say it all
        pass
    if st.exit_status == "success":
        return
    if st.exit_status == "success_with_losses":
        raise typer.Exit(3)
    if st.exit_status == "aborted":
        raise typer.Exit(exit_status(stop.signum if stop.signum is not None else signal.SIGINT))
    raise typer.Exit(2)


@friendly_errors
def capture_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    out: OutOpt = None,
    sweeps: SweepsOpt = None,
    duration: Annotated[float | None, typer.Option("--duration", "-d", min=0.001, help="Seconds to record "
                                                   "(overrides the plan).", show_default=False)] = None,
    plan: PlanOpt = None,
    set_: SetOpt = None,
    calibration: Annotated[Path | None, typer.Option(help="Calibration file to note in the recording's "
                                                     "provenance.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved plan and the expected data "
                                          "volume; touch no device (with --auto-range: the pre-sweep only).")
                       ] = False,
    replay: Annotated[Path | None, typer.Option("--replay", help="Replay this recording (or bare .raw/.hdf5 event "
                                                "file) through the engine instead of a live rig, with its own plan "
                                                "unless --plan is given; writes a new recording.",
                                                show_default=False)] = None,
    realtime: Annotated[bool, typer.Option("--realtime/--fast", help="--replay: at recorded pace, or as fast as "
                                           "it decodes (default).")] = False,
    auto_range: Annotated[bool, typer.Option("--auto-range", help="Before recording, sweep the lens's whole range "
                                             "once and set the plan's low_dpt/high_dpt to where the events show the "
                                             "scene in focus (plus margins) and n_planes to at most the frames a "
                                             "sweep has; prints the range and records how it was chosen (the "
                                             "plan's auto_range). With --dry-run: only the pre-sweep, then the "
                                             "plan it gives is printed. --calibration's lens timing is used.")
                          ] = False,
) -> None:
    """Record synchronised events, frames and lens trajectory into a new recording folder (no GUI).

    With --replay REC the recording plays through the same device interfaces as a live rig, so sweeps are cut,
    frames placed and files written exactly as live (e.g. to re-cut a bare event file from other software).
    With --auto-range a pre-sweep of the lens's whole range (about one sweep) chooses the plan's range first.
    """
    from capture.engine import CaptureEngine
    from capture.recording import preflight
    from drivers.focus_limits import connected_limits
    from drivers.registry import open_rig

    if replay is not None:
        if auto_range:
            raise ValueError("--auto-range sweeps a live lens to choose the range; a replay keeps the recording's own")
        from capture.replay import ReplayRig

        stop = CaptureStop()
        with handling(stop), ReplayRig(replay, realtime=realtime) as rig:
            sweep_plan = _replay_plan(ctx, rig, plan, set_, sweeps, duration)
            out_dir = out if out is not None else Path(sweep_plan.out_dir)
            engine = CaptureEngine(rig, sweep_plan, out_dir, calibration_path=calibration, keep_sweeps=False)
            st = stop.run(engine)
        _report(st, stop)
        return
    cfg, sweep_plan = _load(ctx, config, set_, plan, sweeps, duration)
    out_dir = out if out is not None else Path(sweep_plan.out_dir)
    frame_size = _frame_size(cfg)
    volume = sweep_plan.expected_volume(frame_size)
    if dry_run:
        if auto_range:  # the dry run's one device step: the pre-sweep, to print the plan it gives
            from app.cli.auto_range import dry_run_auto_range

            sweep_plan = dry_run_auto_range(cfg, sweep_plan, calibration, CaptureStop())
        console.print(sweep_plan.to_toml(), highlight=False, markup=False)
        n = sweep_plan.sweeps_total
        console.print(f"# {'unbounded (estimate for 60 s)' if n is None else f'{n} sweeps'}: "
                      f"{volume['duration_s']:.2f} s, {volume['frames']:.0f} frames "
                      f"{frame_size[0]}x{frame_size[1]}x{frame_size[2]} = {_mib(volume['frames_bytes'])}, events at "
                      f"{sweep_plan.expected_event_rate_mev_s:g} Mev/s ≈ {_mib(volume['events_bytes'])}; total ≈ "
                      f"{_mib(volume['total_bytes'])} into {out_dir}", highlight=False, markup=False)
        shortfall = sweep_plan.plane_shortfall()
        if shortfall:
            console.print(f"# note: {shortfall}", highlight=False, markup=False)
        return
    preflight(out_dir, volume["total_bytes"], sweep_plan.min_free_mib)  # before any device is touched
    stop = CaptureStop()
    with handling(stop), open_rig(cfg) as rig:  # a signal ends it through the engine; the rig closes last
        sweep_plan.check_lens(connected_limits(cfg.lens, rig.lens.capabilities))  # the range the lens reports
        if auto_range:  # a pre-sweep chooses the range; simulated cameras are opened afresh after it
            from app.cli.auto_range import run_auto_range

            sweep_plan, rig = run_auto_range(rig, cfg, sweep_plan, calibration, stop)
        with rig:  # the rig the capture runs on (closing one twice is harmless)
            engine = CaptureEngine(rig, sweep_plan, out_dir, calibration_path=calibration, keep_sweeps=False)
            st = stop.run(engine)
    _report(st, stop)


@friendly_errors
def simulate_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    out: OutOpt = None,
    sweeps: SweepsOpt = None,
    plan: PlanOpt = None,
    set_: SetOpt = None,
    realtime: Annotated[bool, typer.Option("--realtime/--fast", help="Pace the simulation like live cameras, or "
                                           "simulate as fast as possible (default).")] = False,
    target: Annotated[bool, typer.Option("--target", help="Record a blinking chessboard at --views poses instead "
                                         "of sweeps: the input of `focalrig calibrate` for the event→RGB "
                                         "geometry (ground truth: homography and board poses).")] = False,
    views: Annotated[int, typer.Option(help="--target: board poses to record.", min=3)] = 12,
    board: Annotated[str, typer.Option(help="--target: chessboard inner corners, COLSxROWS.")] = "9x6",
) -> None:
    """A capture on the simulated rig plus ground truth (all-in-focus, depth, homography, lens trajectory).

    With --target: a spatial-calibration recording of a blinking chessboard instead (calibrate the simulated rig
    with `focalrig calibrate SWEEPS_REC --target TARGET_REC`).
    """
    from capture.recording.simulated import record_simulation

    set_ = [*list(set_ or []), f"sim.realtime={'true' if realtime else 'false'}"]
    cfg, sweep_plan = _load(ctx, config, set_, plan, sweeps, None)
    if "sim" not in (cfg.event_camera.backend, cfg.frame_camera.backend):
        raise ValueError("simulate needs the simulated cameras: event_camera.backend / frame_camera.backend = "
                         "\"sim\" (as in configs/sim.toml)")
    out_dir = out if out is not None else Path(sweep_plan.out_dir)
    if target:
        from capture.recording.simulated_target import record_blinking_target

        with console.status(f"simulating {views} blinks of a {board} chessboard"):
            folder = record_blinking_target(out_dir, cfg.sim, n_views=views, corners=parse_board(board))
        console.print(f"target recording → {folder} (ground truth in {folder / 'ground_truth'}); calibrate with "
                      f"`focalrig calibrate SWEEPS_REC --target {folder} --board {board}`", highlight=False)
        return
    from capture.recording import preflight

    preflight(out_dir, sweep_plan.expected_volume(_frame_size(cfg))["total_bytes"], sweep_plan.min_free_mib)
    stop = CaptureStop()
    with handling(stop):
        st = record_simulation(cfg, sweep_plan, out_dir, run=stop.run)
    if st.recording is not None:
        console.print(f"ground truth → {st.recording / 'ground_truth'}", highlight=False)
    _report(st, stop)


def _fmt_rate(hz: float) -> str:
    return f"{hz / 1e6:.3f} Mev/s" if hz >= 1e5 else f"{hz:,.0f} ev/s"


@friendly_errors
def inspect_cmd(
    recording: Annotated[Path, typer.Argument(help="A recording folder, or a bare .raw/.hdf5 event file.")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write event rate and focal power over time to this "
                                              "PNG.", show_default=False)] = None,
) -> None:
    """Summarise a recording: outcome, duration, sweeps, counts, rates, sync quality, completeness."""
    import numpy as np

    from capture.recording import Recording
    from capture.recording.summary import summarize

    with Recording.open(recording) as rec:
        s = summarize(rec)
        table = Table(title=str(recording), show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        colour = {"success": "green", "success_with_losses": "yellow", "aborted": "yellow", "failed": "red",
                  "incomplete": "red"}.get(s["status"], "")
        status = f"[{colour}]{escape(str(s['status']))}[/]" if colour else escape(str(s["status"]))
        if not s["complete"]:
            status += " (no stop document: the capture was killed or lost power; data up to the last flush is " \
                      f"readable, last flushed sweep {s.get('last_flushed_sweep')})"
        table.add_row("status", status + (f" — {escape(str(s['reason']))}" if s.get("reason") else ""))
        for part, problem in s.get("problems", {}).items():
            table.add_row("damaged", f"[red]{escape(part)}: {escape(problem)}[/]")
        if s.get("uid"):
            table.add_row("uid", s["uid"])
        if "plan" in s:
            p = s["plan"]
            freq = f" {p['frequency_hz']:g} Hz" if p["frequency_hz"] else ""
            table.add_row("plan", f"{p['name']}: {p['waveform']}{freq} {p['range_dpt'][0]:g}..{p['range_dpt'][1]:g} "
                                  f"dpt, frames {p['frame_rate_hz']:g} fps")
        table.add_row("duration", f"{s['duration_s']:.3f} s")
        sw = s["sweeps"]
        if sw["count"]:
            table.add_row("sweeps", f"{sw['count']} (length {sw['mean_ms']:.2f} ms, {sw['min_ms']:.2f}..."
                                    f"{sw['max_ms']:.2f}; {sw['events_per_sweep']:,.0f} events and "
                                    f"{sw['frames_per_sweep']:.1f} frames per sweep)")
        else:
            table.add_row("sweeps", "0")
        if "events" in s:
            e = s["events"]
            table.add_row("events", f"{e['count']:,} (ON {e['on']:,}); mean {_fmt_rate(e['mean_rate_hz'])}, peak "
                                    f"{_fmt_rate(e['peak_rate_hz'])} (1 ms)"
                          + (f"; [yellow]{escape(e['truncation'])}[/]" if e.get("truncation") else ""))
            edges = ", ".join(f"{k} {v:,}" for k, v in e["trigger_edges"].items())
            table.add_row("triggers", f"{e['triggers']:,}" + (f" ({edges})" if edges else ""))
        if "frames" in s:
            f = s["frames"]
            table.add_row("frames", f"{f['count']:,} at {f['rate_hz']:.2f} fps, {f['geometry'][0]}x"
                                    f"{f['geometry'][1]}; {f['on_event_clock']:,} on the event clock; "
                                    f"{f['index_gaps']} missing indices (camera drops)")
        sync = s.get("sync") or {}
        soft = s.get("soft_synced")
        quality = ("unknown (no sweeps recorded)" if soft is None else
                   "soft (host clock, ms-level)" if soft else "hardware (lens sync trigger)")
        if sync and {"frames_paired", "frames_unpaired", "exposure_mismatch", "max_exposure_error_us",
                     "sync_missed", "late_frames"} <= set(sync):
            quality += (f"; frames strobe-paired {sync['frames_paired']:,}, unpaired {sync['frames_unpaired']:,}, "
                        f"exposure mismatch {sync['exposure_mismatch']} (max {sync['max_exposure_error_us']:.0f} µs), "
                        f"sync edges missed {sync['sync_missed']}, late frames {sync['late_frames']}")
        table.add_row("sync", quality)
        if s.get("drops"):
            table.add_row("drops", ", ".join(f"{k} {v:,}" for k, v in s["drops"].items()))
        console.print(table)
        if plot is not None:
            from app.cli.recording_plot import plot_recording

            frames = rec.frames
            placed = frames.on_event_clock & np.isfinite(frames.focal_power_dpt)
            frame_pts = np.column_stack([frames.mid_us[placed], frames.focal_power_dpt[placed]])
            measured = rec.lens_measured
            measured = measured[np.isfinite(measured[:, 2])][:, [0, 2]] if len(measured) else np.empty((0, 2))
            plot_recording(plot, s["rate"], rec.lens_commanded, frame_pts, measured,
                           f"{recording.name}: {s['status']}")
            console.print(f"plot → {plot}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``capture``, ``inspect`` and ``simulate`` to the CLI."""
    app.command("capture")(capture_cmd)
    app.command("inspect")(inspect_cmd)
    app.command("simulate")(simulate_cmd)
