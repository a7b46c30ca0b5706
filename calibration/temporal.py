"""Time → focal power → focal index (docs/hardware-protocols.md §8), and the lens lag from up/down symmetry.

Focal power model: the lens follows the commanded waveform D_c (placed on the event clock by the sync edge) with
a lag τ, a gain g about the mid power and an offset: D(t) = D̄ + offset + g·(D_c(t − τ) − D̄).

Lag: a surface in focus at D* is crossed once on the rising half (t₁) and once on the falling half (t₂) of each
period, and the event activity of a patch seeing it peaks at those crossings. Times are measured from the sync
edge, where the command is at its low end and starts rising (CommandedSweep's phase). For a sine,
D_c(t) = D̄ − A·cos(2πt/T): the lens crosses D* where cos(2π(t − τ)/T) = (D̄ − D*)/(gA), i.e. at
t₁ = τ + θT/2π and t₂ = τ + T − θT/2π, so **t₁ + t₂ = T + 2τ** whatever D*, g or the offset, and
τ = (t₁ + t₂ − T)/2. (The §8 text's T/2 form measures time from the mid-level crossing instead; any waveform
symmetric in time about its turnarounds — sine, triangle — gives the same relation.) Any estimator of the
crossing time that treats the rising and falling halves alike is mirror symmetric about the actual turnaround, so
its bias cancels in t₁ + t₂.

Focal indices: contiguous focal-power intervals, one per plane — around each frame of a frame-true stack (edges
halfway to the neighbouring frames' powers), or N equal-dioptre bins — with the turnarounds (where dD/dt → 0 and the
triangle rings) guarded. Interval edges in dioptres become edge times in each period (arcsine for a sine, linear
for a triangle; for a stepped sweep the same guard fraction of each dwell is dropped as settling and the rest
belongs to the plane holding the step's power), so every event is labelled from its time alone by one numba pass
over a lookup table: no per-event trigonometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from calibration.model import CalibrationError, TemporalCalibration
from capture.sweep import CommandedSweep


@dataclass(frozen=True)
class FocalModel:
    """The lens' actual focal power over time for one commanded sweep and a temporal calibration."""

    commanded: CommandedSweep
    lag_us: float = 0.0
    gain: float = 1.0
    offset_dpt: float = 0.0

    def __post_init__(self) -> None:
        if not self.gain > 0:
            raise CalibrationError(f"the lens gain must be positive, got {self.gain}")

    @classmethod
    def from_calibration(cls, commanded: CommandedSweep, temporal: TemporalCalibration | None) -> FocalModel:
        if temporal is None:
            return cls(commanded)
        return cls(commanded, temporal.lag_us, temporal.gain, temporal.offset_dpt)

    @property
    def period_us(self) -> float:
        return self.commanded.period_us

    @property
    def mid_dpt(self) -> float:
        return 0.5 * (self.commanded.low_dpt + self.commanded.high_dpt)

    @property
    def low_dpt(self) -> float:
        return float(self._map(self.commanded.low_dpt))

    @property
    def high_dpt(self) -> float:
        return float(self._map(self.commanded.high_dpt))

    def _map(self, d):
        return self.mid_dpt + self.offset_dpt + self.gain * (np.asarray(d, np.float64) - self.mid_dpt)

    def power_dpt(self, t_us) -> np.ndarray:
        """Focal power (dpt) at event-clock times (vectorised)."""
        return self._map(self.commanded.commanded_dpt(np.asarray(t_us, np.float64) - self.lag_us))

    def rising(self, t_us) -> np.ndarray:
        """True on the rising half of the (lagged) period."""
        phase = np.mod((np.asarray(t_us, np.float64) - self.commanded.t0_us - self.lag_us) / self.period_us, 1.0)
        return phase < 0.5

    def falling_sorted(self, t_us: np.ndarray) -> np.ndarray:
        """int8 per time, 1 on the falling half and 0 on the rising one (``~rising``), for time-sorted ``t_us``:
        found by one search per half-period boundary instead of arithmetic per time (a 640x480 sweep has ~1 M
        events; 1 ms against 15)."""
        out = np.zeros(len(t_us), np.int8)
        if not len(t_us):
            return out
        origin, half = self.commanded.t0_us + self.lag_us, 0.5 * self.period_us
        first = math.floor((float(t_us[0]) - origin) / half)
        last = math.floor((float(t_us[-1]) - origin) / half)
        starts = np.searchsorted(t_us, origin + half * np.arange(first, last + 2), side="left")
        for j in range(first, last + 1):
            if j % 2:  # half-period j is [origin + j·T/2, origin + (j + 1)·T/2): odd ones fall
                out[starts[j - first]:starts[j - first + 1]] = 1
        return out

    def segments(self, bins: FocalBins) -> tuple[np.ndarray, np.ndarray]:
        """Boundaries (µs from t0 + lag, sorted in [0, T)) and labels (one more than boundaries) of one period.

        Label k ≥ 0 is focal index k, −1 is dropped (turnaround guard, or the falling half when ``bins`` takes the
        rising half only). Interval i is [bounds[i−1], bounds[i]).
        """
        c = self.commanded
        if c.waveform == "stepped":
            return self._step_segments(bins)
        lo, hi = self.low_dpt, self.high_dpt
        # Every power where the label can change: the plane edges and the guard limits, inside the swept range.
        cuts = np.unique(np.concatenate([bins.edges_dpt[1:-1], bins.accepted_dpt]))
        cuts = cuts[(cuts > lo) & (cuts < hi)]
        mids = 0.5 * (np.concatenate([[lo], cuts]) + np.concatenate([cuts, [hi]]))
        up = bins.label_of_power(mids)
        u = (cuts - lo) / (hi - lo)  # normalised position in the swept range, 0 at the low end
        rise = np.arccos(np.clip(1.0 - 2.0 * u, -1.0, 1.0)) / (2 * math.pi) if c.waveform == "sine" else 0.5 * u
        bounds = np.concatenate([rise, 1.0 - rise[::-1]]) * self.period_us
        down = np.full(up.size - 1, -1) if bins.rising_only else up[-2::-1]
        return bounds, np.concatenate([up, down]).astype(np.int16)

    def _step_segments(self, bins: FocalBins) -> tuple[np.ndarray, np.ndarray]:
        """Stepped sweeps: each dwell's first ``guard_fraction`` is settling (dropped), the rest is the plane
        holding the step's power (steps beyond the outer bin edges go to the end planes)."""
        c = self.commanded
        starts = np.arange(len(c.step_powers_dpt)) * c.dwell_us
        settled = starts + bins.guard_fraction * c.dwell_us
        bounds = np.column_stack([starts, settled]).ravel()[1:]
        planes = bins.nearest_plane(self._map(np.asarray(c.step_powers_dpt, np.float64)))
        labels = np.column_stack([np.full(planes.size, -1), planes]).ravel()
        return bounds, labels.astype(np.int16)


@dataclass(frozen=True)
class FocalBins:
    """Contiguous focal-power intervals, one per plane: plane k holds the powers in [edges[k], edges[k+1]).

    Two layouts: :meth:`uniform` (N equal-dioptre bins over the range less a guard at each end) and :meth:`around`
    (one interval around each frame of a frame-true stack, its edges halfway to the neighbouring frames, so each
    plane's events cover exactly the focal interval its frame stands for). Events at powers outside
    ``accepted_dpt`` (the turnaround guards, where dD/dt → 0 and a triangle rings) are dropped; with
    ``rising_only`` so are the events of the falling half.
    """

    edges_dpt: np.ndarray
    guard_fraction: float = 0.05
    accepted_dpt: tuple[float, float] = (-math.inf, math.inf)
    rising_only: bool = False

    def __post_init__(self) -> None:
        e = np.asarray(self.edges_dpt, np.float64)
        object.__setattr__(self, "edges_dpt", e)
        if e.ndim != 1 or e.size < 2:
            raise CalibrationError(f"need at least one focal plane, got edges {e.tolist()}")
        if not np.all(np.diff(e) > 0):
            raise CalibrationError(f"empty or unordered focal range: edges {np.round(e, 4).tolist()} dpt")
        if not 0 <= self.guard_fraction < 0.5:
            raise CalibrationError(f"guard_fraction must be in [0, 0.5), got {self.guard_fraction}")

    @classmethod
    def uniform(cls, low_dpt: float, high_dpt: float, n: int, guard_fraction: float = 0.05) -> FocalBins:
        """N equal-dioptre bins over [low + guard, high − guard] (guard = ``guard_fraction`` of the range)."""
        if n < 1:
            raise CalibrationError(f"need at least one focal plane, got n_planes={n}")
        if not 0 <= guard_fraction < 0.5:
            raise CalibrationError(f"guard_fraction must be in [0, 0.5), got {guard_fraction}")
        if not high_dpt > low_dpt:
            raise CalibrationError(f"empty focal range [{low_dpt}, {high_dpt}] dpt")
        g = guard_fraction * (high_dpt - low_dpt)
        edges = np.linspace(low_dpt + g, high_dpt - g, n + 1)
        return cls(edges, guard_fraction, (float(edges[0]), float(edges[-1])))

    @classmethod
    def for_model(cls, model: FocalModel, n: int, guard_fraction: float = 0.05) -> FocalBins:
        return cls.uniform(model.low_dpt, model.high_dpt, n, guard_fraction)

    @classmethod
    def around(cls, powers_dpt: np.ndarray, model: FocalModel, guard_fraction: float = 0.05, *,
               rising_only: bool = False) -> FocalBins:
        """One interval per plane power (strictly ascending), edges halfway between neighbours, the outer ones at
        the ends of the swept range; events beyond the turnaround guards are dropped."""
        p = np.asarray(powers_dpt, np.float64)
        lo, hi = model.low_dpt, model.high_dpt
        g = guard_fraction * (hi - lo)
        edges = np.concatenate([[min(lo, p[0]) - 1e-9], 0.5 * (p[1:] + p[:-1]), [max(hi, p[-1]) + 1e-9]])
        return cls(edges, guard_fraction, (lo + g, hi - g), rising_only)

    @property
    def n(self) -> int:
        return int(self.edges_dpt.size - 1)

    @property
    def centres_dpt(self) -> np.ndarray:
        e = self.edges_dpt
        return 0.5 * (e[1:] + e[:-1])

    @property
    def widths_dpt(self) -> np.ndarray:
        return np.diff(self.edges_dpt)

    def label_of_power(self, power_dpt) -> np.ndarray:
        """Focal index (int16; −1 outside the planes or the accepted range) of focal powers."""
        d = np.asarray(power_dpt, np.float64)
        k = np.searchsorted(self.edges_dpt, d, side="right") - 1
        ok = (k >= 0) & (k < self.n) & (d >= self.accepted_dpt[0]) & (d <= self.accepted_dpt[1])
        return np.where(ok, k, -1).astype(np.int16)

    index_of_power = label_of_power

    def nearest_plane(self, power_dpt) -> np.ndarray:
        """The plane holding each power, powers beyond the outer edges going to the end planes (int64)."""
        k = np.searchsorted(self.edges_dpt, np.asarray(power_dpt, np.float64), side="right") - 1
        return np.clip(k, 0, self.n - 1)


@njit(cache=True, nogil=True)
def _label_times(t, origin, period, cell, lut, bounds, labels, out):
    """out[i] = label of the period segment holding t[i]; lut[c] = boundaries at or below c·cell."""
    nb = bounds.shape[0]
    for i in range(t.shape[0]):
        d = t[i] - origin
        u = d - math.floor(d / period) * period
        c = int(u / cell)
        if c >= lut.shape[0]:
            c = lut.shape[0] - 1
        k = lut[c]
        while k < nb and bounds[k] <= u:
            k += 1
        out[i] = labels[k]


def assign_focal_index(t_us: np.ndarray, model: FocalModel, bins: FocalBins) -> np.ndarray:
    """Focal index (int16; −1 = turnaround guard) of every event time, from the model's segment table."""
    bounds, labels = model.segments(bins)
    period = model.period_us
    n_cells = int(min(max(period, 1.0), 1 << 22))
    cell = period / n_cells
    lut = np.searchsorted(bounds, np.arange(n_cells) * cell, side="right").astype(np.int32)
    out = np.empty(len(t_us), np.int16)
    _label_times(np.asarray(t_us), float(model.commanded.t0_us + model.lag_us), float(period), float(cell), lut,
                 bounds.astype(np.float64), labels, out)
    return out


def frame_powers(frames, model: FocalModel) -> np.ndarray:
    """Focal power at each frame's mid-exposure (frames must be on the event clock)."""
    bad = [f.index for f in frames if f.clock != "event"]
    if bad:
        raise CalibrationError(f"frames {bad[:5]} are timed on the {frames[0].clock!r} clock, not the event clock; "
                               "record with the frame strobe wired to the event camera's trigger input")
    mids = np.array([0.5 * (f.exposure_start_us + f.exposure_end_us) for f in frames], np.float64)
    return model.power_dpt(mids)


# -- lag from up/down crossings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LagFit:
    """Result of :func:`estimate_lag`: the lag, its spread over patches, and the per-patch crossings."""

    lag_us: float
    residual_us: float          #: RMS of accepted per-patch lags about the median
    t_rise_us: np.ndarray       #: per accepted patch, from the sync edge
    t_fall_us: np.ndarray
    power_dpt: np.ndarray       #: focal power at each patch's crossing (model with the fitted lag)
    patch_xy: np.ndarray        #: (n, 2) patch centres, event px
    n_patches: int              #: patches with enough activity (accepted + rejected)
    period_us: float

    @property
    def patch_lags_us(self) -> np.ndarray:
        return 0.5 * (self.t_rise_us + self.t_fall_us - self.period_us)

    def temporal(self) -> TemporalCalibration:
        return TemporalCalibration(self.lag_us, self.residual_us, n_patches=int(self.t_rise_us.size))


def _smooth_circular(h: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian smoothing along the last axis, circularly (FFT)."""
    n = h.shape[-1]
    f = np.fft.rfftfreq(n)
    return np.fft.irfft(np.fft.rfft(h, axis=-1) * np.exp(-2 * (math.pi * f * sigma_bins) ** 2), n, axis=-1)


def _parabolic_peak(y: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Sub-bin peak positions of rows of ``y`` at integer maxima ``i`` (circular neighbours)."""
    rows = np.arange(y.shape[0])
    n = y.shape[1]
    a, b, c = y[rows, (i - 1) % n], y[rows, i], y[rows, (i + 1) % n]
    den = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (a - c) / den, 0.0)
    return i + np.clip(off, -0.5, 0.5)


def _gap_edges(coarse: np.ndarray, fine: np.ndarray, lo: int, hi: int, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: start and end (bin edges) of the quietest run of ``fine`` next to ``coarse``'s maximum in [lo, hi).

    The run's minimum is searched within ``reach`` of the maximum; the run is every bin around it at or below
    min + 10 % of that window's range, followed as far as it goes inside [lo, hi). It must not stop at the
    window: near a turnaround the lens is slow, the gap lasts longer than ``reach``, and a gap cut at the window
    edge on the activity side would pull both crossings early (a lag biased by milliseconds).
    """
    start, end = np.empty(coarse.shape[0]), np.empty(coarse.shape[0])
    for r in range(coarse.shape[0]):  # one row per patch (tens), not per event
        p = lo + int(np.argmax(coarse[r, lo:hi]))
        a, b = max(lo, p - reach), min(hi, p + reach + 1)
        seg = fine[r, a:b]
        j = a + int(np.argmin(seg))
        quiet = fine[r, lo:hi] <= fine[r, j] + 0.1 * (seg.max() - fine[r, j])
        jj = j - lo
        left = jj - int(np.argmin(quiet[jj::-1])) + 1 if not quiet[:jj + 1].all() else 0
        right = jj + int(np.argmin(quiet[jj:])) - 1 if not quiet[jj:].all() else len(quiet) - 1
        start[r], end[r] = lo + left, lo + right + 1
    return start, end


def _power_midpoints(start_us: np.ndarray, end_us: np.ndarray, commanded: CommandedSweep, lag_us: float,
                     samples: int = 65) -> np.ndarray:
    """Times (from the sync edge) inside each gap where the lens is halfway in *power* between the gap's ends.

    The gap is where the blur circle is under a pixel, |D − d| below a constant: symmetric in dioptres about the
    crossing D = d, not in time, because the lens speeds up or slows down across it (a sine near its ends). With
    the lens at D(t − τ), the crossing is where D is the mean of its values at the gap's ends. A gap that
    contains a turnaround (D not monotonic) keeps its time midpoint.
    """
    frac = np.linspace(0.0, 1.0, samples)
    t = start_us[:, None] + (end_us - start_us)[:, None] * frac[None, :]
    d = np.asarray(commanded.commanded_dpt(commanded.t0_us + t - lag_us), np.float64)
    out = 0.5 * (start_us + end_us)
    sign = np.where(d[:, -1] >= d[:, 0], 1.0, -1.0)[:, None]
    d = d * sign                                            # every row rising
    step = np.diff(d, axis=1)
    ok = np.flatnonzero(np.all(step > 0, axis=1))          # monotonic rows (no turnaround inside the gap)
    if ok.size:  # vectorised linear interpolation of each row at its own goal (rows are tens of thousands)
        d, t, step = d[ok], t[ok], step[ok]
        goal = 0.5 * (d[:, :1] + d[:, -1:])
        j = np.clip((d < goal).sum(axis=1) - 1, 0, samples - 2)[:, None]
        frac_j = (goal - np.take_along_axis(d, j, 1)) / np.take_along_axis(step, j, 1)
        t0, t1 = np.take_along_axis(t, j, 1), np.take_along_axis(t, j + 1, 1)
        out[ok] = (t0 + frac_j * (t1 - t0))[:, 0]
    return out


def _patch_crossings(rows: np.ndarray, t_a0: np.ndarray, t_l: np.ndarray, gap_start: np.ndarray,
                     gap_end: np.ndarray, commanded: CommandedSweep, lag_us: float, min_pixels: int = 5) -> np.ndarray:
    """Per patch: the median of its pixels' crossings (power midpoints of their level pairs); a patch with fewer
    than ``min_pixels`` pairs falls back to the power midpoint of its common quiet gap."""
    out = _power_midpoints(gap_start, gap_end, commanded, lag_us)
    if rows.size:
        cross = _power_midpoints(t_a0, t_l, commanded, lag_us, samples=17)  # short spans: 17 samples suffice
        bounds = np.searchsorted(rows, np.arange(out.size + 1))  # rows come sorted from _pixel_level_pairs
        for r in np.flatnonzero(np.diff(bounds) >= min_pixels):  # one row per patch (up to ~1000), not per pixel
            out[r] = float(np.median(cross[bounds[r]:bounds[r + 1]]))
    return out


def _pixel_level_pairs(cd: np.ndarray, t0_us: float, period: float, patch: np.ndarray, row_of_patch: np.ndarray,
                       start: np.ndarray, end: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel and sweep, two event times at the *same* log-intensity level on either side of focus.

    Inside each patch's window [start, end) (phase µs, may run past T) a pixel's longest silence is its stay in
    focus. Its last event before (t_a) sits one threshold C past the one before it (t_a0) on the way in; after
    focus the pixel retraces its intensity and fires first (t_l) when it is C beyond t_a's level again, i.e. at
    t_a0's level. (t_a0, t_l) are therefore symmetric about the crossing, while (t_a, t_l) are not (leaving needs
    a full threshold of change): that asymmetry is what biases gap-centre estimates late. Returns (row, t_a0,
    t_l) per pixel-sweep with at least three events in the window, sorted by row; times are phases unwrapped like
    ``start``.
    """
    rel = cd["t"].astype(np.float64) - t0_us
    row = row_of_patch[patch]
    r = np.maximum(row, 0)
    d = np.mod(rel - start[r], period)
    idx = np.flatnonzero((row >= 0) & (d < (end - start)[r]))
    r, d = r[idx], d[idx]
    sweep = np.round((rel[idx] - d - start[r]) / period).astype(np.int64)
    pix = cd["y"][idx].astype(np.int64) * width + cd["x"][idx].astype(np.int64)
    key = (sweep - (sweep.min() if sweep.size else 0)) * (int(pix.max(initial=0)) + 1) + pix
    order = np.lexsort((d, key))
    key, d, r = key[order], d[order], r[order]
    if key.size < 3:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    same = key[1:] == key[:-1]
    silence = np.where(same, np.diff(d), -1.0)           # interval i: between events i and i + 1
    group = np.concatenate([[0], np.cumsum(~same)])       # group of each event
    # the longest silence of each group: sort intervals by (group, length) and take each group's last
    by = np.lexsort((silence, group[:-1]))
    last = by[np.r_[group[:-1][by][1:] != group[:-1][by][:-1], True]]
    ok = (silence[last] > 0) & (last >= 1)
    last = last[ok]
    ok = group[last - 1] == group[last]                   # t_a0 (event last − 1) is the same pixel and sweep
    last = last[ok]
    last = last[np.argsort(r[last], kind="stable")]       # grouped by patch row, for the per-patch medians
    return r[last], start[r[last]] + d[last - 1], start[r[last]] + d[last + 1]


def estimate_lag(cd: np.ndarray, commanded: CommandedSweep, event_size: tuple[int, int], *, patch_px: int = 16,
                 bin_us: float | None = None, smooth_us: float | None = None,
                 min_events: int = 200, window_fraction: float = 1 / 40) -> LagFit:
    """Lens lag from the up/down symmetry of per-patch event activity (see the module docstring).

    ``cd``: events of one or more whole periods of a static textured scene (a calibration sweep). Each
    ``patch_px`` square patch gets a histogram of event phase (``bin_us``, default T/2000). On each half its
    activity maximum (smoothed over ``smooth_us``, default T/400) marks the focus crossing roughly, and the quiet
    gap next to it (found within ``window_fraction``·T) where the image stops changing locates it. Event activity
    is not mirror symmetric about focus: a pixel approaching its sharpest level emits its last threshold crossing
    there, leaving it needs a full threshold of change. So neither the maximum nor the gap's centre is the
    crossing (both bias t₁ + t₂, the gap centre by ~0.4 ms at 4 Hz); each pixel's events at one and the same
    level on both sides of its silence are (:func:`_pixel_level_pairs`), and the crossing is their midpoint in
    dioptres, the median over the patch's pixels. t₁, t₂ give
    τ_patch = (t₁ + t₂ − T)/2. Halves are split at the turnarounds of a first estimate taken from the whole
    sensor's activity, whose self-convolution peaks at 2τ (mod T). Patches whose τ is off by more than 3 MADs
    (two surfaces at different depths, noise) are rejected; τ is the median of the rest.
    """
    if commanded.waveform == "stepped":
        raise CalibrationError("the lag is estimated from a periodic (sine or triangle) sweep, not a stepped one")
    period = commanded.period_us
    n_bins = max(64, round(period / (bin_us or period / 2000)))
    bw = period / n_bins
    sigma = (smooth_us or period / 400) / bw
    fine_sigma = max(1.0, period / 2000 / bw)
    w, h = event_size
    if len(cd) == 0:
        raise CalibrationError("no events in the sweep: is the scene textured and lit, and the event camera on?")
    if int(cd["x"].max()) >= w or int(cd["y"].max()) >= h:
        raise CalibrationError(f"events reach ({int(cd['x'].max())}, {int(cd['y'].max())}) outside the "
                               f"{w}x{h} event sensor: inconsistent sizes")
    nx, ny = -(-w // patch_px), -(-h // patch_px)
    patch = (cd["y"].astype(np.int64) // patch_px) * nx + cd["x"].astype(np.int64) // patch_px
    phase_bin = (np.mod(cd["t"].astype(np.float64) - commanded.t0_us, period) / bw).astype(np.int64) % n_bins
    hist = np.bincount(patch * n_bins + phase_bin, minlength=nx * ny * n_bins).reshape(nx * ny, n_bins)
    hist = hist.astype(np.float64)

    total = _smooth_circular(hist.sum(axis=0), sigma)
    conv = np.fft.irfft(np.fft.rfft(total) ** 2, n_bins)
    s = float(_parabolic_peak(conv[None, :], np.array([int(np.argmax(conv))]))[0]) * bw  # ≡ 2τ (mod T)
    tau0 = (0.5 * s + 0.25 * period) % (0.5 * period) - 0.25 * period                  # in [−T/4, T/4)

    active = np.flatnonzero(hist.sum(axis=1) >= min_events)
    if active.size == 0:
        raise CalibrationError(f"no {patch_px}px patch has {min_events} events in the sweep; record a textured, "
                               "well-lit static scene, or lower min_events")
    # Rotate so that column 0 is the actual low turnaround: rising half = first n/2 columns.
    shift = round(tau0 / bw) % n_bins
    rows = np.roll(hist[active], -shift, axis=1)
    coarse = _smooth_circular(rows, sigma)
    fine = _smooth_circular(rows, fine_sigma)
    half = n_bins // 2
    reach = max(2, round(window_fraction * n_bins))
    gaps = [(e + shift) * bw for e in (*_gap_edges(coarse, fine, 0, half, reach),
                                         *_gap_edges(coarse, fine, half, n_bins, reach))]
    row_of_patch = np.full(nx * ny, -1, np.int64)
    row_of_patch[active] = np.arange(active.size)
    margin = reach * bw  # the pixels' own gaps reach a little past the patch's common one
    pairs = [_pixel_level_pairs(cd, commanded.t0_us, period, patch, row_of_patch, a - margin, b + margin, w)
             for a, b in ((gaps[0], gaps[1]), (gaps[2], gaps[3]))]
    lag = tau0
    for _ in range(3):  # the power midpoints depend on the lag a little: iterate to the fixed point
        t1, t2 = (_patch_crossings(rows_, a0, tl, a, b, commanded, lag)
                  for (rows_, a0, tl), a, b in zip(pairs, (gaps[0], gaps[2]), (gaps[1], gaps[3]), strict=True))
        # The rotation may have carried the crossings a whole period on (a coarse τ just below zero rotates by
        # almost T): the crossings are those whose lag lies within half a period of the coarse estimate.
        turns = period * np.round((0.5 * (t1 + t2 - period) - tau0) / period)
        t1, t2 = t1 - turns, t2 - turns
        lags = 0.5 * (t1 + t2 - period)
        med = float(np.median(lags))
        mad = float(np.median(np.abs(lags - med))) * 1.4826
        keep = np.abs(lags - med) <= max(3 * mad, bw)
        lag = float(np.median(lags[keep]))
    residual = float(np.sqrt(np.mean((lags[keep] - lag) ** 2)))
    model = FocalModel(commanded, lag)
    centres = np.column_stack([(active % nx + 0.5) * patch_px, (active // nx + 0.5) * patch_px])[keep]
    return LagFit(lag, residual, t1[keep], t2[keep], model.power_dpt(commanded.t0_us + t1[keep]), centres,
                  int(active.size), period)
