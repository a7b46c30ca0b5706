"""Event-timed focus: the focal power at which each pixel passes through focus during a sweep, from its events.

As the lens sweeps through the depth D* of the surface a pixel sees, the pixel's blur circle shrinks to nothing and
grows again: its brightness, a function of |D − D*|, stops changing and then retraces its path. Its events stop
and resume with the opposite polarity, the first event after the silence crossing again the log level the last
one before it crossed. The two are at mirror positions about D*, so D* is the midpoint, in dioptres, of the lens'
lag-corrected power at those two events — timed to microseconds, whatever the frame rate. (The lag calibration
reads the same pairs, pooled over patches: :mod:`calibration.temporal`.)

Per pixel and sweep half, one numba pass over the time-sorted events keeps every polarity reversal and scores it
by the shorter of the two runs of same-polarity events around it: a focus passage has a run towards the silence
and one away from it, while a noise event or a texture that brightens then darkens within a run gives a short
one. The best-scored reversal of each half wins; reversals across a turnaround (where the lens itself reverses)
are not focus passages and are never paired. The two halves' estimates are averaged by score when they agree;
when they do not, the stronger stands.

Resolution is what the events give: a pixel needs a few threshold crossings on each side of focus (a textured
pixel at the 0.22 contrast threshold of an IMX636: ~12 % of textured pixels at 320×240 pass the default score
of 2; at 0.1, ~40 %). Where they do, the focus power is within ~0.003 dpt of the truth in the simulator, against
0.015 dpt for the best frame of a 15-frame sweep and 0.15 dpt for a 6-frame one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from calibration.temporal import FocalModel
from capture.sweep import SweepData

#: A reversal needs at least this many events on its weaker side to count as a focus passage. A single event on a
#: side is kept, with its weight of 1: such estimates are ten times less precise (median 0.045 dpt against 0.004 at
#: two or more, at the 0.22 threshold) but still three times better than the frames of a 10 Hz sweep, and the merge
#: (fusion.event_depth) weighs them so.
MIN_SCORE = 1
#: Halves whose estimates differ by more than this (dpt) do not average: the better-scored one stands.
HALVES_AGREE_DPT = 0.15


@dataclass(frozen=True)
class EventFocus:
    """Per event pixel: the focus power (dpt, NaN where no passage scored) and its weight (0 where none)."""

    depth_dpt: np.ndarray   #: (H, W) float32, event sensor grid
    weight: np.ndarray      #: (H, W) float32: the score (events on the weaker side), halves summed
    #: Median span (dpt) of the silences around focus: the focus range within which a pixel's brightness changes by
    #: less than one contrast threshold — this rig's depth of field as its event camera sees it (NaN: none scored).
    silence_dpt: float = float("nan")

    @property
    def coverage(self) -> float:
        """Share of pixels with an estimate."""
        return float(np.mean(self.weight > 0))


@njit(cache=True, nogil=True)
def _keep(best_score, best_t0, best_t1, half, y, x, score, t0, t1):
    if score > best_score[half, y, x]:
        best_score[half, y, x] = score
        best_t0[half, y, x] = t0
        best_t1[half, y, x] = t1


@njit(cache=True, nogil=True)
def _reversals(x, y, p, t, half, best_score, best_t0, best_t1):
    """For every pixel and half (0 rising, 1 falling): the best-scored polarity reversal's bracketing event times."""
    h, w = best_score.shape[1], best_score.shape[2]
    last_p = np.full((h, w), -1, np.int8)
    last_half = np.full((h, w), -1, np.int8)
    last_t = np.zeros((h, w), np.int64)
    run = np.zeros((h, w), np.int32)
    pend_t0 = np.zeros((h, w), np.int64)    # the reversal waiting for the run after it to end
    pend_t1 = np.zeros((h, w), np.int64)
    pend_run = np.zeros((h, w), np.int32)
    pend = np.zeros((h, w), np.bool_)
    for i in range(t.shape[0]):
        xi, yi, hi = x[i], y[i], half[i]
        pi = 1 if p[i] > 0 else 0
        if last_p[yi, xi] < 0 or hi != last_half[yi, xi]:  # first event, or a new half: no pairing across it
            if pend[yi, xi]:
                _keep(best_score, best_t0, best_t1, last_half[yi, xi], yi, xi, min(pend_run[yi, xi], run[yi, xi]),
                      pend_t0[yi, xi], pend_t1[yi, xi])
                pend[yi, xi] = False
            last_half[yi, xi] = hi
            run[yi, xi] = 1
        elif pi == last_p[yi, xi]:
            run[yi, xi] += 1
        else:
            if pend[yi, xi]:
                _keep(best_score, best_t0, best_t1, hi, yi, xi, min(pend_run[yi, xi], run[yi, xi]),
                      pend_t0[yi, xi], pend_t1[yi, xi])
            pend_t0[yi, xi] = last_t[yi, xi]
            pend_t1[yi, xi] = t[i]
            pend_run[yi, xi] = run[yi, xi]
            pend[yi, xi] = True
            run[yi, xi] = 1
        last_p[yi, xi] = pi
        last_t[yi, xi] = t[i]
    for yi in range(h):
        for xi in range(w):
            if pend[yi, xi]:
                _keep(best_score, best_t0, best_t1, last_half[yi, xi], yi, xi, min(pend_run[yi, xi], run[yi, xi]),
                      pend_t0[yi, xi], pend_t1[yi, xi])


def event_focus(sweep: SweepData, model: FocalModel, *, min_score: int = MIN_SCORE) -> EventFocus:
    """Focus power per event pixel of one sweep (see the module docstring)."""
    w, h = sweep.event_geometry
    best_score = np.zeros((2, h, w), np.int32)
    best_t0 = np.zeros((2, h, w), np.int64)
    best_t1 = np.zeros((2, h, w), np.int64)
    cd = sweep.cd
    if len(cd):
        half = model.falling_sorted(cd["t"])
        _reversals(cd["x"], cd["y"], cd["p"], cd["t"], half, best_score, best_t0, best_t1)
    ok = best_score >= min_score
    p0, p1 = np.zeros(best_score.shape), np.zeros(best_score.shape)
    scored = best_score >= min(min_score, 2)  # the lens' power only where it is used (a sweep's pixels are mostly
    p0[scored], p1[scored] = model.power_dpt(best_t0[scored]), model.power_dpt(best_t1[scored])  # silent)
    d = np.where(ok, 0.5 * (p0 + p1), 0.0)
    strong = best_score >= 2  # the silence's span is only well defined between runs of several events
    silence = float(np.median(np.abs(p1 - p0)[strong])) if strong.any() else float("nan")
    score = np.where(ok, best_score, 0).astype(np.float32)
    total = score.sum(axis=0)
    mean = (d * score).sum(axis=0) / np.maximum(total, 1.0)
    split = ok.all(axis=0) & (np.abs(d[0] - d[1]) > HALVES_AGREE_DPT)
    stronger = np.where(score[0] >= score[1], d[0], d[1])
    depth = np.where(total > 0, np.where(split, stronger, mean), np.nan).astype(np.float32)
    weight = np.where(split, np.maximum(score[0], score[1]), total).astype(np.float32)
    return EventFocus(depth, weight, silence)


def focus_in_rgb(focus: EventFocus, maps: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The focus map resampled into the RGB grid through remap maps (RGB px → event px): weight-normalised, so a
    pixel's depth is the weighted mean of the event pixels around its position (NaN where none), and its weight
    theirs."""
    mx, my = maps
    valid = focus.weight > 0
    num = np.where(valid, focus.depth_dpt * focus.weight, 0.0).astype(np.float32)
    wsum = cv2.remap(focus.weight, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    dsum = cv2.remap(num, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    depth = np.where(wsum > 1e-6, dsum / np.maximum(wsum, 1e-6), np.nan).astype(np.float32)
    return depth, np.where(wsum > 1e-6, wsum, 0.0).astype(np.float32)
