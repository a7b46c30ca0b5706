"""Synthetic focal stacks with events and ground truth, rendered by the simulated rig's optics.

Training and evaluating a fusion method needs stacks whose all-in-focus image and best plane per pixel are
known exactly. :func:`synthetic_stack` builds one from a seed, reusing the simulator rather than a second
renderer: a layered dead-leaves scene (``drivers.sim.scene``), thin-lens disc defocus with far-to-near
occlusion compositing and focus breathing (``drivers.sim.optics.DefocusRenderer``), a Poisson-Gaussian camera
(``drivers.sim.exposure.SensorNoise``) and ESIM events (``drivers.sim.esim.EventSensorModel``) with randomised
thresholds, refractory period, shot noise and hot pixels.

How the sweep is sampled (fusion notes §5.2, §5.5):
- planes are uniform in dioptres over [nearest-to-farthest scene depth] widened by ``sweep_margin_dpt`` on each
  side, so with a margin some planes focus on nothing, and labels stay absolute plane indices;
- plane k's events are those fired while the focus travels from the midpoint between planes k−1 and k to the
  midpoint between k and k+1; the sweep runs in a random direction (near→far or far→near), which flips the
  polarity a given blur change produces, exactly as on the rig;
- breathing magnifies each rendered plane about the centre; frames and event counts are brought back to the
  all-in-focus grid with a slightly wrong breathing estimate, as a calibration would (residual misalignment).

Ground truth (never read by fusion): ``all_in_focus`` (the scene without blur, encoded like the frames),
``depth_dpt`` (visible surface) and ``focal_index``: the best plane per pixel measured on the rendered stack
(argmin over planes of the 5×5 mean |I_k − AiF|, fusion notes §5.4 — right at occlusion edges, where "nearest
plane to the layer depth" is wrong because of defocus bleed), refined to a continuous index by the depth where
the two agree; where several planes are equally good (flat regions) the one nearest the depth wins.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from capture.focal_stack import FocalStack
from capture.refocus_model import gap_fill, refocus, signed_counts
from drivers.sim.esim import EventSensorModel
from drivers.sim.exposure import SensorNoise, _srgb_encode
from drivers.sim.optics import DefocusRenderer, SweepOptics
from drivers.sim.scene import Layer, Scene, dead_leaves, ellipse_mask

#: Plane period (µs) of the simulated sweep: 100 frames/s; sets the time scale of refractory and noise rates.
PLANE_PERIOD_US = 10_000.0
_LABEL_BOX = 5  # window (px) of the mean |I_k − AiF| that picks the best plane
_TIE_PENALTY = 2e-4  # per plane of distance from the depth-derived index: breaks ties in flat regions only


def synthetic_stack(seed: int, *, size: tuple[int, int] = (128, 128), n_planes: int = 16,
                    depth_range_dpt: tuple[float, float] = (0.0, 3.0),
                    sweep_margin_dpt: float | tuple[float, float] = 0.0, with_events: bool = True,
                    noise: SensorNoise | Literal["random"] | None = "random", n_layers: int | None = None,
                    blur_px_per_dpt: float | None = None, breathing_per_dpt: float | None = None,
                    event_substeps: int = 4, slant_probability: float = 0.2,
                    plane_fractions: np.ndarray | None = None, light_e: float | None = None,
                    texture_contrast: float = 1.0, refocused: int = 0) -> FocalStack:
    """A deterministic synthetic focal stack (N, H, W, 3) uint8 with events (N, 2, H, W) uint16 and ground truth.

    ``size`` is (W, H). Layer depths are drawn in ``depth_range_dpt``; the sweep spans the drawn scene's depth
    range plus ``sweep_margin_dpt`` (one value for both ends, or (low end, high end); negative narrows it).
    ``noise``: "random" draws a camera per seed, a :class:`SensorNoise` is used as given, None gives noiseless
    float32 frames. ``n_layers`` (3..8), ``blur_px_per_dpt`` (blur-circle diameter per dpt, 4..12 px) and
    ``breathing_per_dpt`` (±0.5 %/dpt) are drawn from the seed when None. ``event_substeps`` renders per plane
    feed the event sensor. ``plane_fractions`` (ascending in [0, 1], one per plane) places the planes inside the
    sweep instead of uniformly — e.g. :func:`sweep_fractions`, the frames of a sine sweep; ``light_e`` is the
    photo-electrons of white (the camera's gain keeps white at full scale: low light is noisier, not darker);
    ``texture_contrast`` < 1 pulls every texture towards its mean (weak texture). ``refocused`` planes are added
    as a recording's stack adds them where frames are sparse (needs events): each splits the widest gap between
    planes, made from the frame below it by the signed events of a sensor watching the lens move from that frame's
    power to the gap's middle (:func:`capture.refocus_model.refocus`, with a threshold read 5–25 % low, as a
    recording's own estimate reads it), marked ``kind: refocused`` in ``meta["planes"]``. Everything drawn is
    recorded in ``meta["recipe"]``.
    """
    width, height = size
    if n_planes < 2:
        raise ValueError(f"n_planes must be >= 2, got {n_planes}")
    if width < 8 or height < 8:
        raise ValueError(f"size must be at least 8x8 pixels, got {width}x{height}")
    if not depth_range_dpt[0] < depth_range_dpt[1]:
        raise ValueError(f"depth_range_dpt must be (low, high) with low < high, got {depth_range_dpt}")
    if event_substeps < 1:
        raise ValueError("event_substeps must be >= 1")
    if plane_fractions is not None:
        plane_fractions = np.asarray(plane_fractions, np.float64)
        if plane_fractions.shape != (n_planes,) or np.any(np.diff(plane_fractions) <= 0) or \
                plane_fractions.min() < 0 or plane_fractions.max() > 1:
            raise ValueError(f"plane_fractions must be {n_planes} ascending values in [0, 1]")
    if not 0 < texture_contrast <= 1:
        raise ValueError(f"texture_contrast must be in (0, 1], got {texture_contrast}")
    rng = np.random.default_rng(seed)
    recipe: dict = {"seed": int(seed), "size": [int(width), int(height)], "n_planes": int(n_planes)}

    scene, scene_recipe = _random_scene(rng, width, height, depth_range_dpt, n_layers, slant_probability,
                                        texture_contrast)
    recipe.update(scene_recipe, texture_contrast=texture_contrast)
    k_blur = float(rng.uniform(4.0, 12.0)) if blur_px_per_dpt is None else float(blur_px_per_dpt)
    breathing = float(rng.uniform(-0.005, 0.005)) if breathing_per_dpt is None else float(breathing_per_dpt)
    optics = SweepOptics(blur_px_per_dpt=k_blur, breathing_per_dpt=breathing,
                         breathing_ref_dpt=float(np.mean(depth_range_dpt)), slice_dpt=max(0.05, 2.0 / k_blur))
    renderer = DefocusRenderer(scene, optics)

    lo_m, hi_m = (sweep_margin_dpt, sweep_margin_dpt) if np.isscalar(sweep_margin_dpt) else sweep_margin_dpt
    d_lo, d_hi = float(np.nanmin(scene.depth)) - float(lo_m), float(np.nanmax(scene.depth)) + float(hi_m)
    if not d_hi > d_lo:
        raise ValueError(f"sweep_margin_dpt {sweep_margin_dpt} leaves an empty sweep over the scene's depths")
    powers = np.linspace(d_lo, d_hi, n_planes) if plane_fractions is None else d_lo + (d_hi - d_lo) * plane_fractions
    recipe["plane_sampling"] = "uniform" if plane_fractions is None else "given"
    # The calibration's breathing estimate is off by a few percent: frames are re-aligned with it.
    breathing_estimate = breathing * (1.0 + float(rng.normal(0.0, 0.05)))
    recipe.update(blur_px_per_dpt=k_blur, breathing_per_dpt=breathing, breathing_estimate=breathing_estimate,
                  sweep_dpt=[d_lo, d_hi])

    linear = np.stack([_unbreathe(renderer.render_rgb(float(d)), optics, breathing_estimate, float(d),
                                  cv2.INTER_LINEAR) for d in powers])
    aif_linear = scene.radiance
    frames, aif, camera_recipe = _camera(linear, aif_linear, noise, rng, light_e)
    recipe.update(camera_recipe)
    meta: dict = {"source": "fusion.synthetic", "recipe": recipe}
    if refocused and with_events:
        powers, frames, linear, planes = _add_refocused(renderer, powers, frames, linear, refocused,
                                                        breathing_estimate, np.random.default_rng([seed, 1]))
        meta["planes"] = planes
        recipe["refocused"] = [p["powers_dpt"][0] for p in planes if p["kind"] == "refocused"]

    ground_truth = {"all_in_focus": aif, "depth_dpt": scene.depth.astype(np.float32),
                    "focal_index": best_plane_labels(_encode(linear), _encode(aif_linear), scene.depth, powers)}
    events = None
    if with_events:
        events, event_recipe = _events(renderer, powers, event_substeps, breathing_estimate, rng,
                                       uniform=plane_fractions is None and not refocused)
        recipe.update(event_recipe)
    return FocalStack(frames, powers, events, ground_truth, meta, f"synthetic-{seed}")


def _add_refocused(renderer: DefocusRenderer, powers: np.ndarray, frames: np.ndarray, linear: np.ndarray,
                   count: int, breathing_estimate: float, rng: np.random.Generator,
                   substeps: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """``count`` refocused planes in the widest gaps (see :func:`synthetic_stack`); the labels' linear renders
    are the true ones at the new powers (what a refocused plane stands for). Returns sorted powers, frames,
    linear renders and each plane's record."""
    h, w = renderer.scene.height, renderer.scene.width
    threshold = float(rng.uniform(0.15, 0.45))
    estimate = threshold * float(rng.uniform(0.75, 0.95))
    records = [{"kind": "frame", "powers_dpt": [float(d)]} for d in powers]
    added = []
    for target in gap_fill(powers, powers.size + count):
        src = int(np.searchsorted(powers, target)) - 1
        sensor = EventSensorModel(w, h, threshold=threshold, sigma=threshold * 0.05, seed=int(rng.integers(2**31)))
        path = np.linspace(powers[src], target, substeps + 1)
        ev = np.concatenate([sensor.step(renderer.render_log_luma(float(d)), j * 100.0) for j, d in enumerate(path)])
        signed = signed_counts(ev, 0.0, (substeps + 1) * 100.0, w, h)
        counts = _unbreathe(signed, renderer.optics, breathing_estimate, float(powers[src]), cv2.INTER_NEAREST)
        render = _unbreathe(renderer.render_rgb(float(target)), renderer.optics, breathing_estimate, float(target),
                            cv2.INTER_LINEAR)
        added.append((float(target), refocus(frames[src], counts, estimate), render,
                      {"kind": "refocused", "powers_dpt": [float(target)], "from_power_dpt": float(powers[src]),
                       "threshold": estimate}))
    all_powers = np.concatenate([powers, [a[0] for a in added]])
    order = np.argsort(all_powers, kind="stable")
    stacked = (np.concatenate([frames, np.stack([a[1] for a in added])]) if added else frames)[order]
    renders = (np.concatenate([linear, np.stack([a[2] for a in added])]) if added else linear)[order]
    planes = [(records + [a[3] for a in added])[i] for i in order]
    return all_powers[order], stacked, renders, planes


def best_plane_labels(stack: np.ndarray, all_in_focus: np.ndarray, depth_dpt: np.ndarray,
                      powers_dpt: np.ndarray) -> np.ndarray:
    """Continuous best-plane index (H, W) float32 from noiseless renders (N, H, W, 3) and the all-in-focus image.

    The integer best plane is argmin_k of the 5×5 mean |I_k − AiF|, ties (flat regions) going to the plane
    nearest the depth. The depth-derived continuous index refines it to sub-plane precision where it lies
    within one plane of the best plane; elsewhere (occlusion bleed) the best plane stands as measured.
    """
    n = stack.shape[0]
    depth_index = np.interp(depth_dpt, powers_dpt, np.arange(n, dtype=np.float64))
    err = np.stack([cv2.blur(np.abs(stack[k] - all_in_focus).mean(axis=2), (_LABEL_BOX, _LABEL_BOX))
                    for k in range(n)])
    planes = np.arange(n, dtype=np.float64)[:, None, None]
    best = np.argmin(err + _TIE_PENALTY * np.abs(planes - depth_index[None]), axis=0).astype(np.float64)
    refined = np.where(np.abs(depth_index - best) <= 1.0, np.clip(depth_index, best - 0.5, best + 0.5), best)
    return refined.astype(np.float32)


def sweep_fractions(frames: int, phase: float, span: Literal["period", "half"] = "period") -> np.ndarray:
    """Where the frames of a sine sweep sample its range (0 = low end, 1 = high end), ascending, as a frame-true
    stack takes them: ``frames`` exposures at equal times over one period (or its rising half) starting at
    ``phase`` (0..1 of the frame interval); powers closer than 1e-6 of the range are one plane."""
    share = 1.0 if span == "period" else 0.5
    t = (phase + np.arange(frames)) / frames * share
    f = np.sort(0.5 - 0.5 * np.cos(2 * math.pi * t))
    return f[np.concatenate([[True], np.diff(f) > 1e-6])]


# -- scene ---------------------------------------------------------------------------------------------
def _random_scene(rng: np.random.Generator, width: int, height: int, depth_range: tuple[float, float],
                  n_layers: int | None, slant_probability: float, contrast: float = 1.0) -> tuple[Scene, dict]:
    """Background (optionally slanted) plus near layers, each a union of ellipses, far to near."""
    n = int(rng.integers(3, 9)) if n_layers is None else int(n_layers)
    if n < 1:
        raise ValueError(f"n_layers must be >= 1, got {n}")
    lo, hi = depth_range
    depths = np.sort(rng.uniform(lo, hi, n))
    depths[0] = lo + (depths[0] - lo) * 0.25  # the background tends to lie at the far end
    layers = []
    slanted = bool(rng.random() < slant_probability)
    for i, d in enumerate(depths):
        texture = _texture(rng, width, height)
        if contrast != 1.0:
            mean = texture.mean(axis=(0, 1), keepdims=True)
            texture = (mean + np.float32(contrast) * (texture - mean)).astype(np.float32)
        if i == 0:
            alpha = np.ones((height, width), np.float32)
            depth: float | np.ndarray = float(d)
            if slanted:
                depth = _ramp(rng, width, height, float(d), float(min(hi, d + rng.uniform(0.3, 1.0))))
        else:
            alpha = np.zeros((height, width), np.float32)
            for _ in range(int(rng.integers(1, 4))):
                centre = (rng.uniform(0.0, width), rng.uniform(0.0, height))
                axes = (rng.uniform(0.08, 0.35) * width, rng.uniform(0.08, 0.35) * height)
                alpha = np.maximum(alpha, ellipse_mask(width, height, centre, axes, rng.uniform(0.0, 180.0)))
            depth = float(d)
        layers.append(Layer(texture, alpha, depth))
    return Scene.from_layers(layers), {"layer_depths_dpt": depths.tolist(), "slanted_background": slanted}


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Dead leaves of random contrast and scale, times a smooth gradient, plus fine noise (high frequencies)."""
    low = rng.uniform(0.02, 0.4)
    high = rng.uniform(low + 0.05, 1.0)
    r_max = rng.uniform(0.1, 0.5) * max(width, height)
    tex = dead_leaves(width, height, rng, r_min=rng.uniform(1.0, 2.0), r_max=r_max, value_range=(low, high))
    gx, gy = rng.uniform(-0.4, 0.4, 2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    tex *= (1.0 + gx * (x / width - 0.5) + gy * (y / height - 0.5))[..., None]
    tex += rng.normal(0.0, rng.uniform(0.0, 0.03), tex.shape).astype(np.float32) * tex
    return np.clip(tex, 0.01, 1.0).astype(np.float32)


def _ramp(rng: np.random.Generator, width: int, height: int, d0: float, d1: float) -> np.ndarray:
    """Depth map of a plane slanted in a random direction, from d0 to d1 across the image."""
    theta = rng.uniform(0.0, 2.0 * math.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u = x * math.cos(theta) + y * math.sin(theta)
    u = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    return (d0 + (d1 - d0) * u).astype(np.float32)


# -- camera --------------------------------------------------------------------------------------------
def _unbreathe(img: np.ndarray, optics: SweepOptics, estimate: float, power: float, interp: int) -> np.ndarray:
    """Undo the breathing of plane ``power`` with the calibration's estimate of the coefficient."""
    if estimate == 0.0 and optics.breathing_per_dpt == 0.0:
        return img
    h, w = img.shape[:2]
    est = SweepOptics(breathing_per_dpt=estimate, breathing_ref_dpt=optics.breathing_ref_dpt)
    inverse = np.linalg.inv(est.breathing_matrix(power, w, h))[:2]
    return cv2.warpAffine(img, inverse, (w, h), flags=interp, borderMode=cv2.BORDER_REFLECT_101)


def _encode(linear: np.ndarray) -> np.ndarray:
    return _srgb_encode(np.clip(linear, 0.0, 1.0)).astype(np.float32)


def _camera(linear: np.ndarray, aif_linear: np.ndarray, noise: SensorNoise | str | None,
            rng: np.random.Generator, light_e: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Frames and all-in-focus image as the camera encodes them (sRGB), with exposure drift and sensor noise."""
    exposure = rng.uniform(0.6, 1.0)  # fraction of full well the brightest texture value reaches
    drift = 1.0 + rng.uniform(-0.03, 0.03, linear.shape[0])  # exposure/gain drift across planes
    if noise is None:
        frames = _encode(linear * (exposure * drift)[:, None, None, None])
        return frames, _encode(aif_linear * exposure), {"noise": None}
    if isinstance(noise, str):
        if noise != "random":
            raise ValueError(f"noise must be 'random', a SensorNoise or None, got {noise!r}")
        full_well = 10_000.0 if light_e is None else float(light_e)  # the gain keeps white at full scale
        noise = SensorNoise(full_well_e=full_well, electrons_per_unit=full_well,
                            read_noise_e=float(rng.uniform(1.0, 5.0)) * min(full_well, 10_000.0) / 255.0,
                            output="srgb")
    frames = np.stack([noise.apply(linear[k] * exposure * drift[k], rng) for k in range(linear.shape[0])])
    scale = np.float32(noise.max_dn)
    aif = np.round(_encode(aif_linear * exposure * noise.electrons_per_unit / noise.full_well_e) * scale)
    return frames, aif.astype(frames.dtype), {"noise": {"read_noise_e": noise.read_noise_e, "exposure": exposure}}


# -- events --------------------------------------------------------------------------------------------
def _events(renderer: DefocusRenderer, powers: np.ndarray, substeps: int, breathing_estimate: float,
            rng: np.random.Generator, *, uniform: bool = True) -> tuple[np.ndarray, dict]:
    """Per-plane ON/OFF counts (N, 2, H, W) uint16 from an ESIM sensor watching the sweep in time order."""
    n = powers.size
    h, w = renderer.scene.height, renderer.scene.width
    if uniform:
        spacing = (powers[-1] - powers[0]) / (n - 1)
        grid = powers[0] - spacing / 2 + spacing * np.arange(n * substeps + 1) / substeps
    else:  # plane k's events: from halfway to plane k−1 to halfway to plane k+1 (the ends mirrored)
        mids = 0.5 * (powers[1:] + powers[:-1])
        edges = np.concatenate([[2 * powers[0] - mids[0]], mids, [2 * powers[-1] - mids[-1]]])
        grid = np.concatenate([np.linspace(edges[k], edges[k + 1], substeps, endpoint=False) for k in range(n)]
                              + [edges[-1:]])
    descending = bool(rng.random() < 0.5)
    if descending:
        grid = grid[::-1]
    threshold = float(rng.uniform(0.15, 0.45))
    sensor = EventSensorModel(w, h, threshold=threshold, sigma=threshold * float(rng.uniform(0.03, 0.1)),
                              refractory_us=float(rng.uniform(0.0, 0.1)) * PLANE_PERIOD_US,
                              noise_rate_hz=float(rng.uniform(0.1, 5.0)), n_hot=round(1e-4 * w * h),
                              hot_rate_hz=float(rng.uniform(100.0, 1000.0)), seed=int(rng.integers(2**31)))
    dt = PLANE_PERIOD_US / substeps
    chunks = [sensor.step(renderer.render_log_luma(float(d)), j * dt) for j, d in enumerate(grid)]
    ev = np.concatenate(chunks)
    window = np.minimum(ev["t"] // np.int64(PLANE_PERIOD_US), n - 1).astype(np.int64)
    plane = n - 1 - window if descending else window
    flat = ((plane * 2 + ev["p"].astype(np.int64)) * h + ev["y"].astype(np.int64)) * w + ev["x"].astype(np.int64)
    counts = np.bincount(flat, minlength=n * 2 * h * w).reshape(n, 2, h, w).astype(np.float32)
    optics = renderer.optics
    for k in range(n):
        counts[k] = _unbreathe(counts[k].transpose(1, 2, 0), optics, breathing_estimate, float(powers[k]),
                               cv2.INTER_NEAREST).transpose(2, 0, 1)
    recipe = {"event_threshold": threshold, "sweep_descending": descending, "event_substeps": substeps,
              "n_events": int(ev.size)}
    return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16), recipe
