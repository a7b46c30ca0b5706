import numpy as np
import pytest

from capture.focal_stack import FocalStack, FocalStackError


def _stack(n=4, h=6, w=5, color=True, events=True):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, h, w, 3) if color else (n, h, w), dtype=np.uint8)
    ev = rng.integers(0, 9, (n, 2, h, w), dtype=np.uint16) if events else None
    return FocalStack(frames, np.linspace(0.5, 3.0, n), ev,
                      {"depth_dpt": np.full((h, w), 1.5, np.float32)}, {"sweep": 3}, "demo")


def test_shape_properties():
    s = _stack()
    assert (s.n_planes, s.shape, s.is_color, s.has_events) == (4, (6, 5), True, True)
    assert not s.without_events().has_events


@pytest.mark.parametrize("make, match", [
    (lambda: FocalStack(np.zeros((3, 4, 4), np.uint8), [1.0, 2.0]), "3 frames but 2"),
    (lambda: FocalStack(np.zeros((3, 4, 4), np.uint8), [1.0, 3.0, 2.0]), "ascending"),
    (lambda: FocalStack(np.zeros((3, 4, 4, 2), np.uint8), [1.0, 2.0, 3.0]), "frames must be"),
    (lambda: FocalStack(np.zeros((2, 4, 4), np.int32), [1.0, 2.0]), "uint8"),
    (lambda: FocalStack(np.zeros((2, 4, 4), np.uint8), [1.0, 2.0], np.zeros((2, 1, 4, 4))), "events must be"),
    (lambda: FocalStack(np.zeros((2, 4, 4), np.uint8), [1.0, 2.0], ground_truth={"aif": np.zeros((4, 4))}),
     "unknown ground-truth"),
])
def test_inconsistent_arrays_are_refused(make, match):
    with pytest.raises(FocalStackError, match=match):
        make()


def test_npz_round_trip_is_lossless(tmp_path):
    s = _stack(color=False)
    back = FocalStack.load_npz(s.save_npz(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.frames, s.frames)
    np.testing.assert_array_equal(back.events, s.events)
    assert back.events.dtype == np.uint16
    np.testing.assert_array_equal(back.focal_powers_dpt, s.focal_powers_dpt)
    np.testing.assert_array_equal(back.ground_truth["depth_dpt"], s.ground_truth["depth_dpt"])
    assert (back.meta, back.name) == ({"sweep": 3}, "demo")
    assert not (tmp_path / "s.npz.tmp").exists()


def test_garbage_npz_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(FocalStackError, match="unreadable focal stack"):
        FocalStack.load_npz(bad)
