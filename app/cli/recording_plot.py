"""``focalrig inspect --plot``: event rate and focal power over time as a PNG, drawn with OpenCV (no matplotlib).

Two panels sharing the time axis: events/s (1 ms bins) on top; below, the commanded focal power (line), the
focal power at each frame's mid-exposure (dots) and measured lens samples (crosses) where the lens reported them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

W, H, MARGIN_L, MARGIN_R, MARGIN_T, PANEL_H, GAP = 1200, 640, 90, 20, 30, 260, 40
BG, AXIS, RATE, COMMANDED, FRAMES, MEASURED = (255, 255, 255), (60, 60, 60), (180, 90, 20), (40, 40, 200), \
    (30, 150, 30), (150, 30, 150)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    step = 10 ** np.floor(np.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (m * step) <= n:
            step *= m
            break
    return np.arange(np.ceil(lo / step) * step, hi + step * 1e-9, step)


def _panel(img: np.ndarray, top: int, t_range: tuple[float, float], y_range: tuple[float, float], label: str,
           fmt: str) -> callable:
    """Draw a panel's frame, ticks and label; return a function mapping (t_s, y) arrays to pixel coordinates."""
    x0, x1, y0, y1 = MARGIN_L, W - MARGIN_R, top, top + PANEL_H
    cv2.rectangle(img, (x0, y0), (x1, y1), AXIS, 1)
    (t0, t1), (v0, v1) = t_range, y_range
    t1 = t1 if t1 > t0 else t0 + 1.0
    v1 = v1 if v1 > v0 else v0 + 1.0

    def to_px(t: np.ndarray, v: np.ndarray) -> np.ndarray:
        px = x0 + (np.asarray(t) - t0) / (t1 - t0) * (x1 - x0)
        py = y1 - (np.asarray(v) - v0) / (v1 - v0) * (y1 - y0)
        return np.column_stack([px, py]).round().astype(np.int32)

    for v in _nice_ticks(v0, v1):
        (_, py), = to_px([t0], [v])
        cv2.line(img, (x0 - 5, int(py)), (x0, int(py)), AXIS, 1)
        cv2.putText(img, format(v, fmt), (5, int(py) + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, AXIS, 1, cv2.LINE_AA)
    for t in _nice_ticks(t0, t1):
        (px, _), = to_px([t], [v0])
        cv2.line(img, (int(px), y1), (int(px), y1 + 5), AXIS, 1)
        cv2.putText(img, f"{t:g}", (int(px) - 12, y1 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, AXIS, 1, cv2.LINE_AA)
    cv2.putText(img, label, (x0 + 8, y0 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, AXIS, 1, cv2.LINE_AA)
    return to_px


def plot_recording(path: Path, rate: np.ndarray, commanded: np.ndarray, frames: np.ndarray, measured: np.ndarray,
                   title: str) -> Path:
    """Write the PNG. ``rate`` (k, 2) [t_us, ev/s]; ``commanded``/``frames``/``measured`` (k, 2) [t_us, dpt]."""
    img = np.full((H, W, 3), BG, np.uint8)
    series = [a for a in (rate, commanded, frames, measured) if len(a)]
    if series:
        t_all = np.concatenate([a[:, 0] for a in series]) * 1e-6
        t_range = (float(t_all.min()), float(t_all.max()))
    else:
        t_range = (0.0, 1.0)
    cv2.putText(img, title, (MARGIN_L, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, AXIS, 1, cv2.LINE_AA)
    top = MARGIN_T
    peak = float(rate[:, 1].max()) / 1e6 if len(rate) else 1.0
    to_px = _panel(img, top, t_range, (0.0, peak * 1.05), "event rate (Mev/s, 1 ms bins)", ".3g")
    if len(rate):
        cv2.polylines(img, [to_px(rate[:, 0] * 1e-6, rate[:, 1] / 1e6)], False, RATE, 1, cv2.LINE_AA)
    top += PANEL_H + GAP
    powers = np.concatenate([a[:, 1] for a in (commanded, frames, measured) if len(a)] or [np.zeros(1)])
    powers = powers[np.isfinite(powers)]
    lo, hi = (float(powers.min()), float(powers.max())) if len(powers) else (0.0, 1.0)
    pad = 0.05 * (hi - lo) + 1e-3
    to_px = _panel(img, top, t_range, (lo - pad, hi + pad),
                   "focal power (dpt): commanded line, frames dots, measured crosses", ".2f")
    if len(commanded):
        order = np.argsort(commanded[:, 0], kind="stable")
        cv2.polylines(img, [to_px(commanded[order, 0] * 1e-6, commanded[order, 1])], False, COMMANDED, 1,
                      cv2.LINE_AA)
    for x, y in to_px(frames[:, 0] * 1e-6, frames[:, 1]) if len(frames) else ():
        cv2.circle(img, (int(x), int(y)), 3, FRAMES, -1, cv2.LINE_AA)
    for x, y in to_px(measured[:, 0] * 1e-6, measured[:, 1]) if len(measured) else ():
        cv2.drawMarker(img, (int(x), int(y)), MEASURED, cv2.MARKER_CROSS, 7, 1)
    cv2.putText(img, "time (s, event clock)", (W // 2 - 80, H - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, AXIS, 1,
                cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: cannot write the PNG (check the folder and the .png extension)")
    return path
