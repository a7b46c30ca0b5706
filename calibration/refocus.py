"""Event-refocused planes: frames re-timed by the events, at focal powers no frame was exposed at.

An event camera pixel fires each time its log brightness moves by its contrast threshold C, ON when it rises. So
between two moments of a sweep, a pixel's log brightness changed by C × (ON − OFF events) — and a frame taken at
one moment, multiplied pixel by pixel by exp(C·(ON − OFF)) over the events up to another moment, shows the scene as
the lens saw it then (the EFS model, fusion notes §4). Where frames are sparse — a 10 Hz sweep at 60 fps leaves
six frames per period and depth layers with no sharp frame at all — a plane synthesized this way between two frames
carries the luma detail that comes into focus there. Colour stays what the source frame shows (events are grey):
the frame's RGB is scaled, so its chroma keeps the source frame's blur, the limit the EFS paper states.

- **The threshold** is read from the recording itself: between consecutive frames of the sweep, the change of each
  pixel's log luma against its signed event count; C is the median of their ratio over pixels with at least two
  events and unsaturated, unlit-free values. Fitting on the frames' own values makes it hold for their encoding
  too (a power-law transfer only rescales log changes). Measured in the simulator at true C 0.1 / 0.22: 0.073 /
  0.183 — the value that best re-times frames, which refocuses better than the sensor's nominal one would.
- **Events lost to the refractory period** (fast changes) make a refocused pixel fall short of the change it should
  show; **saturated** source pixels cannot be re-timed and are left as they are.
- **Which planes**: the stack's frames come first; only when they are fewer than the planes asked for are
  refocused planes added, one at a time into the widest gap in focal power, each from the frame bracketing the gap
  that is nearer in power, re-timed along that frame's own sweep half. So a sweep with enough frames is stacked
  exactly as without events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.temporal import FocalModel
from capture.refocus_model import interval_counts
from capture.sweep import SweepData
from drivers.camera import Frame

#: BT.601 luma weights (R, G, B).
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: Pixels (of all frame pairs together) needed to trust a threshold estimate: it is a median of ratios, which 150
#: samples pin to a few per cent (a 48×36 test rig gives ~200 over one sweep, 320×240 tens of thousands).
MIN_PIXELS = 150
#: The threshold is a median of per-pixel ratios: a grid of about this many RGB pixels reads it as well as all of
#: them (320x240 is read whole; 640x480 every second pixel of every second row).
SAMPLE_PIXELS = 80_000


@dataclass(frozen=True)
class Threshold:
    """The contrast threshold that re-times this recording's frames, and the pixels it rests on."""

    c: float
    pixels: int


def _mid_us(frame: Frame) -> float:
    return 0.5 * (frame.exposure_start_us + frame.exposure_end_us)


def _luma(image: np.ndarray) -> np.ndarray:
    f = np.asarray(image, np.float32)
    return f @ _LUMA if f.ndim == 3 else f


def estimate_threshold(sweep: SweepData, maps: tuple[np.ndarray, np.ndarray]) -> Threshold | None:
    """C from consecutive frames of the sweep (module docstring); None when too few pixels changed to tell."""
    frames = sorted(sweep.frames, key=_mid_us)
    if len(frames) < 2:
        return None
    w, h = sweep.event_geometry
    top = float(np.iinfo(np.asarray(frames[0].image).dtype).max) if np.issubdtype(
        np.asarray(frames[0].image).dtype, np.integer) else 1.0
    rows, cols = np.asarray(frames[0].image).shape[:2]
    step = max(1, math.ceil(math.sqrt(rows * cols / SAMPLE_PIXELS)))
    mx, my = maps[0][::step, ::step], maps[1][::step, ::step]
    counts = interval_counts(sweep.cd, [_mid_us(f) for f in frames], w, h)  # every pair of frames in one pass
    lumas = [_luma(np.asarray(f.image)[::step, ::step]) for f in frames]
    usable = [(y > 0.04 * top) & (y < 0.96 * top) for y in lumas]
    ratios = []
    for k in range(len(frames) - 1):
        s = cv2.remap(counts[k], mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        ok = (np.abs(s) >= 2) & usable[k] & usable[k + 1]
        ratios.append((np.log(lumas[k + 1][ok]) - np.log(lumas[k][ok])) / s[ok])
    r = np.concatenate(ratios) if ratios else np.empty(0)
    r = r[r > 0]  # a pixel whose frames and events disagree on the direction saw something else (motion, noise)
    if r.size < MIN_PIXELS:
        return None
    return Threshold(float(np.median(r)), int(r.size))


def time_at_power(model: FocalModel, power_dpt: float, t_near_us: float) -> float:
    """When, on the same sweep half as ``t_near_us``, the lens was at ``power_dpt`` (the nearest such moment; the
    end of the half when the power is beyond its reach)."""
    period = model.period_us
    ts = t_near_us + np.linspace(-0.5 * period, 0.5 * period, 2049)
    same = model.rising(ts) == bool(model.rising(np.array([t_near_us]))[0])
    d = model.power_dpt(ts)
    cand = np.flatnonzero(same)
    if cand.size == 0:
        return t_near_us
    # Linear interpolation where the power crosses the target inside the half; else its nearest approach.
    seg = cand[:-1][np.diff(cand) == 1]
    cross = seg[(d[seg] - power_dpt) * (d[seg + 1] - power_dpt) <= 0]
    if cross.size:
        j = cross[np.argmin(np.abs(ts[cross] - t_near_us))]
        span = d[j + 1] - d[j]
        frac = 0.0 if span == 0 else (power_dpt - d[j]) / span
        return float(ts[j] + frac * (ts[j + 1] - ts[j]))
    return float(ts[cand[np.argmin(np.abs(d[cand] - power_dpt))]])
