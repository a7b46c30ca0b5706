"""``focalrig gui``: the desktop window, and its scripted mode for tests, docs and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import friendly_errors


@friendly_errors
def gui(
    ctx: typer.Context,
    recording: Annotated[Path | None, typer.Argument(help="Open this recording folder or RAW/HDF5 file for replay "
                                                          "instead of connecting the rig.", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Configuration file (default: the global "
                                                "--config, else the last one used, else configs/sim.toml).",
                                                show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a key: sim.rgb_size=[640,480] (rig "
                                                   "config) or plan.high_dpt=2.5 (sweep plan).",
                                                   show_default=False)] = None,
    plan: Annotated[Path | None, typer.Option("--plan", "-p", help="Sweep plan TOML (default "
                                              "configs/plans/default.toml); --set plan.KEY=V overrides a key.",
                                              show_default=False)] = None,
    capture_and_fuse: Annotated[bool, typer.Option("--capture-and-fuse", help="Scripted: once the rig streams (or "
                                                   "the replay is open), run one capture-and-fuse.")] = False,
    screenshot: Annotated[Path | None, typer.Option(help="Scripted: save a PNG of the main window at the end.",
                                                    show_default=False)] = None,
    exit_: Annotated[bool, typer.Option("--exit", help="Scripted: exit when done (status 0 on success).")] = False,
    report_stalls: Annotated[bool, typer.Option("--report-stalls", help="Print the longest GUI event-loop stall "
                                                "and the live display rate when the script ends.")] = False,
    warmup: Annotated[float, typer.Option(help="Scripted: seconds of streaming before Capture & fuse (the stall "
                                               "and display-rate measurement covers them).", min=0)] = 2.0,
    continuous: Annotated[float, typer.Option(help="Scripted: after the warm-up, fuse every sweep for this many "
                                                   "seconds and report fused sweeps per second beside the sweep "
                                                   "rate (0: off).", min=0)] = 0.0,
    timeout: Annotated[float, typer.Option(help="Scripted: give up after this many seconds (exit 1).")] = 120.0,
    settings: Annotated[Path | None, typer.Option(help="GUI settings file (default: $FOCALRIG_GUI_SETTINGS or the "
                                                  "user config folder).", show_default=False)] = None,
) -> None:
    """Open the focalrig window on the configured rig (default: the simulated rig), or replay REC."""
    from app.gui.main import GuiOptions, run_gui

    state = ctx.obj
    if recording is not None and not recording.exists():
        raise ValueError(f"{recording}: no such recording folder or event file")
    code = run_gui(GuiOptions(config=config or state.config_path, plan=plan,
                              overrides=(*state.overrides, *(set_ or [])), recording=recording,
                              capture_and_fuse=capture_and_fuse, screenshot=screenshot, exit_after=exit_,
                              report_stalls=report_stalls, settings_path=settings, timeout_s=timeout,
                              warmup_s=warmup, continuous_s=continuous))
    if code:
        raise typer.Exit(code)
