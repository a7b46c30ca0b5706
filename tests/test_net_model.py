"""Focal-index network: shape contracts, event dropout, determinism, absolute (not min-max) indices."""

import pytest
import torch

from fusion.net.model import FocalIndexNet, NetConfig, count_parameters, gather_planes


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FocalIndexNet().eval()


@pytest.mark.parametrize(("n", "h", "w"), [(2, 16, 16), (5, 13, 21), (32, 9, 17)])
def test_shapes_for_any_n_and_odd_sizes(model, n, h, w):
    luma = torch.rand(2, n, h, w)
    with torch.no_grad():
        for events in (None, torch.rand(2, n, 2, h, w)):
            out = model(luma, events)
            assert out["logits"].shape == out["prob"].shape == (2, n, h, w)
            for key in ("expected", "index", "refined", "confidence"):
                assert out[key].shape == (2, h, w)
            assert torch.allclose(out["prob"].sum(1), torch.ones(2, h, w), atol=1e-5)
            assert 0 <= float(out["index"].min()) and float(out["index"].max()) <= n - 1
            assert torch.equal(out["index"].round(), out["prob"].argmax(1).float())
            assert 0 <= float(out["confidence"].min()) and float(out["confidence"].max()) <= 1


def test_plane_count_and_event_shape_are_checked(model):
    with pytest.raises(ValueError, match=r"2\.\.32"):
        model(torch.rand(1, 33, 8, 8))
    with pytest.raises(ValueError, match="events must be"):
        model(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 1, 8, 8))


def test_events_change_the_output_and_none_means_no_events(model):
    torch.manual_seed(1)
    luma = torch.rand(1, 6, 24, 24)
    events = (torch.rand(1, 6, 2, 24, 24) > 0.8).float()
    with torch.no_grad():
        without = model(luma, None)["logits"]
        zeros = model(luma, torch.zeros_like(events))["logits"]
        with_events = model(luma, events)["logits"]
    assert not torch.allclose(without, with_events, atol=1e-4)
    # "no events" (camera off) is told apart from "events on, none fired" by the flag channel
    assert not torch.allclose(without, zeros, atol=1e-6)


def test_deterministic_on_cpu_with_a_fixed_seed():
    luma, events = torch.rand(1, 4, 20, 20), torch.rand(1, 4, 2, 20, 20)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = FocalIndexNet().eval()
        with torch.no_grad():
            outs.append(m(luma, events)["refined"])
    assert torch.equal(outs[0], outs[1])


def test_index_is_absolute_not_stretched_to_the_stack():
    """A stack whose logits favour only planes 3..5 of 12 yields indices in 3..5, never 0..11 (no min-max)."""
    m = FocalIndexNet().eval()
    logits = torch.full((1, 12, 8, 8), -20.0)
    logits[:, 3, :, :4] = 10.0
    logits[:, 5, :, 4:] = 10.0
    with torch.no_grad():
        out = m.decode(logits, torch.rand(1, 12, 8, 8))
    for key in ("expected", "index", "refined"):
        assert 2.9 < float(out[key].min()) and float(out[key].max()) < 5.1


def test_gather_copies_pixels_from_the_chosen_plane():
    frames = torch.arange(3 * 3 * 2 * 2, dtype=torch.float32).view(1, 3, 3, 2, 2)
    index = torch.tensor([[[0.2, 1.6], [2.0, 0.9]]])
    out = gather_planes(frames, index)
    expected = torch.stack([frames[0, k, :, y, x] for (y, x), k in zip([(0, 0), (0, 1), (1, 0), (1, 1)],
                                                                         [0, 2, 2, 1], strict=True)], 1)
    assert torch.equal(out[0].reshape(3, 4), expected)


def test_parameter_budget():
    assert count_parameters(FocalIndexNet(NetConfig())) * 4 < 5_000_000
