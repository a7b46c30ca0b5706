"""Auto sweep range on the simulated rig, whose layer depths are known: one pre-sweep over the simulated LD4's whole
range (the real driver code on its wire protocol, the ESIM event camera), then the plan's range from the events.
Nothing is mocked; the scenes are small (160x120) so a pre-sweep simulates in about a second."""

import dataclasses
import itertools
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from app.auto_range import auto_range
from app.cli import app
from app.config import load_config
from calibration.scene_range import cluster_ends
from calibration.temporal import FocalBins
from capture.auto_range import AutoRangeError, presweep_plan, ranged_plan
from capture.plan import SweepPlan
from drivers.focus_limits import FocusLimits, connected_limits
from drivers.registry import open_rig
from tests.capture_rigs import lens_is_safe

SMALL = ["sim.rgb_size=[160,120]", "sim.event_size=[160,120]", "sim.realtime=false"]
LENS = (-1.8, 2.8)  # the simulated LD4's focal-power range
_names = itertools.count()


def _port() -> str:
    return f"optosim://auto-range-{os.getpid()}-{next(_names)}"


def _auto_range(depths, *extra, plan: SweepPlan | None = None):
    """(result or the AutoRangeError raised, lens safe right after the pre-sweep) on a scene of ``depths``."""
    port = _port()
    cfg = load_config(None, overrides=[*SMALL, f"sim.depths_dpt={list(depths)}", f"lens.port='{port}'", *extra])
    with open_rig(cfg) as rig:
        try:
            result = auto_range(rig, plan or SweepPlan.load(None), connected_limits(cfg.lens, rig.lens.capabilities))
        except AutoRangeError as exc:
            result = exc
        return result, lens_is_safe(port)  # checked before close(), which would make it safe anyway


def _failure(depths, *extra) -> str:
    """The message of the AutoRangeError the auto range raises on this scene; the lens must be safe after it."""
    result, safe = _auto_range(depths, *extra)
    assert isinstance(result, AutoRangeError), result
    assert safe
    return str(result)


def test_the_range_covers_every_layer_and_little_more():
    depths = (0.3, 1.8)
    result, safe = _auto_range(depths)
    plan, record = result.plan, result.plan.auto_range
    assert plan.low_dpt <= min(depths) and plan.high_dpt >= max(depths)
    assert plan.high_dpt - plan.low_dpt <= 1.5 * (max(depths) - min(depths))
    # the margins keep every layer clear of the turnaround guards that a stack of this plan drops
    guard = FocalBins.uniform(plan.low_dpt, plan.high_dpt, plan.n_planes).accepted_dpt
    assert guard[0] < min(depths) and max(depths) < guard[1]
    # the percentiles sit on the layers (the margins do the covering), and the record says what was chosen
    assert record["scene_dpt"][0] == pytest.approx(0.3, abs=0.05) and record["scene_dpt"][1] == pytest.approx(1.8,
                                                                                                            abs=0.05)
    assert record["percentiles_dpt"] == record["scene_dpt"] and record["quantiles"] == [0.01, 0.99]
    assert record["chosen_dpt"] == [plan.low_dpt, plan.high_dpt] and record["extended_to_end"] == [False, False]
    assert record["presweep"]["low_dpt"] == pytest.approx(LENS[0]) and record["presweep"]["high_dpt"] == LENS[1]
    assert record["presweep"]["cost_sweeps"] <= 1.05  # event-clock time of the pre-sweep, in sweeps of the plan
    assert record["lag_source"] == "pre-sweep" and 1000 < record["lag_us"] < 6000  # the simulated LD4 lags ~2-3 ms
    assert record["events"] == len(result.presweep.sweep.cd) > 0 and record["pixels"] >= 50
    assert plan.n_planes == 15 and plan.frequency_hz == 4.0 and plan.sweeps == 10  # the rest of the plan kept
    assert safe
    # an end is reached on clear evidence only: enough untimed end runs there, and clearly more than at the other
    ends = {runs: dataclasses.replace(result.scene, end_runs=runs).beyond_end
            for runs in ((0.0, 0.05), (0.015, 0.0), (0.005, 0.0), (0.015, 0.02), (0.04, 0.015))}
    assert ends == {(0.0, 0.05): (False, True), (0.015, 0.0): (True, False), (0.005, 0.0): (False, False),
                    (0.015, 0.02): (False, False), (0.04, 0.015): (True, False)}


@pytest.mark.parametrize(("depths", "end"), [((0.0, 0.35), "far"), ((2.1, 2.65), "near"), ((1.0,), "one depth")])
def test_a_scene_at_one_end_gives_a_range_at_that_end(depths, end):
    """Far: infinity and 3 m, 1.8 dpt above the lens's low end. Near: a surface 0.15 dpt below the lens's high end,
    too near its turnaround to be timed by its events, which the range must still reach. One depth: a sweep around
    it all the same."""
    result, safe = _auto_range(depths)
    plan = result.plan
    assert plan.low_dpt <= min(depths) and plan.high_dpt >= max(depths)
    if end == "far":
        assert -0.2 <= plan.low_dpt and plan.high_dpt <= 0.6
    elif end == "one depth":
        assert 0.06 <= plan.high_dpt - plan.low_dpt <= 0.2
        scene = plan.auto_range["scene_dpt"]  # where its pixels came into focus, and a margin either side
        assert plan.low_dpt <= scene[0] - 0.025 and plan.high_dpt >= scene[1] + 0.025
    else:
        assert plan.high_dpt == LENS[1] and plan.auto_range["extended_to_end"] == [False, True]
        assert 1.8 <= plan.low_dpt
    assert safe


def test_a_surface_filling_little_of_the_view_is_covered():
    """The nearest of three layers holds under 1 % of the clearly timed pixels (beyond the 99th percentile), but they
    agree on its focus: the range still reaches it."""
    result, safe = _auto_range((0.4, 0.69, 2.45), "sim.seed=36")
    assert result.plan.low_dpt <= 0.4 and result.plan.high_dpt >= 2.45 and safe


def test_a_timed_surface_whose_weak_pixels_run_into_the_turnaround_does_not_reach_the_end():
    """Weakly textured pixels of the 2.02 dpt layer stay silent into the lens's turnaround (runs of one polarity, as
    a surface too near the end would give), but the pixels around them timed their passages: no extension."""
    result, safe = _auto_range((0.7, 2.02), "sim.seed=38")
    plan = result.plan
    assert plan.auto_range["extended_to_end"] == [False, False]
    assert plan.low_dpt <= 0.7 and plan.high_dpt >= 2.02 and plan.high_dpt - plan.low_dpt <= 1.5 * (2.02 - 0.7)
    assert safe


def test_a_blank_scene_fails_with_one_clear_message_and_the_lens_safe():
    message = _failure((0.6, 1.4), "sim.texture_contrast=0.001")
    assert "\n" not in message
    assert "saw nothing come into focus" in message and "textured scene" in message
    assert "set the plan's low_dpt and high_dpt by hand" in message and "the lens was left safe" in message


def test_a_presweep_that_gives_no_sweep_says_why_and_leaves_the_lens_safe():
    """The plan expects the lens sync on channel 1, but this simulated rig has it unwired: the pre-sweep's engine
    stops before anything moves, and its reason reaches the message."""
    message = _failure((0.6, 1.4), "sim.sync_channel='none'")
    assert "gave no sweep" in message and "set plan.sync_channel=none" in message
    assert "the lens was left safe (DC, 0 mA)" in message


def test_capture_auto_range_prints_the_range_and_records_how_it_was_chosen(tmp_path):
    port = _port()
    args = ["capture", "--out", str(tmp_path), "--sweeps", "1", "--auto-range", "--set", f"lens.port={port}",
            "--set", "sim.depths_dpt=[0.6,1.4]", "--set", "plan.min_free_mib=0"]
    for item in SMALL:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("auto range:"))
    assert "in focus" in line and "15 planes" in line
    (folder,) = tmp_path.iterdir()
    meta = json.loads((folder / "metadata.json").read_text())
    plan = meta["plan"]
    assert plan["auto_range"]["chosen_dpt"] == [plan["low_dpt"], plan["high_dpt"]]
    assert plan["low_dpt"] <= 0.6 and plan["high_dpt"] >= 1.4 and meta["exit_status"] == "success"
    assert f"{plan['low_dpt']:.2f}–{plan['high_dpt']:.2f} dpt" in line
    start = json.loads((folder / "run.jsonl").read_text().splitlines()[0])
    assert start["plan"]["auto_range"] == plan["auto_range"]  # the start document carries the same record
    assert SweepPlan.from_dict(plan).auto_range == plan["auto_range"]  # and the recorded plan reads back


def test_dry_run_auto_range_prints_the_plan_it_gives_and_records_nothing(tmp_path):
    args = ["capture", "--out", str(tmp_path), "--dry-run", "--auto-range", "--set", f"lens.port={_port()}",
            "--set", "sim.depths_dpt=[0.6,1.4]"]
    for item in SMALL:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "auto range:" in res.output and "[plan.auto_range]" in res.output
    assert not any(tmp_path.iterdir())


def test_auto_range_refuses_a_replay(tmp_path):
    res = CliRunner().invoke(app, ["capture", "--replay", str(tmp_path), "--auto-range", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--auto-range sweeps a live lens" in res.output


# -- the plan arithmetic, without a rig ------------------------------------------------------------------------
LIMITS = FocusLimits("a test lens", LENS, frozenset(), (0.1, 50.0))


def test_the_range_is_rounded_outwards_onto_the_lens_steps_and_clipped_to_its_range():
    plan = SweepPlan.load(None)
    ranged = ranged_plan(plan, 0.5038, 1.4962, LIMITS, {"why": "test"})
    assert (ranged.low_dpt, ranged.high_dpt) == (0.5, 1.5)
    assert ranged.auto_range == {"why": "test", "chosen_dpt": [0.5, 1.5], "n_planes": 15, "n_planes_asked": 15}
    clipped = ranged_plan(plan, -2.5, 3.1, LIMITS, {})
    assert (clipped.low_dpt, clipped.high_dpt) == LENS
    with pytest.raises(AutoRangeError, match="leaves no sweep inside"):
        ranged_plan(plan, 3.0, 3.5, LIMITS, {})


def test_planes_are_capped_at_the_frames_a_sweep_has():
    """10 Hz at 60 fps: 6 frames a period, so 16 planes asked become 6 (every plane is a real frame); stepped plans
    keep theirs (one plane per set point)."""
    plan = SweepPlan.load(None, [("frequency_hz", 10.0), ("n_planes", 16)])
    ranged = ranged_plan(plan, 0.5, 1.5, LIMITS, {})
    assert ranged.n_planes == 6 and ranged.auto_range["n_planes_asked"] == 16 and ranged.plane_shortfall() is None
    stepped = SweepPlan.load(None, [("waveform", "stepped"), ("n_planes", 8)])
    assert ranged_plan(stepped, 0.5, 1.5, LIMITS, {}).n_planes == 8


def test_the_presweep_covers_the_lens_at_the_plans_frequency_or_faster():
    pre = presweep_plan(SweepPlan.load(None, [("frequency_hz", 10.0)]), LIMITS)
    assert (pre.waveform, pre.low_dpt, pre.high_dpt, pre.frequency_hz, pre.sweeps) == ("sine", *LENS, 10.0, 1)
    assert pre.strobe_channel is None and pre.sync_channel == 1  # events only, placed by the lens sync
    assert presweep_plan(SweepPlan.load(None, [("frequency_hz", 1.0)]), LIMITS).frequency_hz == 4.0
    slow_lens = FocusLimits("a slow lens", LENS, frozenset(), (0.1, 2.0))
    assert presweep_plan(SweepPlan.load(None), slow_lens).frequency_hz == 2.0
    hold = SweepPlan.load(None, [("waveform", "stepped"), ("n_planes", 1)])
    with pytest.raises(AutoRangeError, match="holds one focal power"):
        presweep_plan(hold, LIMITS)
    with pytest.raises(AutoRangeError, match="no dioptre calibration"):
        presweep_plan(SweepPlan.load(None), FocusLimits("a cef168", None, frozenset(), None,
                                                        no_focal_power="no dioptre calibration"))


def test_a_small_surface_beyond_the_percentiles_still_counts_where_strays_do_not():
    """Focus powers as the strong pixels give them: two big surfaces, a small one holding 0.6 % of the pixels (beyond
    the 99th percentile), and strays anywhere in the lens's range."""
    rng = np.random.default_rng(0)
    big = np.concatenate([rng.normal(0.6, 0.005, 1500), rng.normal(1.4, 0.005, 500)])
    small = rng.normal(2.45, 0.004, 12)
    strays = np.array([-1.5, -0.9, -0.2, 0.2, 1.0, 1.9, 2.2, 2.7])
    powers = np.concatenate([big, small, strays])
    lo, hi = np.quantile(powers, [0.01, 0.99])
    assert hi < 1.45  # the percentile alone misses the small surface
    assert cluster_ends(powers, lo, hi) == (lo, pytest.approx(small.max()))
    assert cluster_ends(np.concatenate([big, strays]), lo, hi) == (lo, hi)
    few = np.concatenate([big[::20], strays])  # 100 strong pixels: a stray is 1 %, still not a surface
    assert cluster_ends(few, 0.55, 1.45) == (0.55, 1.45)
