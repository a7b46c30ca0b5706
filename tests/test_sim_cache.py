"""Render caches: exact at nodes, close to the direct render in between, bounded range, used by both cameras."""

import numpy as np
import pytest

from drivers.sim.event_camera import IMX636_THRESHOLD, SimEventCamera
from drivers.sim.exposure import expose
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.optics import DefocusRenderer, EventGeometry, LogLumaCache, RgbCache, SweepOptics
from drivers.sim.rig import SimRig
from drivers.sim.scene import make_scene

SIZE = (96, 72)


def make_renderer(breathing: float = 0.0) -> DefocusRenderer:
    scene = make_scene(*SIZE, depths=(0.5, 1.5, 3.0), seed=0)
    optics = SweepOptics(blur_px_per_dpt=SIZE[0] / 40.0 * 4, breathing_per_dpt=breathing)  # 9.6 px/dpt
    return DefocusRenderer(scene, optics, EventGeometry.beam_splitter(SIZE, (80, 64)))


@pytest.fixture(scope="module")
def cached():
    renderer = make_renderer()
    return renderer, LogLumaCache(renderer, 0.0, 4.0)


def test_default_spacing_and_memory_bound(cached):
    renderer, cache = cached
    assert cache.step_dpt * 9.6 <= 0.1 + 1e-12  # <= 0.1 px of blur-diameter change between nodes
    assert cache.node_dpt(0) == 0.0 and cache.node_dpt(cache.n_nodes - 1) == pytest.approx(4.0, abs=1e-12)
    assert cache.nbytes_max == cache.n_nodes * 80 * 64 * 4
    with pytest.raises(ValueError, match="max_bytes"):
        LogLumaCache(renderer, 0.0, 4.0, max_bytes=cache.nbytes_max - 1)


def test_breathing_shrinks_the_spacing():
    plain = LogLumaCache.default_step_dpt(make_renderer())
    breathing = LogLumaCache.default_step_dpt(make_renderer(breathing=0.3))  # 16 px/dpt > 9.6
    assert breathing < plain
    # corners move by breathing·half-diagonal·homography scale px per dpt: 0.1 px per node at most
    assert breathing * 0.3 * 0.5 * np.hypot(*SIZE) * min(80 / 96, 64 / 72) <= 0.1 + 1e-9


def test_nodes_equal_direct_render_exactly(cached):
    renderer, cache = cached
    for i in (0, 1, 57, cache.n_nodes // 2, cache.n_nodes - 1):
        d = cache.node_dpt(i)
        np.testing.assert_array_equal(cache(d), renderer.render_log_luma(d))


def test_between_nodes_close_to_direct_render(cached):
    renderer, cache = cached
    rng = np.random.default_rng(1)
    # random powers plus the in-focus powers of the three layers (sharpest change of the PSF with D)
    powers = np.concatenate([rng.uniform(0.0, 4.0, 40), [0.5, 1.5, 3.0, 0.5 + 0.4 * cache.step_dpt]])
    worst = 0.0
    for d in powers:
        interp, direct = cache(d), renderer.render_log_luma(float(d))
        assert interp.dtype == np.float32 and interp.shape == direct.shape == (64, 80)
        worst = max(worst, float(np.max(np.abs(interp - direct))))
    assert worst < 0.02 < IMX636_THRESHOLD


def test_lazy_fill_and_read_only(cached):
    renderer = make_renderer()
    cache = LogLumaCache(renderer, 1.0, 2.0)
    assert cache.filled == 0
    cache(1.0 + 2.5 * cache.step_dpt)
    assert cache.filled == 2  # only the two neighbours
    node = cache(1.0)
    assert not node.flags.writeable
    cache.fill()
    assert cache.filled == cache.n_nodes


def test_out_of_range_raises(cached):
    _, cache = cached
    for d in (-0.01, 4.01, float("nan")):
        with pytest.raises(ValueError, match="outside the cached range"):
            cache(d)
    with pytest.raises(ValueError):
        LogLumaCache(make_renderer(), 2.0, 1.0)


def test_event_camera_uses_cache_and_covers_the_trajectory():
    rig = SimRig.default(SIZE)
    cam = SimEventCamera(rig, chunk_us=5_000)
    d = rig.trajectory.actual_dpt(np.linspace(0, rig.trajectory.period_us, 5001))
    assert cam._cache is not None and cam._cache.d_min < d.min() and cam._cache.d_max > d.max()
    cam.start()
    for _ in range(20):  # one full period: every power the lens reaches is inside the cache
        assert cam.read(1.0) is not None
    assert 0 < cam._cache.filled <= cam._cache.n_nodes


def test_cached_stream_is_deterministic_and_matches_uncached_statistics():
    def events(**kw):
        cam = SimEventCamera(SimRig.default(SIZE), chunk_us=5_000, **kw)
        cam.start()
        return np.concatenate([cam.read(1.0).cd for _ in range(10)])

    a, b = events(), events()
    assert all(np.array_equal(a[n], b[n]) for n in a.dtype.names)
    direct = events(log_luma_cache=False)
    assert abs(a.size - direct.size) <= 0.05 * direct.size


def test_rgb_cache_is_exact_at_nodes_and_close_to_direct_renders_between():
    renderer = make_renderer()
    cache = RgbCache(renderer, 0.0, 4.0)
    assert cache.step_dpt * 9.6 <= 0.1 + 1e-12 and cache.nbytes_max == cache.n_nodes * 96 * 72 * 3 * 4
    for i in (0, cache.n_nodes // 2, cache.n_nodes - 1):
        np.testing.assert_array_equal(cache(cache.node_dpt(i)), renderer.render_rgb(cache.node_dpt(i)))
    powers = np.concatenate([np.random.default_rng(2).uniform(0.0, 4.0, 20), [0.5, 1.5, 3.0]])
    errors = np.array([float(np.max(np.abs(cache(d) - renderer.render_rgb(float(d))))) for d in powers])
    full_scale = float(renderer.render_rgb(1.5).max())
    # worst pixel of the worst power (where a node interval straddles a layer's focus), and the typical power
    assert 0.0 < errors.max() < 6e-3 * full_scale and np.median(errors) < 1e-4 * full_scale


def test_covering_reuses_a_cache_that_spans_the_range_and_rebuilds_one_that_does_not():
    renderer = make_renderer()
    first = RgbCache.covering(renderer, 1.0, 2.0)
    assert first.d_min < 1.0 and first.d_max > 2.0
    assert RgbCache.covering(renderer, 1.01, 1.99, first) is first
    wider = RgbCache.covering(renderer, 0.5, 2.0, first)
    assert wider is not first and wider.d_min < 0.5


def test_frame_camera_exposes_from_the_cache_as_from_direct_renders():
    rig = SimRig.default((320, 240))  # the default rig's size (tiny rigs blur < 3 px/dpt and err more near focus)
    cam = SimFrameCamera(rig)
    frame = cam.frame_at(3)
    assert frame.image.shape == (240, 320, 3) and cam._cache is not None and cam._cache.filled > 0
    assert SimFrameCamera(rig, rgb_cache=False).frame_at(3).image.shape == frame.image.shape
    for k in (0, 3, 7):  # noise-free exposures: the noise would amplify any change into a new draw
        start, end, _ = cam._window(k)
        cached = expose(rig.renderer, rig.lens_path, start, end, render=cam._cache)
        direct = expose(rig.renderer, rig.lens_path, start, end)
        error = np.abs(cached - direct)
        assert error.max() < 6e-3 * direct.max() and error.mean() < 1e-4 * direct.max()


def test_a_render_finishes_on_the_padding_it_started_with_when_another_camera_grows_it(monkeypatch):
    """Both cameras render through the rig's one renderer from their own threads; a lens stepped beyond one camera's
    cache makes it build a wider cache, which grows the renderer's padding. A render of the other camera half-way
    through then mixed the old layer spectra with kernels on the new FFT grid ("operands could not be broadcast")
    — stepped plans over a wide range failed that way. Here the growth happens exactly at that moment, every time:
    inside the render, when it asks for its first disc kernel."""
    import drivers.sim.optics as optics

    expected = make_renderer().render_rgb(1.0)
    renderer = make_renderer()
    real_disc_kernel = optics.disc_kernel
    grown = []

    def other_camera_grows_the_padding(radius: float) -> np.ndarray:
        if not grown:
            grown.append(renderer._pad)
            LogLumaCache(renderer, -4.0, 12.0)  # another camera's new, wider cache re-pads the shared renderer
        return real_disc_kernel(radius)

    monkeypatch.setattr(optics, "disc_kernel", other_camera_grows_the_padding)
    image = renderer.render_rgb(1.0)
    assert grown and renderer._pad > grown[0]  # the padding did grow mid-render
    np.testing.assert_array_equal(image, expected)  # and the render is the one it would have been
