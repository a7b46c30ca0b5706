"""Sweep plans are checked against the configured lens before anything moves: one message naming the limit, by
``capture --dry-run`` and again once the lens has told its own range; a capture never starts a sweep the lens
refuses (that path used to leave the capture hanging)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import load_config
from capture.plan import PLAN_DIR, PlanError, SweepPlan
from drivers.config import LensConfig
from drivers.focus import FocusCapabilities, Waveform
from drivers.focus_limits import LD4_FREQUENCY_RANGE_HZ, FocusLimits, connected_limits, expected_limits, lens_limits
from drivers.optotune import protocol as p
from drivers.registry import make_focus_actuator

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SMALL = ["--set", "sim.rgb_size=[48,36]", "--set", "sim.event_size=[48,36]", "--set", "sim.realtime=false",
         "--set", "plan.min_free_mib=0"]


def test_the_simulated_ld4s_range_is_known_before_connecting_and_is_what_it_reports():
    cfg = LensConfig(port="optosim://plan-lens-range")
    expected = expected_limits(cfg).focal_power_range_dpt
    with make_focus_actuator(cfg) as lens:
        reported = lens.capabilities.focal_power_range_dpt
    assert expected == reported == (-1.8, 2.8)  # exactly: the wire's grid values, not their float noise
    assert expected[0] < 0 < 2.5 < expected[1]  # the default plan's 0..2.5 dpt fits


@pytest.mark.parametrize("fw_type", [b"A", b"F"])
def test_focal_powers_decode_onto_the_ld4s_grid(fw_type):
    """Raw 640 on type A firmware is -1.8 dpt; ``640 / 200 - 5`` gave -1.7999999999999998, so the decoded range
    refused a plan at -1.8 that --dry-run had passed."""
    raw = np.arange(-32768, 32768)
    dpt = np.array([p.decode_focal_power(int(r), fw_type) for r in raw])
    assert np.array_equal(dpt, np.round(dpt, 3))  # every value is its 0.005 dpt grid point, to the last bit
    assert [p.encode_focal_power(float(d), fw_type) for d in dpt] == raw.tolist()


def test_a_capture_to_the_ends_of_the_simulated_ld4s_range_runs(tmp_path):
    """Both ends exactly as the lens reports them: -1.8 dpt used to pass --dry-run and then be refused as outside
    "-1.8 … 2.8"."""
    args = ["capture", "--out", str(tmp_path), "--sweeps", "1", *SMALL, "--set", "lens.port=optosim://plan-lens-ends",
            "--set", "plan.low_dpt=-1.8", "--set", "plan.high_dpt=2.8", "--set", "plan.sync_channel=none"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "capture finished: 1 sweeps" in result.output


def test_a_stepped_plans_last_set_point_an_ulp_past_the_lens_end_is_that_end():
    """0.1 … 2.8 dpt in 20 steps computes its last set point as 2.8000000000000003: the same wire code as 2.8."""
    plan = SweepPlan(waveform="stepped", low_dpt=0.1, high_dpt=2.8, n_planes=20)
    assert plan.step_powers_dpt[-1] > 2.8
    with make_focus_actuator(LensConfig(port="optosim://plan-lens-ulp")) as lens:
        plan.check_lens(lens_limits(lens))
        for power in plan.step_powers_dpt:
            lens.set_focal_power(power)
        with pytest.raises(ValueError, match=r"focal power \(dpt\) 2\.805 is outside the range -1\.8 … 2\.8"):
            lens.set_focal_power(2.805)
    noisy = FocusLimits("a lens", (math.nextafter(-1.8, 0.0), 2.8), frozenset({Waveform.SINE}), None)
    SweepPlan(low_dpt=-1.8, high_dpt=2.8).check_lens(noisy)  # a range end off by float noise is still that end
    with pytest.raises(PlanError, match=r"plan\.low_dpt = -1\.801 dpt is outside"):
        SweepPlan(low_dpt=-1.801, high_dpt=2.8).check_lens(noisy)


def test_a_real_ld4s_range_is_only_known_once_connected():
    cfg = LensConfig(port="/dev/ttyACM0")
    assert expected_limits(cfg).focal_power_range_dpt is None
    caps = FocusCapabilities("mA", (-290.0, 290.0), (-2.0, 3.0), frozenset({Waveform.SINE}), None, False)
    limits = connected_limits(cfg, caps)
    assert limits.focal_power_range_dpt == (-2.0, 3.0) and limits.frequency_range_hz == LD4_FREQUENCY_RANGE_HZ
    with pytest.raises(PlanError, match=r"plan\.high_dpt = 3\.5 dpt is outside the focal-power range -2 … 3 dpt of "
                                        r"the Optotune Lens Driver 4 on /dev/ttyACM0"):
        SweepPlan(high_dpt=3.5).check_lens(limits)


@pytest.mark.parametrize("plan, match", [
    (SweepPlan(high_dpt=1e6), r"plan\.high_dpt = 1e\+06 dpt is outside the focal-power range -1\.8 … 2\.8 dpt"),
    (SweepPlan(low_dpt=-3.0), r"plan\.low_dpt = -3 dpt is outside the focal-power range"),
    (SweepPlan(waveform="stepped", low_dpt=0.5, high_dpt=4.0), r"plan\.high_dpt = 4 dpt is outside"),
    (SweepPlan(frequency_hz=0.0001), r"plan\.frequency_hz = 0\.0001 Hz is below the lowest sweep frequency .*0\.001"),
])
def test_plans_outside_the_simulated_ld4_are_refused_naming_the_limit(plan, match):
    with pytest.raises(PlanError, match=match):
        plan.check_lens(expected_limits(LensConfig(port="optosim://plan-lens-limits")))


def test_plans_inside_the_lens_pass():
    limits = expected_limits(LensConfig(port="optosim://plan-lens-ok"))
    for plan in (SweepPlan(), SweepPlan(waveform="triangle", low_dpt=-1.8, high_dpt=2.8),
                 SweepPlan(waveform="stepped", n_planes=1, low_dpt=1.0, high_dpt=1.0)):
        plan.check_lens(limits)
    # a held set point uses low_dpt only: its high_dpt may be anything
    SweepPlan(waveform="stepped", n_planes=1, low_dpt=1.0, high_dpt=1.0).check_lens(limits)


def test_a_lens_without_a_generator_waveform_or_dioptres_is_named():
    cef = expected_limits(LensConfig(backend="pinefeat-cef168", port="cefsim://plan-cef"))
    with pytest.raises(PlanError, match="cef168 no dioptre calibration"):
        SweepPlan().check_lens(cef)
    caps = FocusCapabilities("steps", (0.0, 1000.0), (0.0, 3.0), frozenset(), None, False)
    with pytest.raises(PlanError, match=r"plan\.waveform = 'sine': .* cannot sweep that way; it runs triangle, "
                                        r"stepped"):
        SweepPlan().check_lens(connected_limits(LensConfig(backend="pinefeat-cef168", port="cefsim://c"), caps))


def test_dry_run_refuses_a_plan_beyond_the_lens():
    result = runner.invoke(app, ["capture", "--set", "plan.high_dpt=1e6", "--dry-run"])
    assert result.exit_code == 2
    assert "error: plan.high_dpt = 1e+06 dpt is outside the focal-power range -1.8 … 2.8 dpt" in result.output
    assert "[plan]" not in result.output  # refused before the plan is printed as if it could run


def test_a_plan_error_on_the_command_line_names_the_set_option():
    with pytest.raises(PlanError) as exc:
        SweepPlan.load(overrides=[("plan.high_dpt", "abc")])
    assert str(exc.value).startswith("--set plan.high_dpt=abc: high_dpt: ")
    with pytest.raises(PlanError) as exc:
        SweepPlan.load(overrides=[("plan.exposure_us", 1e6)])
    assert "default.toml with --set plan.exposure_us=1e+06: exposure_us 1e+06 exceeds the frame period" in \
        str(exc.value)


def test_capture_beyond_the_lens_exits_with_one_line_and_does_not_hang(tmp_path):
    """Out of process, so that a hang fails the test instead of stopping the suite."""
    cmd = [sys.executable, "-m", "app.cli", "capture", "--out", str(tmp_path), "--sweeps", "1", *SMALL,
           "--set", "lens.port=optosim://plan-lens-capture", "--set", "plan.high_dpt=1e6"]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("capture hung after the lens refused the plan")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "plan.high_dpt = 1e+06 dpt is outside the focal-power range" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing was recorded


@pytest.mark.parametrize("preset", sorted(p.name for p in PLAN_DIR.glob("*.toml")))
def test_every_preset_plan_runs_on_the_default_simulated_rig(preset):
    """The stepped preset once stepped to 3 dpt, beyond the simulated LD4's 2.8: its capture failed mid-way."""
    SweepPlan.load(PLAN_DIR / preset).check_lens(expected_limits(load_config().lens))
