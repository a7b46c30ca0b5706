"""Metrics against cases that can be checked by hand."""

import math

import cv2
import numpy as np
import pytest

from fusion.metrics import average_gradient, index_accuracy, psnr, qabf, spatial_frequency, ssim


def _texture(seed=0, shape=(48, 64)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_psnr_by_hand():
    a = np.zeros((10, 10), np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))            # MSE 1
    assert psnr(a.astype(np.uint16), a.astype(np.uint16) + 1) == pytest.approx(20 * math.log10(65535))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, np.zeros((10, 11), np.uint8))


def test_ssim_by_hand():
    t = _texture()
    assert ssim(t, t) == pytest.approx(1.0)
    # Two constant images: only the luminance term is left, (2ab + C1) / (a² + b² + C1).
    a, b = np.full((32, 32), 100, np.uint8), np.full((32, 32), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 150 + c1) / (100**2 + 150**2 + c1), rel=1e-6)
    noisy = np.clip(t + np.random.default_rng(1).normal(0, 20, t.shape), 0, 255).astype(np.uint8)
    assert 0.5 < ssim(t, noisy) < 0.99
    colour = np.stack([t, t, noisy], axis=-1)
    assert ssim(np.stack([t] * 3, -1), colour) == pytest.approx((2 + ssim(t, noisy)) / 3)


def test_qabf_identity_is_the_closed_form_constant():
    t = _texture()
    q_g = 0.9994 / (1 + math.exp(-15 * (1 - 0.5)))
    q_a = 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    assert qabf([t], t) == pytest.approx(q_g * q_a, rel=1e-9)
    assert qabf([t, t, t], t) == pytest.approx(q_g * q_a, rel=1e-9)


def test_qabf_rewards_transferring_the_sharp_source():
    t = _texture().astype(np.float32)
    blurred = cv2.GaussianBlur(t, (0, 0), 3)
    sources = [t, blurred]
    assert qabf(sources, t) > qabf(sources, blurred) + 0.2
    assert qabf(sources, np.zeros_like(t)) < 0.01


def test_no_reference_sharpness_by_hand():
    stripes = np.tile(np.array([0, 255], np.uint8), (8, 8))          # columns alternate 0/1
    assert spatial_frequency(stripes) == pytest.approx(1.0)          # RF = 1, CF = 0
    assert average_gradient(stripes) == pytest.approx(math.sqrt(0.5))
    flat = np.full((8, 16), 7, np.uint8)
    assert spatial_frequency(flat) == 0 and average_gradient(flat) == 0
    t = _texture()
    assert spatial_frequency(t) > spatial_frequency(cv2.GaussianBlur(t, (0, 0), 2))


def test_index_accuracy():
    truth = np.array([[0.0, 1.0], [2.0, np.nan]])
    acc = index_accuracy(np.array([[0.0, 2.5], [2.0, 9.0]]), truth)
    assert acc["index_mae"] == pytest.approx(0.5) and acc["within_tol"] == pytest.approx(2 / 3)
