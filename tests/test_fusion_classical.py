"""Classical fusion on constructed stacks whose sharp plane is known per region."""

import numpy as np
import pytest

from capture.focal_stack import FocalStack
from fusion.classical import ClassicalSettings, rows_per_band
from fusion.engine import FusionError, fuse
from tests.fusion_stacks import interior, region_stack


@pytest.mark.parametrize("color", [True, False])
def test_each_region_gets_its_sharp_plane_and_pixels_are_copied(color):
    stack, truth, sharp = region_stack([1, 4, 6, 2], 8, color=color)
    r = fuse(stack)
    core = interior(truth)
    assert np.mean(np.rint(r.focal_index[core]) == truth[core]) > 0.99
    assert r.all_in_focus.shape == sharp.shape and r.all_in_focus.dtype == np.uint8
    assert np.mean(r.all_in_focus[core] == sharp[core]) > 0.99   # copied, not blended
    assert r.depth_dpt[core].mean() == pytest.approx(np.interp(truth[core], np.arange(8),
                                                               stack.focal_powers_dpt).mean(), abs=0.02)


def test_sweep_wider_than_scene_keeps_absolute_planes():
    # The scene spans planes 4..7 of a 12-plane sweep: min-max normalising would send them to 0 and 11.
    stack, truth, _ = region_stack([4, 5, 7, 6], 12)
    r = fuse(stack)
    core = interior(truth)
    assert np.mean(np.rint(r.focal_index[core]) == truth[core]) > 0.99
    assert 3.5 <= r.focal_index[core].min() and r.focal_index[core].max() <= 7.5


def test_a_pair_fuses():
    stack, truth, sharp = region_stack([0, 1], 2)
    r = fuse(stack)
    core = interior(truth)
    assert np.array_equal(r.focal_index[core], truth[core].astype(np.float32))
    assert np.mean(r.all_in_focus[core] == sharp[core]) > 0.99


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_16_bit_and_float_stay_in_their_dtype(dtype):
    stack, truth, sharp = region_stack([0, 3, 1], 5, dtype=dtype)
    r = fuse(stack)
    assert r.all_in_focus.dtype == dtype
    core = interior(truth)
    assert np.mean(r.all_in_focus[core] == sharp[core]) > 0.99


def test_subplane_index_lies_between_the_two_best_planes():
    # Region sharp "between" planes 2 and 3: blur both equally -> sub-plane estimate near 2.5.
    stack, truth, _ = region_stack([2, 5], 8)
    half = region_stack([3, 5], 8)[0]
    frames = ((stack.frames.astype(np.float32) + half.frames) / 2).astype(np.uint8)
    r = fuse(FocalStack(frames, stack.focal_powers_dpt))
    core = interior(truth) & (truth == 2)
    assert 2.2 < float(np.median(r.focal_index[core])) < 2.8


def test_confidence_is_high_on_texture_and_zero_on_a_flat_region():
    stack, truth, _ = region_stack([1, 4], 6)
    frames = stack.frames.copy()
    frames[:, :, :48] = 128  # a flat half: no plane is sharper than another (filters reach ~30 px into it)
    r = fuse(FocalStack(frames, stack.focal_powers_dpt))
    assert r.confidence.min() >= 0 and r.confidence.max() <= 1
    assert np.median(r.confidence[interior(truth) & (np.arange(96) >= 48)]) > 0.3
    assert r.confidence[:, :12].max() < 0.05


def test_banded_processing_matches_the_whole_image():
    stack, _, _ = region_stack([0, 5, 2, 7, 3], 8, size=(200, 96))
    whole = fuse(stack)
    tiny = 4 * 96 * (6 * 8 + 16) * (2 * ClassicalSettings().halo_px() + 16) / (1 << 20)
    banded = fuse(stack, max_volume_mib=tiny)
    assert banded.settings["bands"] >= 3 and whole.settings["bands"] == 1
    assert np.mean(whole.focal_index != banded.focal_index) < 1e-3
    np.testing.assert_allclose(banded.focal_index, whole.focal_index, atol=1e-3)
    np.testing.assert_allclose(banded.confidence, whole.confidence, atol=1e-3)
    assert np.mean(np.any(banded.all_in_focus != whole.all_in_focus, axis=-1)) < 1e-3


def test_band_rows_respect_the_memory_cap():
    s = ClassicalSettings(max_volume_mib=256)
    rows = rows_per_band(32, 3000, 4000, s)
    assert 0 < rows < 3000
    assert (rows + 2 * s.halo_px()) * 2 * 32 * 4000 * 4 <= 256 * (1 << 20)
    assert rows_per_band(32, 480, 640, ClassicalSettings()) == 480
    with pytest.raises(FusionError, match="too small"):
        rows_per_band(32, 3000, 4000, ClassicalSettings(max_volume_mib=1))


def test_event_term_decides_where_frames_carry_no_information():
    frames = np.full((6, 32, 32), 100, np.uint8)          # flat: the focus measure is zero everywhere
    events = np.zeros((6, 2, 32, 32), np.uint16)
    events[4, 1] = 3                                      # activity only in plane 4's window
    stack = FocalStack(frames, np.arange(6.0), events)
    assert np.all(fuse(stack, event_weight=1.0).focal_index[4:-4, 4:-4] == pytest.approx(4.0, abs=0.5))
    assert fuse(stack, event_weight=1.0).settings["events_used"] is True
    assert fuse(stack).settings["events_used"] is False   # off by default


@pytest.mark.parametrize("kwargs, match", [
    ({"device": "cuda"}, "CPU only"),
    ({"bogus": 1}, "unknown classical option"),
    ({"event_weight": -1}, "event_weight"),
])
def test_bad_settings_are_refused(kwargs, match):
    stack, _, _ = region_stack([0, 1], 2)
    with pytest.raises(FusionError, match=match):
        fuse(stack, **kwargs)


def test_one_plane_is_refused():
    with pytest.raises(FusionError, match="at least 2 planes"):
        fuse(FocalStack(np.zeros((1, 8, 8), np.uint8), [1.0]))
