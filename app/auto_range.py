"""Auto sweep range on an open rig, for every room of app (``capture --auto-range``, the GUI's Auto range button,
``focalrig bench auto-range``): pre-sweep the lens's whole range, find where the scene is in focus, return the plan
that covers it with the record of how it was chosen.

The work is below app (:mod:`capture.auto_range` runs the sweep and sets the plan, :mod:`calibration.scene_range`
reads the events); here they meet, since capture may not import calibration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from calibration.model import TemporalCalibration
from calibration.scene_range import NoSceneInFocus, SceneFocus, scene_focus
from capture.auto_range import (
    MARGIN_FRACTION,
    MIN_MARGIN_DPT,
    AutoRangeError,
    Presweep,
    margin_dpt,
    presweep_plan,
    ranged_plan,
    run_presweep,
)
from capture.engine import CaptureEngine
from capture.plan import SweepPlan
from capture.recording.metadata import utc_now
from drivers.focus_limits import FocusLimits
from drivers.rig import Rig


@dataclass(frozen=True)
class AutoRange:
    """The plan with its auto range, the pre-sweep and what it saw."""

    plan: SweepPlan
    presweep: Presweep
    scene: SceneFocus

    @property
    def record(self) -> dict:
        return dict(self.plan.auto_range or {})

    def summary(self) -> str:
        """One line: the chosen range, the scene in focus, the margins, the planes and the cost."""
        r = self.record
        lo, hi = r["chosen_dpt"]
        s_lo, s_hi = r["scene_dpt"]
        m_lo, m_hi = r["margin_dpt"]
        ends = [name for name, hit in zip(("low", "high"), r.get("extended_to_end", [False, False]), strict=True)
                if hit]
        end = f"; extended to the lens's {' and '.join(ends)} end" if ends else ""
        clipped = f"; clipped at the lens's {'/'.join(r['clipped'])} limit" if r.get("clipped") else ""
        planes = f"{self.plan.n_planes} planes" + (f" (of {r['n_planes_asked']} asked: the sweep has that many "
                                                   "frames)" if self.plan.n_planes < r["n_planes_asked"] else "")
        return (f"auto range: {lo:.2f}–{hi:.2f} dpt (scene {s_lo:.2f}–{s_hi:.2f} dpt in focus, margin "
                f"{m_lo:.2f}/{m_hi:.2f} dpt{end}{clipped}), {planes}; pre-sweep "
                f"{r['presweep']['low_dpt']:.2f}–{r['presweep']['high_dpt']:.2f} dpt at "
                f"{r['presweep']['frequency_hz']:g} Hz, {r['presweep']['cost_sweeps']:.2f} sweeps of the plan")


def auto_range(rig: Rig, plan: SweepPlan, limits: FocusLimits, *, temporal: TemporalCalibration | None = None,
               frequency_hz: float | None = None,
               on_engine: Callable[[CaptureEngine], None] | None = None) -> AutoRange:
    """Pre-sweep ``rig`` over ``limits``' whole range and return ``plan`` with its range set to the scene's focus
    plus margins (:func:`capture.auto_range.margin_dpt`), its planes capped at the frames a sweep has, and the
    ``auto_range`` record: the range chosen, the scene's percentiles (and any cluster beyond them: ``scene_dpt``),
    margins, pre-sweep settings and cost, events and pixels used, lag, end runs.

    ``temporal`` (a calibration's) gives gain and offset, and the lag when the sweep cannot. Raises
    :class:`~capture.auto_range.AutoRangeError` with one message naming the problem; the lens is left safe
    (the pre-sweep's engine puts it there whatever happens). A simulated rig must be opened again afterwards.
    """
    pre = run_presweep(rig, presweep_plan(plan, limits, frequency_hz), on_engine=on_engine)
    try:
        scene = scene_focus(pre.sweep, temporal)
    except NoSceneInFocus as exc:
        lens = "the lens was left safe (DC, 0 mA)" if pre.status.lens_safe else "the lens's safe state is unconfirmed"
        raise AutoRangeError(f"auto range: {exc}; {lens}") from None
    span = scene.high_dpt - scene.low_dpt
    margin = margin_dpt(span, scene.lag_uncertainty_dpt)
    near_low, near_high = scene.beyond_end
    lo_lim, hi_lim = limits.focal_power_range_dpt or (-math.inf, math.inf)
    # Commanded powers: the plan asks the lens for what the scene needs under the model's gain and offset.
    low = lo_lim if near_low else scene.commanded_dpt(scene.low_dpt - margin)
    high = hi_lim if near_high else scene.commanded_dpt(scene.high_dpt + margin)
    c = pre.sweep.commanded
    record = {
        "time": utc_now(),
        "scene_dpt": [round(scene.low_dpt, 4), round(scene.high_dpt, 4)],
        "scene_median_dpt": round(scene.median_dpt, 4),
        "quantiles": list(scene.quantiles),
        "percentiles_dpt": [round(v, 4) for v in scene.percentiles_dpt],
        "margin_rule": f"max({MARGIN_FRACTION:g} x scene span, {MIN_MARGIN_DPT:g} dpt) each side"
                       + (f" + {scene.lag_uncertainty_dpt:.3f} dpt for the unknown lag" if scene.lag_uncertainty_dpt
                          else ""),
        "extended_to_end": [bool(near_low), bool(near_high)],
        "end_runs": [round(v, 4) for v in scene.end_runs],
        "clipped": [name for name, v, lim in (("low", low, lo_lim), ("high", high, hi_lim))
                    if (v < lim if name == "low" else v > lim)],
        "pixels": scene.n_pixels, "min_weight": scene.min_weight, "events": scene.n_events,
        "lag_us": round(scene.lag_us, 1), "lag_source": scene.lag_source,
        "histogram": {"from_dpt": scene.histogram[0], "bin_dpt": scene.histogram[1],
                      "pixels": list(scene.histogram[2])},
        "presweep": {"waveform": c.waveform, "low_dpt": c.low_dpt, "high_dpt": c.high_dpt,
                     "frequency_hz": c.frequency_hz, "sync": "soft (host clock)" if c.soft_synced else
                     "hardware (lens sync)", "t_start_us": pre.sweep.t_start_us, "t_end_us": pre.sweep.t_end_us,
                     "periods": round(pre.periods, 3),
                     "cost_sweeps": round(pre.periods * pre.plan.period_s / plan.period_s, 3)},
    }
    if math.isfinite(scene.silence_dpt):
        record["silence_dpt"] = round(scene.silence_dpt, 4)
    ranged = ranged_plan(plan, low, high, limits, record)
    chosen = [scene.actual_dpt(ranged.low_dpt), scene.actual_dpt(ranged.high_dpt)]  # rounded and clipped
    margins = [round(scene.low_dpt - chosen[0], 4), round(chosen[1] - scene.high_dpt, 4)]
    return AutoRange(ranged.model_copy(update={"auto_range": {**(ranged.auto_range or {}), "margin_dpt": margins}}),
                     pre, scene)
