"""Pre-alignment of hand-held stacks: known shifts and scales are recovered and undone."""

import cv2
import numpy as np
import pytest

from capture.focal_stack import FocalStack
from fusion.align import AlignmentError, align_stack, estimate_warps


def _moved_stack(n=4, size=(96, 128)):
    h, w = size
    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.uniform(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    moves = [np.array([[1 + 0.01 * (k - 2), 0, 1.5 * (k - 2)], [0, 1 + 0.01 * (k - 2), -0.8 * (k - 2)]])
             for k in range(n)]
    frames = np.stack([cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REFLECT) for m in moves])
    frames = (frames * 255).astype(np.uint8)
    events = np.zeros((n, 2, h, w), np.uint16)
    events[:, 1, 40:50, 60:70] = 1
    return FocalStack(frames, np.arange(float(n)), events), moves


def test_known_motion_is_recovered_and_undone():
    stack, moves = _moved_stack()
    warps = estimate_warps(stack, motion="affine")
    ref = np.vstack([moves[2], [0, 0, 1]])
    for k, m in enumerate(moves):
        # warps[k] maps reference px -> frame k px; frame k was made as M_k · base, reference as M_2 · base
        expected = np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(ref)
        np.testing.assert_allclose(warps[k][:2, :2], expected[:2, :2], atol=0.005)
        np.testing.assert_allclose(warps[k][:2, 2], expected[:2, 2], atol=0.1)   # px
    aligned = align_stack(stack)
    core = (slice(12, -12), slice(12, -12))
    for k in range(stack.n_planes):
        diff = np.abs(aligned.frames[k][core].astype(int) - aligned.frames[2][core].astype(int))
        assert diff.mean() < 3
    assert aligned.events.dtype == np.uint16 and aligned.events.sum() > 0
    assert aligned.meta["aligned"]["reference"] == 2


def test_unalignable_frames_raise():
    rng = np.random.default_rng(0)
    flat = np.zeros((2, 64, 64), np.uint8)
    flat[1] = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    with pytest.raises(AlignmentError, match="planes"):
        align_stack(FocalStack(flat, [0.0, 1.0]), motion="homography")
