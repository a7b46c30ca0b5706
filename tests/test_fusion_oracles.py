"""The oracles the benchmarks print beside every method, on stacks whose answer is known."""

import cv2
import numpy as np
import pytest

from capture.focal_stack import FocalStack
from fusion import metrics, oracles


def _texture(shape=(64, 80), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0.1, 0.9, shape).astype(np.float32), (0, 0), 0.7)


def test_near_best_average_beats_the_single_copy_by_the_noise_it_averages():
    """Two equally sharp noisy copies of the truth and a blurred one: the single-frame oracle copies a sharp one
    (never the blurred), the near-best oracle averages the two sharp ones (about 3 dB of noise power less)."""
    truth = _texture()
    rng = np.random.default_rng(1)
    sharp = [truth + rng.normal(0, 0.02, truth.shape).astype(np.float32) for _ in range(2)]
    blurred = cv2.GaussianBlur(truth, (0, 0), 3.0)
    stack = FocalStack(np.stack([blurred, *sharp]).astype(np.float32), np.array([0.0, 1.0, 1.1]))
    single, best = oracles.single_frame_oracle(stack, truth)
    assert set(np.unique(best)) <= {1, 2}
    average = oracles.near_best_oracle(stack, truth)
    gain = metrics.psnr(truth, average, 1.0) - metrics.psnr(truth, single, 1.0)
    assert 2.0 < gain < 3.5
    assert metrics.psnr(truth, average, 1.0) > metrics.psnr(truth, sharp[0], 1.0) + 2.5


def test_near_best_average_keeps_a_single_copy_where_only_one_plane_is_sharp():
    truth = _texture()
    stack = FocalStack(np.stack([cv2.GaussianBlur(truth, (0, 0), 2.0), truth, cv2.GaussianBlur(truth, (0, 0), 2.0)]),
                       np.array([0.0, 1.0, 2.0]))
    assert np.array_equal(oracles.near_best_oracle(stack, truth), truth)
    assert np.array_equal(oracles.single_frame_oracle(stack, truth)[1], np.ones(truth.shape, np.intp))


def test_oracles_keep_the_frames_dtype_and_colour():
    truth = (np.stack([_texture(seed=s) for s in range(3)], -1) * 255).astype(np.uint8)
    noisy = np.clip(truth.astype(int) + np.random.default_rng(2).integers(-3, 4, truth.shape), 0, 255).astype(np.uint8)
    stack = FocalStack(np.stack([noisy, truth]), np.array([0.0, 1.0]))
    assert oracles.near_best_oracle(stack, truth).dtype == np.uint8
    image, _ = oracles.single_frame_oracle(stack, truth)
    assert image.shape == truth.shape and np.array_equal(image, truth)


def test_depth_errors_only_count_textured_pixels():
    truth = np.zeros((40, 40), np.float32)
    truth[:, 20:] = _texture((40, 20))
    mask = oracles.textured(truth)
    assert not mask[:, :14].any() and mask[:, 26:].mean() > 0.9
    depth_truth = np.full((40, 40), 1.0, np.float32)
    estimate = depth_truth.copy()
    estimate[:, :14] = 5.0            # wrong where nothing can be seen: not counted
    estimate[:, 30:] += 0.2           # wrong where it can: counted
    e = oracles.depth_errors(estimate, depth_truth, mask)
    inside = mask.copy()
    assert e["depth_rmse_dpt"] == pytest.approx(0.2 * np.sqrt(inside[:, 30:].sum() / inside.sum()), rel=1e-5)
    assert e["depth_median_dpt"] in (0.0, pytest.approx(0.2))
