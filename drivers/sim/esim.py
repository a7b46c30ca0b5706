"""ESIM-style event generation from log-intensity samples (docs/prophesee-formats.md §10.1), plus background noise.

Each pixel keeps L_ref (the log level of its last threshold crossing, never reset to the sample value), L_prev
(the previous sample) and t_last (its last emitted event). Between two samples the log intensity is taken as
linear in time; every level L_ref ± k·C crossed in the interval gives one event at its interpolated time, and
L_ref advances by exactly C per crossing, so residuals carry over and slow ramps are not missed. Crossings within
the refractory period of the last *emitted* event are dropped but still advance L_ref (ESIM / OpenEB behaviour).
C⁺ and C⁻ are drawn once per pixel from N(C, σ_C) and clipped to >= 0.01.

Background activity is added on top: shot events as a Poisson process at ``noise_rate_hz`` per pixel, and
``n_hot`` hot pixels firing at ``hot_rate_hz``, with random polarity and uniform times. They do not move L_ref
(v2e's shot events do; that coupling is not modelled) and ignore the refractory period.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from drivers.events.dtypes import EVENT_CD, concat_events, make_cd

_MIN_THRESHOLD = 0.01


@njit(cache=True, nogil=True)
def _emit(l_new, l_prev, l_ref, l_up, l_lo, t_last, c_pos, c_neg, t0, t1, refractory, width, start, xs, ys, ps, ts):
    """Emit the crossings of pixels ``start``… between samples at ``t0`` and ``t1`` (µs), updating L_ref in place.

    One pass over the pixels (the state is a few MB at VGA, so a pass is memory-bound: no separate counting pass).
    ``l_up``/``l_lo`` hold each pixel's next levels L_ref + C⁺ and L_ref − C⁻: a sample strictly between them
    crosses nothing, whatever the previous sample, so most pixels are passed over reading three values and storing
    none (the same comparisons the full test makes, so the events are the same); the caller makes ``l_new`` the
    next ``l_prev``, so that is never stored. When ``xs``/``ys``/``ps``/``ts`` are full it stops *before* writing
    the next event, with that pixel's L_ref advanced only past the levels already handled, so calling again from
    the returned pixel with fresh buffers continues exactly. Returns (events written, pixel to resume from or
    n_pixels).
    """
    n = 0
    cap = xs.shape[0]
    dt = t1 - t0
    n_pix = l_new.shape[0]
    for i in range(start, n_pix):
        b = np.float64(l_new[i])
        if l_lo[i] < b < l_up[i]:
            continue
        a = np.float64(l_prev[i])
        ref = l_ref[i]
        if b >= a:
            c = c_pos[i]
            pol = 1
        else:
            c = -c_neg[i]
            pol = 0
        level = ref + c
        while (a < level <= b) if pol == 1 else (b <= level < a):
            t = t0 + (level - a) / (b - a) * dt
            if t - t_last[i] >= refractory:
                if n == cap:
                    l_ref[i], l_up[i], l_lo[i] = ref, ref + c_pos[i], ref - c_neg[i]
                    return n, i
                xs[n] = i % width
                ys[n] = i // width
                ps[n] = pol
                ts[n] = np.int64(math.floor(t + 0.5))
                n += 1
                t_last[i] = t
            ref = level
            level = ref + c
        l_ref[i], l_up[i], l_lo[i] = ref, ref + c_pos[i], ref - c_neg[i]
    return n, n_pix


class EventSensorModel:
    """A DVS pixel array fed with log-intensity images at increasing times; ``step`` returns EVENT_CD events.

    The first ``step`` only initialises L_ref = L_prev = L_0. Times are µs (float allowed; events carry rounded
    integer µs). ``threshold`` and ``sigma`` are the mean and per-pixel spread of C⁺ and C⁻ (ln units),
    ``refractory_us`` the dead time after an emitted event, ``noise_rate_hz`` the shot-noise rate per pixel.
    """

    def __init__(self, width: int, height: int, *, threshold: float = 0.2, sigma: float = 0.03,
                 refractory_us: float = 100, noise_rate_hz: float = 0.1, n_hot: int = 0, hot_rate_hz: float = 100.0,
                 seed: int = 0):
        self.width, self.height = int(width), int(height)
        self.threshold = float(threshold)
        self.refractory_us = float(refractory_us)
        self.noise_rate_hz = float(noise_rate_hz)
        self.hot_rate_hz = float(hot_rate_hz)
        self._rng = np.random.default_rng(seed)
        n = self.width * self.height
        self.c_pos = np.maximum(self._rng.normal(threshold, sigma, n), _MIN_THRESHOLD)
        self.c_neg = np.maximum(self._rng.normal(threshold, sigma, n), _MIN_THRESHOLD)
        self.hot_pixels = self._rng.choice(n, size=min(int(n_hot), n), replace=False).astype(np.int64)
        self._l_ref = np.zeros(n)
        # Set by the first step: the previous sample and the next levels above and below L_ref.
        self._l_prev = self._l_up = self._l_lo = None
        self._t_last = np.full(n, -np.inf)
        self._t_prev: float | None = None
        self._capacity = 1024

    @property
    def reference(self) -> np.ndarray:
        """Per-pixel L_ref (H, W) float64 (a copy): the log level of each pixel's last threshold crossing."""
        return self._l_ref.reshape(self.height, self.width).copy()

    @property
    def time_us(self) -> float | None:
        """Time of the last sample (None before the first)."""
        return self._t_prev

    def step(self, log_image: np.ndarray, t_us: float) -> np.ndarray:
        """Feed the log intensity (H, W) sampled at ``t_us``; return the events since the previous sample."""
        # A private copy in the sample's own precision (float32 from the renderers): it becomes L_prev as it is,
        # and the kernel widens each value to float64 exactly as a float64 copy would have held it.
        dtype = np.float32 if np.asarray(log_image).dtype == np.float32 else np.float64
        l_new = np.array(log_image, dtype=dtype, order="C").ravel()
        if l_new.shape[0] != self.width * self.height or np.shape(log_image) != (self.height, self.width):
            raise ValueError(f"expected a ({self.height}, {self.width}) image, got {np.shape(log_image)}")
        t_us = float(t_us)
        if self._t_prev is None:
            self._l_ref[:] = l_new
            self._l_up, self._l_lo = self._l_ref + self.c_pos, self._l_ref - self.c_neg
            self._l_prev = l_new
            self._t_prev = t_us
            return np.empty(0, EVENT_CD)
        if t_us < self._t_prev:
            raise ValueError(f"time went back: {t_us} µs after {self._t_prev} µs")
        parts, pixel, capacity, total = [], 0, self._capacity, 0
        while pixel < l_new.shape[0]:  # usually once: the buffers are sized from the previous step's count
            xs, ys = np.empty(capacity, np.uint16), np.empty(capacity, np.uint16)
            ps, ts = np.empty(capacity, np.int16), np.empty(capacity, np.int64)
            n, pixel = _emit(l_new, self._l_prev, self._l_ref, self._l_up, self._l_lo, self._t_last, self.c_pos,
                             self.c_neg, self._t_prev, t_us, self.refractory_us, self.width, pixel, xs, ys, ps, ts)
            parts.append(make_cd(xs[:n], ys[:n], ps[:n], ts[:n]))
            total += n
            capacity *= 2
        self._capacity = max(1024, total + total // 4)
        parts.append(self._noise(self._t_prev, t_us))
        events = concat_events(parts, EVENT_CD)
        self._t_prev = t_us
        self._l_prev = l_new
        return events[np.argsort(events["t"], kind="stable")]

    def _noise(self, t0: float, t1: float) -> np.ndarray:
        """Shot-noise and hot-pixel events in (t0, t1]: Poisson counts, uniform pixels/times, random polarity."""
        dt_s = (t1 - t0) * 1e-6
        n_shot = self._rng.poisson(self.noise_rate_hz * self.width * self.height * dt_s)
        pix = self._rng.integers(0, self.width * self.height, n_shot)
        if self.hot_pixels.size:
            hot_counts = self._rng.poisson(self.hot_rate_hz * dt_s, self.hot_pixels.size)
            pix = np.concatenate([pix, np.repeat(self.hot_pixels, hot_counts)])
        times = np.floor(self._rng.uniform(t0, t1, pix.size) + 0.5).astype(np.int64)
        pols = self._rng.integers(0, 2, pix.size)
        return make_cd(pix % self.width, pix // self.width, pols, times)


@njit(cache=True, nogil=True)
def _exceeds(a, b, limit):
    """max |a − b| > limit for flat arrays, in one pass that stops at the first element over it (no temporaries)."""
    for i in range(a.shape[0]):
        if abs(a[i] - b[i]) > limit:
            return True
    return False


def _flat(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image).ravel()


def adaptive_samples(render: Callable[[float], np.ndarray], t0_us: float, t1_us: float, *, threshold: float = 0.2,
                     lam: float = 0.5, min_dt_us: float = 1.0, max_dt_us: float | None = None):
    """Yield ``(t_us, L)`` across [t0, t1] such that max |ΔL| between consecutive samples is <= ``lam``·C.

    ``render(t)`` returns the log image at time t. Intervals are bisected until the bound holds (or they reach
    ``min_dt_us``), so samples are dense where the image changes fast (e.g. large |dD/dt| near focus) and
    sparse elsewhere (ESIM's adaptive sampling, §10.1 item 5). The bound is checked at interval ends only:
    a change that reverses inside an interval shorter than ``max_dt_us`` can be missed. Samples come in
    increasing time and each image is rendered once.
    """
    limit = lam * threshold
    max_dt = (t1_us - t0_us) if max_dt_us is None else max_dt_us
    n0 = max(1, math.ceil((t1_us - t0_us) / max_dt))
    grid = np.linspace(t0_us, t1_us, n0 + 1)
    prev_t, prev_l = float(grid[0]), render(float(grid[0]))
    yield prev_t, prev_l
    for t_end in grid[1:]:
        stack = [(float(t_end), render(float(t_end)))]  # pending right ends, nearest on top
        while stack:
            t, img = stack[-1]
            if t - prev_t > min_dt_us and _exceeds(_flat(img), _flat(prev_l), limit):
                mid = 0.5 * (prev_t + t)
                stack.append((mid, render(mid)))
                continue
            stack.pop()
            prev_t, prev_l = t, img
            yield t, img
