"""``focalrig calibrate`` and ``focalrig stack``: options parsed here, the work done by :mod:`app.jobs.calibrate`
and :mod:`app.jobs.stack` (which ``focalrig batch`` runs too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import BarListener, console, friendly_errors, parse_board, progress

#: Options ``focalrig batch calibrate`` / ``batch stack`` share with the single commands.
BoardOpt = Annotated[str, typer.Option("--board", help="Chessboard inner corners, COLSxROWS.")]
MinViewsOpt = Annotated[int, typer.Option("--min-views", help="Views needed to estimate intrinsics/distortion.",
                                          min=3)]
BreathingOpt = Annotated[bool, typer.Option("--breathing/--no-breathing",
                                            help="Estimate focus breathing from the sweeps' frames.")]
FormatOpt = Annotated[str, typer.Option("--format", help="eventstackmff (PNG folders) or npz (lossless counts).")]
StackSweepOpt = Annotated[list[int] | None, typer.Option("--sweep", help="Sweep index to export (repeatable; "
                                                                          "default all).")]
GuardOpt = Annotated[float, typer.Option("--guard", help="Fraction of the range dropped at each turnaround.")]


def calibrate(
    rec: Annotated[Path, typer.Argument(help="Recording folder: sweeps of a static textured (planar) scene for lag "
                                              "and breathing, or a blinking-target recording.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Calibration JSON to write.")],
    target: Annotated[Path | None, typer.Option(help="Blinking-chessboard recording for the event→RGB geometry "
                                                     "(default: REC itself when it has no sweeps).")] = None,
    board: BoardOpt = "9x6",
    sweeps: Annotated[int, typer.Option(help="Sweeps of REC used for lag and breathing.", min=1)] = 5,
    min_views: MinViewsOpt = 8,
    breathing: BreathingOpt = True,
    report: Annotated[Path | None, typer.Option(help="PNG report (default: OUT with .png).")] = None,
) -> None:
    """Calibrate a rig: event→RGB homography (+ intrinsics), lens lag, focus breathing; writes JSON + PNG report."""
    from app.jobs.calibrate import CalibrateSettings, calibrate_to, describe

    settings = CalibrateSettings(target=target, board=parse_board(board), sweeps=sweeps, min_views=min_views,
                                 breathing=breathing)
    run, png = calibrate_to(rec, out, settings, report)
    for line in describe(run):
        console.print(line, highlight=False)
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"wrote {out} (id {run.calibration.id}) and {png}", highlight=False)


def stack(
    rec: Annotated[Path, typer.Argument(help="Recording folder.")],
    calib: Annotated[Path, typer.Option("--calib", help="Calibration JSON (focalrig calibrate).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    fmt: FormatOpt = "eventstackmff",
    planes: Annotated[int | None, typer.Option(help="Most planes per stack; each plane is a frame at its own focal "
                                                    "power (default: the recording's plan).", min=2,
                                               show_default=False)] = None,
    span: Annotated[str | None, typer.Option(help="Frames a stack takes from its sweep: period (both halves) or "
                                                  "half (the rising half; default: the recording's plan).",
                                             show_default=False)] = None,
    sweep: StackSweepOpt = None,
    guard: GuardOpt = 0.05,
) -> None:
    """Aligned RGB + event focal stacks of a recording's sweeps, one stack per sweep."""
    from app.jobs.stack import StackSettings, stack_recording

    settings = StackSettings(calib=calib, fmt=fmt, planes=planes, span=span, sweeps=tuple(sweep) if sweep else None,
                             guard=guard)
    with progress() as bar:
        done = stack_recording(rec, out, settings, BarListener(bar, bar.add_task("stacking", total=None, detail="")))
    planes_text = "/".join(str(c) for c in done["planes"])
    console.print(f"wrote {done['stacks']} focal stack(s) of {planes_text} planes ({done['span']}) to {out} ({fmt})",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` and ``stack`` to the top-level app."""
    app.command("calibrate")(friendly_errors(calibrate))
    app.command("stack")(friendly_errors(stack))
