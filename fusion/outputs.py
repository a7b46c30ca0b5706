"""Write a :class:`FusionResult` to disk: fused image, index/depth maps (16-bit + colour-mapped), confidence, JSON,
and the events' own depth (``depth_events.npy``) when the stack carries event-timed focus.

Two namings of the same files: ``stem=None`` puts one stack's outputs in one folder (``fused.png``,
``focal_index.png`` …, for ``focalrig predict``); ``stem="scene"`` follows the seed projects' dataset layout
(``color_fused_images/scene.png``, ``depth_indices/scene.npy`` …, for ``predict-datasets``), so their users find
the files where they expect them.

Maps are scaled by the *sweep*, never by the image: focal index k is stored as round(k·65535/(N−1)), depth as
(D − D_0)/(D_{N−1} − D_0)·65535, both ranges written to the JSON; colour maps span the same ranges, so two
results of the same sweep are comparable colour for colour.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.focal_stack import FocalStack
from capture.stack_folders import write_images
from fusion.engine import FusionResult

#: kind → (file name in a single-stack folder, sub-folder in the seed dataset layout)
_NAMES = {
    "fused": ("fused.png", "color_fused_images"),
    "fused_gray": ("fused_gray.png", "fused_images"),
    "focal_index": ("focal_index.png", "depth_indices_vis"),
    "focal_index_npy": ("focal_index.npy", "depth_indices"),
    "focal_index_color": ("focal_index_color.png", "index_colormaps"),
    "depth": ("depth.png", "depth_maps"),
    "depth_color": ("depth_color.png", "depth_colormaps"),
    "confidence": ("confidence.png", "confidence"),
    "depth_events_npy": ("depth_events.npy", "depth_events"),
    "json": ("result.json", "results"),
}


def _path(out_dir: Path, kind: str, stem: str | None) -> Path:
    single, folder = _NAMES[kind]
    if stem is None:
        return out_dir / single
    return out_dir / folder / f"{stem}{Path(single).suffix}"


def _to_u16(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo if hi != lo else 1.0
    return (np.clip((values - lo) / span, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def colorize(values: np.ndarray, lo: float, hi: float, label: str, *, fmt: str = "{:.2f}") -> np.ndarray:
    """RGB uint8 turbo colour map of ``values`` over [lo, hi] with a labelled colour bar on the right."""
    h, w = values.shape
    span = hi - lo if hi != lo else 1.0
    u8 = (np.clip((values - lo) / span, 0, 1) * 255 + 0.5).astype(np.uint8)
    img = cv2.applyColorMap(u8, cv2.COLORMAP_TURBO)
    bar_w = max(12, w // 40)
    scale = max(0.35, h / 900)
    thick = max(1, round(scale * 1.5))
    (tw, th), _ = cv2.getTextSize(fmt.format(max(abs(lo), abs(hi))) + "0", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(4, bar_w // 2)
    top = 2 * th + 6  # header rows for the label; the ramp spans the rows below
    strip = np.full((h, pad + bar_w + pad + tw + pad, 3), 255, np.uint8)
    ramp = np.linspace(255, 0, max(h - top, 2)).astype(np.uint8)[:, None].repeat(bar_w, axis=1)
    strip[top:, pad:pad + bar_w] = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO)[: h - top]
    for frac in np.linspace(0.0, 1.0, 5):
        y = top + round((1 - frac) * (h - top - 1))
        ty = min(max(y + th // 2, top + th), h - 2)
        cv2.putText(strip, fmt.format(lo + frac * span), (pad + bar_w + pad, ty), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(strip, label, (pad, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return cv2.cvtColor(np.concatenate([img, strip], axis=1), cv2.COLOR_BGR2RGB)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    y = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return y.astype(np.float32) if image.dtype == np.float32 else np.round(y).astype(image.dtype)


def write_outputs(result: FusionResult, stack: FocalStack, out_dir: str | Path, *, stem: str | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every output of ``result`` for ``stack`` and return kind → path."""
    out_dir = Path(out_dir)
    n = stack.n_planes
    p0, p1 = float(stack.focal_powers_dpt[0]), float(stack.focal_powers_dpt[-1])
    paths = {kind: _path(out_dir, kind, stem) for kind in _NAMES if kind != "depth_events_npy" or
             stack.has_event_focus}
    unit = "index" if stack.meta.get("focal_powers") == "indices" else "dpt"
    write_images([
        (paths["fused"], result.all_in_focus),
        (paths["fused_gray"], _gray(result.all_in_focus)),
        (paths["focal_index"], _to_u16(result.focal_index, 0.0, n - 1.0)),
        (paths["focal_index_color"], colorize(result.focal_index, 0.0, n - 1.0, "plane", fmt="{:.1f}")),
        (paths["depth"], _to_u16(result.depth_dpt, p0, p1)),
        (paths["depth_color"], colorize(result.depth_dpt, p0, p1, unit)),
        (paths["confidence"], (np.clip(result.confidence, 0, 1) * 255 + 0.5).astype(np.uint8)),
    ])
    paths["focal_index_npy"].parent.mkdir(parents=True, exist_ok=True)
    np.save(paths["focal_index_npy"], result.focal_index.astype(np.float32))
    if stack.has_event_focus:  # the events' own depth, NaN where they cannot tell (depth.png merges it)
        paths["depth_events_npy"].parent.mkdir(parents=True, exist_ok=True)
        np.save(paths["depth_events_npy"], stack.event_focus_dpt.astype(np.float32))
    info = {
        "method": result.method, "device": result.device, "timings_s": result.timings_s,
        "settings": result.settings,
        "input": {"name": stack.name, "planes": n, "height": stack.shape[0], "width": stack.shape[1],
                  "dtype": str(stack.frames.dtype), "color": stack.is_color, "events": stack.has_events,
                  "focal_powers_dpt": stack.focal_powers_dpt.tolist(), "meta": stack.meta},
        "encoding": {"focal_index_png": f"round(index * 65535 / {n - 1})",
                     "depth_png": f"round((depth - {p0}) / ({p1} - {p0}) * 65535)",
                     "depth_unit": unit, "confidence_png": "round(confidence * 255)",
                     **({"depth_events_npy": "event-timed focus power (dpt) per pixel, NaN where the events "
                                             "cannot tell"} if stack.has_event_focus else {})},
        "events": {"event_focus_coverage": float(np.mean(np.isfinite(stack.event_focus_dpt)))
                   if stack.has_event_focus else None,
                   "refocused_planes": int(stack.refocused.sum()), "refocus": stack.meta.get("refocus")}
        if stack.has_events else None,
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        **(extra or {}),
    }
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    paths["json"].write_text(json.dumps(info, indent=2, default=_jsonable))
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
