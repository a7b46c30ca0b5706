"""One meaning of confidence for every fusion method, on volumes whose answer is known."""

import numpy as np

from fusion.confidence import peak_confidence


def _volume(*profiles):
    """A (N, 1, len(profiles)) volume whose pixel j has the per-plane profile ``profiles[j]``."""
    return np.array(profiles, np.float32).T[:, None, :]


def test_one_clean_peak_is_confident_even_with_shoulders():
    v = _volume([0.0, 0.1, 0.6, 1.0, 0.7, 0.2, 0.0, 0.0])   # the peak's neighbours show the same depth, defocused
    c = peak_confidence(v, np.array([[3]]), step=1)
    assert c[0, 0] > 0.9


def test_two_separate_peaks_are_not():
    v = _volume([0.0, 1.0, 0.1, 0.0, 0.0, 0.95, 0.1, 0.0])
    assert peak_confidence(v, np.array([[1]]), step=1)[0, 0] < 0.1
    half = _volume([0.0, 1.0, 0.1, 0.0, 0.0, 0.5, 0.1, 0.0])
    assert 0.3 < peak_confidence(half, np.array([[1]]), step=1)[0, 0] < 0.6


def test_a_flat_profile_has_no_confidence():
    v = _volume([1.0] * 8, [0.5, 0.52, 0.5, 0.49, 0.5, 0.51, 0.5, 0.5])
    c = peak_confidence(v, np.array([[0, 1]]), step=1)
    assert np.all(c < 0.05)


def test_range_shape_and_the_half_resolution_reading():
    """Read every other pixel (the default) and interpolated, a smooth volume's confidence is the full reading's."""
    import cv2

    rng = np.random.default_rng(0)
    v = np.stack([cv2.GaussianBlur(rng.random((40, 60)).astype(np.float32), (0, 0), 4.0) ** 3 for _ in range(6)])
    best = v.argmax(0)
    full, half = peak_confidence(v, best, step=1), peak_confidence(v, best)
    assert half.shape == (40, 60) and half.dtype == np.float32 and 0 <= half.min() and half.max() <= 1
    assert np.median(np.abs(full - half)) < 0.02
