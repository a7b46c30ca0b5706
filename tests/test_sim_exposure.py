"""Lens trajectory and frame-camera physics: each check is against a closed form or an independent integration."""

import math

import cv2
import numpy as np
import pytest

from drivers.events.dtypes import EVENT_EXT_TRIGGER
from drivers.sim.exposure import FrameSchedule, SensorNoise, expose, subframe_count
from drivers.sim.optics import DefocusRenderer, SweepOptics
from drivers.sim.optotune_sim import LensModel, _zoh
from drivers.sim.scene import make_scene
from drivers.sim.trajectory import SweepTrajectory, trigger_events


def h_lens(lens, f):
    """The lens' transfer function written out independently: lag, then resonance."""
    s = 2j * math.pi * f
    w = 2 * math.pi * lens.resonance_hz
    return w * w / ((1 + s * lens.lag_s) * (s * s + 2 * lens.damping * w * s + w * w))


def up_crossings(t, d, level):
    """Times where d crosses level upwards (linear interpolation between samples)."""
    i = np.flatnonzero((d[:-1] < level) & (d[1:] >= level))
    return t[i] + (level - d[i]) / (d[i + 1] - d[i]) * (t[i + 1] - t[i])


def sharpness(rgb):
    y = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return float(np.var(cv2.Laplacian(y, cv2.CV_32F)))


# -- trajectory --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("waveform", ["sine", "triangle"])
def test_commanded_waveform_hits_low_high_and_mid_at_the_right_times(waveform):
    tr = SweepTrajectory(25.0, 0.5, 3.0, waveform=waveform, t0_us=1234.0)
    k = np.arange(-3, 4)
    T = 40_000.0
    np.testing.assert_allclose(tr.commanded_dpt(1234.0 + k * T), 0.5, atol=1e-12)
    np.testing.assert_allclose(tr.commanded_dpt(1234.0 + (k + 0.5) * T), 3.0, atol=1e-12)
    np.testing.assert_allclose(tr.commanded_dpt(1234.0 + (k + 0.25) * T), 1.75, atol=1e-12)
    t = np.linspace(0, 3 * T, 30_001)
    c = tr.commanded_dpt(t)
    assert c.min() >= 0.5 - 1e-12 and c.max() <= 3.0 + 1e-12
    if waveform == "triangle":  # equal time = equal diopter on each half
        p = tr.phase(t)
        rising = (p > 0.01) & (p < 0.49)
        np.testing.assert_allclose(np.diff(c)[rising[:-1]], 2.5 / (T / 2) * (t[1] - t[0]), rtol=1e-9)


@pytest.mark.parametrize("waveform,freq", [("sine", 5.0), ("sine", 40.0), ("triangle", 2.0), ("triangle", 20.0),
                                            ("rectangle", 5.0)])
def test_actual_matches_an_independent_time_stepped_integration_of_the_ld4_lens_model(waveform, freq):
    lens = LensModel()
    tr = SweepTrajectory(freq, 0.5, 3.0, waveform=waveform, lens=lens)
    dt = 1e-5
    ad, bd = _zoh(lens, dt)
    n_periods = math.ceil(0.1 * freq) + 2  # ≥ 100 ms: the 15 ms transient has decayed
    steps = round(n_periods / freq / dt)
    u = tr.commanded_dpt((np.arange(steps) + 0.5) * dt * 1e6)  # ZOH over each step: hold its midpoint value
    y = np.array([0.5, 0.5, 0.0])
    last = round(1 / freq / dt)
    out = np.empty(last)
    for i in range(steps):
        y = ad @ y + bd * u[i]
        if i >= steps - last:
            out[i - (steps - last)] = y[1]
    t_us = (np.arange(steps - last, steps) + 1) * dt * 1e6
    np.testing.assert_allclose(tr.actual_dpt(t_us), out, atol=2e-4)


def test_sine_is_attenuated_and_delayed_by_the_lens_transfer_function():
    f = 40.0
    tr = SweepTrajectory(f, 0.5, 3.0, waveform="sine")
    h = h_lens(tr.lens, f)
    t = np.linspace(0, 25_000, 250_000, endpoint=False)  # one whole period
    a = tr.actual_dpt(t)
    assert (a.max() - a.min()) / 2 == pytest.approx(abs(h) * 1.25, abs=1e-6)
    assert a.mean() == pytest.approx(1.75, abs=1e-6)
    assert tr.fundamental_gain == pytest.approx(abs(h), rel=1e-12)
    assert tr.lag_us == pytest.approx(-np.angle(h) / (2 * math.pi * f) * 1e6, abs=0.01)


@pytest.mark.parametrize("waveform,freq", [("sine", 10.0), ("sine", 60.0), ("triangle", 5.0), ("triangle", 30.0)])
def test_measured_mid_sweep_crossings_lag_the_command_by_lag_us_on_both_halves(waveform, freq):
    tr = SweepTrajectory(freq, 0.5, 3.0, waveform=waveform, t0_us=777.0)
    t = np.arange(0.0, 3 * tr.period_us, 0.5)
    c, a = tr.commanded_dpt(t), tr.actual_dpt(t)
    up = up_crossings(t, a, 1.75) - up_crossings(t, c, 1.75)
    down = up_crossings(t, -a, -1.75) - up_crossings(t, -c, -1.75)
    assert up.size == down.size == 3
    np.testing.assert_allclose(up, tr.lag_us, atol=0.05)
    np.testing.assert_allclose(down, tr.lag_us, atol=0.05)
    assert 0 < tr.lag_us < tr.period_us / 4  # a true delay; the triangle's ringing can push it past τ + 2ζ/ω₀


def test_rectangle_jumps_at_the_half_periods_and_the_lens_crosses_mid_level_lag_us_after_each_jump():
    tr = SweepTrajectory(5.0, 0.5, 3.0, waveform="rectangle", t0_us=777.0)
    T = tr.period_us
    assert tr.commanded_dpt(777.0) == 3.0 and tr.commanded_dpt(777.0 + T / 2) == 0.5  # high first, as the LD4
    assert tr.commanded_dpt(777.0 - 1e-3) == 0.5
    t = np.arange(0.0, 3 * T, 0.5)
    a = tr.actual_dpt(t)
    up = up_crossings(t, a, 1.75) - (777.0 + T * np.arange(3))
    down = up_crossings(t, -a, -1.75) - (777.0 + T * (np.arange(3) + 0.5))
    np.testing.assert_allclose(up, tr.lag_us, atol=0.05)
    np.testing.assert_allclose(down, tr.lag_us, atol=0.05)
    assert 1000 < tr.lag_us < 5000  # the step response's half-rise: lag τ plus the resonance's rise
    assert tr.power_range()[1] > 3.0  # the 150 Hz resonance overshoots the step


def test_slow_triangle_is_the_command_delayed_by_the_ramp_lag_with_unchanged_slope():
    tr = SweepTrajectory(2.0, 0.5, 3.0, waveform="triangle")
    assert tr.lag_us == pytest.approx(tr.lens.ramp_lag_s * 1e6, abs=0.05)  # τ + 2ζ/ω₀
    t = np.linspace(0.1, 0.4, 1001) * tr.period_us  # mid-ramp, far from the turnarounds' ringing
    np.testing.assert_allclose(tr.actual_dpt(t), tr.commanded_dpt(t - tr.lag_us), atol=1e-6)


def test_sync_phase_gives_lag_by_up_down_symmetry_for_any_plane():
    """§8 with the sync edge at the sweep start (not at mid-rise): t₁ + t₂ = T + 2τ for any plane D*."""
    tr = SweepTrajectory(30.0, 0.5, 3.0, waveform="sine", t0_us=500.0)
    edges, pol = tr.sync_edges(0.0, 2 * tr.period_us)
    rise = edges[pol == 1][0]
    t = np.arange(rise, rise + tr.period_us, 0.25)
    a = tr.actual_dpt(t)
    for d_star in (0.9, 1.75, 2.6):
        t1 = up_crossings(t, a, d_star)[0] - rise
        t2 = up_crossings(t, -a, -d_star)[0] - rise
        assert (t1 + t2 - tr.period_us) / 2 == pytest.approx(tr.lag_us, abs=0.2)


def test_sync_edges_alternate_once_per_half_period_at_the_commanded_turnarounds():
    tr = SweepTrajectory(25.0, 0.5, 3.0, waveform="triangle", t0_us=1000.0)
    times, pol = tr.sync_edges(1000.0, 1000.0 + 5 * tr.period_us)
    assert times.size == 10 and pol.dtype == np.int16
    np.testing.assert_allclose(np.diff(times), tr.period_us / 2)
    assert pol[0] == 1 and np.all(np.diff(pol) != 0)
    np.testing.assert_allclose(tr.commanded_dpt(times[pol == 1]), 0.5, atol=1e-9)
    np.testing.assert_allclose(tr.commanded_dpt(times[pol == 0]), 3.0, atol=1e-9)
    assert tr.sync_edges(1000.1, 1000.0 + tr.period_us / 2)[0].size == 0  # half-open window
    ev = trigger_events(times, pol, channel=1)
    assert ev.dtype == EVENT_EXT_TRIGGER and np.all(ev["id"] == 1) and np.array_equal(ev["p"], pol)


# -- exposure ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def focus_setup():
    scene = make_scene(96, 64, depths=(1.75,), seed=3)
    renderer = DefocusRenderer(scene, SweepOptics(blur_px_per_dpt=8.0))
    tr = SweepTrajectory(20.0, 0.5, 3.0, waveform="sine")
    t_focus = tr.period_us / 4 + tr.lag_us  # the actual power crosses 1.75 dpt (the layer's focus) here
    return renderer, tr, t_focus


def test_short_exposure_is_one_render_at_the_mid_exposure_power(focus_setup):
    renderer, tr, t_focus = focus_setup
    t0, t1 = t_focus - 100.0, t_focus + 20.0
    assert subframe_count(renderer, tr, t0, t1) == 1
    single = renderer.render_rgb(float(tr.actual_dpt(0.5 * (t0 + t1))))
    np.testing.assert_allclose(expose(renderer, tr, t0, t1), single, atol=1e-6)
    np.testing.assert_allclose(expose(renderer, tr, t0, t1, n_sub=8), single, atol=2e-3)


def test_long_exposure_across_focus_is_blurrier_than_a_short_one(focus_setup):
    renderer, tr, t_focus = focus_setup
    short = expose(renderer, tr, t_focus - 50.0, t_focus + 50.0)
    half = tr.period_us / 8
    assert subframe_count(renderer, tr, t_focus - half, t_focus + half) > 20
    long = expose(renderer, tr, t_focus - half, t_focus + half)
    assert sharpness(long) < 0.5 * sharpness(short)
    assert long.mean() == pytest.approx(short.mean(), rel=0.02)  # blur redistributes light, does not remove it


def test_subframes_follow_the_path_length_through_a_turnaround(focus_setup):
    renderer, tr, _ = focus_setup
    top = tr.period_us / 2 + tr.lag_us  # near the high turnaround: D goes up and back down
    travel = 2 * (tr.actual_dpt(top) - tr.actual_dpt(top - 2000.0))
    n = subframe_count(renderer, tr, top - 2000.0, top + 2000.0)
    assert n == pytest.approx(travel * 8.0 / 0.5, abs=2)


# -- sensor noise ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gaussian_above_e", [np.inf, 100.0])
def test_flat_field_mean_and_variance_follow_poisson_gaussian(gaussian_above_e):
    sensor = SensorNoise(full_well_e=10_000.0, electrons_per_unit=5_000.0, read_noise_e=4.0, bit_depth=12,
                         gaussian_above_e=gaussian_above_e)
    flat = np.full((256, 256, 3), 0.4, np.float32)
    raw = sensor.apply(flat, np.random.default_rng(11))
    img = raw.astype(np.float64)
    g = sensor.gain_e_per_dn
    signal_e = 0.4 * 5_000.0
    assert raw.dtype == np.uint16 and img.mean() == pytest.approx(signal_e / g, rel=2e-3)
    expected_var = (signal_e + 4.0 ** 2) / g ** 2 + 1 / 12
    assert img.var() == pytest.approx(expected_var, rel=0.03)  # σ of the sample variance ≈ 0.5 %


def test_gaussian_limit_keeps_poisson_below_its_threshold():
    """Dim pixels stay Poisson in the fast mode: 5 e⁻ at 0.25 e⁻/DN keeps the integer electron ladder."""
    fast = SensorNoise(full_well_e=10_000.0, read_noise_e=0.0, bit_depth=16, e_per_dn=0.25, gaussian_above_e=100.0)
    dim = fast.apply(np.full((200, 200), 5.0 / 5_000.0), np.random.default_rng(3)).astype(np.float64)
    assert np.all(dim % 4 == 0)  # whole electrons only
    assert dim.mean() / 4 == pytest.approx(5.0, rel=0.02) and dim.var() / 16 == pytest.approx(5.0, rel=0.05)
    bright = fast.apply(np.full((200, 200), 2_000.0 / 5_000.0), np.random.default_rng(3)).astype(np.float64)
    assert np.mean(bright % 4 == 0) < 0.5  # the Gaussian limit is continuous before quantisation
    assert bright.mean() / 4 == pytest.approx(2_000.0, rel=2e-3) and bright.var() / 16 == pytest.approx(2_000.0,
                                                                                                      rel=0.05)


def test_read_noise_alone_sets_the_dark_variance_at_high_gain():
    sensor = SensorNoise(full_well_e=10_000.0, read_noise_e=6.0, bit_depth=16, e_per_dn=0.5)
    dark = np.full((256, 256), 100.0 / 5_000.0)  # 100 e- keeps the clip at 0 out of reach
    img = sensor.apply(dark, np.random.default_rng(5)).astype(np.float64)
    assert img.var() == pytest.approx((100.0 + 36.0) / 0.25 + 1 / 12, rel=0.03)


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (10, np.uint16), (12, np.uint16), (16, np.uint16)])
def test_bit_depth_dtype_and_saturation(bits, dtype):
    max_dn = (1 << bits) - 1
    rng = np.random.default_rng(0)
    sensor = SensorNoise(bit_depth=bits, read_noise_e=3.0)
    # full well maps to the top code: a saturated well still carries read noise, so codes sit just below the top
    bright = sensor.apply(np.full((32, 32, 3), 50.0), rng)
    assert bright.dtype == dtype and bright.max() == max_dn
    assert bright.min() >= max_dn - 6 * 3.0 / sensor.gain_e_per_dn - 1
    # an ADC range below full well clips first: every saturated pixel reads exactly the top code
    adc_clips = SensorNoise(bit_depth=bits, read_noise_e=3.0, e_per_dn=0.9 * 10_000.0 / max_dn)
    assert np.all(adc_clips.apply(np.full((32, 32, 3), 50.0), rng) == max_dn)
    dark = sensor.apply(np.zeros((32, 32)), rng)  # read noise around 0, clipped: never negative codes
    assert dark.min() == 0 and dark.max() <= 6 * 3.0 / sensor.gain_e_per_dn + 1


def test_srgb_and_gamma_outputs_encode_the_normalised_signal():
    lin = np.full((64, 64), 0.18 * 2.0)  # 18 % of full well: 1800 of 10000 e-
    sensor = SensorNoise(electrons_per_unit=5_000.0, read_noise_e=0.0, bit_depth=8, output="srgb")
    srgb = sensor.apply(lin, np.random.default_rng(1)).astype(float)
    assert srgb.mean() == pytest.approx(255 * (1.055 * 0.18 ** (1 / 2.4) - 0.055), abs=0.5)
    gam = SensorNoise(electrons_per_unit=5_000.0, read_noise_e=0.0, output="gamma", gamma=2.2)
    assert gam.apply(lin, np.random.default_rng(1)).astype(float).mean() == pytest.approx(255 * 0.18 ** (1 / 2.2),
                                                                                          abs=0.5)


def test_noise_is_deterministic_for_a_seed():
    sensor = SensorNoise(bit_depth=10)
    lin = np.random.default_rng(9).uniform(0, 1.5, (40, 30, 3))
    a = sensor.apply(lin, np.random.default_rng(42))
    assert np.array_equal(a, sensor.apply(lin, np.random.default_rng(42)))
    assert not np.array_equal(a, sensor.apply(lin, np.random.default_rng(43)))


# -- frame schedule ----------------------------------------------------------------------------------------------
def test_free_running_schedule_timing_and_strobe_pairing():
    sched = FrameSchedule.free_running(50.0, 5_000.0, 0.0, 200_000.0, first_start_us=1_000.0)
    assert sched.starts_us.size == 10
    np.testing.assert_allclose(np.diff(sched.starts_us), 20_000.0)
    np.testing.assert_allclose(sched.ends_us - sched.starts_us, 5_000.0)
    np.testing.assert_allclose(sched.mid_us, sched.starts_us + 2_500.0)
    times, pol = sched.strobe_edges()
    assert np.all(np.diff(times) > 0) and np.array_equal(pol, np.tile([1, 0], 10))
    np.testing.assert_allclose(times[pol == 1], sched.starts_us)
    np.testing.assert_allclose(times[pol == 0] - times[pol == 1], 5_000.0)
    with pytest.raises(ValueError):
        FrameSchedule.free_running(50.0, 25_000.0, 0.0, 1e5)


def test_triggered_schedule_drops_overtriggers_and_reports_mid_exposure_power():
    triggers = np.array([0.0, 10_000.0, 12_000.0, 30_000.0])  # the 12 ms trigger lands in an open exposure
    sched = FrameSchedule.triggered(triggers, 4_000.0, trigger_delay_us=15.0)
    np.testing.assert_allclose(sched.starts_us, [15.0, 10_015.0, 30_015.0])
    assert sched.strobe_edges()[0].size == 6
    tr = SweepTrajectory(20.0, 0.5, 3.0)
    np.testing.assert_allclose(sched.mid_dpt(tr), tr.actual_dpt(sched.starts_us + 2_000.0))
