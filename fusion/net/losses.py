"""Training losses (fusion notes §5.4): CE over planes, soft index regression, image loss on the soft fusion.

- Cross-entropy against a Gaussian-smoothed one-hot (σ = 0.75 plane) around the continuous best-plane label
  makes the probability volume decisive without punishing a neighbouring plane as hard as a far one.
- L1 of the expected (and the refined) index against the label, divided by N: the regression EventStackMFF
  and StackMFF-V2 use, without their min–max normalisation.
- L1 + 0.2·(1 − SSIM) of Σ_k p_k·I_k against the all-in-focus image: where labels are ambiguous (flat regions,
  planes inside one depth of field) the model is free to pick any plane that looks right.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fusion.net.model import soft_fusion

LABEL_SIGMA = 0.75


@dataclass(frozen=True)
class LossWeights:
    ce: float = 1.0
    index: float = 1.0
    image: float = 1.0


def soft_targets(label: Tensor, n: int, sigma: float = LABEL_SIGMA) -> Tensor:
    """(B, H, W) continuous labels → (B, N, H, W) Gaussian-smoothed one-hot distributions."""
    k = torch.arange(n, device=label.device, dtype=torch.float32).view(1, n, 1, 1)
    t = torch.exp(-0.5 * ((k - label[:, None].float()) / sigma) ** 2)
    return t / t.sum(1, keepdim=True)


def ssim(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """Mean SSIM of (B, C, H, W) images in [0, 1] with a box window (as the seed projects' evaluations)."""
    c1, c2 = 0.01**2, 0.03**2
    pad = window // 2
    mu_x = F.avg_pool2d(x, window, 1, pad, count_include_pad=False)
    mu_y = F.avg_pool2d(y, window, 1, pad, count_include_pad=False)
    sxx = F.avg_pool2d(x * x, window, 1, pad, count_include_pad=False) - mu_x**2
    syy = F.avg_pool2d(y * y, window, 1, pad, count_include_pad=False) - mu_y**2
    sxy = F.avg_pool2d(x * y, window, 1, pad, count_include_pad=False) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()


def fusion_loss(out: dict[str, Tensor], batch: dict[str, Tensor | None],
                weights: LossWeights = LossWeights()) -> tuple[Tensor, dict[str, float]]:
    """Total loss and its parts for the network output ``out`` on ``batch`` (label, rgb, aif)."""
    logits, prob = out["logits"].float(), out["prob"].float()
    n = logits.shape[1]
    label = batch["label"].float()
    ce = -(soft_targets(label, n) * F.log_softmax(logits, 1)).sum(1).mean()
    index = ((out["expected"] - label).abs().mean() + (out["refined"] - label).abs().mean()) / n
    fused = soft_fusion(batch["rgb"].float(), prob)
    aif = batch["aif"].float()
    image = (fused - aif).abs().mean() + 0.2 * (1.0 - ssim(fused, aif))
    total = weights.ce * ce + weights.index * index + weights.image * image
    parts = {"loss": total, "ce": ce, "index": index, "image": image}
    return total, {k: v.detach().item() for k, v in parts.items()}


def psnr(x: Tensor, y: Tensor) -> float:
    """PSNR (dB) of images in [0, 1]."""
    mse = float(((x.float() - y.float()) ** 2).mean())
    return 10.0 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()
