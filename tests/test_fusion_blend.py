"""Exposure normalisation and the noise-aware soft output, on stacks whose answer is known."""

import cv2
import numpy as np
import pytest

from capture.focal_stack import FocalStack
from fusion import blend, metrics
from fusion.engine import fuse
from tests.fusion_stacks import interior, region_stack


def _texture(shape, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0.15, 0.85, shape).astype(np.float32), (0, 0), 0.8)


def _depth_of_field_stack(sharp_planes: int, n: int = 9, sigma: float = 0.02, seed: int = 1):
    """Planes n//2 − … : the middle ``sharp_planes`` planes show the truth, the rest a blur growing away from them;
    every plane carries its own sensor noise."""
    truth = np.stack([_texture((72, 96), s) for s in range(3)], -1)
    rng = np.random.default_rng(seed)
    lo = n // 2 - sharp_planes // 2
    frames = []
    for k in range(n):
        away = max(lo - k, k - (lo + sharp_planes - 1), 0)
        img = truth if away == 0 else cv2.GaussianBlur(truth, (0, 0), 1.5 * away)
        frames.append(img + rng.normal(0, sigma, truth.shape).astype(np.float32))
    return FocalStack(np.clip(np.stack(frames), 0, 1).astype(np.float32), np.linspace(0, 2, n)), truth


def test_soft_output_averages_the_planes_as_sharp_as_the_best_one():
    """Three planes equally in focus: their mean has a third of the noise power (≈ +4.8 dB); the gather copies
    one. Only the in-focus planes are averaged: the result is not blurred."""
    stack, truth = _depth_of_field_stack(3)
    soft = fuse(stack, output="soft").all_in_focus
    gather = fuse(stack, output="gather").all_in_focus
    gain = metrics.psnr(truth, soft, 1.0) - metrics.psnr(truth, gather, 1.0)
    assert 3.5 < gain < 5.0
    mean3 = stack.frames[3:6].mean(axis=0)
    assert metrics.psnr(truth, soft, 1.0) > metrics.psnr(truth, mean3, 1.0) - 0.3


def test_soft_output_keeps_the_single_sharp_plane():
    """One plane in focus, its neighbours clearly blurred: soft and gather agree (nothing blurred in)."""
    stack, truth = _depth_of_field_stack(1, sigma=0.01)
    soft = fuse(stack, output="soft").all_in_focus
    gather = fuse(stack, output="gather").all_in_focus
    assert abs(metrics.psnr(truth, soft, 1.0) - metrics.psnr(truth, gather, 1.0)) < 0.3
    assert metrics.psnr(truth, soft, 1.0) > metrics.psnr(truth, stack.frames[3], 1.0) - 0.5


def test_noise_variance_is_read_from_the_stack():
    stack, _ = _depth_of_field_stack(1, sigma=0.02)
    y = blend.luma(stack.frames)
    var = blend.noise_variance(y)
    luma_sigma = 0.02 * float(np.sqrt(np.sum(blend.LUMA_601 ** 2)))
    assert np.median(np.sqrt(var)) == pytest.approx(luma_sigma, rel=0.25)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_exposure_gains_are_recovered_and_removed(dtype):
    """Planes brightened or darkened by known gains: the gains come back to 0.4 %, and fusing the drifting stack
    gives the image of the stack without drift."""
    stack, truth, _ = region_stack([1, 4, 6, 2], 8, dtype=np.float32, size=(96, 128))
    rng = np.random.default_rng(3)
    gains = 1.0 + rng.uniform(-0.04, 0.04, 8)
    gains /= np.median(gains)
    drifted = stack.frames * gains[:, None, None, None].astype(np.float32)
    if dtype == np.uint16:
        frames, clean = (drifted * 50000).round().astype(np.uint16), (stack.frames * 50000).round().astype(np.uint16)
    else:
        frames, clean = drifted.astype(np.float32), stack.frames
    estimate = blend.exposure_gains(frames)
    np.testing.assert_allclose(estimate, gains, rtol=4e-3)  # 0.4 %: a third of a code at 8 bits
    a = fuse(FocalStack(frames, stack.focal_powers_dpt))
    b = fuse(FocalStack(clean, stack.focal_powers_dpt))
    core = interior(truth)
    assert a.settings["exposure_gains"] == pytest.approx(estimate.tolist())
    assert np.mean(np.rint(a.focal_index[core]) == truth[core]) > 0.99
    scale = 50000.0 if dtype == np.uint16 else 1.0
    assert np.abs(a.all_in_focus[core].astype(np.float64) - b.all_in_focus[core]).max() <= 0.003 * scale
    unnormalised = fuse(FocalStack(frames, stack.focal_powers_dpt), exposure=False)
    assert np.abs(unnormalised.all_in_focus[core].astype(np.float64) - b.all_in_focus[core]).max() > 0.01 * scale


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_stack_without_drift_passes_through_bit_for_bit(dtype):
    """No drift: gains are exactly 1 and the gathered output copies frame pixels exactly, grey and 16-bit alike."""
    stack, truth, sharp = region_stack([0, 3, 1], 5, dtype=dtype, color=False)
    assert np.all(blend.exposure_gains(stack.frames) == 1.0)
    r = fuse(stack, output="gather")
    core = interior(truth)
    assert r.all_in_focus.dtype == dtype and r.all_in_focus.ndim == 2
    assert np.array_equal(r.all_in_focus[core], sharp[core])
    picked = np.take_along_axis(stack.frames, np.rint(r.focal_index).astype(np.intp)[None], axis=0)[0]
    assert np.array_equal(r.all_in_focus, picked)


def test_blend_settings_are_checked():
    from fusion.engine import FusionError

    stack, _, _ = region_stack([0, 1], 2)
    with pytest.raises(FusionError, match="output must be one of"):
        fuse(stack, output="mean")
    with pytest.raises(FusionError, match="odd number"):
        fuse(stack, blend_window=4)


def test_planes_that_differ_by_content_are_not_taken_for_exposure_drift():
    """Two planes cannot say which one drifted; a plane whose content changed (here half of it brighter, half
    darker, as a shadow or a changed view would) differs block by block, not by one gain: neither is normalised
    (real hand-held pairs showed spurious ±15 % "gains" before)."""
    stack, _, _ = region_stack([1, 4, 6, 2], 8, dtype=np.float32, size=(96, 128))
    pair = stack.frames[:2] * np.array([1.0, 1.05], np.float32)[:, None, None, None]
    assert np.all(blend.exposure_gains(pair) == 1.0)
    changed = stack.frames.copy()
    changed[3, :, :64] *= 1.3
    changed[3, :, 64:] *= 0.85
    gains = blend.exposure_gains(changed)
    assert gains[3] == 1.0
    drifted = stack.frames.copy()
    drifted[3] *= 1.04  # the same plane with a true gain is normalised
    assert blend.exposure_gains(drifted)[3] == pytest.approx(1.04, rel=4e-3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("colour", [True, False])
def test_unit_planes_read_each_plane_at_unit_scale_divided_by_its_gain(dtype, colour):
    """Fusion reads planes one at a time from the stored frames; each must be the plane at its dtype's full scale
    divided by its exposure gain (computed here in float64), for every dtype, and the subset, luma and gather views
    must agree with it too."""
    rng = np.random.default_rng(3)
    shape = (5, 12, 16, 3) if colour else (5, 12, 16)
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    frames = (rng.uniform(0, 1, shape) * top).astype(dtype)
    gains = np.array([1.0, 1.04, 0.97, 1.0, 1.02])
    whole = frames.astype(np.float64) / top / gains.reshape((-1,) + (1,) * (frames.ndim - 1))
    planes = blend.UnitPlanes(frames, gains)
    assert len(planes) == 5 and planes.ndim == frames.ndim
    for k in range(5):
        np.testing.assert_allclose(planes.plane(k), whole[k], rtol=1e-6, atol=1e-7)
    sub = planes.take(np.array([4, 1]))
    np.testing.assert_allclose(sub.plane(1), whole[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(planes.luma(), whole @ [0.299, 0.587, 0.114] if colour else whole, rtol=1e-5,
                               atol=1e-6)
    best = rng.integers(0, 5, shape[1:3])
    picked = np.take_along_axis(whole, (best[None, ..., None] if colour else best[None]), axis=0)[0]
    np.testing.assert_allclose(planes.gather(best), picked, rtol=1e-6, atol=1e-7)


def test_brightness_moves_only_where_a_refocused_plane_was_chosen():
    """Inside the refocused choices the pixel's channel mean becomes the target's; a few pixels away from them the
    colour image passes through untouched."""
    rng = np.random.default_rng(5)
    colour = rng.uniform(0.2, 0.8, (40, 60, 3)).astype(np.float32)
    target = np.clip(colour + rng.normal(0, 0.05, colour.shape), 0, 1).astype(np.float32)
    chosen = np.zeros((40, 60), bool)
    chosen[10:30, 10:30] = True
    out = blend.brightness_transfer(colour, target, chosen)
    inside, far = np.s_[16:24, 16:24], np.s_[:, 45:]
    np.testing.assert_allclose(out[inside].mean(-1), target[inside].mean(-1), atol=1e-3)
    np.testing.assert_array_equal(out[far], colour[far])


def test_colour_edges_come_back_with_the_brightness_edges():
    """A frame shows a red/blue edge blurred; the refocused brightness is sharp. The transferred image's colour
    must be nearer the sharp truth than a grey brightness step alone leaves it (its chroma as blurred as before)."""
    red, blue = np.array([0.9, 0.3, 0.2], np.float32), np.array([0.05, 0.1, 0.4], np.float32)
    truth = np.where((np.arange(64) < 32)[None, :, None], red, blue) * np.ones((48, 1, 1), np.float32)
    blurred = cv2.GaussianBlur(truth, (0, 0), 1.5)
    target = blurred - blurred.mean(-1, keepdims=True) + truth.mean(-1, keepdims=True)  # sharp brightness only
    chosen = np.ones((48, 64), bool)
    out = blend.brightness_transfer(blurred, target, chosen)
    grey = blurred + (target.mean(-1) - blurred.mean(-1))[..., None]
    band = np.s_[8:40, 26:38]
    assert np.mean((out[band] - truth[band]) ** 2) < 0.5 * np.mean((grey[band] - truth[band]) ** 2)
    np.testing.assert_allclose(out.mean(-1), target.mean(-1), atol=1e-4)


def test_the_colour_choice_of_a_refocused_stack_follows_the_frames_where_the_network_cannot_tell():
    """With flat network probabilities over the frames the frames' own focus decides; with the frames equally sharp
    (no texture) the network's probabilities do."""
    from fusion.net.method import frames_choice

    stack, truth, _ = region_stack([1, 4], 6)
    y = blend.UnitPlanes(stack.frames).luma()
    flat = np.full(y.shape, 1.0 / 6, np.float32)
    pick = frames_choice(flat, y)
    assert np.mean(pick[interior(truth)] == truth[interior(truth)]) > 0.95
    plain = np.full_like(y, 0.5)
    prob = np.full(y.shape, 0.05, np.float32)
    prob[3] = 0.75
    assert np.all(frames_choice(prob, plain) == 3)
