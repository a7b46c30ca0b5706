"""Temporal calibration, focal indices, breathing and the stack builder against the simulated rig's ground truth.

One sweep period of a small simulated rig (RGB 160x120, a mirrored 128x96 event sensor, sine 0..4 dpt at 10 Hz,
120 fps frames, focus breathing 1 %/dpt) is captured the way the capture engine does it: the simulated cameras
are read chunk by chunk, the sync trigger's rising edge places the commanded sweep on the event clock.
"""

import numpy as np
import pytest

from calibration.breathing import estimate_breathing
from calibration.model import Calibration, CalibrationError, SpatialCalibration, TemporalCalibration
from calibration.pipeline import lag_from_sweeps
from calibration.stack import _unbreathe, build_focal_stack
from calibration.temporal import FocalBins, FocalModel, assign_focal_index, estimate_lag, frame_powers
from capture.sweep import CommandedSweep, SweepData
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics
from drivers.sim.rig import SimRig
from drivers.sim.scene import make_scene
from drivers.sim.trajectory import SweepTrajectory

RGB, EV = (160, 120), (128, 96)
BREATHING = 0.01


def make_rig(depths=(1.0, 2.0, 3.0), waveform="sine") -> SimRig:
    scene = make_scene(*RGB, depths=depths, seed=1)
    optics = SweepOptics(blur_px_per_dpt=16.0, breathing_per_dpt=BREATHING, breathing_ref_dpt=2.0)
    renderer = DefocusRenderer(scene, optics, EventGeometry.beam_splitter(RGB, EV))
    return SimRig(renderer, SweepTrajectory(10.0, 0.0, 4.0, waveform=waveform), frame_rate_hz=120.0,
                  exposure_us=1000.0, seed=1)


def capture_sweep(rig: SimRig) -> SweepData:
    """One period from the first sync edge, as the engine would hand it over."""
    cam = SimEventCamera(rig, chunk_us=10_000, threshold=0.1)
    cam.enable_trigger_in(rig.strobe_channel)
    cam.enable_trigger_in(rig.sync_channel)
    cam.start()
    period = rig.trajectory.period_us
    cds, trs, t_end = [], [], 0
    while t_end < period + 10_000:  # the period from the first sync edge (at 0), plus the held-back µs
        chunk = cam.read(1.0)
        cds.append(chunk.cd)
        trs.append(chunk.triggers)
        t_end = chunk.t_end_us
    cd, tr = concat_events(cds, EVENT_CD), concat_events(trs, EVENT_EXT_TRIGGER)
    sync = tr[(tr["id"] == rig.sync_channel) & (tr["p"] == 1)]
    t0 = int(sync["t"][0])
    commanded = CommandedSweep(rig.trajectory.waveform, 0.0, 4.0, float(t0), frequency_hz=10.0)
    t1 = t0 + round(period)
    fcam = SimFrameCamera(rig)
    frames = []
    k = 0
    while True:
        f = fcam.frame_at(k)
        k += 1
        if f.exposure_end_us > t1:
            break
        if f.exposure_start_us >= t0:
            frames.append(f)
    inside = (cd["t"] >= t0) & (cd["t"] < t1)
    return SweepData(0, t0, t1, cd[inside], tr[(tr["t"] >= t0) & (tr["t"] < t1)], tuple(frames), commanded, EV, RGB)


@pytest.fixture(scope="module")
def sim():
    rig = make_rig()
    return rig, capture_sweep(rig)


def test_lag_matches_the_trajectory_within_0_2_ms(sim):
    rig, sweep = sim
    fit = lag_from_sweeps([sweep])
    assert abs(fit.lag_us - rig.trajectory.lag_us) < 200.0
    assert fit.t_rise_us.size >= 20 and fit.residual_us < 100.0
    # t1 + t2 = T + 2τ: every accepted patch is a crossing pair around the background's 1 dpt.
    assert np.allclose(fit.patch_lags_us, 0.5 * (fit.t_rise_us + fit.t_fall_us - fit.period_us))
    assert np.median(np.abs(fit.power_dpt - 1.0)) < 0.1


def test_without_lag_correction_the_estimate_would_be_wrong(sim):
    """The estimator sees the lag: shifting the sync by 1 ms shifts the estimate by 1 ms."""
    rig, sweep = sim
    c = sweep.commanded
    shifted = CommandedSweep(c.waveform, c.low_dpt, c.high_dpt, c.t0_us - 1000.0, frequency_hz=c.frequency_hz)
    fit = estimate_lag(sweep.cd, shifted, EV)
    assert abs(fit.lag_us - (rig.trajectory.lag_us + 1000.0)) < 200.0


def test_a_lag_just_below_zero_is_not_read_a_period_late(sim):
    """A sync that comes after the lens (a negative lag) gives a negative lag, not one a whole period later."""
    rig, sweep = sim
    c = sweep.commanded
    late = CommandedSweep(c.waveform, c.low_dpt, c.high_dpt, c.t0_us + rig.trajectory.lag_us + 600.0,
                          frequency_hz=c.frequency_hz)
    fit = estimate_lag(sweep.cd, late, EV)
    assert abs(fit.lag_us - (-600.0)) < 200.0
    assert np.allclose(fit.patch_lags_us, fit.lag_us, atol=max(3 * fit.residual_us, 200.0))


def test_every_event_gets_its_true_focal_index_up_to_edge_jitter(sim):
    rig, sweep = sim
    model = FocalModel.from_calibration(sweep.commanded, lag_from_sweeps([sweep]).temporal())
    bins = FocalBins.for_model(model, 8, guard_fraction=0.05)
    k = assign_focal_index(sweep.cd["t"], model, bins)
    true_power = rig.trajectory.actual_dpt(sweep.cd["t"].astype(np.float64))
    k_true = bins.index_of_power(true_power)
    wrong = k != k_true
    assert wrong.mean() < 0.05
    edge_distance = np.min(np.abs(true_power[wrong, None] - bins.edges_dpt[None, :]), axis=1)
    assert np.all(edge_distance < 0.03)  # 0.2 ms of lag error at ≤ 126 dpt/s, plus the gain the model ignores
    both = wrong & (k >= 0) & (k_true >= 0)
    assert np.all(np.abs(k[both].astype(int) - k_true[both]) == 1)
    # Vectorised binning of the model's own power gives the same labels as the lookup-table kernel.
    assert np.array_equal(k, bins.index_of_power(model.power_dpt(sweep.cd["t"])))


def test_triangle_segments_are_linear_in_time():
    c = CommandedSweep("triangle", 0.0, 4.0, 0.0, frequency_hz=10.0)
    model = FocalModel(c, lag_us=500.0)
    bins = FocalBins.for_model(model, 4, guard_fraction=0.0)
    t = np.array([500 + 6250, 500 + 18750, 500 + 56250, 500 + 93750, 100_000 + 500 + 31250], np.int64)
    assert assign_focal_index(t, model, bins).tolist() == [0, 1, 3, 0, 2]


def test_stepped_sweeps_drop_the_settling_and_label_each_step():
    c = CommandedSweep("stepped", 0.0, 3.0, 0.0, step_powers_dpt=(0.0, 1.0, 2.0, 3.0), dwell_us=1000.0)
    model = FocalModel(c, lag_us=100.0)
    bins = FocalBins.for_model(model, 3, guard_fraction=0.1)  # edges 0.3, 1.1, 1.9, 2.7 dpt; 100 µs settling
    t = np.array([150, 250, 1150, 1250, 2250, 3500, 4050, 4250], np.int64)
    assert assign_focal_index(t, model, bins).tolist() == [-1, 0, -1, 0, 2, 2, 2, 0]


def test_frames_get_the_power_at_mid_exposure(sim):
    rig, sweep = sim
    model = FocalModel.from_calibration(sweep.commanded, TemporalCalibration(rig.trajectory.lag_us))
    powers = frame_powers(sweep.frames, model)
    truth = np.array([f.focal_power_dpt for f in sweep.frames])
    assert len(powers) == 12 and np.max(np.abs(powers - truth)) < 0.02


def test_breathing_is_recovered_from_a_sweep_of_a_planar_scene():
    rig = make_rig(depths=(2.0,))
    cam = SimFrameCamera(rig)
    frames = [cam.frame_at(k) for k in range(12)]
    b = estimate_breathing([f.image for f in frames], [f.focal_power_dpt for f in frames], ref_dpt=2.0)
    assert b.coeffs[0] == pytest.approx(BREATHING, rel=0.25)
    assert abs(b.centre_px[0] - 79.5) < 20 and abs(b.centre_px[1] - 59.5) < 20


def test_breathing_on_large_frames_registers_on_shrunk_low_passed_images():
    """At 480 px the low-pass (σ ≈ 10 px) lets ECC run on images shrunk 4×; the affine is mapped back exactly."""
    size = (480, 360)
    optics = SweepOptics(blur_px_per_dpt=48.0, breathing_per_dpt=BREATHING, breathing_ref_dpt=2.0)
    scene = make_scene(*size, depths=(2.0,), seed=1)
    renderer = DefocusRenderer(scene, optics, EventGeometry.beam_splitter(size, size))
    rig = SimRig(renderer, SweepTrajectory(10.0, 0.0, 4.0), frame_rate_hz=120.0, exposure_us=1000.0, seed=1)
    cam = SimFrameCamera(rig)
    frames = [cam.frame_at(k) for k in range(12)]
    b = estimate_breathing([f.image for f in frames], [f.focal_power_dpt for f in frames], ref_dpt=2.0)
    assert b.coeffs[0] == pytest.approx(BREATHING, rel=0.15)


def _ground_truth_planes(rig, sweep, bins, powers):
    """Events binned by their true power and mapped to the reference RGB grid through the true geometry (each
    plane's slice at that plane's power, as the stack builder resamples it)."""
    cd = sweep.cd
    true_power = rig.trajectory.actual_dpt(cd["t"].astype(np.float64))
    k = bins.index_of_power(true_power)
    geom, optics = rig.renderer.geometry, rig.renderer.optics
    out = np.zeros((bins.n, *RGB[::-1]))
    for i in range(bins.n):
        sel = k == i
        h = geom.homography @ optics.breathing_matrix(float(powers[i]), *RGB)  # ref RGB → event
        pts = np.column_stack([cd["x"][sel], cd["y"][sel]]).astype(np.float64)
        rgb = geom.map_points(pts, np.linalg.inv(h))
        x, y = np.round(rgb[:, 0]).astype(int), np.round(rgb[:, 1]).astype(int)
        ok = (x >= 0) & (x < RGB[0]) & (y >= 0) & (y < RGB[1])
        np.add.at(out[i], (y[ok], x[ok]), 1.0)
    return out


@pytest.fixture(scope="module")
def calibrated(sim):
    rig, sweep = sim
    fit = lag_from_sweeps([sweep])
    frames = [SimFrameCamera(make_rig(depths=(2.0,))).frame_at(k) for k in range(12)]
    breathing = estimate_breathing([f.image for f in frames], [f.focal_power_dpt for f in frames], ref_dpt=2.0)
    spatial = SpatialCalibration(RGB, EV, np.linalg.inv(rig.renderer.geometry.homography))
    return Calibration(spatial, fit.temporal(), breathing)


def test_stack_is_aligned_with_the_ground_truth(sim, calibrated):
    import cv2

    rig, sweep = sim
    cal = calibrated
    stack = build_focal_stack(sweep, cal, n_planes=6)
    assert stack.frames.shape == (6, 120, 160, 3) and stack.events.shape == (6, 2, 120, 160)
    assert np.all(np.diff(stack.focal_powers_dpt) > 0)
    assert stack.meta["calibration_id"] == cal.id and stack.meta["sweep_index"] == 0
    model = FocalModel.from_calibration(sweep.commanded, cal.temporal)
    bins = FocalBins.around(stack.focal_powers_dpt, model, 0.05)
    truth = _ground_truth_planes(rig, sweep, bins, stack.focal_powers_dpt)
    ours = stack.events.sum(axis=1)
    for i in range(6):
        a = cv2.GaussianBlur(ours[i], (0, 0), 1.5).ravel()
        b = cv2.GaussianBlur(truth[i].astype(np.float32), (0, 0), 1.5).ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.8, i
        # Counts are conserved (away from the border, where the simulator's breathing pulls black into view).
        assert ours[i, 4:-4, 4:-4].sum() == pytest.approx(truth[i, 4:-4, 4:-4].sum(), rel=0.05)


def _reference_grid_frames(sweep, cal):
    """Every frame of the sweep warped to the breathing reference at its modelled power, by index."""
    model = FocalModel.from_calibration(sweep.commanded, cal.temporal)
    powers = frame_powers(sweep.frames, model)
    return {f.index: (_unbreathe(f.image, cal.breathing, float(p)), float(p))
            for f, p in zip(sweep.frames, powers, strict=True)}


def test_every_plane_is_one_real_frame_at_its_own_power(sim, calibrated):
    """The no-blend rule: each plane is bit for bit one frame of the sweep (on the reference grid), at the power
    the lens had at that frame's mid-exposure; both halves interleave; no plane is a mix of two frames."""
    rig, sweep = sim
    stack = build_focal_stack(sweep, calibrated, n_planes=64, event_planes=False)
    by_index = _reference_grid_frames(sweep, calibrated)
    assert stack.n_planes == len(sweep.frames) == 12  # 120 fps over a 10 Hz period: every frame is a plane
    halves = set()
    for k, record in enumerate(stack.meta["planes"]):
        (index,) = record["frames"]
        image, power = by_index[index]
        assert np.array_equal(stack.frames[k], image), k
        assert stack.focal_powers_dpt[k] == pytest.approx(power)
        halves.add(record["half"])
    assert halves == {"rising", "falling"}
    # The model's power at mid-exposure is the lens' true power there (lag-corrected), to a few hundredths.
    truth = {f.index: rig.trajectory.actual_dpt(0.5 * (f.exposure_start_us + f.exposure_end_us)) for f in sweep.frames}
    for k, record in enumerate(stack.meta["planes"]):
        assert abs(stack.focal_powers_dpt[k] - truth[record["frames"][0]]) < 0.05
    assert stack.meta["planes_asked"] == 64 and stack.meta["frames_usable"] == 12


def test_fewer_planes_pick_the_frames_nearest_equal_spacing(sim, calibrated):
    _rig, sweep = sim
    full = build_focal_stack(sweep, calibrated, n_planes=64, with_events=False)
    four = build_focal_stack(sweep, calibrated, n_planes=4)
    p = full.focal_powers_dpt
    targets = np.linspace(p[0], p[-1], 4)
    expected = [p[np.argmin(np.abs(p - t))] for t in targets]
    assert np.allclose(four.focal_powers_dpt, expected)
    assert set(four.focal_powers_dpt) <= set(p)


def test_half_span_takes_the_rising_half_and_its_events(sim, calibrated):
    _rig, sweep = sim
    half = build_focal_stack(sweep, calibrated, n_planes=64, span="half", event_planes=False)
    full = build_focal_stack(sweep, calibrated, n_planes=64, event_planes=False)
    assert {r["half"] for r in half.meta["planes"]} == {"rising"}
    assert half.n_planes == 6 and half.meta["span"] == "half"
    # Each event fires once, in one half: the rising half's slices hold about half of the period's events.
    assert 0.3 < half.events.sum() / full.events.sum() < 0.7
    model = FocalModel.from_calibration(sweep.commanded, calibrated.temporal)
    k = assign_focal_index(sweep.cd["t"], model, FocalBins.around(half.focal_powers_dpt, model, 0.05,
                                                                    rising_only=True))
    assert not np.any(k[~model.rising(sweep.cd["t"])] >= 0)
    assert sum(half.meta["events_per_plane"]) == np.count_nonzero(k >= 0)


def test_event_slices_cover_the_interval_each_frame_stands_for(sim, calibrated):
    """Plane k's events are those fired between the powers halfway to its neighbours (turnaround guards dropped)."""
    _rig, sweep = sim
    stack = build_focal_stack(sweep, calibrated, n_planes=64, event_planes=False)
    model = FocalModel.from_calibration(sweep.commanded, calibrated.temporal)
    p = stack.focal_powers_dpt
    power = model.power_dpt(sweep.cd["t"])
    lo, hi = model.low_dpt + 0.05 * (model.high_dpt - model.low_dpt), model.high_dpt - 0.05 * (model.high_dpt
                                                                                                - model.low_dpt)
    inner = np.concatenate([[-np.inf], 0.5 * (p[1:] + p[:-1]), [np.inf]])
    for k in range(stack.n_planes):
        inside = (power >= max(inner[k], lo)) & (power < min(inner[k + 1], hi))
        assert abs(stack.meta["events_per_plane"][k] - np.count_nonzero(inside)) <= 0.002 * len(power) + 2, k
    assert stack.meta["edges_dpt"][1:-1] == pytest.approx((0.5 * (p[1:] + p[:-1])).tolist())


def test_stepped_sweep_averages_a_dwell_and_skips_settling(sim, calibrated):
    """Frames held at one set point are one plane (their mean); frames exposed while the lens settles are not."""
    from drivers.camera import Frame

    _rig, sweep = sim
    dwell = 20_000.0
    commanded = CommandedSweep("stepped", 0.0, 3.0, float(sweep.t_start_us), step_powers_dpt=(0.0, 1.0, 2.0, 3.0),
                               dwell_us=dwell)
    lag = calibrated.temporal.lag_us
    rng = np.random.default_rng(0)
    frames, values = [], {}
    for i, start in enumerate(np.arange(sweep.t_start_us + lag, sweep.t_start_us + lag + 4 * dwell, 5000.0)):
        img = rng.integers(0, 255, (*RGB[::-1], 3), dtype=np.uint8)
        frames.append(Frame(img, i, int(start) + 100, int(start) + 1100, "event"))
        values[i] = img
    stepped = SweepData(0, sweep.t_start_us, sweep.t_start_us + int(4 * dwell), sweep.cd[:0], sweep.triggers[:0],
                        tuple(frames), commanded, EV, RGB)
    cal = Calibration(calibrated.spatial, calibrated.temporal, None)
    stack = build_focal_stack(stepped, cal, n_planes=16, guard_fraction=0.1)
    assert stack.focal_powers_dpt.tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0])
    for k, record in enumerate(stack.meta["planes"]):
        # 4 frames per 20 ms dwell; the first (100 µs into the dwell, inside the 2 ms settling) is left out.
        assert record["frames"] == [4 * k + 1, 4 * k + 2, 4 * k + 3]
        mean = np.mean([values[i].astype(np.float32) for i in record["frames"]], axis=0)
        assert np.array_equal(stack.frames[k], np.round(mean).astype(np.uint8))


def test_stack_rejects_inconsistent_input(sim):
    rig, sweep = sim
    temporal = TemporalCalibration(rig.trajectory.lag_us)
    wrong = SpatialCalibration(RGB, (64, 48), np.eye(3))
    with pytest.raises(CalibrationError, match="inconsistent sizes"):
        build_focal_stack(sweep, Calibration(wrong, temporal), 4)
    with pytest.raises(CalibrationError, match="no spatial"):
        build_focal_stack(sweep, Calibration(None, temporal), 4)
    assert build_focal_stack(sweep, Calibration(None, temporal), 4, with_events=False).events is None


def test_cli_calibrates_the_timing_and_exports_stacks(sim, tmp_path):
    from typer.testing import CliRunner

    from app.cli import app
    from capture.focal_stack import FocalStack
    from tests.calibration_recordings import write_recording

    rig, sweep = sim
    rec = write_recording(tmp_path / "rec", sweep.cd, sweep.triggers, list(sweep.frames), EV, RGB, [sweep])
    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", str(rec), "--out", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    timing = Calibration.load(tmp_path / "t.json")
    assert timing.spatial is None and abs(timing.temporal.lag_us - rig.trajectory.lag_us) < 200
    assert "lens lag" in res.output and (tmp_path / "t.png").is_file()
    # Without geometry there is no event stack: one clear line, exit status 2.
    res = runner.invoke(app, ["stack", str(rec), "--calib", str(tmp_path / "t.json"), "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "no spatial part" in res.output
    spatial = SpatialCalibration(RGB, EV, np.linalg.inv(rig.renderer.geometry.homography))
    Calibration(spatial, timing.temporal).save(tmp_path / "c.json")
    for fmt, produced in (("npz", "sweep00000.npz"), ("eventstackmff", "event_stack/sweep00000/4.png")):
        res = runner.invoke(app, ["stack", str(rec), "--calib", str(tmp_path / "c.json"), "--out",
                                  str(tmp_path / fmt), "--format", fmt, "--planes", "4"])
        assert res.exit_code == 0, res.output
        assert (tmp_path / fmt / produced).is_file()
    stack = FocalStack.load_npz(tmp_path / "npz" / "sweep00000.npz")
    assert stack.n_planes == 4 and stack.events.shape == (4, 2, 120, 160) and stack.events.sum() > 1000


def test_events_time_each_pixels_focus_and_removing_them_gives_the_frames_only_result(sim, calibrated):
    """The stack carries each pixel's event-timed focus (close to the simulated layer depth where the events are
    strong); taking the events out of it — slices, focus and any refocused planes — fuses exactly as a stack built
    from the frames alone."""
    from fusion.engine import fuse

    rig, sweep = sim
    stack = build_focal_stack(sweep, calibrated, n_planes=24)
    assert stack.has_event_focus and stack.event_focus_dpt.shape == stack.shape
    depth = rig.renderer.scene.depth
    strong = np.isfinite(stack.event_focus_dpt) & (stack.event_focus_weight >= 2)
    assert strong.mean() > 0.05
    assert np.median(np.abs(stack.event_focus_dpt[strong] - depth[strong])) < 0.05
    frames_only = build_focal_stack(sweep, calibrated, n_planes=24, with_events=False)
    stripped = stack.without_events()
    assert np.array_equal(stripped.frames, frames_only.frames)
    a, b = fuse(stripped), fuse(frames_only)
    assert np.array_equal(a.all_in_focus, b.all_in_focus) and np.array_equal(a.depth_dpt, b.depth_dpt)
    with_events = fuse(stack)
    assert with_events.settings["event_focus_used"] and not a.settings["event_focus_used"]
    assert not np.array_equal(with_events.depth_dpt, a.depth_dpt)


def test_sparse_frames_get_planes_refocused_by_the_events(sim, calibrated):
    """A sweep with frames far apart (every third frame kept) gets refocused planes in its widest gaps, marked as
    such and made from the frame next to them; with events off there are none."""
    from dataclasses import replace

    _rig, sweep = sim
    sparse = replace(sweep, frames=sweep.frames[::3])
    stack = build_focal_stack(sparse, calibrated, n_planes=12)
    kinds = [p["kind"] for p in stack.meta["planes"]]
    assert kinds.count("frame") == 4 and kinds.count("refocused") >= 1
    assert stack.refocused.sum() == kinds.count("refocused") == stack.meta["refocus"]["planes"]
    assert 0.03 < stack.meta["refocus"]["threshold"] < 0.2   # the simulator's sensor fires at 0.1
    for k in np.flatnonzero(stack.refocused):
        record = stack.meta["planes"][k]
        assert record["frames"][0] in {f.index for f in sparse.frames}
        assert abs(record["powers_dpt"][0] - stack.focal_powers_dpt[k]) < 1e-9
    assert build_focal_stack(sparse, calibrated, n_planes=12, event_planes=False).n_planes == 4


def test_single_exposure_mode_refocuses_one_frame_over_the_range(sim, calibrated):
    """One frame (exposed nearest the middle of the range) and planes refocused from it by the events, evenly over
    the swept range: what the GUI's "single exposure" option and bench e2e's single-frame rows fuse."""
    from app.gui.fusion_job import FusionRequest, run_fusion

    _rig, sweep = sim
    stack = build_focal_stack(sweep, calibrated, n_planes=9, single_frame=True)
    kinds = [p["kind"] for p in stack.meta["planes"]]
    assert kinds.count("frame") == 1 and kinds.count("refocused") == 8 and stack.meta["single_frame"]
    (frame,) = [p for p in stack.meta["planes"] if p["kind"] == "frame"]
    assert all(p["frames"] == frame["frames"] for p in stack.meta["planes"])
    assert abs(frame["powers_dpt"][0] - 2.0) < 0.6  # the middle of the 0..4 dpt sweep
    fused = run_fusion(FusionRequest("test", 0, "classical", "cpu", 9, "period", True, sweep=sweep,
                                     calibration=calibrated))
    assert fused.stack.meta["single_frame"] and fused.stack.n_planes == 9
    with pytest.raises(CalibrationError, match="needs them"):
        build_focal_stack(sweep, calibrated, n_planes=9, single_frame=True, with_events=False)
