"""``focalrig capture --auto-range``: the pre-sweep between opening the rig and starting the capture.

The command opens the rig as usual; this runs the auto range on it (:mod:`app.auto_range`), prints its one line,
and hands back the plan to record with and the rig to record on — a fresh one when the cameras are simulated,
since a simulated camera cannot start again once the pre-sweep's engine has stopped it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.cli.common import console

if TYPE_CHECKING:
    from app.config import FocalrigConfig
    from capture.plan import SweepPlan
    from drivers.rig import Rig


class Stop(Protocol):
    """What the pre-sweep needs of the capture command's signal handling (``app.cli.capture.CaptureStop``): the
    signal that came, the engine a signal should stop, and the handler itself."""

    signum: int | None
    engine: Any

    def __call__(self, signum: int) -> None: ...


def _temporal(calibration_path: Path | None):
    """The lens timing of ``--calibration`` (gain, offset; the lag when the pre-sweep cannot give one), or None."""
    if calibration_path is None:
        return None
    from calibration.model import Calibration

    return Calibration.load(calibration_path).temporal


def run_auto_range(rig: Rig, cfg: FocalrigConfig, plan: SweepPlan, calibration_path: Path | None,
                   stop: Stop | None = None, *, reopen: bool = True) -> tuple[SweepPlan, Rig]:
    """Pre-sweep ``rig``, print the chosen range, return (the plan with it, the rig to capture on: with ``reopen``
    a freshly opened one when the cameras are simulated, which the caller then closes).

    A signal during the pre-sweep stops it through ``stop`` and leaves the plan as it was: the capture then does
    not start and the command ends as that signal says (``CaptureStop.run``).
    """
    from app.auto_range import auto_range
    from capture.auto_range import AutoRangeError
    from drivers.focus_limits import connected_limits
    from drivers.registry import open_rig

    temporal = _temporal(calibration_path)
    limits = connected_limits(cfg.lens, rig.lens.capabilities)
    on_engine = None if stop is None else (lambda engine: setattr(stop, "engine", engine))
    try:
        with console.status("auto range: one sweep over the lens's whole range"):
            result = auto_range(rig, plan, limits, temporal=temporal, on_engine=on_engine)
    except AutoRangeError:
        if stop is not None and stop.signum is not None:
            return plan, rig  # stopped by a signal: the capture will not start, and says why
        raise
    finally:
        if stop is not None:
            stop.engine = None
    console.print(result.summary(), highlight=False, markup=False, soft_wrap=True)
    shortfall = result.plan.plane_shortfall()
    if shortfall:
        console.print(f"note: {shortfall}", highlight=False, markup=False, soft_wrap=True)
    if reopen and rig.sim is not None:  # simulated cameras are single-use: the capture needs them fresh
        rig.close()
        rig = open_rig(cfg)
    return result.plan, rig


def dry_run_auto_range(cfg: FocalrigConfig, plan: SweepPlan, calibration_path: Path | None, stop: Stop) -> SweepPlan:
    """``--dry-run --auto-range``: open the rig for the pre-sweep alone (nothing is recorded) and return the plan it
    gives, for the dry run to print. ``stop`` is installed as the signal handler meanwhile; a signal ends the command
    as it ends a capture (128 + its number)."""
    import typer

    from app.termination import exit_status, handling
    from drivers.focus_limits import connected_limits
    from drivers.registry import open_rig

    with handling(stop), open_rig(cfg) as rig:
        plan.check_lens(connected_limits(cfg.lens, rig.lens.capabilities))
        ranged, _ = run_auto_range(rig, cfg, plan, calibration_path, stop, reopen=False)
    if stop.signum is not None:
        raise typer.Exit(exit_status(stop.signum))
    return ranged
