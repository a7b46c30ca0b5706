"""From focal stacks to the network's tensors, and the synthetic training pool.

:func:`stack_tensors` is the one conversion used by inference and training alike, so the model always sees
the same normalisation: frames → [0, 1] RGB, BT.601 luma, event counts → log1p(count)/log1p(c_norm) clipped
to 1 with c_norm the 99th percentile of the stack's nonzero counts (fusion notes §5.2), polarities kept apart.

Rendering a training stack costs a few hundred ms on a 2-core CPU, more than a training step, so training
draws batches from a :class:`SyntheticPool` of rendered stacks, grouped by plane count (a batch shares one N),
re-augmented with the 8 flips/rotations, and refreshed with a few new stacks every step. Every random choice
of step s comes from a generator seeded by (seed, s), and the pool is described by its slots' specs, so a
resumed run rebuilds the very same pool and draws the very same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from capture.focal_stack import FocalStack
from fusion.synthetic import sweep_fractions, synthetic_stack

#: BT.601 luma weights (as the seed projects' COLOR_BGR2GRAY / PIL "L").
LUMA_601 = np.array([0.299, 0.587, 0.114], np.float32)
#: Validation seeds start here; training seeds are drawn below it, so the two never meet.
VALIDATION_SEED_BASE = 2**31


def frames_01(stack: FocalStack) -> np.ndarray:
    """Frames as float32 in [0, 1], (N, H, W, 3) (gray stacks repeated to three channels)."""
    f = stack.frames
    if f.dtype == np.uint8:
        f = f.astype(np.float32) / 255.0
    elif f.dtype == np.uint16:
        f = f.astype(np.float32) / 65535.0
    f = f.astype(np.float32, copy=False)
    return f if f.ndim == 4 else np.repeat(f[..., None], 3, axis=3)


def normalise_events(counts: np.ndarray) -> np.ndarray:
    """(N, 2, H, W) counts → float32 in [0, 1]: log1p(count)/log1p(c_norm), c_norm = p99 of nonzero counts (≥ 1)."""
    counts = counts.astype(np.float32, copy=False)
    nonzero = counts[counts > 0]
    c_norm = max(1.0, float(np.percentile(nonzero, 99))) if nonzero.size else 1.0
    return np.minimum(np.log1p(counts) / np.log1p(c_norm), 1.0).astype(np.float32)


@dataclass
class StackTensors:
    """One stack as the network takes it: luma (N, H, W), events (N, 2, H, W) or None, RGB (N, 3, H, W)."""

    luma: np.ndarray
    events: np.ndarray | None
    rgb: np.ndarray


def stack_tensors(stack: FocalStack) -> StackTensors:
    rgb = frames_01(stack)
    luma = (rgb @ LUMA_601).astype(np.float32)
    events = normalise_events(stack.events) if stack.events is not None else None
    return StackTensors(luma, events, np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))


@dataclass(frozen=True)
class SampleSpec:
    """Everything that determines one rendered training stack.

    ``sampling``: "uniform" planes, or the frames of a sine sweep over a "period" (both halves interleaved) or its
    rising "half", starting at ``phase`` of a frame interval — the frame-true stacks a recording gives. ``light_e``
    (photo-electrons of white; None: the default bright camera) and ``contrast`` (texture contrast) make low-light
    and weak-texture stacks. ``refocused`` of the ``n_planes`` are planes refocused by the events between frames.
    """

    seed: int
    n_planes: int
    margin_dpt: tuple[float, float]
    sampling: str = "uniform"
    phase: float = 0.0
    light_e: float | None = None
    contrast: float = 1.0
    refocused: int = 0

    @property
    def frames(self) -> int:
        return self.n_planes - self.refocused

    def plane_fractions(self) -> np.ndarray | None:
        if self.sampling == "uniform":
            return None
        return sweep_fractions(self.frames, self.phase, "half" if self.sampling == "half" else "period")

    def to_list(self) -> list:
        return [self.seed, self.n_planes, list(self.margin_dpt), self.sampling, self.phase, self.light_e,
                self.contrast, self.refocused]

    @classmethod
    def from_list(cls, v: list) -> SampleSpec:
        """From :meth:`to_list` (a pool state; older states hold only the first 3 or 7 fields)."""
        extra = v[3:] + [None] * (8 - len(v))
        return cls(int(v[0]), int(v[1]), (float(v[2][0]), float(v[2][1])), extra[0] or "uniform",
                   float(extra[1] or 0.0), None if extra[2] is None else float(extra[2]),
                   float(1.0 if extra[3] is None else extra[3]), int(extra[4] or 0))


@dataclass(frozen=True)
class DataRecipe:
    """How training stacks are drawn (saved with the weights).

    ``sweep_sampling`` of the stacks are frame-true sine-sweep samplings (their frames' non-uniform powers, both
    sweep halves in 70 % of them), ``low_light`` are lit with 150..3,000 photo-electrons for white (log-uniform),
    ``weak_texture`` have their textures at 10..40 % contrast, ``refocused`` of those with 6 to 9 planes (the sparse
    sweeps where a recording's stack gets them) have one or two of them refocused by the events between frames.
    """

    size: int = 128
    planes: tuple[int, ...] = (4, 8, 12, 16)
    margin_max_dpt: float = 1.0
    depth_range_dpt: tuple[float, float] = (0.0, 3.0)
    event_substeps: int = 4
    event_dropout: float = 0.25
    sweep_sampling: float = 0.0
    low_light: float = 0.0
    weak_texture: float = 0.0
    refocused: float = 0.0

    def render(self, spec: SampleSpec) -> dict[str, np.ndarray]:
        stack = synthetic_stack(spec.seed, size=(self.size, self.size), n_planes=spec.frames,
                                depth_range_dpt=self.depth_range_dpt, sweep_margin_dpt=spec.margin_dpt,
                                event_substeps=self.event_substeps, plane_fractions=spec.plane_fractions(),
                                light_e=spec.light_e, texture_contrast=spec.contrast, refocused=spec.refocused)
        return sample_arrays(stack)

    def draw_spec(self, rng: np.random.Generator, n_planes: int | None = None) -> SampleSpec:
        n = int(rng.choice(self.planes)) if n_planes is None else n_planes
        margins = rng.uniform(0.0, self.margin_max_dpt, 2) * (rng.random() < 0.7)
        seed = int(rng.integers(0, VALIDATION_SEED_BASE))
        spec = SampleSpec(seed, n, (float(margins[0]), float(margins[1])))
        if not (self.sweep_sampling or self.low_light or self.weak_texture or self.refocused):
            return spec  # the original recipe draws nothing more (its pools and runs stay reproducible)
        sampling = "uniform"
        phase = 0.0
        if rng.random() < self.sweep_sampling:
            sampling = "period" if rng.random() < 0.7 else "half"
            # away from the phases where a period's two halves would sample the same powers (one plane less)
            phase = float(rng.uniform(0.02, 0.48) + 0.5 * (rng.random() < 0.5))
        light = float(np.exp(rng.uniform(np.log(150.0), np.log(3000.0)))) if rng.random() < self.low_light else None
        contrast = float(rng.uniform(0.1, 0.4)) if rng.random() < self.weak_texture else 1.0
        refocused = 0
        if self.refocused and 6 <= n <= 9 and rng.random() < self.refocused:  # no draw without it: old runs replay
            refocused = int(rng.integers(1, 3))
        return SampleSpec(seed, n, spec.margin_dpt, sampling, phase, light, contrast, refocused)


def sample_arrays(stack: FocalStack) -> dict[str, np.ndarray]:
    """A synthetic stack's network inputs and targets as arrays (what a pool slot holds)."""
    t = stack_tensors(stack)
    aif = stack.ground_truth["all_in_focus"].astype(np.float32) / np.float32(np.iinfo(stack.frames.dtype).max
                                                                           if stack.frames.dtype != np.float32
                                                                           else 1.0)
    out = {"luma": t.luma, "rgb": t.rgb, "aif": np.ascontiguousarray(aif.transpose(2, 0, 1)),
           "label": stack.ground_truth["focal_index"].astype(np.float32)}
    if t.events is not None:
        out["events"] = t.events
    return out


def collate(samples: list[dict[str, np.ndarray]], *, with_events: bool,
            device: torch.device | str = "cpu") -> dict[str, Tensor | None]:
    """Stack samples of one N into a batch (events None when dropped)."""
    batch: dict[str, Tensor | None] = {k: torch.from_numpy(np.stack([s[k] for s in samples])).to(device)
                                       for k in ("luma", "rgb", "aif", "label")}
    batch["events"] = (torch.from_numpy(np.stack([s["events"] for s in samples])).to(device)
                       if with_events else None)
    return batch


def augment(sample: dict[str, np.ndarray], code: int) -> dict[str, np.ndarray]:
    """One of the 8 flips/rotations (code 0..7) applied to every spatial array of a sample."""
    def f(a: np.ndarray) -> np.ndarray:
        if code & 4:
            a = np.swapaxes(a, -1, -2)
        if code & 1:
            a = a[..., ::-1]
        if code & 2:
            a = a[..., ::-1, :]
        return np.ascontiguousarray(a)
    return {k: f(v) for k, v in sample.items()}


class SyntheticPool:
    """Rendered training stacks grouped by plane count; ``batch(step)`` is a pure function of (pool, seed, step)."""

    def __init__(self, recipe: DataRecipe, per_bucket: int, seed: int) -> None:
        self.recipe = recipe
        self.per_bucket = per_bucket
        self.seed = seed
        self.specs: dict[int, list[SampleSpec]] = {}
        self.samples: dict[int, list[dict[str, np.ndarray]]] = {}

    def fill(self, progress=None) -> None:
        """Render the initial pool (specs from the seed), ``progress(done, total)`` after each stack."""
        rng = np.random.default_rng([self.seed, 0xF111])
        specs = {n: [self.recipe.draw_spec(rng, n) for _ in range(self.per_bucket)] for n in self.recipe.planes}
        self.load_specs(specs, progress)

    def load_specs(self, specs: dict[int, list[SampleSpec]], progress=None) -> None:
        """Render exactly these slots (how a resumed run rebuilds its pool)."""
        total = sum(len(v) for v in specs.values())
        done = 0
        self.specs, self.samples = {}, {}
        for n, slots in specs.items():
            self.specs[n] = list(slots)
            self.samples[n] = []
            for spec in slots:
                self.samples[n].append(self.recipe.render(spec))
                done += 1
                if progress is not None:
                    progress(done, total)

    def refresh(self, step: int, count: int) -> None:
        """Replace ``count`` slots (chosen by the step's generator) with newly rendered stacks."""
        rng = np.random.default_rng([self.seed, step, 1])
        for _ in range(count):
            n = int(rng.choice(self.recipe.planes))
            slot = int(rng.integers(len(self.specs[n])))
            spec = self.recipe.draw_spec(rng, n)
            self.specs[n][slot] = spec
            self.samples[n][slot] = self.recipe.render(spec)

    def batch(self, step: int, batch_size: int, device: torch.device | str = "cpu") -> dict[str, Tensor | None]:
        rng = np.random.default_rng([self.seed, step, 2])
        n = int(rng.choice(self.recipe.planes))
        idx = rng.choice(len(self.samples[n]), size=batch_size, replace=len(self.samples[n]) < batch_size)
        codes = rng.integers(0, 8, batch_size)
        with_events = bool(rng.random() >= self.recipe.event_dropout)
        return collate([augment(self.samples[n][i], int(c)) for i, c in zip(idx, codes, strict=True)],
                       with_events=with_events, device=device)

    def state(self) -> dict[int, list[list]]:
        """The slots' specs as plain lists (stored in checkpoints)."""
        return {n: [s.to_list() for s in slots] for n, slots in self.specs.items()}

    @staticmethod
    def specs_from_state(state: dict) -> dict[int, list[SampleSpec]]:
        return {int(n): [SampleSpec.from_list(v) for v in slots] for n, slots in state.items()}


def validation_specs(count: int, planes: tuple[int, ...] = (8, 16), margins: tuple[float, ...] = (0.0, 0.5)
                     ) -> list[SampleSpec]:
    """The fixed held-out set: seeds from VALIDATION_SEED_BASE, which training never draws."""
    return [SampleSpec(VALIDATION_SEED_BASE + i, planes[i % len(planes)],
                       (margins[(i // len(planes)) % len(margins)],) * 2) for i in range(count)]
