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


def test_refocused_planes_fill_the_widest_gaps_and_move_their_frame_towards_the_truth():
    """Each refocused plane sits mid-gap, is marked, and is nearer the true render at its power than the frame it
    was made from (events carry the brightness change; a wrong sign or threshold would move it away)."""
    nearer = []
    for seed in (3, 5, 11):
        made = synthetic_stack(seed, size=(96, 96), n_planes=6, refocused=1, noise=None)
        assert made.n_planes == 7 and made.refocused.sum() == 1 and made.events.shape[0] == 7
        k = int(np.flatnonzero(made.refocused)[0])
        p = made.focal_powers_dpt
        assert p[k] == pytest.approx(0.5 * (p[k - 1] + p[k + 1]))
        assert made.meta["planes"][k]["from_power_dpt"] == pytest.approx(p[k - 1])
        lo, hi = made.meta["recipe"]["sweep_dpt"]
        truth = synthetic_stack(seed, size=(96, 96), n_planes=7, plane_fractions=(p - lo) / (hi - lo), noise=None,
                                with_events=False).frames[k]
        nearer.append((np.mean((made.frames[k] - truth) ** 2), np.mean((made.frames[k - 1] - truth) ** 2)))
    refocused_error, source_error = np.sum(nearer, axis=0)
    assert refocused_error < source_error
