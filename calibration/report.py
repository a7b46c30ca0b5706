"""The calibration report: one PNG to check a calibration by eye before trusting it.

Panels (those whose data exist): (1) an RGB view with the corners detected in it (green circles) and the event
camera's corners mapped through the calibration (red crosses) — they coincide when the geometry is right;
(2) that view's blink events warped into the RGB grid over the frame (ON white, OFF blue): square edges must line
up; (3) the lag fit: every accepted patch's lag τ = (t₁ + t₂ − T)/2 against the focal power of its crossing, with
the median — a slope means hysteresis or a non-sinusoidal response; (4) the numbers.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from calibration.event_grid import event_maps
from calibration.model import CalibrationError
from calibration.pipeline import CalibrationRun

PANEL_H = 360
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _bgr(image: np.ndarray) -> np.ndarray:
    """8-bit BGR for drawing, from a mono or RGB frame of any depth."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img.astype(np.float32) * (255.0 / max(float(img.max()), 1e-9)), 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)


def _fit(panel: np.ndarray, height: int = PANEL_H) -> np.ndarray:
    scale = height / panel.shape[0]
    return cv2.resize(panel, (max(1, round(panel.shape[1] * scale)), height), interpolation=cv2.INTER_NEAREST)


def _corners_panel(run: CalibrationRun, k: int) -> np.ndarray:
    bv = run.views[k]
    spatial = run.calibration.spatial
    img = _fit(_bgr(np.asarray(bv.frame.image)))
    s = img.shape[0] / np.asarray(bv.frame.image).shape[0]
    for x, y in bv.view.rgb:
        cv2.circle(img, (round(x * s), round(y * s)), 4, (0, 200, 0), 1, cv2.LINE_AA)
    for x, y in spatial.event_to_rgb(bv.view.event):
        c = (round(x * s), round(y * s))
        cv2.drawMarker(img, c, (0, 0, 255), cv2.MARKER_CROSS, 7, 1, cv2.LINE_AA)
    cv2.putText(img, f"corners: RGB (green) vs events mapped (red), {bv.view.label}", (5, 15), _FONT, 0.4,
                (0, 255, 255), 1, cv2.LINE_AA)
    return img


def _overlay_panel(run: CalibrationRun, k: int) -> np.ndarray:
    bv = run.views[k]
    cal = run.calibration
    mx, my, _ = event_maps(cal.spatial, None, 0.0)
    warped = cv2.remap(bv.event_image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=128)
    base = _bgr(np.asarray(bv.frame.image)) // 2
    on, off = warped > 170, warped < 85
    base[on] = (255, 255, 255)
    base[off] = (255, 120, 0)
    img = _fit(base)
    cv2.putText(img, "blink events warped into the RGB grid (ON white, OFF blue)", (5, 15), _FONT, 0.4,
                (0, 255, 255), 1, cv2.LINE_AA)
    return img


def _lag_panel(run: CalibrationRun) -> np.ndarray:
    fit = run.lag
    w, h, m = 480, PANEL_H, 50
    img = np.full((h, w, 3), 255, np.uint8)
    lags_ms = fit.patch_lags_us / 1000.0
    d = fit.power_dpt
    lo_d, hi_d = float(d.min()) - 0.1, float(d.max()) + 0.1
    centre = fit.lag_us / 1000.0
    span = max(0.2, 3 * float(np.max(np.abs(lags_ms - centre))))
    lo_l, hi_l = centre - span, centre + span

    def px(dd, ll):
        return (round(m + (dd - lo_d) / (hi_d - lo_d) * (w - 2 * m)), round(h - m - (ll - lo_l) / (hi_l - lo_l)
                                                                            * (h - 2 * m)))

    cv2.rectangle(img, (m, m), (w - m, h - m), (0, 0, 0), 1)
    cv2.line(img, px(lo_d, centre), px(hi_d, centre), (0, 0, 255), 1, cv2.LINE_AA)
    for dd, ll in zip(d, lags_ms, strict=True):
        cv2.circle(img, px(dd, ll), 3, (200, 80, 0), -1, cv2.LINE_AA)
    cv2.putText(img, f"lag per patch (ms) vs crossing power (dpt); median {centre:.3f} ms, "
                     f"rms {fit.residual_us:.0f} us", (5, 18), _FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for v, text in ((lo_l, f"{lo_l:.2f}"), (hi_l, f"{hi_l:.2f}")):
        cv2.putText(img, text, (2, px(lo_d, v)[1] + 4), _FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for v in (lo_d, hi_d):
        cv2.putText(img, f"{v:.2f}", (px(v, lo_l)[0] - 12, h - m + 16), _FONT, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _text_panel(run: CalibrationRun) -> np.ndarray:
    cal = run.calibration
    lines = [f"calibration {cal.id}"]
    if cal.spatial is not None:
        e = cal.spatial.error_px
        lines += [f"views {cal.spatial.n_views}, mirrored {cal.spatial.mirrored}",
                  f"corner transfer error px: mean {e.get('mean', 0):.3f} rms {e.get('rms', 0):.3f} "
                  f"max {e.get('max', 0):.3f}"]
        for name, intr in (("RGB", cal.spatial.rgb_intrinsics), ("event", cal.spatial.event_intrinsics)):
            if intr is not None:
                lines.append(f"{name} intrinsics: f = {intr.camera_matrix[0, 0]:.1f} px, rms {intr.rms_px:.3f} px, "
                             f"k1 {intr.distortion[0]:+.3f}")
    if cal.temporal is not None:
        t = cal.temporal
        lines.append(f"lag {t.lag_us:.0f} us, residual {t.residual_us:.0f} us, {t.n_patches} patches")
    if cal.breathing is not None:
        b = cal.breathing
        lines.append(f"breathing: s(D) - 1 per dpt {b.coeffs[0]:+.5f} about {b.ref_dpt:.2f} dpt, "
                     f"{b.n_frames} frames")
    lines += run.notes
    img = np.full((PANEL_H, 560, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(img, line[:90], (8, 22 + 18 * i), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_report(run: CalibrationRun, path: str | Path) -> Path:
    """Write the PNG report of ``run`` to ``path``."""
    path = Path(path)
    panels = []
    if run.calibration.spatial is not None and run.views:
        good = [i for i, v in enumerate(run.views) if v.view.rgb is not None and v.view.event is not None]
        if good:
            panels += [_corners_panel(run, good[0]), _overlay_panel(run, good[0])]
    if run.lag is not None:
        panels.append(_lag_panel(run))
    panels.append(_text_panel(run))
    rows = [np.hstack(panels[i:i + 2]) if len(panels[i:i + 2]) == 2 else panels[i] for i in range(0, len(panels), 2)]
    width = max(r.shape[1] for r in rows)
    canvas = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    if not cv2.imwrite(str(path), canvas):
        raise CalibrationError(f"{path}: cannot write the PNG report there")
    return path
