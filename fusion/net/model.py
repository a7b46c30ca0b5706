"""The compact event-guided focal-index network (fusion notes §5.3).

Two stages, as in the StackMFF family but sized for a 2-core CPU: a shared per-plane 2-D encoder over luma and
per-polarity event counts (at 1/4 resolution), then attention along the focal axis at every reduced-resolution
pixel, with rotary position over the ordered sweep. Each plane gets a logit (upsampled) plus a full-resolution
detail term; a softmax over planes gives the probability volume, whose expectation is the focal index —
absolute, never min–max normalised, so a sweep wider than the scene keeps its meaning. An edge-aware,
confidence-weighted diffusion refines the index; RGB is gathered from the original frames (pixels are copied,
not generated).

One model serves stacks with and without events: events enter as input channels plus a "has events" flag,
and training drops them at random. Any N (2..32) and any H×W work: the input is padded (reflect) to a multiple
of 8 internally and the outputs are cropped back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_PLANES = 32
PAD_MULTIPLE = 8
IN_CHANNELS = 6  # Y, Y − mean_k Y, relative log focus energy, E⁺, E⁻, has-events flag


@dataclass(frozen=True)
class NetConfig:
    """Sizes of :class:`FocalIndexNet`; stored with the weights so a checkpoint rebuilds its own model."""

    c_stem: int = 16
    c_quarter: int = 24
    c_eighth: int = 32
    d_model: int = 16
    heads: int = 2
    layers: int = 2
    ffn: int = 32
    detail_hidden: int = 4
    refine_iters: int = 12

    def to_dict(self) -> dict:
        return asdict(self)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each pixel: local, so tiles and padding do not change a pixel's statistics."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        # layer_norm over the last dim of the NHWC view: one fused pass, and on a channels-last tensor the view
        # is contiguous (five broadcast element-wise passes cost ~10x more and dropped channels-last on the CPU).
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, 1e-5).permute(0, 3, 1, 2)


class DWBlock(nn.Module):
    """Depthwise k×k → norm → 1×1 C→2C → GELU → 1×1 2C→C, with a residual."""

    def __init__(self, channels: int, kernel: int = 5, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                            groups=channels)
        self.norm = ChannelNorm(channels)
        self.pw1 = nn.Conv2d(channels, 2 * channels, 1)
        self.pw2 = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class PlaneEncoder(nn.Module):
    """Per-plane features at 1/4 resolution: patchify stem, a 1/4 and a 1/8 stage, fused; event-gated."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.stem = nn.Conv2d(IN_CHANNELS, cfg.c_stem, 4, stride=4)
        self.quarter = nn.Sequential(nn.Conv2d(cfg.c_stem, cfg.c_quarter, 3, padding=1), nn.GELU(),
                                     DWBlock(cfg.c_quarter), DWBlock(cfg.c_quarter))
        self.eighth = nn.Sequential(nn.Conv2d(cfg.c_quarter, cfg.c_eighth, 3, stride=2, padding=1), nn.GELU(),
                                    DWBlock(cfg.c_eighth), DWBlock(cfg.c_eighth, dilation=2))
        self.fuse = nn.Conv2d(cfg.c_quarter + cfg.c_eighth, cfg.d_model, 1)
        self.event_gate = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, cfg.d_model, 3,
                                                                                              padding=1))

    def forward(self, x: Tensor) -> Tensor:
        """x: (P, 6, H, W) planes → (P, d_model, H/4, W/4)."""
        q = self.quarter(F.gelu(self.stem(x)))
        e = self.eighth(q)
        f = self.fuse(torch.cat([q, F.interpolate(e, size=q.shape[-2:], mode="bilinear", align_corners=False)], 1))
        ev = F.avg_pool2d(x[:, 3:6], 4)  # E⁺, E⁻ and the flag at 1/4
        return f * (2.0 * torch.sigmoid(self.event_gate(ev)))


def rotary_tables(n: int, dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin (N, 1, dim/2) of the rotary angles: plane k turns feature pair j by k / 10000^(2j/dim)."""
    freqs = 1.0 / (10_000 ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim))
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * freqs[None, :]
    return angles.cos()[:, None], angles.sin()[:, None]


def rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary position embedding of (S, N, heads, dim) along the plane axis N; pairs (2j, 2j+1) of each head turn."""
    s, n, h, dim = x.shape
    pairs = x.reshape(s, n, h, dim // 2, 2)
    x1, x2 = pairs[..., 0], pairs[..., 1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).view(s, n, h, dim)


class FocalAxisLayer(nn.Module):
    """Pre-LN transformer layer over the planes of one pixel; RoPE on queries and keys (not on x)."""

    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        """x (S, N, d); ``rope`` = :func:`rotary_tables` for N planes and the head size."""
        s, n, d = x.shape
        qkv = self.qkv(self.norm1(x))
        # Queries and keys turn together, in one pass over their (S, N, 2·heads, head) view.
        qk = rotary(qkv[..., :2 * d].reshape(s, n, 2 * self.heads, d // self.heads), *rope)
        q, k = qk.view(s, n, 2, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        v = qkv[..., 2 * d:].reshape(s, n, self.heads, d // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(s, n, d))
        return x + self.ffn(self.norm2(x))


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_SMOOTH = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) / 16.0


class FocalIndexNet(nn.Module):
    """Luma (B, N, H, W) in [0, 1] + normalised events (B, N, 2, H, W) or None → probability volume and index."""

    def __init__(self, cfg: NetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or NetConfig()
        c = self.cfg
        self.encoder = PlaneEncoder(c)
        self.layers = nn.ModuleList(FocalAxisLayer(c.d_model, c.heads, c.ffn) for _ in range(c.layers))
        self.head = nn.Linear(c.d_model, 1)
        self.detail = nn.Sequential(nn.Conv2d(3, c.detail_hidden, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(c.detail_hidden, 1, 3, padding=1))
        self.prior_scale = nn.Parameter(torch.tensor(5.0))  # sharp enough that the prior alone picks planes
        self.log_tau = nn.Parameter(torch.zeros(()))
        self.refine_logit_lambda = nn.Parameter(torch.zeros(()))
        self.refine_log_sigma = nn.Parameter(torch.tensor(math.log(0.08)))
        self.register_buffer("laplacian", _LAPLACIAN.view(1, 1, 3, 3), persistent=False)
        self.register_buffer("smooth", _SMOOTH.view(1, 1, 3, 3), persistent=False)

    def forward(self, luma: Tensor, events: Tensor | None = None) -> dict[str, Tensor]:
        """logits/prob (B, N, H, W); expected, index, refined and confidence (B, H, W) — see :meth:`decode`."""
        return self.decode(self.plane_logits(luma, events), luma)

    def plane_logits(self, luma: Tensor, events: Tensor | None = None) -> Tensor:
        """Per-plane logits (B, N, H, W) before the temperature: the part that is local enough to tile."""
        b, n, h, w = luma.shape
        if not 2 <= n <= MAX_PLANES:
            raise ValueError(f"the network takes 2..{MAX_PLANES} planes, got {n}")
        if events is None:
            events = luma.new_zeros(b, n, 2, h, w)
            flag = 0.0
        else:
            if events.shape != (b, n, 2, h, w):
                raise ValueError(f"events must be {(b, n, 2, h, w)}, got {tuple(events.shape)}")
            flag = 1.0
        ph, pw = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        if ph or pw:
            luma = _pad(luma, ph, pw)
            events = _pad(events.flatten(1, 2), ph, pw).view(b, n, 2, h + ph, w + pw)
        hp, wp = h + ph, w + pw
        lap, energy = self._focus_energy(luma.reshape(b * n, 1, hp, wp))
        energy = energy.view(b, n, hp, wp)
        rel = energy - energy.mean(1, keepdim=True)  # log focus energy relative to the stack: the classical cue
        x = _channels_last_planes([luma, luma - luma.mean(1, keepdim=True), 0.25 * rel, events[:, :, 0],
                                   events[:, :, 1], luma.new_full((b, n, hp, wp), flag)])
        feats = self.encoder(x)  # (B·N, d, h4, w4)
        d, h4, w4 = feats.shape[1:]
        seq = feats.view(b, n, d, h4 * w4).permute(0, 3, 1, 2).reshape(b * h4 * w4, n, d)
        rope = rotary_tables(n, self.cfg.d_model // self.cfg.heads, seq.device)
        for layer in self.layers:
            seq = layer(seq, rope)
        coarse = self.head(seq).view(b, h4, w4, n).permute(0, 3, 1, 2)
        logits = F.interpolate(coarse, size=(hp, wp), mode="bilinear", align_corners=False)
        detail_in = _channels_last_planes([lap.abs().view(b, n, hp, wp), events.sum(2), 0.25 * rel])
        logits = logits + self.detail(detail_in).view(b, n, hp, wp) + self.prior_scale * rel
        return logits[:, :, :h, :w]

    def _focus_energy(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Laplacian of the slightly smoothed luma and log of its 9×9 mean square (the sum-modified-Laplacian
        family of focus measures, fusion notes §6.1): a fixed prior the network corrects rather than relearns."""
        y = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), self.smooth.to(y.dtype))
        lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), self.laplacian.to(y.dtype))
        e = _box_mean(lap * lap, 9)
        return lap, torch.log(e.float() + 1e-6).to(y.dtype)

    def decode(self, logits: Tensor, luma: Tensor, *, refine: bool = True) -> dict[str, Tensor]:
        """Probability volume and its readings (all absolute plane indices, never min–max normalised).

        ``expected`` = Σ p_k·k (the soft regression target of training); ``index`` = the argmax plane refined to
        sub-plane by the expectation over it and its two neighbours (a bimodal volume at an occlusion edge
        picks one side, not the plane in between; rounds to the argmax); ``refined`` = ``expected`` after the
        confidence-weighted edge-aware diffusion (only with ``refine``: its 12 full-resolution iterations cost
        ~10 % of a CPU inference that does not use it); ``confidence`` = (1 − H(p)/log N)·max p.
        """
        n = logits.shape[1]
        logits = logits.float() / self.log_tau.exp()
        prob = torch.softmax(logits, 1)
        k = torch.arange(n, device=logits.device, dtype=prob.dtype).view(1, n, 1, 1)
        expected = (prob * k).sum(1)
        entropy = -(prob * torch.log(prob.clamp_min(1e-12))).sum(1)
        confidence = ((1.0 - entropy / math.log(n)) * prob.amax(1)).clamp(0.0, 1.0)
        out = {"logits": logits, "prob": prob, "expected": expected, "index": peak_index(prob),
               "confidence": confidence}
        if refine:
            out["refined"] = self._diffuse(expected, confidence, (prob * luma.float()).sum(1))
        return out

    def _diffuse(self, index: Tensor, confidence: Tensor, guide: Tensor) -> Tensor:
        """Confidence-weighted Jacobi diffusion of the index that does not cross edges of the guide image."""
        lam = 4.0 * torch.sigmoid(self.refine_logit_lambda)
        sigma = self.refine_log_sigma.exp()
        gp = F.pad(guide[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
        c = gp[:, 1:-1, 1:-1]
        neighbours = [gp[:, :-2, 1:-1], gp[:, 2:, 1:-1], gp[:, 1:-1, :-2], gp[:, 1:-1, 2:]]
        weights = [torch.exp(-((c - g) / sigma) ** 2) for g in neighbours]
        data = confidence + 1e-3
        d = index
        for _ in range(self.cfg.refine_iters):
            dp = F.pad(d[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
            nd = [dp[:, :-2, 1:-1], dp[:, 2:, 1:-1], dp[:, 1:-1, :-2], dp[:, 1:-1, 2:]]
            num = data * index + lam * sum(wi * di for wi, di in zip(weights, nd, strict=True))
            den = data + lam * sum(weights)
            d = num / den
        return d


def _channels_last_planes(channels: list[Tensor]) -> Tensor:
    """(B, N, H, W) maps → one (B·N, C, H, W) input in channels-last memory, written in one pass (concatenating
    in NCHW and letting the convolution reorder it costs two more full-resolution copies)."""
    return torch.stack(channels, -1).flatten(0, 1).permute(0, 3, 1, 2)


def _box_mean(x: Tensor, size: int) -> Tensor:
    """Mean over a size×size window of valid pixels (avg_pool2d with count_include_pad=False, to 4e-7 relative).

    Summed as shifted slices, one axis at a time: on a 2-core CPU this is ~5x faster than avg_pool2d on these
    single-channel full-resolution planes, and it stays exact where a cumulative sum would lose small values
    next to large ones.
    """
    r = size // 2
    h, w = x.shape[-2:]
    p = F.pad(x, (r, r, 0, 0))
    rows = p[..., :w].clone()
    for i in range(1, size):
        rows += p[..., i:i + w]
    p = F.pad(rows, (0, 0, r, r))
    out = p[..., :h, :].clone()
    for i in range(1, size):
        out += p[..., i:i + h, :]
    ones = x.new_ones(1, 1, 1)
    kernel = x.new_ones(1, 1, size)
    count_w = F.conv1d(ones.expand(1, 1, w), kernel, padding=r)[0, 0]
    count_h = F.conv1d(ones.expand(1, 1, h), kernel, padding=r)[0, 0]
    return out / (count_h[:, None] * count_w[None, :])


def peak_index(prob: Tensor) -> Tensor:
    """Argmax plane + the probability-weighted offset over it and its neighbours, kept within ±0.49 plane."""
    n = prob.shape[1]
    peak = prob.max(1, keepdim=True).indices  # same first-maximum rule as argmax, ~5x faster across planes on CPU
    num = torch.zeros_like(prob[:, :1])
    den = torch.zeros_like(prob[:, :1])
    for j in (-1, 0, 1):
        inside = ((peak + j >= 0) & (peak + j <= n - 1)).to(prob.dtype)
        p = prob.gather(1, (peak + j).clamp(0, n - 1)) * inside
        num = num + p * j
        den = den + p
    return (peak.to(prob.dtype) + (num / den.clamp_min(1e-12)).clamp(-0.49, 0.49))[:, 0]


def _pad(x: Tensor, ph: int, pw: int) -> Tensor:
    """Reflect-pad the last two dims at the bottom/right (replicate where the image is too small to reflect)."""
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def gather_planes(frames: Tensor, index: Tensor) -> Tensor:
    """Pick each pixel's plane from (B, N, C, H, W) frames at the rounded index (B, H, W) → (B, C, H, W)."""
    n, c = frames.shape[1], frames.shape[2]
    idx = index.round().clamp(0, n - 1).long()[:, None, None].expand(-1, 1, c, -1, -1)
    return torch.gather(frames, 1, idx)[:, 0]


def soft_fusion(frames: Tensor, prob: Tensor) -> Tensor:
    """Σ_k p_k·I_k: (B, N, C, H, W) frames, (B, N, H, W) probabilities → (B, C, H, W)."""
    return (frames * prob[:, :, None].to(frames.dtype)).sum(1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
