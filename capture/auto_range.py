"""Auto sweep range: one sweep over the lens's whole range, and a plan whose range covers what it saw in focus.

Two halves, either side of the analysis (:mod:`calibration.scene_range`, above this layer): :func:`run_presweep`
commands the sweep and reads one period of events, and :func:`ranged_plan` turns the scene's focus range into the
plan's dioptre range and plane count, with the record of how it was chosen.

The pre-sweep *is* a capture: the capture engine runs a one-sweep plan without recording, so the lens is
commanded, the sweep placed on the event clock by the lens sync edge (or the host clock when the sync is not
wired) and cut into a :class:`~capture.sweep.SweepData` exactly as for the capture that follows, and the lens ends
in its safe state whatever happens. Only the event camera takes part: the frame camera is not started (the
analysis reads events only, and a simulated frame camera would render frames for nothing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from capture.engine import CaptureEngine, EngineStatus
from capture.plan import SweepPlan
from capture.sweep import SweepData
from drivers.focus_limits import FocusLimits
from drivers.rig import Rig

#: The pre-sweep runs at the plan's frequency, or at this one when the plan sweeps slower (a slow plan would make
#: the pre-sweep long, while faster than this the events of a full-range sweep crowd and the lens rings more).
PRESWEEP_MIN_HZ = 4.0
#: Stepped plans have no frequency: their pre-sweep runs at this one.
PRESWEEP_STEPPED_HZ = 4.0
#: Margin each side of the scene's focus range, as a fraction of that range: it keeps the scene's ends clear of the
#: turnaround guard (5 % of the range each side) that focal stacks drop, where the lens is slow and rings.
MARGIN_FRACTION = 0.1
#: ... and at least this much (dpt): three times the spread of clearly timed focus powers (~0.01 dpt), enough to
#: clear the guard for ranges up to 0.6 dpt (beyond, the fraction does), and a sweep around a scene of one depth.
MIN_MARGIN_DPT = 0.03
#: The LD4 takes focal power in steps of 1/200 dpt: the range is rounded outwards onto them.
POWER_STEP_DPT = 0.005


class AutoRangeError(ValueError):
    """The auto range cannot be chosen; the message names the problem and what to do."""


@dataclass(frozen=True)
class Presweep:
    """One pre-sweep: its plan, the sweep it captured, and what it cost."""

    plan: SweepPlan
    sweep: SweepData
    status: EngineStatus
    #: Event-clock time from the first event chunk to the end of the sweep, in the pre-sweep's periods.
    periods: float
    wall_s: float


def presweep_plan(plan: SweepPlan, limits: FocusLimits, frequency_hz: float | None = None) -> SweepPlan:
    """The one-sweep plan over the lens's whole focal-power range that the pre-sweep runs: a sine (every LD4 runs
    one) at ``frequency_hz`` (default: the plan's, at least :data:`PRESWEEP_MIN_HZ`), within the lens's limits."""
    if plan.waveform == "stepped" and plan.n_planes == 1:
        raise AutoRangeError("the plan holds one focal power (stepped, n_planes = 1): there is no sweep range to "
                             "choose; set plan.low_dpt by hand")
    rng = limits.focal_power_range_dpt
    if limits.no_focal_power or rng is None:
        raise AutoRangeError(f"{limits.device}: {limits.no_focal_power or 'its focal-power range is not known'}; "
                             "the auto range sweeps the lens's whole range in dioptres")
    if frequency_hz is None:
        base = PRESWEEP_STEPPED_HZ if plan.waveform == "stepped" else plan.frequency_hz
        frequency_hz = max(base, PRESWEEP_MIN_HZ)
    fr = limits.frequency_range_hz
    if fr is not None:
        frequency_hz = min(max(frequency_hz, fr[0]), fr[1])
    return SweepPlan(name=f"{plan.name}-auto-range", waveform="sine", low_dpt=rng[0], high_dpt=rng[1],
                     frequency_hz=frequency_hz, n_planes=2, sweeps=1, frame_rate_hz=plan.frame_rate_hz,
                     exposure_us=plan.exposure_us, strobe_channel=None, sync_channel=plan.sync_channel,
                     min_free_mib=0.0)


def run_presweep(rig: Rig, pre: SweepPlan, *, on_engine: Callable[[CaptureEngine], None] | None = None) -> Presweep:
    """Run ``pre`` (from :func:`presweep_plan`) on ``rig``'s lens and event camera; returns its one sweep.

    ``on_engine(engine)`` is called before it starts (a caller that handles signals stops it through it). The lens
    ends in its safe state. A simulated rig's cameras are single-use: open the rig again for the capture after it.
    Raises :class:`AutoRangeError` when no sweep came (the engine's reason in the message).
    """
    if rig.event_camera is None:
        raise AutoRangeError("the auto range needs the event camera (event_camera.backend is 'none')")
    view = Rig(rig.lens, rig.event_camera, None, rig.sim, rig.config)  # the frame camera stays idle
    engine = CaptureEngine(view, pre, None, keep_sweeps=True)
    sweeps: list[SweepData] = []
    engine.signals.sweep_finished.connect(sweeps.append)
    if on_engine is not None:
        on_engine(engine)
    t0 = time.monotonic()
    status = engine.run()
    wall = time.monotonic() - t0
    if not sweeps:
        why = status.reason or "the event camera delivered no complete sweep"
        raise AutoRangeError(f"the pre-sweep over the lens's range gave no sweep ({status.exit_status}: {why}); "
                             f"the lens was left {'safe (DC, 0 mA)' if status.lens_safe else 'as the engine left it'}")
    rates = engine.rate_history()  # one row per event chunk: the first one's end tells when the stream began
    chunk = float(rates[1, 0] - rates[0, 0]) if len(rates) > 1 else 0.0
    began = float(rates[0, 0]) - chunk if len(rates) else float(sweeps[0].t_start_us)
    periods = (sweeps[0].t_end_us - began) / (pre.period_s * 1e6)
    return Presweep(pre, sweeps[0], status, periods, wall)


def margin_dpt(scene_span_dpt: float, extra_dpt: float = 0.0) -> float:
    """The margin each side of a scene focus range of ``scene_span_dpt`` (see :data:`MARGIN_FRACTION`), plus
    ``extra_dpt`` (what the estimate itself may be off by)."""
    return max(MARGIN_FRACTION * max(scene_span_dpt, 0.0), MIN_MARGIN_DPT) + max(extra_dpt, 0.0)


def ranged_plan(plan: SweepPlan, low_dpt: float, high_dpt: float, limits: FocusLimits,
                record: dict) -> SweepPlan:
    """``plan`` sweeping ``low_dpt``–``high_dpt`` (commanded dpt, margins included), rounded outwards onto the
    lens's steps and clipped to its range, with ``record`` (how the range was chosen) as its ``auto_range``.

    Planes: the plan's count, but no more than a sweep has frames (every plane of a focal stack is a real frame;
    more would only be a shortfall note), and at least 2. Stepped plans keep theirs (each set point is a plane).
    """
    lo_lim, hi_lim = limits.focal_power_range_dpt or (-math.inf, math.inf)
    low = max(lo_lim, math.floor(low_dpt / POWER_STEP_DPT + 1e-9) * POWER_STEP_DPT)
    high = min(hi_lim, math.ceil(high_dpt / POWER_STEP_DPT - 1e-9) * POWER_STEP_DPT)
    if not high > low:
        raise AutoRangeError(f"the scene's focus range {low_dpt:.3f}–{high_dpt:.3f} dpt leaves no sweep inside the "
                             f"lens's {lo_lim:g}–{hi_lim:g} dpt")
    low, high = round(low, 6), round(high, 6)
    n_planes = plan.n_planes
    if plan.waveform != "stepped":
        frames = plan.model_copy(update={"low_dpt": low, "high_dpt": high}).frames_per_stack()
        n_planes = max(2, min(plan.n_planes, math.floor(frames + 1e-9)))
    full = {**record, "chosen_dpt": [low, high], "n_planes": n_planes, "n_planes_asked": plan.n_planes}
    return SweepPlan.from_dict({**plan.model_dump(), "low_dpt": low, "high_dpt": high, "n_planes": n_planes,
                                "auto_range": full}, source="auto range")
