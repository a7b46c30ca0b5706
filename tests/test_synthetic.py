"""Synthetic focal stacks: deterministic per seed, shaped as FocalStack promises, labels that mean what they say."""

import cv2
import numpy as np
import pytest

from fusion.synthetic import synthetic_stack

SIZE = (48, 40)


@pytest.fixture(scope="module")
def stack():
    return synthetic_stack(3, size=SIZE, n_planes=8, sweep_margin_dpt=0.2, event_substeps=2)


def test_same_seed_same_stack_other_seed_other_stack(stack):
    again = synthetic_stack(3, size=SIZE, n_planes=8, sweep_margin_dpt=0.2, event_substeps=2)
    assert np.array_equal(stack.frames, again.frames)
    assert np.array_equal(stack.events, again.events)
    for key, value in stack.ground_truth.items():
        assert np.array_equal(value, again.ground_truth[key])
    other = synthetic_stack(4, size=SIZE, n_planes=8, sweep_margin_dpt=0.2, event_substeps=2)
    assert not np.array_equal(stack.frames, other.frames)


def test_shapes_dtypes_and_recipe(stack):
    w, h = SIZE
    assert stack.frames.shape == (8, h, w, 3) and stack.frames.dtype == np.uint8
    assert stack.events.shape == (8, 2, h, w) and stack.events.dtype == np.uint16
    assert np.all(np.diff(stack.focal_powers_dpt) > 0)
    gt = stack.ground_truth
    assert gt["all_in_focus"].shape == (h, w, 3) and gt["all_in_focus"].dtype == np.uint8
    assert gt["depth_dpt"].shape == (h, w) and np.isfinite(gt["depth_dpt"]).all()
    assert gt["focal_index"].dtype == np.float32 and 0 <= gt["focal_index"].min() <= gt["focal_index"].max() <= 7
    assert stack.events.sum() > 0 and stack.events[:, 0].sum() > 0 and stack.events[:, 1].sum() > 0
    assert stack.meta["recipe"]["seed"] == 3 and stack.meta["recipe"]["n_planes"] == 8
    assert not synthetic_stack(3, size=SIZE, n_planes=4, with_events=False).has_events


def test_sharpest_plane_by_local_variance_agrees_with_the_label():
    s = synthetic_stack(11, size=(64, 64), n_planes=8, noise=None, with_events=False)
    luma = s.frames @ np.array([0.299, 0.587, 0.114], np.float32)
    mean = np.stack([cv2.blur(y, (7, 7)) for y in luma])
    var = np.stack([cv2.blur(y * y, (7, 7)) for y in luma]) - mean**2
    sharpest = np.argmax(var, axis=0)
    textured = var.max(axis=0) > np.percentile(var.max(axis=0), 50)
    agree = np.abs(sharpest - s.ground_truth["focal_index"]) <= 1.0
    assert agree[textured].mean() > 0.8
    # a label that ignores the image (reversed planes) does not agree: the check has teeth
    assert (np.abs(sharpest - (7 - s.ground_truth["focal_index"])) <= 1.0)[textured].mean() < 0.6


def test_a_sweep_wider_than_the_scene_keeps_labels_absolute():
    narrow = synthetic_stack(5, size=SIZE, n_planes=12, with_events=False)
    wide = synthetic_stack(5, size=SIZE, n_planes=12, sweep_margin_dpt=1.5, with_events=False)
    lab_n, lab_w = narrow.ground_truth["focal_index"], wide.ground_truth["focal_index"]
    # wide: the scene occupies only the middle planes (no min-max stretching to 0..N-1)
    assert lab_w.min() > 1.5 and lab_w.max() < 12 - 1 - 1.5
    # both labels name the same focal power (dpt) per pixel, within one plane of the wide sweep
    d_n = np.interp(lab_n, np.arange(12), narrow.focal_powers_dpt)
    d_w = np.interp(lab_w, np.arange(12), wide.focal_powers_dpt)
    step = np.diff(wide.focal_powers_dpt)[0]
    assert np.mean(np.abs(d_n - d_w) <= step) > 0.9


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="n_planes"):
        synthetic_stack(0, n_planes=1)
    with pytest.raises(ValueError, match="depth_range_dpt"):
        synthetic_stack(0, depth_range_dpt=(2.0, 1.0))
    with pytest.raises(ValueError, match="empty sweep"):
        synthetic_stack(0, size=SIZE, n_planes=4, sweep_margin_dpt=-5.0)
