"""Focal-index network: shape contracts, event dropout, determinism, absolute (not min-max) indices."""

import math

import pytest
import torch
import torch.nn.functional as F

from fusion.net.model import (
    ChannelNorm,
    FocalIndexNet,
    NetConfig,
    _box_mean,
    count_parameters,
    gather_planes,
    rotary,
    rotary_tables,
)


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


# -- the fast building blocks equal their textbook forms (the shipped weights were trained with those) ------------
@pytest.mark.parametrize(("h", "w"), [(37, 53), (5, 3)])
def test_box_mean_is_the_valid_pixel_window_mean(h, w):
    torch.manual_seed(2)
    x = torch.rand(3, 1, h, w) ** 6 * 10.0 ** torch.randint(-8, 1, (3, 1, h, w)).float()  # 8 decades side by side
    want = F.avg_pool2d(F.avg_pool2d(x, (1, 9), 1, (0, 4), count_include_pad=False), (9, 1), 1, (4, 0),
                        count_include_pad=False) if min(h, w) >= 9 else _window_mean_loop(x, 9)
    got = _box_mean(x, 9)
    assert torch.allclose(got, want, rtol=1e-5, atol=0)


def _window_mean_loop(x, size):
    r = size // 2
    out = torch.empty_like(x)
    for i in range(x.shape[-2]):
        for j in range(x.shape[-1]):
            out[..., i, j] = x[..., max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean((-1, -2))
    return out


def test_channel_norm_normalises_each_pixel_over_channels_in_any_memory_format():
    torch.manual_seed(3)
    norm = ChannelNorm(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 5, 7, 9) * 3 + 1
    mean = x.mean(1, keepdim=True)
    want = (x - mean) / torch.sqrt(((x - mean) ** 2).mean(1, keepdim=True) + 1e-5)
    want = want * norm.weight[:, None, None] + norm.bias[:, None, None]
    for fmt in (torch.contiguous_format, torch.channels_last):
        assert torch.allclose(norm(x.contiguous(memory_format=fmt)), want, atol=1e-5)


def test_rotary_turns_each_pair_by_its_plane_angle_and_keeps_only_relative_position():
    torch.manual_seed(4)
    n, heads, dim = 6, 2, 8
    cos, sin = rotary_tables(n, dim, torch.device("cpu"))
    q, k = torch.randn(1, n, heads, dim), torch.randn(1, n, heads, dim)
    got = rotary(q, cos, sin)
    for plane in range(n):
        for j in range(dim // 2):
            angle = plane / 10_000 ** (2 * j / dim)
            c, s = math.cos(angle), math.sin(angle)
            a, b = q[0, plane, :, 2 * j], q[0, plane, :, 2 * j + 1]
            assert torch.allclose(got[0, plane, :, 2 * j], a * c - b * s, atol=1e-5)
            assert torch.allclose(got[0, plane, :, 2 * j + 1], a * s + b * c, atol=1e-5)
    # the same query/key content at planes (m, m + 2) scores the same for every m
    same_q, same_k = q[:, :1].expand(1, n, heads, dim), k[:, :1].expand(1, n, heads, dim)
    scores = (rotary(same_q, cos, sin)[0, :-2] * rotary(same_k, cos, sin)[0, 2:]).sum(-1)
    assert torch.allclose(scores, scores[:1].expand_as(scores), atol=1e-4)


def test_decode_without_refinement_reads_the_same_volume(model):
    torch.manual_seed(5)
    luma = torch.rand(1, 7, 19, 23)
    with torch.no_grad():
        logits = model.plane_logits(luma, None)
        full, fast = model.decode(logits, luma), model.decode(logits, luma, refine=False)
    assert "refined" in full and "refined" not in fast
    for key in ("prob", "expected", "index", "confidence"):
        assert torch.equal(full[key], fast[key])
