"""The guided filter shared by the classical cost volume and the network's probability volume."""

import numpy as np
import pytest

from fusion.guided import GuidedFilter, filter_volume


@pytest.mark.parametrize("subsample", [1, 2])
def test_constants_pass_unchanged(subsample):
    rng = np.random.default_rng(0)
    guide = rng.random((40, 52)).astype(np.float32)
    out = GuidedFilter(guide, 4, 1e-4, subsample).filter(np.full((40, 52), 0.3, np.float32))
    assert np.allclose(out, 0.3, atol=1e-4)


@pytest.mark.parametrize("subsample", [1, 2])
def test_steps_survive_on_guide_edges_and_noise_is_smoothed_where_the_guide_is_flat(subsample):
    """A step in p that lies on a strong edge of the guide stays sharp; noise in p over a flat guide is
    averaged away (a box filter would blur the step, the identity would keep the noise)."""
    rng = np.random.default_rng(1)
    h, w = 48, 64
    guide = np.where(np.arange(w) < 32, 0.2, 0.8).astype(np.float32)[None].repeat(h, 0)
    step = np.where(np.arange(w) < 32, 0.0, 1.0).astype(np.float32)[None].repeat(h, 0)
    noisy = step + rng.normal(0.0, 0.2, (h, w)).astype(np.float32)
    out = GuidedFilter(guide, 6, 1e-4, subsample).filter(noisy)
    inner = (slice(8, -8), slice(8, 24))
    assert out[inner].std() < 0.35 * noisy[inner].std()
    assert np.all(out[8:-8, 30] < 0.25) and np.all(out[8:-8, 33] > 0.75)  # the edge is still one pixel wide


def test_filter_volume_filters_every_plane_in_place_with_one_guide():
    rng = np.random.default_rng(2)
    guide = rng.random((30, 30)).astype(np.float32)
    volume = rng.random((3, 30, 30)).astype(np.float32)
    want = np.stack([GuidedFilter(guide, 3, 1e-3).filter(p.copy()) for p in volume])
    assert filter_volume(volume, guide, 3, 1e-3) is volume
    assert np.allclose(volume, want)
