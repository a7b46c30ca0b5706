"""Physics of the simulated rig: ESIM event generation, thin-lens defocus with occlusion, breathing, homography.

Each test checks a quantity the model predicts in closed form, so a broken model fails rather than drifts.
"""

import itertools

import cv2
import numpy as np
import pytest

from drivers.events.dtypes import EVENT_CD
from drivers.sim.esim import EventSensorModel, adaptive_samples
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics, disc_kernel, render_rgb
from drivers.sim.scene import Layer, Scene, dead_leaves, ellipse_mask, half_plane_mask, make_scene, slanted_depth


def clean_sensor(width, height, **kw):
    kw = {"sigma": 0.0, "refractory_us": 0, "noise_rate_hz": 0.0, **kw}
    return EventSensorModel(width, height, **kw)


def luma(rgb):
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def sharpness(img, mask):
    return float(np.var(cv2.Laplacian(img, cv2.CV_32F)[mask]))


# -- ESIM ---------------------------------------------------------------------------------------------------------
def test_linear_ramp_gives_events_exactly_c_over_slope_apart():
    slope = 0.001  # ln units per µs -> C/slope = 200 µs with C = 0.2
    sensor = clean_sensor(3, 1)
    offsets = np.array([0.0, 0.05, -0.13])  # residual phase per pixel: crossings shift by offset/slope
    times = np.arange(0, 9_990, 37.0)  # samples unrelated to the crossing times
    events = [sensor.step((offsets + slope * t)[None, :], t) for t in times]
    ev = np.concatenate(events)
    for x, off in enumerate(offsets):
        t = ev["t"][ev["x"] == x]
        assert np.all(ev["p"][ev["x"] == x] == 1)
        expected = (off + 0.2 * np.arange(1, 60) - off) / slope  # levels L_0 + kC, L_0 = off
        expected = expected[expected <= times[-1]]
        np.testing.assert_array_equal(t, np.floor(expected + 0.5).astype(np.int64))
        assert np.all(np.diff(t) == 200)


@pytest.mark.parametrize("delta", [0.05, 0.19, 0.21, 1.05, 2.39, -0.39, -1.01])
def test_step_gives_floor_delta_over_c_events_spread_over_the_interval(delta):
    sensor = clean_sensor(1, 1)
    sensor.step(np.zeros((1, 1)), 1_000)
    ev = sensor.step(np.full((1, 1), delta), 2_000)
    n = int(np.floor(abs(delta) / 0.2))
    assert ev.dtype == EVENT_CD and len(ev) == n
    assert np.all(ev["p"] == (1 if delta > 0 else 0))
    expected = 1_000 + 0.2 * np.arange(1, n + 1) / abs(delta) * 1_000
    np.testing.assert_array_equal(ev["t"], np.floor(expected + 0.5).astype(np.int64))
    np.testing.assert_allclose(sensor.reference, np.sign(delta) * 0.2 * n, atol=1e-12)


def test_sinusoid_gives_balanced_on_off_and_consistent_reference():
    h, w = 10, 20
    rng = np.random.default_rng(1)
    phase = rng.uniform(0, 2 * np.pi, (h, w))
    sensor = EventSensorModel(w, h, sigma=0.03, refractory_us=0, noise_rate_hz=0.0, seed=3)
    period = 10_000.0
    ev = np.concatenate([sensor.step(1.3 * np.sin(2 * np.pi * t / period + phase), t)
                         for t in np.arange(0, 5 * period + 1, 50.0)])
    idx = ev["y"].astype(np.int64) * w + ev["x"]
    n_on = np.bincount(idx[ev["p"] == 1], minlength=h * w)
    n_off = np.bincount(idx[ev["p"] == 0], minlength=h * w)
    # L is back to its start: L_ref moved by n_on·C+ − n_off·C− and must stay within one threshold of it.
    net = n_on * sensor.c_pos - n_off * sensor.c_neg
    assert np.all(np.abs(net) < np.maximum(sensor.c_pos, sensor.c_neg) + 1e-9)
    assert abs(n_on.sum() / n_off.sum() - 1) < 0.05
    # Each rising swing of 2.6 ln starts from an L_ref up to C− above the trough and stops up to C+ below the
    # crest, so it gives between (2.6 − C+ − C−)/C+ and 2.6/C+ events (the pixel's hysteresis); 5 periods.
    assert np.all(n_on >= 5 * (2.6 - sensor.c_pos - sensor.c_neg) / sensor.c_pos - 1)
    assert np.all(n_on <= 5 * 2.6 / sensor.c_pos + 1)


def test_sinusoid_with_equal_thresholds_balances_per_pixel():
    sensor = clean_sensor(4, 1)
    phase = np.array([0.0, 0.7, 1.9, 3.0])
    ev = np.concatenate([sensor.step((np.sin(2 * np.pi * t / 4_000 + phase))[None, :], t)
                         for t in np.arange(0, 3 * 4_000 + 1, 25.0)])
    for x in range(4):
        p = ev["p"][ev["x"] == x]
        assert abs(int((p == 1).sum()) - int((p == 0).sum())) <= 1


def test_refractory_suppresses_events_but_reference_keeps_advancing():
    sensor = clean_sensor(1, 1, refractory_us=120)
    # Fast ramp: crossings every 50 µs at t = 50, 100, ..., 500 (L from 0 to 2.0).
    ev = np.concatenate([sensor.step(np.full((1, 1), 0.004 * t), t) for t in np.arange(0, 501, 10.0)])
    np.testing.assert_array_equal(ev["t"], [50, 200, 350, 500])
    np.testing.assert_allclose(sensor.reference, 2.0, atol=1e-9)  # all 10 crossings moved L_ref
    # Slow ramp down from 2.0: the first OFF event is at L = L_ref − C = 1.8, not relative to an emitted level.
    ev = np.concatenate([sensor.step(np.full((1, 1), 2.0 - 0.0001 * (t - 1_000)), t)
                         for t in np.arange(1_000, 4_001, 100.0)])
    assert ev["p"][0] == 0 and ev["t"][0] == 3_000


def test_seeded_model_is_deterministic_and_seed_matters():
    rng = np.random.default_rng(0)
    frames = [rng.normal(0, 0.5, (12, 16)) for _ in range(6)]

    def run(seed):
        s = EventSensorModel(16, 12, noise_rate_hz=50.0, n_hot=3, seed=seed)
        return np.concatenate([s.step(f, 1_000 * k) for k, f in enumerate(frames)])

    a, b, c = run(7), run(7), run(8)
    assert len(a) > 100
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    assert np.all(np.diff(a["t"]) >= 0)


def test_background_noise_rate_and_hot_pixels():
    flat = np.zeros((40, 50))
    s = EventSensorModel(50, 40, noise_rate_hz=5.0, seed=1)
    ev = np.concatenate([s.step(flat, t) for t in np.linspace(0, 1e6, 11)])
    expected = 5.0 * 50 * 40  # per second
    assert abs(len(ev) - expected) < 5 * np.sqrt(expected)
    assert abs(np.mean(ev["p"]) - 0.5) < 0.05
    s = EventSensorModel(50, 40, noise_rate_hz=0.0, n_hot=2, hot_rate_hz=1_000.0, seed=1)
    ev = np.concatenate([s.step(flat, t) for t in np.linspace(0, 1e6, 11)])
    assert len(np.unique(ev["y"].astype(np.int64) * 50 + ev["x"])) == 2
    assert abs(len(ev) - 2_000) < 5 * np.sqrt(2_000)


def test_adaptive_samples_bound_log_change():
    img = np.linspace(0, 1, 8)[None, :]
    samples = list(adaptive_samples(lambda t: img * np.sin(t / 1_000.0) * 3, 0.0, 10_000.0, threshold=0.2,
                                    max_dt_us=500.0))
    t = np.array([s[0] for s in samples])
    steps = [np.max(np.abs(b[1] - a[1])) for a, b in itertools.pairwise(samples)]
    assert t[0] == 0 and t[-1] == 10_000 and np.all(np.diff(t) > 0)
    assert max(steps) <= 0.1 + 1e-12


# -- defocus optics -----------------------------------------------------------------------------------------------
def test_in_focus_render_is_the_all_in_focus_radiance():
    scene = make_scene(64, 48, depths=(1.0, 1.0), seed=2)
    out = render_rgb(scene, 1.0, SweepOptics(blur_px_per_dpt=10.0))
    np.testing.assert_allclose(out, scene.radiance, atol=1e-5)


def test_disc_kernel_is_a_pixel_integrated_disc():
    np.testing.assert_array_equal(disc_kernel(0.5), [[0, 0, 0], [0, 1, 0], [0, 0, 0]])  # fits in one pixel
    for r in (2.5, 6.0, 10.0):  # below ~2 px sampling the pixel-integrated disc at pixel centres aliases
        k = disc_kernel(r)
        x = np.arange(k.shape[0]) - k.shape[0] // 2
        assert abs(float(k.sum()) - 1) < 1e-6
        # disc (r²/4 per axis) convolved with the pixel's box (1/12)
        assert float((k.sum(axis=0) * x**2).sum()) == pytest.approx(r**2 / 4 + 1 / 12, rel=0.04)


def test_each_layer_is_sharpest_when_focused_on_its_depth():
    depths = (0.5, 1.5, 3.0)
    scene = make_scene(160, 120, depths=depths, seed=4)
    optics = SweepOptics(blur_px_per_dpt=8.0, focus_offset_dpt=0.3)
    r = DefocusRenderer(scene, optics)
    powers = np.round(np.arange(-0.5, 3.01, 0.05), 2)
    images = [luma(r.render_rgb(p)) for p in powers]
    for d in depths:
        # away from the other layers' edges, which their blur (up to 10 px here) moves with D
        region = cv2.erode((scene.depth == np.float32(d)).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
        assert region.sum() > 300
        scores = np.array([sharpness(img, region) for img in images])
        # Blur circles that fit in a pixel (|ΔD| <= 0.15 dpt here) leave the image unchanged: the focus measure
        # has a flat top (the pixel-limited depth of field), centred on the layer's depth.
        top = powers[scores >= 0.999 * scores.max()]
        assert optics.focus_dpt(top.mean()) == pytest.approx(d, abs=0.03)
        assert top.max() - top.min() <= 0.31
        assert np.all(scores[np.abs(optics.focus_dpt(powers) - d) >= 0.25] < 0.5 * scores.max())


def test_blur_radius_grows_linearly_with_defocus():
    h, w = 32, 96
    radiance = np.repeat(np.where(np.arange(w) < 48, 0.2, 1.0).astype(np.float32)[None, :, None], 3, axis=2)
    scene = Scene.from_layers([Layer(np.repeat(radiance, h, axis=0), np.ones((h, w), np.float32), 1.0)])
    optics = SweepOptics(blur_px_per_dpt=10.0)
    r = DefocusRenderer(scene, optics)
    measured = []
    defocus = np.array([0.25, 0.5, 1.0, 1.5, 2.0])
    for dd in defocus:
        profile = luma(r.render_rgb(1.0 + dd))[h // 2].astype(np.float64)
        lsf = np.diff(profile) / (profile[-1] - profile[0])  # line-spread function = kernel marginal
        x = np.arange(lsf.size)
        mean = (lsf * x).sum()
        measured.append(2 * np.sqrt((lsf * (x - mean) ** 2).sum() - 1 / 12))  # per-axis variance r²/4 + 1/12
    measured = np.array(measured)
    np.testing.assert_allclose(measured, 5.0 * defocus, rtol=0.03, atol=0.05)  # r = k/2·|ΔD|
    slope, intercept = np.polyfit(defocus, measured, 1)
    assert slope == pytest.approx(5.0, rel=0.02) and abs(intercept) < 0.05


def test_occlusion_near_focused_edge_stays_sharp_over_blurred_background():
    h, w = 48, 96
    rng = np.random.default_rng(5)
    far = Layer(dead_leaves(w, h, rng, value_range=(0.03, 0.5)), np.ones((h, w), np.float32), 0.5)
    near = Layer(np.ones((h, w, 3), np.float32), half_plane_mask(w, h, 47.5), 3.0)  # covers pixels 0..47 exactly
    optics = SweepOptics(blur_px_per_dpt=8.0)
    both = DefocusRenderer(Scene.from_layers([far, near]), optics)
    far_only = DefocusRenderer(Scene.from_layers([far]), optics)
    # Focused on the near layer: its pixels are exactly its radiance, the rest exactly the blurred far layer.
    img, bg = both.render_rgb(3.0), far_only.render_rgb(3.0)
    np.testing.assert_allclose(img[:, :48], 1.0, atol=1e-4)
    np.testing.assert_allclose(img[:, 48:], bg[:, 48:], atol=1e-4)
    # Focused on the far layer: the near layer (blur radius 10 px) spreads its light over the far one's edge.
    img, bg = both.render_rgb(0.5), far_only.render_rgb(0.5)
    excess = (luma(img) - luma(bg)).mean(axis=0)
    assert excess[48 + 3] > 0.15 and excess[48 + 8] > 0.0 and abs(excess[48 + 12]) < 1e-3
    np.testing.assert_allclose(img[:, 60:], bg[:, 60:], atol=1e-4)  # beyond the near layer's blur radius


def test_slanted_plane_is_sharp_where_its_depth_matches_focus():
    scene = make_scene(120, 60, depths=(0.5,), seed=6, slant=(0.5, 2.5))
    r = DefocusRenderer(scene, SweepOptics(blur_px_per_dpt=8.0))
    left = np.zeros((60, 120), bool)
    left[5:-5, 5:30] = True
    right = left[:, ::-1]
    near_focus, far_focus = luma(r.render_rgb(2.5)), luma(r.render_rgb(0.5))
    assert sharpness(near_focus, right) > 4 * sharpness(near_focus, left)
    assert sharpness(far_focus, left) > 4 * sharpness(far_focus, right)


def test_event_rate_peaks_when_the_sweep_crosses_the_layer_depth():
    scene = make_scene(64, 48, depths=(2.0,), seed=7)
    r = DefocusRenderer(scene, SweepOptics(blur_px_per_dpt=8.0))
    sensor = EventSensorModel(64, 48, noise_rate_hz=0.0, seed=7)
    d0, rate = 0.5, 1e-4  # D(t) = 0.5 + 1e-4·t dpt: 0.5 -> 3.5 dpt in 30 ms
    events = [sensor.step(img, t) for t, img in
              adaptive_samples(lambda t: r.render_log_luma(d0 + rate * t), 0.0, 30_000.0, max_dt_us=500.0)]
    ev = np.concatenate(events)
    power = d0 + rate * ev["t"]
    counts, edges = np.histogram(power, bins=np.arange(0.5, 3.51, 0.1))
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert abs(centres[np.argmax(counts)] - 2.0) <= 0.25
    far = np.abs(centres - 2.0) > 1.0
    assert counts.max() > 3 * counts[far].mean()


# -- geometry -----------------------------------------------------------------------------------------------------
def dot_scene(w, h, points, depth=1.0):
    alpha = np.clip(sum(ellipse_mask(w, h, p, (2.0, 2.0)) for p in points), 0, 1)
    return Scene.from_layers([Layer(np.zeros((h, w, 3), np.float32), np.ones((h, w), np.float32), depth),
                              Layer(np.ones((h, w, 3), np.float32), alpha, depth)])


def centroid(img, around, radius=6):
    x0, y0 = (round(v) for v in around)
    ys, xs = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    wgt = img[ys, xs]
    return np.array([(wgt * xs).sum(), (wgt * ys).sum()]) / wgt.sum()


@pytest.mark.parametrize("power", [0.0, 2.0])
def test_ground_truth_homography_maps_rgb_features_to_event_pixels(power):
    w, h = 160, 120
    pt = (50.3, 30.7)
    geom = EventGeometry.beam_splitter((w, h), (128, 96), mirror=True, angle_deg=5.0, shift_px=(3.0, -2.0),
                                       perspective=(1e-4, -5e-5))
    assert np.linalg.det(geom.homography) < 0
    optics = SweepOptics(blur_px_per_dpt=8.0, focus_offset_dpt=1.0 - power, breathing_per_dpt=0.02)
    r = DefocusRenderer(dot_scene(w, h, [pt]), optics, geom)
    lum = np.exp(r.render_log_luma(power)) - optics.log_eps
    assert lum.shape == (96, 128)
    expected = geom.map_points([pt], r.event_homography(power))[0]
    assert np.linalg.norm(centroid(lum, expected) - expected) < 1.0
    if power != 0.0:  # breathing moved the dot: the power-free homography would be wrong by > 1 px
        assert np.linalg.norm(geom.map_points([pt])[0] - expected) > 1.0


def test_breathing_scales_the_image_as_parameterised():
    w, h = 160, 120
    a, b = (30.0, 40.0), (129.0, 79.0)  # symmetric about the centre (79.5, 59.5)
    optics = SweepOptics(blur_px_per_dpt=0.0, breathing_per_dpt=0.02, breathing_ref_dpt=1.0)
    r = DefocusRenderer(dot_scene(w, h, [a, b]), optics)
    ref = luma(r.render_rgb(1.0))
    dist0 = np.linalg.norm(centroid(ref, a) - centroid(ref, b))
    for power in (-1.0, 3.0):
        img = luma(r.render_rgb(power))
        s = optics.magnification(power)
        ca, cb = centroid(img, np.subtract(a, 79.5) * s + 79.5), centroid(img, np.subtract(b, 79.5) * s + 79.5)
        assert np.linalg.norm(ca - cb) / dist0 == pytest.approx(s, abs=0.003)
        np.testing.assert_allclose((ca + cb) / 2, (79.5, 59.5), atol=0.05)


def test_slanted_depth_ground_truth():
    d = slanted_depth(10, 4, 0.5, 2.5)
    scene = make_scene(10, 4, depths=(0.5,), slant=(0.5, 2.5))
    np.testing.assert_allclose(scene.depth, d)


@pytest.mark.parametrize("size, r_min", [((96, 64), 1.0), ((53, 71), 0.5)])
def test_dead_leaves_equal_drawing_every_leaf(size, r_min):
    """Skipping leaves off the image is an optimisation only: the texture equals drawing all of them."""
    w, h = size
    fast = dead_leaves(w, h, np.random.default_rng(11), r_min=r_min)
    rng = np.random.default_rng(11)  # the same draws, in the same order, as dead_leaves makes them
    r_max = max(w, h) / 4.0
    mean_r2 = 2.0 * np.log(r_max / r_min) / (r_min**-2 - r_max**-2)
    n = int(np.ceil(6.0 * w * h / (np.pi * mean_r2)))
    radii = (r_min**-2 - rng.random(n) * (r_min**-2 - r_max**-2)) ** -0.5
    cx, cy = rng.uniform(-r_max, w + r_max, n), rng.uniform(-r_max, h + r_max, n)
    colours = rng.uniform(0.03, 1.0, size=(n, 3))
    every = np.full((h, w, 3), np.mean((0.03, 1.0)), np.float32)
    for i in np.argsort(-radii, kind="stable"):
        cv2.circle(every, (round(cx[i] * 16), round(cy[i] * 16)), round(radii[i] * 16), colours[i].tolist(), -1,
                   cv2.LINE_8, 4)  # 4 fractional bits, as the simulator draws
    assert np.array_equal(fast, every)


def test_esim_output_does_not_depend_on_its_event_buffer_size():
    """A step whose events overflow the buffers resumes mid-array exactly (L_ref of the stopped pixel included)."""
    rng = np.random.default_rng(2)
    frames = [np.log(rng.uniform(0.05, 1.0, (24, 32))).astype(np.float32) for _ in range(6)]

    def run(capacity: int) -> np.ndarray:
        model = EventSensorModel(32, 24, threshold=0.05, noise_rate_hz=0.0, seed=4)
        out = []
        for k, frame in enumerate(frames):
            model._capacity = capacity  # force overflowing buffers on every step
            out.append(model.step(frame, 1000.0 * k))
        return np.concatenate(out), model.reference

    small, ref_small = run(3)
    large, ref_large = run(1 << 20)
    assert len(large) > 1000 and np.array_equal(small, large) and np.array_equal(ref_small, ref_large)
