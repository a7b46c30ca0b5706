"""Where a scene comes into focus, from the events of one sweep over the lens's whole range.

A sweep plan should span the scene's depths and little more: every dioptre swept beyond them costs depth sampling
(the planes spread over empty focus) and nothing is gained. One sweep of the full range already says where the
scene is: each textured pixel passes through focus once per half and its events reverse polarity there
(:mod:`calibration.event_focus`), which times its focus power to ~0.003 dpt. The scene's range is then the spread
of those powers over the pixels whose passage is well scored.

Only strongly scored pixels count (weight ≥ :data:`STRONG_WEIGHT`, i.e. at least two events on each side of the
silence on both halves, or four on one): weaker reversals include pixels at occlusion edges, where the blur mixes
two surfaces and the reversal sits between them, and noise flips; at the 1st/99th percentile they would widen the
range by a few tenths of a dioptre on the simulated rig, the strong ones by < 0.02 dpt. Percentiles, not the
extremes, so a hot pixel or a moving object's reversal cannot stretch the range. A surface that fills little of the
view can fall beyond a percentile, though, while its pixels still agree on its focus to a few hundredths of a
dioptre: a tight cluster of them (:data:`CLUSTER_DPT`, :data:`CLUSTER_SHARE`) well beyond the percentile
(:data:`CLUSTER_GAP_DPT`) widens the range to include it, where scattered strays do not. (Nearer ones are the tails
of the surfaces inside: pixels at occlusion edges pile up a few hundredths beyond a layer.)

The focus power needs the lens's lag (the commanded waveform leads the lens by milliseconds, tenths of a dioptre
at full-range speeds). It is read from the same sweep by the up/down symmetry of its pixels: a pixel passes
through focus once on each half, and a lag error δ moves its rising-half estimate up and its falling-half one down
by the lens's speed × δ, so the median of (rising − falling) / (2 × speed) over pixels that pass on both halves is
what the lag is off by. This is the *effective* lag, the one that makes the halves agree: it also absorbs the
events' own asymmetry about focus (a pixel stops firing sooner on the way in than it restarts on the way out,
:mod:`calibration.temporal`), which reads as ~1 ms more than the lens's lag on the simulated rig. (It comes
from the very pixels being timed, so it holds for them whatever the scene; the calibration's
:func:`~calibration.temporal.estimate_lag` pools patches of a static calibration scene.) Too few such pixels:
a calibration's lag, else none, and the caller widens its margin (:attr:`SceneFocus.lag_uncertainty_dpt`).

Near the lens's ends the events see less: a surface within about half the events' depth of field
(:attr:`~calibration.event_focus.EventFocus.silence_dpt`, ~0.3 dpt on the simulated rig) of a turnaround is still
silent when the lens turns back, so its reversal spans the turnaround and is never paired. Its pixels show
instead as runs of one polarity through each half (approaching focus all the way up, leaving it all the way
down), which a pixel whose focus lies inside the range never does: it reverses at its passage. Weakly textured
pixels of a surface that *is* timed can do the same (a wide silence reaching the turnaround), so only runs count
that make up a patch of the view (:data:`END_RUN_DENSITY`) where the events timed next to nothing
(:data:`UNTIMED`). When those are a clear share of the active pixels (:data:`END_RUN_SHARE`), and clearly more at
one end than at the other, the scene reaches that end (:attr:`SceneFocus.beyond_end`; the end is the one a run's
events stop short of by less: a pixel is blurred flat far from focus, so its events mostly stop farther from the
other end), and the caller extends the range to it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.event_focus import event_focus
from calibration.model import CalibrationError, TemporalCalibration
from calibration.temporal import FocalModel
from capture.sweep import SweepData

#: A pixel's focus counts when its reversal weight (events on the weaker side, halves summed) reaches this.
STRONG_WEIGHT = 4
#: Too few strongly scored pixels to say where a scene is: the weight is lowered to 3, then 2, before giving up.
MIN_PIXELS = 50
#: Percentiles of the strong pixels' focus powers taken as the scene's ends.
QUANTILES = (0.01, 0.99)
#: Strong pixels within this many dioptres of each other ...
CLUSTER_DPT = 0.02
#: ... that are at least this share of the strong pixels (and CLUSTER_MIN of them) are a surface, percentile or not.
CLUSTER_SHARE = 0.004
CLUSTER_MIN = 6
#: ... and count when they lie this far beyond the percentiles (nearer, the margins cover them anyway).
CLUSTER_GAP_DPT = 0.1
#: Without a measured lag, the lag is taken as zero and may be up to this much (LD4 lags are 1.5–3 ms).
LAG_BOUND_US = 5000.0
#: A pixel is active in a half with this many events there; one without a polarity reversal in either half is an
#: end run (its focus is where the lens turns, see the module docstring).
RUN_EVENTS = 4
#: End runs count where they are at least this share of the active pixels around them (a box of 1/16 of the
#: sensor's width): a surface's pixels are together, while interior scenes have a few scattered ones (occlusion
#: edges, pixels with too little texture to reverse clearly).
END_RUN_DENSITY = 0.3
#: ... and where fewer than this many pixels per active pixel around them have a timed passage (weight ≥ 2; a
#: timed surface has 0.3–1 there, one too near the end 0–0.2).
UNTIMED = 0.2
#: Counted end runs that make up this share of the active pixels, and twice the other end's, say the scene reaches
#: that end. Over 200 scenes of `focalrig bench auto-range` (160x120) the 71 whose nearest surface the events could
#: not time gave 0.94–27 % at that end, the others 0–0.32 %; the opposite end 0–1.2 %, always under a third of it.
END_RUN_SHARE = 0.006
#: A lag read from the sweep beyond this fraction of its period is not a lens's lag: the halves were mismatched.
LAG_LIMIT = 0.125
#: Bin of the focus-power histogram kept for provenance.
HISTOGRAM_BIN_DPT = 0.05


class NoSceneInFocus(CalibrationError):
    """The sweep's events do not say where anything is in focus (no events, no texture, nothing in the range)."""


@dataclass(frozen=True)
class SceneFocus:
    """Where the scene seen by one sweep is in focus, in the lens's actual focal power (dpt)."""

    low_dpt: float                 #: where the scene's focus begins: the low percentile, or a cluster below it
    high_dpt: float                #: where it ends: the high percentile, or a cluster above it
    median_dpt: float
    quantiles: tuple[float, float]
    percentiles_dpt: tuple[float, float]  #: the strong pixels' powers at ``quantiles`` (before any cluster beyond)
    n_pixels: int                  #: strongly scored pixels behind the percentiles
    min_weight: int                #: the weight they reached
    n_events: int                  #: events of the sweep
    silence_dpt: float             #: the events' depth of field (NaN when unknown)
    lag_us: float
    lag_source: str                #: "pre-sweep" (estimated from this sweep), "calibration" or "none" (zero)
    lag_uncertainty_dpt: float     #: how far a wrong lag could move the powers (0 unless the lag is unknown)
    model: FocalModel              #: commanded → actual focal power used
    #: (first bin's low edge, bin width, strong pixels per bin), from the first to the last bin with a pixel
    histogram: tuple[float, float, tuple[int, ...]]
    #: Share of the active pixels whose events run into the (low, high) turnaround without a passage.
    end_runs: tuple[float, float] = (0.0, 0.0)

    @property
    def beyond_end(self) -> tuple[bool, bool]:
        """(low, high): part of the scene is in focus so near that end of the sweep (or beyond it) that its passage
        spans the turnaround (see the module docstring): the range should reach that end."""
        low, high = self.end_runs
        return low >= END_RUN_SHARE and low >= 2 * high, high >= END_RUN_SHARE and high >= 2 * low

    def actual_dpt(self, commanded_dpt: float) -> float:
        """The focal power the lens reaches when commanded ``commanded_dpt`` (the model's gain and offset)."""
        m = self.model
        return m.mid_dpt + m.offset_dpt + m.gain * (commanded_dpt - m.mid_dpt)

    def commanded_dpt(self, actual_dpt: float) -> float:
        """The commanded power that gives ``actual_dpt`` under the model's gain and offset (what a plan asks for)."""
        m = self.model
        return m.mid_dpt + (actual_dpt - m.mid_dpt - m.offset_dpt) / m.gain


def _lag_from_halves(sweep: SweepData, model: FocalModel) -> float | None:
    """The lag that makes the pixels' rising- and falling-half focus powers agree, starting from ``model``'s (see the
    module docstring); None when too few pixels pass on both halves away from the turnarounds."""
    c = sweep.commanded
    amplitude, mid = 0.5 * (c.high_dpt - c.low_dpt), 0.5 * (c.high_dpt + c.low_dpt)
    top_speed = amplitude * 2 * math.pi * c.frequency_hz  # dpt/s, sine
    lag = model.lag_us
    for _ in range(2):  # the halves are split at the lagged turnarounds: once more with the better lag
        m = dataclasses.replace(model, lag_us=lag)
        rising = m.rising(sweep.cd["t"])
        up, down = (event_focus(dataclasses.replace(sweep, cd=sweep.cd[half]), m) for half in (rising, ~rising))
        both = (up.weight >= 2) & (down.weight >= 2)
        power = 0.5 * (up.depth_dpt + down.depth_dpt)[both]
        speed = top_speed * np.sqrt(np.clip(1 - ((power - mid) / amplitude) ** 2, 0.0, 1.0)) * m.gain
        fast = speed > 0.3 * top_speed * m.gain  # near a turnaround the speed is too small to divide by
        if int(fast.sum()) < MIN_PIXELS:
            return None
        lag += float(np.median((up.depth_dpt - down.depth_dpt)[both][fast] / (2 * speed[fast]))) * 1e6
    return lag


def _lag(sweep: SweepData, temporal: TemporalCalibration | None) -> tuple[float, str]:
    """The lag: this sweep's own up/down symmetry, else the calibration's, else none (0)."""
    model = FocalModel.from_calibration(sweep.commanded, temporal)
    if sweep.commanded.waveform == "sine" and len(sweep.cd):
        lag = _lag_from_halves(sweep, model)
        if lag is not None and abs(lag) < LAG_LIMIT * sweep.commanded.period_us:
            return lag, "pre-sweep"
    if temporal is not None:
        return temporal.lag_us, "calibration"
    return 0.0, "none"


def end_runs(cd: np.ndarray, model: FocalModel, size: tuple[int, int], timed: np.ndarray) -> tuple[float, float]:
    """Shares of the active pixels (:data:`RUN_EVENTS` in each half) that are end runs — one polarity through each
    half — among active pixels that mostly are (:data:`END_RUN_DENSITY`) and where few pixels of ``timed`` (H, W:
    a timed focus passage) are (:data:`UNTIMED`), split by the end their events stop short of by less: (low end,
    high end)."""
    w, h = size
    if len(cd) == 0:
        return 0.0, 0.0
    rising = model.rising(cd["t"])
    power = model.power_dpt(cd["t"])
    pix = cd["y"].astype(np.int64) * w + cd["x"].astype(np.int64)
    n_half, flips = [], np.zeros(w * h, np.int64)
    lowest, highest = np.full(w * h, np.inf), np.full(w * h, -np.inf)
    for half in (rising, ~rising):
        p = pix[half]
        n_half.append(np.bincount(p, minlength=w * h))
        order = np.argsort(p, kind="stable")  # events are time-sorted: each pixel's stay in time order
        p, pol = p[order], cd["p"][half][order]
        same = p[1:] == p[:-1]
        flips += np.bincount(p[1:][same & (pol[1:] != pol[:-1])], minlength=w * h)
        np.minimum.at(lowest, pix[half], power[half])
        np.maximum.at(highest, pix[half], power[half])
    active = (n_half[0] >= RUN_EVENTS) & (n_half[1] >= RUN_EVENTS)
    n_active = int(active.sum())
    if n_active == 0:
        return 0.0, 0.0
    runs = active & (flips == 0)
    nearer_high = (model.high_dpt - highest) < (lowest - model.low_dpt)
    box = max(5, w // 16) | 1
    around = np.maximum(cv2.blur(active.reshape(h, w).astype(np.float32), (box, box)).ravel(), 1e-6)
    untimed = cv2.blur(timed.reshape(h, w).astype(np.float32), (box, box)).ravel() / around < UNTIMED
    shares = []
    for end in (runs & ~nearer_high, runs & nearer_high):
        dense = cv2.blur(end.reshape(h, w).astype(np.float32), (box, box)).ravel() / around >= END_RUN_DENSITY
        dense &= untimed
        shares.append(float((end & dense).sum()) / n_active)
    return shares[0], shares[1]


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q, method="inverted_cdf"))


def cluster_ends(powers: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """``low`` and ``high`` widened to the lowest and the highest power of any tight cluster of focus powers
    (:data:`CLUSTER_DPT` wide, holding :data:`CLUSTER_SHARE` of them and at least :data:`CLUSTER_MIN`) lying more than
    :data:`CLUSTER_GAP_DPT` beyond them."""
    p = np.sort(powers)
    need = max(CLUSTER_MIN, math.ceil(CLUSTER_SHARE * p.size))
    end = np.searchsorted(p, p + CLUSTER_DPT, side="right")  # the window [p[i], p[i] + CLUSTER_DPT] ends there
    dense = np.flatnonzero(end - np.arange(p.size) >= need)
    if dense.size:
        first, last = float(p[dense[0]]), float(p[end[dense[-1]] - 1])
        low = first if first < low - CLUSTER_GAP_DPT else low
        high = last if last > high + CLUSTER_GAP_DPT else high
    return low, high


def scene_focus(sweep: SweepData, temporal: TemporalCalibration | None = None, *,
                quantiles: tuple[float, float] = QUANTILES) -> SceneFocus:
    """Where ``sweep``'s scene is in focus (see the module docstring); ``temporal`` supplies gain, offset and, when the
    sweep cannot give one, the lag. Raises :class:`NoSceneInFocus` naming what was seen when too little is."""
    lag, source = _lag(sweep, temporal)
    gain, offset = (temporal.gain, temporal.offset_dpt) if temporal is not None else (1.0, 0.0)
    model = FocalModel(sweep.commanded, lag, gain, offset)
    focus = event_focus(sweep, model)
    weight, depth = focus.weight, focus.depth_dpt
    for min_weight in range(STRONG_WEIGHT, 1, -1):
        strong = weight >= min_weight
        if int(strong.sum()) >= MIN_PIXELS:
            break
    else:
        n_any = int((weight > 0).sum())
        raise NoSceneInFocus(
            f"the sweep over {model.low_dpt:.2f}–{model.high_dpt:.2f} dpt saw nothing come into focus: "
            f"{len(sweep.cd):,} events, {n_any} pixels with a focus passage, {int(strong.sum())} clear ones (needs "
            f"{MIN_PIXELS}); point the rig at a lit, textured scene within the lens's range, or set the plan's "
            "low_dpt and high_dpt by hand")
    powers = depth[strong].astype(np.float64)
    percentiles = _quantile(powers, quantiles[0]), _quantile(powers, quantiles[1])
    lo, hi = cluster_ends(powers, *percentiles)  # a small surface beyond a percentile still counts
    uncertainty = 0.0
    if source == "none":  # a lag up to LAG_BOUND_US shifts each power by at most the lens's speed times it
        c = sweep.commanded
        speed = math.pi * (c.high_dpt - c.low_dpt) * c.frequency_hz * (1.0 if c.waveform == "sine" else 2 / math.pi)
        uncertainty = speed * LAG_BOUND_US * 1e-6 * gain
    start = math.floor(model.low_dpt / HISTOGRAM_BIN_DPT) * HISTOGRAM_BIN_DPT
    n_bins = max(1, math.ceil((model.high_dpt - start) / HISTOGRAM_BIN_DPT))
    counts = np.bincount(np.clip(((powers - start) / HISTOGRAM_BIN_DPT).astype(np.int64), 0, n_bins - 1),
                         minlength=n_bins)
    used = np.flatnonzero(counts)  # the bins from the first to the last with a pixel
    start, counts = start + used[0] * HISTOGRAM_BIN_DPT, counts[used[0]:used[-1] + 1]
    return SceneFocus(lo, hi, float(np.median(powers)), tuple(quantiles), percentiles, int(strong.sum()), min_weight,
                      len(sweep.cd), focus.silence_dpt, lag, source, uncertainty, model,
                      (round(start, 6), HISTOGRAM_BIN_DPT, tuple(int(n) for n in counts)),
                      end_runs(sweep.cd, model, sweep.event_geometry, weight >= 2))
