"""Sweep plans: TOML files, overrides, validation errors that name the file and key, derived figures."""

from __future__ import annotations

import pytest

from capture.plan import PLAN_DIR, PlanError, SweepPlan


@pytest.mark.parametrize("name", sorted(p.stem for p in PLAN_DIR.glob("*.toml")))
def test_shipped_plans_load(name):
    plan = SweepPlan.load(PLAN_DIR / f"{name}.toml")
    assert plan.period_s > 0 and len(plan.step_powers_dpt) == plan.n_planes
    assert plan.high_dpt > plan.low_dpt or (plan.waveform == "stepped" and plan.n_planes == 1)


def test_default_plan_and_overrides():
    plan = SweepPlan.load(None, [("plan.sweeps", 3), ("frequency_hz", 5.0), ("sync_channel", "none")])
    assert plan.sweeps_total == 3 and plan.period_s == 0.2 and plan.sync_channel is None
    assert plan.strobe_channel == 0  # from configs/plans/default.toml
    text = plan.to_toml()
    assert "[plan]" in text and "sweeps = 3" in text and "sync_channel" not in text


def test_duration_gives_whole_sweeps_and_stepped_set_points():
    plan = SweepPlan(waveform="stepped", low_dpt=0.5, high_dpt=2.5, n_planes=5, dwell_ms=50, duration_s=0.6)
    assert plan.step_powers_dpt == (0.5, 1.0, 1.5, 2.0, 2.5)
    assert plan.period_s == pytest.approx(0.25) and plan.sweeps_total == 3  # 0.6 s → 2.4 sweeps → 3
    assert SweepPlan(frequency_hz=10, sweeps=None, duration_s=None).sweeps_total is None  # until stopped


def test_expected_volume():
    plan = SweepPlan(frequency_hz=10, sweeps=20, frame_rate_hz=50, expected_event_rate_mev_s=1.0)
    v = plan.expected_volume((640, 480, 3))
    assert v["duration_s"] == 2.0 and v["frames"] == 100
    assert v["frames_bytes"] == 100 * 640 * 480 * 3 and v["events_bytes"] == 2.0e6 * 2.5


@pytest.mark.parametrize(("overrides", "message"), [
    ([("sweeps", 3), ("duration_s", 1.0)], "either sweeps or duration_s"),
    ([("low_dpt", 3.0), ("high_dpt", 1.0)], "must be above low_dpt"),
    ([("frame_rate_hz", 1000.0), ("exposure_us", 5000.0)], "exceeds the frame period"),
    ([("strobe_channel", 1), ("sync_channel", 1)], "different trigger inputs"),
    ([("waveform", "square")], "waveform"),
    ([("swepes", 3)], "unknown plan key"),
    ([("name_pattern", "{user}")], "name_pattern"),
])
def test_bad_plans_name_the_key(overrides, message):
    with pytest.raises(PlanError, match=message):
        SweepPlan.load(None, overrides)


def test_bad_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[plan]\nfrequency_hz = -1\n")
    with pytest.raises(PlanError, match=r"bad\.toml: frequency_hz"):
        SweepPlan.load(bad)
    bad.write_text("[plan\n")
    with pytest.raises(PlanError, match="not valid TOML"):
        SweepPlan.load(bad)
    with pytest.raises(PlanError, match="no such plan file"):
        SweepPlan.load(tmp_path / "missing.toml")


def test_only_a_stepped_plan_may_hold_one_power():
    hold = SweepPlan(waveform="stepped", low_dpt=1.2, high_dpt=1.2, n_planes=1, dwell_ms=500, sweeps=3)
    assert hold.step_powers_dpt == (1.2,) and hold.period_s == 0.5
    with pytest.raises(ValueError, match="n_planes must be at least 2"):
        SweepPlan(waveform="sine", n_planes=1)
    with pytest.raises(ValueError, match="must be above low_dpt"):
        SweepPlan(waveform="stepped", low_dpt=1.0, high_dpt=1.0, n_planes=3)


def test_plane_shortfall_names_the_frame_rate_or_sweep_frequency_that_would_cover_it():
    plan = SweepPlan(frequency_hz=4.0, frame_rate_hz=60.0, n_planes=15)
    assert plan.frames_per_stack() == pytest.approx(15.0) and plan.plane_shortfall() is None
    note = plan.plane_shortfall(16)
    assert "15 frames per period" in note and ">= 64 fps" in note and "<= 3.75 Hz" in note
    half = plan.model_copy(update={"stack_span": "half"})
    assert half.frames_per_stack() == pytest.approx(7.5)
    assert "7 frames per rising half" in half.plane_shortfall(8) and ">= 64 fps" in half.plane_shortfall(8)
    stepped = SweepPlan(waveform="stepped", n_planes=6, dwell_ms=10.0, frame_rate_hz=60.0)
    assert "dwell_ms >= 17.5" in stepped.plane_shortfall()
    assert SweepPlan(waveform="stepped", n_planes=6, dwell_ms=40.0, frame_rate_hz=60.0).plane_shortfall() is None
