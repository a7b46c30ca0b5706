"""Calibrate a rig from a recording: event→RGB geometry (from a blinking-target recording), lens lag and focus
breathing (from its sweeps), written as one calibration JSON and its PNG report. What ``focalrig calibrate``
and ``focalrig batch calibrate`` both run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.jobs.listener import Listener

if TYPE_CHECKING:
    from calibration.pipeline import CalibrationRun


@dataclass(frozen=True)
class CalibrateSettings:
    """The options of ``focalrig calibrate`` (see its ``--help``)."""

    target: Path | None = None
    board: tuple[int, int] = (9, 6)
    sweeps: int = 5
    min_views: int = 8
    breathing: bool = True


def calibrate_to(rec: Path, out: Path, settings: CalibrateSettings,
                 report: Path | None = None) -> tuple[CalibrationRun, Path]:
    """Calibrate from ``rec`` (and the settings' target recording), write the calibration to ``out`` and its PNG
    report to ``report`` (default: ``out`` with .png); returns the run and the report's path."""
    from calibration.pipeline import calibrate_recording
    from calibration.report import write_report
    from calibration.spatial import Board

    run = calibrate_recording(rec, target=settings.target, board=Board(settings.board), n_sweeps=settings.sweeps,
                              min_views_intrinsics=settings.min_views, breathing=settings.breathing)
    run.calibration.save(out)
    return run, write_report(run, report or out.with_suffix(".png"))


def describe(run: CalibrationRun) -> list[str]:
    """The calibration's figures in words, one line per part it has (what ``focalrig calibrate`` prints)."""
    cal = run.calibration
    lines = []
    if cal.spatial is not None:
        e = cal.spatial.error_px
        lines.append(f"geometry: {cal.spatial.n_views} views, mirrored {cal.spatial.mirrored}, corner error "
                     f"{e['mean']:.3f} px mean / {e['max']:.3f} px max")
    if cal.temporal is not None:
        lines.append(f"lens lag: {cal.temporal.lag_us / 1000:.3f} ms (rms over {cal.temporal.n_patches} patches "
                     f"{cal.temporal.residual_us:.0f} µs)")
    if cal.breathing is not None:
        lines.append(f"breathing: {cal.breathing.coeffs[0] * 100:+.3f} %/dpt about {cal.breathing.ref_dpt:.2f} dpt")
    return lines


def calibrate_into(rec: Path, folder: Path, settings: CalibrateSettings,
                   listener: Listener | None = None) -> dict[str, Any]:
    """A batch's calibration of ``rec``: ``calib.json`` and ``calib.png`` in ``folder``."""
    run, _ = calibrate_to(rec, folder / "calib.json", settings)
    for note in run.notes:
        (listener or Listener()).note(note)
    return {"summary": "; ".join(describe(run)) or "no part calibrated", "calibration_id": run.calibration.id}
