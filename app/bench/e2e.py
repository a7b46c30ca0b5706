"""``focalrig bench e2e``: the product path (simulate, calibrate, stack, fuse) scored against the simulator's truth.

For every rig regime (the default rig, faster sweeps, low light, weak texture, a moving object, a beam splitter
that rotates and shifts a larger event sensor, a sensitive event sensor) the rig is calibrated once, as a user
would: a blinking-target recording for the geometry and a static-scene sweep recording for lag and breathing. Then
scenes of several seeds are recorded, every sweep of every recording is stacked and fused by each method, and the
all-in-focus image is scored against ``ground_truth/all_in_focus.png`` (PSNR and SSIM in colour, PSNR of the luma)
and the depth map against ``depth_dpt.npy`` on textured pixels — each method with its events and, beside it, on
the same stack with its events taken out ("frames only": no slices, no event-timed focus, no refocused planes). Two
oracles read the real frames with the truth in hand: the best single-frame copy and the near-best average
(:mod:`fusion.oracles`) — what the frames allow. With a moving object, every figure is taken outside the object's
track (the truth is the static scene's).

Figures are printed (and written as JSON), never asserted.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.config import load_config, parse_override
from calibration.model import Calibration, CalibrationError
from calibration.pipeline import calibrate_recording
from calibration.stack import build_focal_stack
from capture.plan import SweepPlan
from capture.recording import Recording
from capture.recording.ground_truth import all_in_focus_at
from capture.recording.simulated import record_simulation
from capture.recording.simulated_target import record_blinking_target
from fusion import metrics, oracles
from fusion.engine import fuse


@dataclass(frozen=True)
class Regime:
    """One simulated rig and scene family as ``--set`` overrides (``sim.*`` for the rig, ``plan.*`` for the sweep):
    ``rig`` holds for the calibration recordings too, ``scene`` only for the scored scenes (a user calibrates on a
    static, textured, well-lit scene whatever they record afterwards)."""

    name: str
    description: str
    rig: tuple[str, ...] = ()
    scene: tuple[str, ...] = ()

    @property
    def sets(self) -> tuple[str, ...]:
        return self.rig + self.scene


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("default", "the default simulated rig: 320x240, 4 Hz sine over 0-2.5 dpt, 60 fps"),
    Regime("8hz", "8 Hz sweep at 60 fps (7-8 frames per period)", ("plan.frequency_hz=8.0",)),
    Regime("10hz", "10 Hz sweep at 60 fps (6 frames per period)", ("plan.frequency_hz=10.0",)),
    Regime("low-light", "300 photo-electrons for white (17x fewer)", scene=("sim.white_e=300.0",)),
    Regime("weak-texture", "textures at 15 % contrast", scene=("sim.texture_contrast=0.15",)),
    Regime("moving", "an object crossing the view at 2.4 dpt (scored outside its track)",
           scene=("sim.moving_object={depth_dpt=2.4}",)),
    Regime("splitter", "event sensor 400x300, rotated 2 deg and shifted (6, -4) px against the RGB view",
           ("sim.event_size=[400,300]", "sim.splitter_angle_deg=2.0", "sim.splitter_shift_px=[6.0,-4.0]")),
    Regime("sensitive", "a sensitive event sensor: contrast threshold 0.1 (0.22 by default)",
           ("sim.event_threshold=0.1",)),
    Regime("10hz-sensitive", "10 Hz sweep at 60 fps with the 0.1 threshold: few frames, many events",
           ("plan.frequency_hz=10.0", "sim.event_threshold=0.1")),
)}
DEFAULT_REGIMES = tuple(REGIMES)
ORACLE_SINGLE = "oracle: best single frame"
ORACLE_AVERAGE = "oracle: near-best average"
#: Suffix of a method's row fused from the same stack with its events taken out (slices, focus, refocused planes).
FRAMES_ONLY = ", frames only"
#: Suffix of the single-exposure mode's row: one frame and planes refocused from it by the sweep's events.
SINGLE_FRAME = ", single frame"
#: Seed of the static scene the rig is calibrated on (never one of the scored scenes).
CALIBRATION_SEED = 1000


@dataclass(frozen=True)
class MethodSpec:
    """A fusion method and its options, written ``name`` or ``name:key=value,key=value`` (TOML values)."""

    label: str
    method: str
    options: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> MethodSpec:
        name, _, rest = text.partition(":")
        options = dict(parse_override(part) for part in rest.split(",") if part.strip())
        return cls(text, name.strip(), options)


@dataclass
class Row:
    regime: str
    seed: int
    sweep: int
    method: str
    planes: int
    psnr: float
    ssim: float
    luma_psnr: float
    depth_median_dpt: float = math.nan
    depth_rmse_dpt: float = math.nan
    stack_s: float = math.nan
    fuse_s: float = math.nan
    track_psnr: float = math.nan


def _split_sets(sets: tuple[str, ...]) -> tuple[list[str], list[tuple[str, object]]]:
    rig = [s for s in sets if not s.startswith("plan.")]
    plan = [parse_override(s[len("plan."):]) for s in sets if s.startswith("plan.")]
    return rig, plan


def _rig_and_plan(regime: Regime, seed: int, sweeps: int, *, calibration: bool = False):
    rig_sets, plan_sets = _split_sets(regime.rig if calibration else regime.sets)
    cfg = load_config(None, overrides=[*rig_sets, "sim.realtime=false", f"sim.seed={seed}"])
    plan = SweepPlan.load(None, [*plan_sets, ("sweeps", sweeps), ("duration_s", "none")])
    return cfg, plan


def calibrate_regime(regime: Regime, work: Path, sweeps: int) -> Path:
    """The rig's calibration file: geometry from a blinking target, timing and breathing from a static scene."""
    cfg, plan = _rig_and_plan(regime, CALIBRATION_SEED, max(sweeps, 2), calibration=True)
    target = record_blinking_target(work / "target", cfg.sim)
    status = record_simulation(cfg, plan, work / "calibration-sweeps")
    run = calibrate_recording(status.recording, target=target)
    path = work / "calibration.json"
    run.calibration.save(path)
    return path


def _truth(recording: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    gt = recording / "ground_truth"
    aif = cv2.imread(str(gt / "all_in_focus.png"), cv2.IMREAD_UNCHANGED)
    aif = aif[..., ::-1].copy() if aif.ndim == 3 else aif
    return aif, np.load(gt / "depth_dpt.npy"), json.loads((gt / "sim.json").read_text())


def _outside_object(recording: Path, sim: dict, shape: tuple[int, int], t0: float, t1: float) -> np.ndarray:
    """Pixels the moving object (its disc, its defocus blur and its motion) never touched during [t0, t1)."""
    mask = np.ones(shape, bool)
    obj = sim.get("moving_object")
    if not obj:
        return mask
    track = np.load(recording / "ground_truth" / "lens_trajectory.npz")
    t, xy = track["object_t_us"], track["object_xy"]
    sel = (t >= t0 - 5000) & (t < t1 + 5000)
    radius = float(obj["radius_px"]) + 0.5 * sim.get("blur_px_per_dpt", shape[1] / 40.0) * 2.5 + 3.0
    canvas = np.zeros(shape, np.uint8)
    for x, y in xy[sel]:
        cv2.circle(canvas, (round(float(x)), round(float(y))), math.ceil(radius), 1, -1)
    return canvas == 0


def score_sweeps(regime: Regime, recording: Path, calibration, seed: int, methods: list[MethodSpec],
                 n_planes: int, warmed: set[str], single_frame: bool = True,
                 notes: list[str] | None = None) -> Iterator[Row]:
    """Rows for every sweep of ``recording``: each method with events, frames only, and (the first method) in the
    single-exposure mode; then the two oracles on the real frames. A method's first call (weights loading, kernel
    compilation) runs once untimed; ``warmed`` remembers which ran. With a moving object, ``track_psnr`` scores
    the object's track against the scene at the single frame's moment. A sweep whose single exposure cannot be
    refocused (too few events to read the threshold from) has no single-exposure row; why is added to ``notes``."""
    aif, depth, sim = _truth(recording)
    with Recording.open(recording) as rec:
        for sweep in rec.sweeps():
            t = time.perf_counter()
            stack = build_focal_stack(sweep, calibration, n_planes=n_planes,
                                      with_events=calibration.spatial is not None)
            stack_s = time.perf_counter() - t
            mask = _outside_object(recording, sim, aif.shape[:2], sweep.t_start_us, sweep.t_end_us)
            depth_mask = mask & oracles.textured(aif)
            variants = [("", stack)] + ([(FRAMES_ONLY, stack.without_events())] if stack.has_events else [])
            single = None
            if stack.has_events and single_frame:
                try:
                    single = build_focal_stack(sweep, calibration, n_planes=n_planes, single_frame=True)
                    variants.append((SINGLE_FRAME, single))
                except CalibrationError as exc:
                    if notes is not None:
                        notes.append(f"{regime.name}, scene {seed}: no single-exposure row: {exc}")
            # With a moving object, the track is judged against the scene as it was when the single frame was taken.
            moment = None
            if sim.get("moving_object") and single is not None:
                frame_time = next(p["t_mid_us"][0] for p in single.meta["planes"] if p["kind"] == "frame")
                moment = (all_in_focus_at(recording / "ground_truth", frame_time), ~mask)
            for spec in methods:
                for suffix, variant in variants:
                    if suffix == SINGLE_FRAME and spec is not methods[0]:
                        continue  # the single-exposure mode is reported for the first method
                    if spec.label not in warmed:
                        fuse(variant, method=spec.method, **spec.options)
                        warmed.add(spec.label)
                    result = fuse(variant, method=spec.method, **spec.options)
                    track = (metrics.psnr(moment[0], result.all_in_focus, mask=moment[1]) if moment is not None
                             and suffix != FRAMES_ONLY else math.nan)
                    yield Row(regime.name, seed, sweep.index, spec.label + suffix, variant.n_planes,
                              *_image_scores(aif, result.all_in_focus, mask),
                              **_depth(result.depth_dpt, depth, depth_mask), stack_s=stack_s,
                              fuse_s=result.timings_s["total"], track_psnr=track)
            frames = stack.without_events() if stack.has_events else stack  # the oracles read the real frames
            single, best = oracles.single_frame_oracle(frames, aif)
            powers = frames.focal_powers_dpt[best].astype(np.float32)
            yield Row(regime.name, seed, sweep.index, ORACLE_SINGLE, frames.n_planes,
                      *_image_scores(aif, single, mask), **_depth(powers, depth, depth_mask))
            average = oracles.near_best_oracle(frames, aif)
            yield Row(regime.name, seed, sweep.index, ORACLE_AVERAGE, frames.n_planes,
                      *_image_scores(aif, average, mask))


def _image_scores(truth: np.ndarray, image: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """PSNR and SSIM in colour, and PSNR of the BT.601 luma (what events can restore; colour they cannot)."""
    peak = metrics.data_range(truth)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    y_truth = truth.astype(np.float32) @ luma if truth.ndim == 3 else truth.astype(np.float32)
    y_image = image.astype(np.float32) @ luma if image.ndim == 3 else image.astype(np.float32)
    return (metrics.psnr(truth, image, mask=mask), metrics.ssim(truth, image, mask=mask),
            metrics.psnr(y_truth, y_image, peak, mask=mask))


def _depth(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    e = oracles.depth_errors(estimate, truth, mask)
    return {"depth_median_dpt": e["depth_median_dpt"], "depth_rmse_dpt": e["depth_rmse_dpt"]}


def summarise(rows: list[Row]) -> list[dict]:
    """Means per (regime, method), in the order first seen."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.regime, r.method)].append(r)
    out = []
    for (regime, method), rs in groups.items():
        row = {"regime": regime, "method": method, "stacks": len(rs), "planes": float(np.mean([r.planes for r in rs]))}
        for key in ("psnr", "ssim", "luma_psnr", "depth_median_dpt", "depth_rmse_dpt", "stack_s", "fuse_s",
                    "track_psnr"):
            values = np.array([getattr(r, key) for r in rs], np.float64)
            row[key] = float(np.mean(values)) if np.isfinite(values).any() else math.nan
        out.append(row)
    return out


def _fmt(value: float, fmt: str) -> str:
    return "—" if not math.isfinite(value) else fmt.format(value)


def print_table(console: Console, summary: list[dict]) -> None:
    table = Table(title="product path: recording → calibration → stack → fusion, against the simulator's truth "
                        "(means over scenes and sweeps)", title_justify="left")
    for col, justify in (("regime", "left"), ("method", "left"), ("stacks", "right"), ("planes", "right"),
                         ("AIF PSNR dB", "right"), ("luma dB", "right"), ("SSIM", "right"), ("depth med dpt", "right"),
                         ("depth RMSE dpt", "right"), ("stack ms", "right"), ("fuse ms", "right"),
                         ("track dB", "right")):
        table.add_column(col, justify=justify)
    last = None
    for s in summary:
        if last is not None and s["regime"] != last:
            table.add_section()
        last = s["regime"]
        table.add_row(s["regime"], s["method"], str(s["stacks"]), f"{s['planes']:.1f}", _fmt(s["psnr"], "{:.2f}"),
                      _fmt(s["luma_psnr"], "{:.2f}"), _fmt(s["ssim"], "{:.4f}"), _fmt(s["depth_median_dpt"], "{:.3f}"),
                      _fmt(s["depth_rmse_dpt"], "{:.3f}"), _fmt(s["stack_s"] * 1e3, "{:.0f}"),
                      _fmt(s["fuse_s"] * 1e3, "{:.0f}"), _fmt(s["track_psnr"], "{:.2f}"))
    console.print(table)


def run_e2e_benchmark(console: Console, *, regimes: list[str], seeds: int, sweeps: int, methods: list[str],
                      planes: int, keep: Path | None = None, json_path: Path | None = None) -> list[dict]:
    """Run every regime, print the table (and write every row to ``json_path``); returns the summary."""
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regime(s) {', '.join(unknown)}; known: {', '.join(REGIMES)}")
    specs = [MethodSpec.parse(m) for m in methods]
    for r in regimes:
        console.print(f"[bold]{r}[/]: {REGIMES[r].description}"
                      + (f"  (--set {' --set '.join(REGIMES[r].sets)})" if REGIMES[r].sets else ""), highlight=False)
    rows: list[Row] = []
    notes: list[str] = []
    warmed: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="focalrig-e2e-") as tmp:
        root = keep if keep is not None else Path(tmp)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=True)
        with progress:
            task = progress.add_task("e2e", total=len(regimes) * (seeds + 1))
            for name in regimes:
                regime = REGIMES[name]
                work = root / name
                progress.update(task, description=f"{name}: calibrating")
                calibration = Calibration.load(calibrate_regime(regime, work, sweeps))
                progress.advance(task)
                for seed in range(seeds):
                    progress.update(task, description=f"{name}: scene {seed}")
                    cfg, plan = _rig_and_plan(regime, seed, sweeps)
                    status = record_simulation(cfg, plan, work / f"scene{seed}")
                    if status.recording is None or status.exit_status not in ("success",):
                        raise RuntimeError(f"{name}: the simulated recording of scene {seed} ended "
                                           f"{status.exit_status}: {status.reason}")
                    rows += score_sweeps(regime, status.recording, calibration, seed, specs, planes, warmed,
                                         notes=notes)
                    progress.advance(task)
    summary = summarise(rows)
    print_table(console, summary)
    for note in notes:
        console.print(note, highlight=False)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"regimes": {r: asdict(REGIMES[r]) for r in regimes}, "summary": summary,
                                         "notes": notes, "rows": [asdict(r) for r in rows]}, indent=2))
        console.print(f"wrote {json_path}")
    return summary
