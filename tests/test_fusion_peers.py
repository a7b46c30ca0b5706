"""External peers run for real when installed (enfuse); skipped with a reason otherwise."""

import shutil

import numpy as np
import pytest

from fusion.metrics import psnr
from fusion.peers import PeerError, available_peers, run_peer
from tests.fusion_stacks import interior, region_stack

needs_enfuse = pytest.mark.skipif(shutil.which("enfuse") is None,
                                  reason="enfuse not installed (apt-get install enfuse)")


@needs_enfuse
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_enfuse_fuses_a_constructed_stack(dtype):
    stack, truth, sharp = region_stack([0, 3, 1], 4, size=(48, 64), dtype=dtype)
    r = run_peer("enfuse", stack)
    assert r.image.shape == sharp.shape and r.image.dtype == dtype
    core = interior(truth)
    blurred_plane = stack.frames[2]
    assert psnr(sharp[core], r.image[core]) > psnr(sharp[core], blurred_plane[core]) + 5
    assert r.time_s > 0 and "--hard-mask" in r.command
    assert "enfuse" in available_peers()


def test_unknown_or_missing_peer():
    stack, _, _ = region_stack([0, 1], 2)
    with pytest.raises(ValueError, match="unknown peer"):
        run_peer("photoshop", stack)
    if shutil.which("focus-stack") is None:
        with pytest.raises(PeerError, match="not on PATH"):
            run_peer("focus-stack", stack)
