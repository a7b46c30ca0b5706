"""``focalrig calibrate`` and ``focalrig stack``: thin wrappers over calibration/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import console, err_console, friendly_errors, parse_board, progress


def calibrate(
    rec: Annotated[Path, typer.Argument(help="Recording folder: sweeps of a static textured (planar) scene for lag "
                                              "and breathing, or a blinking-target recording.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Calibration JSON to write.")],
    target: Annotated[Path | None, typer.Option(help="Blinking-chessboard recording for the event→RGB geometry "
                                                     "(default: REC itself when it has no sweeps).")] = None,
    board: Annotated[str, typer.Option(help="Chessboard inner corners, COLSxROWS.")] = "9x6",
    sweeps: Annotated[int, typer.Option(help="Sweeps of REC used for lag and breathing.", min=1)] = 5,
    min_views: Annotated[int, typer.Option(help="Views needed to estimate intrinsics/distortion.", min=3)] = 8,
    breathing: Annotated[bool, typer.Option("--breathing/--no-breathing",
                                            help="Estimate focus breathing from the sweeps' frames.")] = True,
    report: Annotated[Path | None, typer.Option(help="PNG report (default: OUT with .png).")] = None,
) -> None:
    """Calibrate a rig: event→RGB homography (+ intrinsics), lens lag, focus breathing; writes JSON + PNG report."""
    from calibration.pipeline import calibrate_recording
    from calibration.report import write_report
    from calibration.spatial import Board

    run = calibrate_recording(rec, target=target, board=Board(parse_board(board)), n_sweeps=sweeps,
                              min_views_intrinsics=min_views, breathing=breathing)
    cal = run.calibration
    cal.save(out)
    png = write_report(run, report or out.with_suffix(".png"))
    if cal.spatial is not None:
        e = cal.spatial.error_px
        console.print(f"geometry: {cal.spatial.n_views} views, mirrored {cal.spatial.mirrored}, corner error "
                      f"{e['mean']:.3f} px mean / {e['max']:.3f} px max", highlight=False)
    if cal.temporal is not None:
        console.print(f"lens lag: {cal.temporal.lag_us / 1000:.3f} ms (rms over {cal.temporal.n_patches} patches "
                      f"{cal.temporal.residual_us:.0f} µs)", highlight=False)
    if cal.breathing is not None:
        console.print(f"breathing: {cal.breathing.coeffs[0] * 100:+.3f} %/dpt about {cal.breathing.ref_dpt:.2f} dpt",
                      highlight=False)
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"wrote {out} (id {cal.id}) and {png}", highlight=False)


def stack(
    rec: Annotated[Path, typer.Argument(help="Recording folder.")],
    calib: Annotated[Path, typer.Option("--calib", help="Calibration JSON (focalrig calibrate).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    fmt: Annotated[str, typer.Option("--format", help="eventstackmff (PNG folders) or npz (lossless counts).")]
    = "eventstackmff",
    planes: Annotated[int | None, typer.Option(help="Most planes per stack; each plane is a frame at its own focal "
                                                    "power (default: the recording's plan).", min=2,
                                               show_default=False)] = None,
    span: Annotated[str | None, typer.Option(help="Frames a stack takes from its sweep: period (both halves) or "
                                                  "half (the rising half; default: the recording's plan).",
                                             show_default=False)] = None,
    sweep: Annotated[list[int] | None, typer.Option(help="Sweep index to export (repeatable; default all).")]
    = None,
    guard: Annotated[float, typer.Option(help="Fraction of the range dropped at each turnaround.")] = 0.05,
) -> None:
    """Aligned RGB + event focal stacks of a recording's sweeps, one stack per sweep."""
    from app.cli.stacking import ShortfallNote, stack_choice
    from calibration.model import Calibration, CalibrationError
    from calibration.stack import build_focal_stack
    from capture.recording import Recording
    from capture.stack_folders import write_eventstackmff

    if fmt not in ("eventstackmff", "npz"):
        raise CalibrationError(f"--format must be eventstackmff or npz, got {fmt!r}")
    cal = Calibration.load(calib)
    out.mkdir(parents=True, exist_ok=True)
    n, counts = 0, set()
    with Recording.open(rec) as recording:
        n_planes, span = stack_choice(recording.plan, planes, span)
        note = ShortfallNote(recording.plan, n_planes, span, lambda text: err_console.print(
            f"note: {text}", highlight=False, markup=False))
        total = len(recording) if not sweep else len(set(sweep))
        with progress() as bar:
            task = bar.add_task("stacking", total=total, detail="")
            for data in recording.sweeps():
                if sweep and data.index not in sweep:
                    continue
                bar.update(task, detail=f"sweep {data.index}")
                st = build_focal_stack(data, cal, n_planes=n_planes, span=span, guard_fraction=guard)
                note.check(st.n_planes, data.index)
                if fmt == "npz":
                    st.save_npz(out / f"{st.name}.npz")
                else:
                    write_eventstackmff(st, out, scene=st.name)
                n += 1
                counts.add(st.n_planes)
                bar.advance(task)
    if n == 0:
        raise CalibrationError(f"{rec}: no sweeps to export" + (f" (asked for {sweep})" if sweep else ""))
    planes_text = "/".join(str(c) for c in sorted(counts))
    console.print(f"wrote {n} focal stack(s) of {planes_text} planes ({span}) to {out} ({fmt})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` and ``stack`` to the top-level app."""
    app.command("calibrate")(friendly_errors(calibrate))
    app.command("stack")(friendly_errors(stack))
