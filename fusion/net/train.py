"""Training the focal-index network on synthetic stacks rendered on the fly (fusion notes §5.4–§5.6).

A run is described by a TOML file (configs/train/*.toml → :class:`TrainConfig`, unknown keys rejected) and
writes into one folder: ``checkpoint.pt`` (everything needed to resume exactly: model, optimiser, scheduler,
step, history and the pool's slot specs), ``best.pt`` (the weights with the best validation PSNR, in the
shipped-weights format: config, seed, data recipe and the command that produced them), ``report.png`` (loss
and validation curves) and ``log.jsonl``. Validation uses a fixed set of synthetic stacks whose seeds
training never draws, with and without events (the event ablation).

CPU runs in fp32; CUDA runs in bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

import cv2
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from capture.focal_stack import FocalStack
from drivers.config import read_toml
from fusion.metrics import qabf
from fusion.net.data import DataRecipe, SyntheticPool, collate, frames_01, stack_tensors, validation_specs
from fusion.net.losses import LossWeights, fusion_loss, psnr
from fusion.net.model import FocalIndexNet, NetConfig, count_parameters, gather_planes

CHECKPOINT_FORMAT = "focalrig.net.checkpoint"
WEIGHTS_FORMAT = "focalrig.net.weights"
WEIGHTS_FILE = "focal_index_net.pt"
WEIGHTS_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Strict):
    seed: int = 0
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-3, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    warmup_steps: int = Field(100, ge=0)
    threads: int = Field(2, ge=1)
    pool_per_bucket: int = Field(48, ge=1)
    renders_per_step: int = Field(1, ge=0)
    val_every: int = Field(100, ge=1)
    ckpt_every: int = Field(50, ge=1)
    val_count: int = Field(16, ge=1)
    #: Real focal-stack folders (numbered images) scored at each validation with the reference-free Qabf, against
    #: the classical method on the same stack; relative paths are taken from the current folder, and folders
    #: that are not there are skipped with a note (so a config runs without ../shared).
    real_val_dirs: tuple[str, ...] = ()
    real_val_size: int = Field(320, ge=32, description="long side the real stacks are resized to for validation")
    #: Start from these weights instead of from scratch ("shipped": the package's own; or a best.pt): fine-tuning
    #: on a new recipe or on your own data. Their network config must equal the [model] section.
    init_weights: str | None = None


class DataSection(_Strict):
    size: int = Field(128, ge=16)
    planes: tuple[int, ...] = (4, 8, 12, 16)
    margin_max_dpt: float = Field(1.0, ge=0)
    depth_range_dpt: tuple[float, float] = (0.0, 3.0)
    event_substeps: int = Field(4, ge=1)
    event_dropout: float = Field(0.25, ge=0, le=1)
    sweep_sampling: float = Field(0.0, ge=0, le=1, description="share of frame-true sine-sweep stacks")
    low_light: float = Field(0.0, ge=0, le=1, description="share of low-light stacks")
    weak_texture: float = Field(0.0, ge=0, le=1, description="share of weak-texture stacks")
    refocused: float = Field(0.0, ge=0, le=1, description="share of sparse stacks (6..9 planes) refocused")


#: ``[model]``: exactly NetConfig's fields and defaults (one definition; unknown keys are still errors).
ModelSection = create_model("ModelSection", __base__=_Strict, **{
    f.name: (get_type_hints(NetConfig)[f.name], f.default) for f in dataclasses.fields(NetConfig)})


class LossSection(_Strict):
    ce: float = 1.0
    index: float = 1.0
    image: float = 1.0


class TrainConfig(_Strict):
    train: RunSection = RunSection()
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    loss: LossSection = LossSection()

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        raw = read_toml(path, ValueError, "no such training config (examples in configs/train/)")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"{path}: {key}: {err['msg']} (got {err.get('input')!r})") from None

    def recipe(self) -> DataRecipe:
        d = self.data
        return DataRecipe(d.size, tuple(d.planes), d.margin_max_dpt, tuple(d.depth_range_dpt), d.event_substeps,
                          d.event_dropout, d.sweep_sampling, d.low_light, d.weak_texture, d.refocused)

    def net_config(self) -> NetConfig:
        return NetConfig(**self.model.model_dump())


def shipped_weights() -> Path:
    """Path of the weights shipped in the package (``fusion/net/weights/``, through importlib.resources)."""
    return Path(str(resources.files("fusion.net") / "weights" / WEIGHTS_FILE))


def pick_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is an error that says so."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but this torch build sees no CUDA GPU "
                         f"(torch {torch.__version__}); install the CUDA build or use --device cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def lr_factor(step: int, cfg: RunSection) -> float:
    """Linear warm-up, then cosine from lr to min_lr over the remaining steps (as a multiple of lr)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


class Reporter:
    """What a caller sees of a run; the CLI implements it with a rich progress bar."""

    def status(self, message: str) -> None:  # a phase starts (pool rendering, resuming ...)
        pass

    def pool_progress(self, done: int, total: int) -> None:
        pass

    def step(self, step: int, total: int, metrics: dict[str, float]) -> None:
        pass


class Trainer:
    """One training run in ``out_dir``; :meth:`run` trains to the configured number of steps."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, device: str = "auto", resume: bool = False,
                 command: str = "", reporter: Reporter | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.device = pick_device(device)
        self.command = command
        self.reporter = reporter or Reporter()
        self.recipe = cfg.recipe()
        torch.manual_seed(cfg.train.seed)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.train.threads)
        self.model = FocalIndexNet(cfg.net_config()).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg.train))
        self.step = 0
        self.history: dict[str, list] = {"train": [], "val": []}
        self.best_psnr = -math.inf
        self.pool = SyntheticPool(self.recipe, cfg.train.pool_per_bucket, cfg.train.seed)
        self._val: list[dict[str, np.ndarray]] | None = None
        self.initialised_from: dict[str, Any] | None = None  # the weights a fine-tune started from, with their recipe
        ckpt = self.out / "checkpoint.pt"
        if resume:
            if not ckpt.exists():
                raise ValueError(f"--resume: no checkpoint at {ckpt}; start without --resume")
            self._load(ckpt)
        elif ckpt.exists():
            raise ValueError(f"{ckpt} exists; pass --resume to continue that run or choose another output folder")
        elif cfg.train.init_weights:
            self._init_from(cfg.train.init_weights)

    # -- checkpoints -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "history": self.history, "best_psnr": self.best_psnr, "pool": self.pool.state(),
                "config": self.cfg.model_dump(mode="json"), "command": self.command,
                "initialised_from": self.initialised_from}

    def save_checkpoint(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "checkpoint.pt"
        _atomic_save(self.state(), path)
        return path

    def _load(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a focalrig training checkpoint")
        if state["config"] != self.cfg.model_dump(mode="json"):
            raise ValueError(f"{path}: the checkpoint was written with another config; resume with the same one")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.history = state["history"]
        self.best_psnr = float(state["best_psnr"])
        self._pool_state = state["pool"]
        self.command = self.command or state.get("command", "")
        self.initialised_from = state.get("initialised_from")

    def _init_from(self, source: str) -> None:
        """Copy a weights file's parameters into the fresh model (same network config required)."""
        path = shipped_weights() if source == "shipped" else Path(source)
        try:
            payload = torch.load(path, map_location=self.device, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            raise ValueError(f"train.init_weights: cannot read {path} ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"train.init_weights: {path} is not focalrig network weights")
        if payload["net_config"] != self.cfg.net_config().to_dict():
            raise ValueError(f"train.init_weights: {path} is a network of another shape ({payload['net_config']}); "
                             "make the [model] section match it")
        self.model.load_state_dict(payload["state_dict"])
        self.initialised_from = {"path": str(path), "recipe": payload.get("recipe")}

    def weights(self, validation: dict[str, float]) -> dict[str, Any]:
        """The shipped-weights payload: state dict plus everything needed to reproduce it."""
        return {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "net_config": self.cfg.net_config().to_dict(),
                "state_dict": {k: v.detach().float().cpu() for k, v in self.model.state_dict().items()},
                "recipe": {"seed": self.cfg.train.seed, "step": self.step, "config": self.cfg.model_dump(mode="json"),
                           "data": {**asdict(self.recipe), "generator": "fusion.synthetic.synthetic_stack",
                                    "validation_seeds": "2**31 + i (never drawn in training)"},
                           "command": self.command, "validation": validation, "torch": str(torch.__version__),
                           "device": self.device.type, "parameters": count_parameters(self.model),
                           "initialised_from": self.initialised_from,
                           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}

    def export_weights(self, path: str | Path, validation: dict[str, float] | None = None) -> Path:
        """Write the current model in the shipped-weights format (what ``best.pt`` holds)."""
        path = Path(path)
        _atomic_save(self.weights(validation or {}), path)
        return path

    # -- training ----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Render the pool (or rebuild a resumed run's pool exactly) and the validation set."""
        if self.pool.samples:
            return
        self.reporter.status("rendering the synthetic pool")
        if hasattr(self, "_pool_state"):
            self.pool.load_specs(SyntheticPool.specs_from_state(self._pool_state), self.reporter.pool_progress)
        else:
            self.pool.fill(self.reporter.pool_progress)
        self.reporter.status("rendering the validation set")
        self._val = render_validation(self.cfg.train.val_count, self.recipe)
        self._real = load_real_validation(self.cfg.train.real_val_dirs, self.cfg.train.real_val_size,
                                          self.reporter.status)

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg.train
        self.model.train()
        batch = self.pool.batch(self.step, cfg.batch_size, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.model(batch["luma"], batch["events"])
        loss, parts = fusion_loss(out, batch, LossWeights(**self.cfg.loss.model_dump()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        if cfg.renders_per_step:
            self.pool.refresh(self.step, cfg.renders_per_step)
        parts["lr"] = self.optimizer.param_groups[0]["lr"]
        return parts

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """PSNR of the gathered all-in-focus image and ±1-plane index accuracy, with and without events."""
        assert self._val is not None
        self.model.eval()
        return {**evaluate_samples(self.model, self._val, self.device),
                **evaluate_real(self.model, self._real, self.device)}

    def run(self) -> dict[str, float]:
        cfg = self.cfg.train
        self.prepare()
        self.reporter.status(f"training ({count_parameters(self.model):,} parameters, {self.device.type})")
        last_val: dict[str, float] = self.history["val"][-1] if self.history["val"] else {}
        log = self.out / "log.jsonl"
        self.out.mkdir(parents=True, exist_ok=True)
        while self.step < cfg.steps:
            t0 = time.perf_counter()
            parts = self.train_step()
            parts["step_s"] = time.perf_counter() - t0
            self.history["train"].append({"step": self.step, **parts})
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                last_val = {"step": self.step, **self.validate()}
                self.history["val"].append(last_val)
                if last_val["psnr"] > self.best_psnr:
                    self.best_psnr = last_val["psnr"]
                    self.export_weights(self.out / "best.pt", last_val)
                write_report(self.history, self.out / "report.png")
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": self.step, **parts, **({"val": last_val} if last_val.get("step") ==
                                                                    self.step else {})}) + "\n")
            self.reporter.step(self.step, cfg.steps, {**parts, "val_psnr": last_val.get("psnr", float("nan"))})
        return last_val


def evaluate_samples(model: FocalIndexNet, samples: list[dict[str, np.ndarray]],
                     device: torch.device) -> dict[str, float]:
    """Mean PSNR (hard gather at the network's index) and index accuracy (±1 plane), with events and zeroed."""
    res: dict[str, list[float]] = {"psnr": [], "psnr_no_events": [], "acc1": [], "acc1_no_events": []}
    for s in samples:
        for with_events, suffix in ((True, ""), (False, "_no_events")):
            b = collate([s], with_events=with_events and "events" in s, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(b["luma"], b["events"])
            fused = gather_planes(b["rgb"], out["index"])
            res["psnr" + suffix].append(psnr(fused, b["aif"]))
            res["acc1" + suffix].append(float(((out["index"] - b["label"]).abs() <= 1.0).float().mean()))
    return {k: float(np.mean(v)) for k, v in res.items()}


@dataclass(frozen=True)
class RealStack:
    """A real focal stack for validation: its frames in [0, 1], the network's inputs, and the classical score."""

    name: str
    frames: np.ndarray        # (N, H, W, 3) float32
    luma: torch.Tensor        # (1, N, H, W)
    qabf_classical: float


def load_real_validation(dirs: tuple[str, ...], size: int, note=lambda message: None) -> list[RealStack]:
    """Read, downscale (long side ``size``) and score with the classical method each stack folder that exists."""
    from capture.stack_folders import read_stack_folder
    from fusion.engine import fuse

    out = []
    for folder in dirs:
        if not Path(folder).is_dir():
            note(f"real validation stack {folder} not found: skipped")
            continue
        stack = read_stack_folder(folder)
        h, w = stack.shape
        scale = min(1.0, size / max(h, w))
        frames = frames_01(stack)
        if scale < 1.0:
            dsize = (max(8, round(w * scale)), max(8, round(h * scale)))
            frames = np.stack([cv2.resize(f, dsize, interpolation=cv2.INTER_AREA) for f in frames])
        small = FocalStack(frames.astype(np.float32), stack.focal_powers_dpt, name=stack.name or Path(folder).name)
        classical = fuse(small, method="classical", device="cpu").all_in_focus
        luma = torch.from_numpy(stack_tensors(small).luma)[None]
        out.append(RealStack(small.name, small.frames, luma, qabf(list(small.frames), classical)))
    return out


def evaluate_real(model: FocalIndexNet, stacks: list[RealStack], device: torch.device) -> dict[str, float]:
    """Mean Qabf of the network's all-in-focus image (no events: real stacks have none) and of the classical one."""
    if not stacks:
        return {}
    scores = []
    for s in stacks:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            index = model(s.luma.to(device), None)["index"]
        planes = torch.from_numpy(s.frames).permute(0, 3, 1, 2)[None]  # (1, N, 3, H, W)
        fused = gather_planes(planes, index.float().cpu())[0].permute(1, 2, 0).numpy()
        scores.append(qabf(list(s.frames), fused))
    return {"real_qabf": float(np.mean(scores)), "real_qabf_classical": float(np.mean([s.qabf_classical
                                                                                       for s in stacks]))}


def render_validation(count: int, recipe: DataRecipe) -> list[dict[str, np.ndarray]]:
    """The held-out synthetic set (fixed seeds training never draws), rendered with the training recipe."""
    return [recipe.render(spec) for spec in validation_specs(count)]


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# -- report figure -------------------------------------------------------------------------------------
def write_report(history: dict[str, list], path: str | Path, *, reference_psnr: float | None = None) -> None:
    """Loss curves and validation PSNR as one PNG, drawn with OpenCV (no matplotlib)."""
    train, val = history["train"], history["val"]
    left = _panel("training loss (log10, smoothed)", [("loss", [t["step"] for t in train],
                                                      _smooth([math.log10(max(t["loss"], 1e-8)) for t in train]),
                                                      (40, 40, 200))])
    series = [("events", [v["step"] for v in val], [v["psnr"] for v in val], (40, 150, 40)),
              ("events zeroed", [v["step"] for v in val], [v["psnr_no_events"] for v in val], (200, 120, 40))]
    if reference_psnr is not None and val:
        series.append(("classical", [val[0]["step"], val[-1]["step"]], [reference_psnr] * 2, (120, 120, 120)))
    right = _panel("validation PSNR (dB)", series)
    cv2.imwrite(str(path), np.concatenate([left, right], axis=1))


def _smooth(values: list[float], alpha: float = 0.05) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def _panel(title: str, series: list[tuple[str, list, list, tuple[int, int, int]]], w: int = 560,
           h: int = 360) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    x0, y0, x1, y1 = 60, 30, w - 15, h - 40
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    cv2.putText(img, title, (x0, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    xs = [x for _, sx, _, _ in series for x in sx]
    ys = [y for _, _, sy, _ in series for y in sy if math.isfinite(y)]
    if not xs or not ys:
        return img
    xmin, xmax = min(xs), max(max(xs), min(xs) + 1)
    ymin, ymax = min(ys), max(ys)
    if ymax - ymin < 1e-6:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad

    def px(x: float, y: float) -> tuple[int, int]:
        return (int(x0 + (x - xmin) / (xmax - xmin) * (x1 - x0)), int(y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)))

    for i in range(5):
        yv = ymin + i * (ymax - ymin) / 4
        cv2.putText(img, f"{yv:.2f}", (2, px(xmin, yv)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
        xv = xmin + i * (xmax - xmin) / 4
        cv2.putText(img, f"{xv:.0f}", (px(xv, ymin)[0] - 10, y1 + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0),
                    1, cv2.LINE_AA)
    cv2.putText(img, "step", ((x0 + x1) // 2, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (name, sx, sy, colour) in enumerate(series):
        pts = np.array([px(x, y) for x, y in zip(sx, sy, strict=True) if math.isfinite(y)], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
        elif len(pts) == 1:
            cv2.circle(img, tuple(int(v) for v in pts[0]), 3, colour, -1)
        cv2.putText(img, name, (x0 + 10, y0 + 18 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return img


def run_training(config_path: str | Path, out_dir: str | Path, *, device: str = "auto", resume: bool = False,
                 command: str = "", reporter: Reporter | None = None) -> dict[str, float]:
    """Load the config and train (the CLI's entry point)."""
    cfg = TrainConfig.load(config_path)
    return Trainer(cfg, out_dir, device=device, resume=resume, command=command, reporter=reporter).run()
