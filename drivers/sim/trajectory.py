"""The focal power of a periodically swept liquid lens over time: commanded waveform, optical response, sync edges.

Event and frame simulators need D(t) at arbitrary, often vectorised, times. The commanded waveform (sine or
triangle between ``low_dpt`` and ``high_dpt``, starting at the low end at ``t0_us``, like the LD4 generator in
:mod:`drivers.sim.optotune_sim`) is evaluated in closed form. The lens' optical response uses the same LTI model as
the LD4 simulator's :class:`~drivers.sim.optotune_sim.LensModel` — a first-order lag τ followed by a second-order
resonance (ω₀, ζ), docs/hardware-protocols.md §2.6 — with the same default parameters, so calibration code tested
against either simulator sees the same lag and ringing.

The response is the *periodic steady state*: the sweep is taken to have been running long before any time asked
for (the ≈15 ms transient after switching the generator on is not modelled here; the LD4 simulator has it). It is
computed once per trajectory from the waveform's Fourier series, each harmonic multiplied by H(jkω), on a table of
``TABLE_SIZE`` samples per period, and linearly interpolated. Evaluating a table is deterministic and costs the same
for any waveform; the interpolation error is ≤ h²/8·max|D''| (≈2e-8 of the amplitude for a sine), far below the
LD4's 0.005 dpt resolution.
"""

from __future__ import annotations

import bisect
import math
from typing import Literal

import numpy as np

from drivers.events.dtypes import EVENT_EXT_TRIGGER
from drivers.sim.optotune_sim import LensModel

TABLE_SIZE = 1 << 14  #: samples per period of the steady-state response table (harmonics up to TABLE_SIZE/2 − 1)

Waveform = Literal["sine", "triangle", "rectangle"]


def lens_response(lens: LensModel, freq_hz: np.ndarray) -> np.ndarray:
    """H(j2πf) of (lag τ → resonance ω₀, ζ), the transfer function whose ZOH form the LD4 simulator integrates."""
    s = 2j * np.pi * np.asarray(freq_hz, float)
    w = 2 * math.pi * lens.resonance_hz
    return 1.0 / (1.0 + s * lens.lag_s) * w * w / (s * s + 2 * lens.damping * w * s + w * w)


class SweepTrajectory:
    """A periodic focal sweep: commanded D_c(t), the lens' actual D(t), the sync edges and the true mid-sweep lag.

    Phase convention (same as the LD4 generator): at ``t0_us`` + k·T the command is at ``low_dpt`` and starts
    rising; at ``t0_us`` + (k + ½)·T it is at ``high_dpt`` and starts falling. A rectangle jumps up to ``high_dpt``
    at ``t0_us`` + k·T and down at ``t0_us`` + (k + ½)·T (the LD4 generator's rectangle is high in the first half).
    Times are µs. The response is computed at construction: build a new trajectory after changing ``lens``.
    """

    def __init__(self, freq_hz: float, low_dpt: float, high_dpt: float, *, waveform: Waveform = "sine",
                 t0_us: float = 0.0, lens: LensModel | None = None) -> None:
        if freq_hz <= 0 or high_dpt <= low_dpt:
            raise ValueError("need freq_hz > 0 and high_dpt > low_dpt")
        if waveform not in ("sine", "triangle", "rectangle"):
            raise ValueError(f"unknown waveform {waveform!r}")
        self.freq_hz, self.low_dpt, self.high_dpt = float(freq_hz), float(low_dpt), float(high_dpt)
        self.waveform: Waveform = waveform
        self.t0_us = float(t0_us)
        self.lens = LensModel() if lens is None else lens
        self._table = self._steady_state_table()
        self.lag_us = self._mid_sweep_lag_us()

    @property
    def period_us(self) -> float:
        return 1e6 / self.freq_hz

    @property
    def mid_dpt(self) -> float:
        return 0.5 * (self.low_dpt + self.high_dpt)

    @property
    def amplitude_dpt(self) -> float:
        return 0.5 * (self.high_dpt - self.low_dpt)

    @property
    def fundamental_gain(self) -> float:
        """|H| at the sweep frequency: the sine's amplitude ratio actual/commanded."""
        return float(abs(lens_response(self.lens, self.freq_hz)))

    def phase(self, t_us) -> np.ndarray:
        """Fraction of the period elapsed since the last up-sweep start, in [0, 1)."""
        return np.mod((np.asarray(t_us, float) - self.t0_us) / self.period_us, 1.0)

    def commanded_dpt(self, t_us) -> np.ndarray:
        """The commanded focal power, exact (closed form)."""
        p = self.phase(t_us)
        if self.waveform == "sine":
            shape = -np.cos(2 * np.pi * p)
        elif self.waveform == "triangle":
            shape = np.where(p < 0.5, 4 * p - 1, 3 - 4 * p)
        else:
            shape = np.where(p < 0.5, 1.0, -1.0)
        return self.mid_dpt + self.amplitude_dpt * shape

    def actual_dpt(self, t_us) -> np.ndarray:
        """The lens' focal power in periodic steady state (interpolated from the response table)."""
        x = self.phase(t_us) * TABLE_SIZE
        i = np.floor(x).astype(np.int64)
        frac = x - i
        table = self._table
        return table[i % TABLE_SIZE] * (1 - frac) + table[(i + 1) % TABLE_SIZE] * frac

    def power_range(self) -> tuple[float, float]:
        """[min, max] of the actual power: the interpolated response table's nodes are its exact extremes."""
        return float(np.min(self._table)), float(np.max(self._table))

    def sync_edges(self, t0_us: float, t1_us: float) -> tuple[np.ndarray, np.ndarray]:
        """Edges of the lens sync signal in [t0_us, t1_us): times (µs, float64) and polarity (int16, 1 rising).

        Rising at each commanded up-sweep start, falling at each down-sweep start, so consecutive edges alternate
        and are half a period apart.
        """
        half = self.period_us / 2
        k0 = math.ceil((t0_us - self.t0_us) / half)
        k1 = math.ceil((t1_us - self.t0_us) / half)
        k = np.arange(k0, k1, dtype=np.int64)
        return self.t0_us + k * half, (k % 2 == 0).astype(np.int16)

    # -- internals ---------------------------------------------------------------------------------------------
    def _steady_state_table(self) -> np.ndarray:
        """One period of D(t) sampled at TABLE_SIZE phases: Σ_k c_k·H(jkω)·e^{jkθ} for the waveform's c_k.

        Coefficients are analytic (no sampling of the kinked triangle, hence no aliasing): sine −cos θ → c₁ = −1;
        triangle (−1 at θ = 0, +1 at π) → c_k = −8/(π²k²) for odd k; rectangle (+1 on (0, π), −1 on (π, 2π)) =
        Σ 4/(πk)·sin kθ → c_k = −4j/(πk) for odd k.
        """
        k = np.arange(TABLE_SIZE // 2 + 1)
        c = np.zeros(k.size, complex)
        odd = k % 2 == 1
        if self.waveform == "sine":
            c[1] = -1.0
        elif self.waveform == "triangle":
            c[odd] = -8.0 / (np.pi ** 2 * k[odd] ** 2)
        else:
            c[odd] = -4j / (np.pi * k[odd])
        c[-1] = 0.0  # Nyquist bin: keep the table real-symmetric
        spectrum = c * lens_response(self.lens, k * self.freq_hz) * (TABLE_SIZE / 2)  # irfft scaling for Re(c e^{jkθ})
        return self.mid_dpt + self.amplitude_dpt * np.fft.irfft(spectrum, TABLE_SIZE)

    def _mid_sweep_lag_us(self) -> float:
        """Delay of the actual up-sweep's mid-level crossing after the commanded one (phase ¼; a rectangle's: 0), in µs.

        Found on the same table (linear interpolation) that :meth:`actual_dpt` evaluates, so it is the exact
        ground truth for that function. The model's output is half-wave antisymmetric, so the down-sweep lag is
        the same.
        """
        d = self._table - self.mid_dpt
        nxt = np.roll(d, -1)
        up = np.flatnonzero((d < 0) & (nxt >= 0))
        crossing = (up + d[up] / (d[up] - nxt[up])) / TABLE_SIZE  # phase of each upward mid-level crossing
        commanded = 0.0 if self.waveform == "rectangle" else 0.25
        delay = np.mod(crossing - commanded + 0.5, 1.0) - 0.5  # wrapped to [−½, ½) of a period
        return float(delay[np.argmin(np.abs(delay))] * self.period_us)


class ConstantTrajectory:
    """A lens held at one focal power (the LD4 in DC or focal-power mode, or a lens at rest): no sweep, no sync."""

    def __init__(self, dpt: float) -> None:
        self.dpt = float(dpt)

    def commanded_dpt(self, t_us) -> np.ndarray:
        return np.full(np.shape(t_us), self.dpt)

    actual_dpt = commanded_dpt

    def power_range(self) -> tuple[float, float]:
        return self.dpt, self.dpt

    def sync_edges(self, t0_us: float, t1_us: float) -> tuple[np.ndarray, np.ndarray]:
        return np.empty(0), np.empty(0, np.int16)


Segment = SweepTrajectory | ConstantTrajectory


class LensPath:
    """The lens' focal power over the whole event clock: a sequence of trajectories, each in force from its start.

    The simulated lens driver can be re-commanded at any time (a new sweep, a DC set point); each command starts a
    new segment at the event-clock time it took effect, and earlier segments keep describing the past, so a frame
    whose exposure straddles the change integrates both. Each segment is its trajectory's periodic steady state
    from its first µs on: the ≈15 ms settling transient after a change is not modelled (the LD4 simulator has it).
    Evaluation is vectorised over times (one ``searchsorted`` over the segment starts).
    """

    def __init__(self, first: Segment) -> None:
        #: (segment starts, segments), replaced as a whole by ``set``: a camera thread evaluating the path while
        #: the lens is re-commanded from another thread sees either the old or the new path, never a mix.
        self._path: tuple[tuple[float, ...], tuple[Segment, ...]] = ((-math.inf,), (first,))
        #: Bumped by every ``set``, so consumers (the event camera's log-luma cache) notice changes cheaply.
        self.version = 0

    @property
    def latest(self) -> Segment:
        """The trajectory in force from the last change on."""
        return self._path[1][-1]

    @property
    def segments(self) -> list[tuple[float, Segment]]:
        """(start µs, trajectory) pairs in time order; the first starts at −inf."""
        return list(zip(*self._path, strict=True))

    def set(self, t_us: float, trajectory: Segment) -> None:
        """``trajectory`` is in force from ``t_us`` on; segments starting at or after ``t_us`` are replaced."""
        starts, segments = self._path
        keep = bisect.bisect_left(starts, float(t_us))
        self._path = ((*starts[:keep], float(t_us)), (*segments[:keep], trajectory))
        self.version += 1

    def power_range(self) -> tuple[float, float]:
        """[min, max] of the actual focal power over every segment (what a cache of renders must cover)."""
        ranges = np.array([seg.power_range() for seg in self._path[1]])
        return float(ranges[:, 0].min()), float(ranges[:, 1].max())

    def _evaluate(self, t_us, method: str) -> np.ndarray:
        starts, segments = self._path
        t = np.asarray(t_us, float)
        if len(segments) == 1:
            return getattr(segments[0], method)(t)
        which = np.searchsorted(np.asarray(starts), t, side="right") - 1
        out = np.empty(t.shape)
        for i in np.unique(which):
            mask = which == i
            out[mask] = getattr(segments[i], method)(t[mask])
        return out

    def actual_dpt(self, t_us) -> np.ndarray:
        """The lens' focal power at ``t_us`` (any shape)."""
        return self._evaluate(t_us, "actual_dpt")

    def commanded_dpt(self, t_us) -> np.ndarray:
        return self._evaluate(t_us, "commanded_dpt")

    def sync_edges(self, t0_us: float, t1_us: float) -> tuple[np.ndarray, np.ndarray]:
        """Sync edges in [t0_us, t1_us), each segment contributing those inside its own stretch of time."""
        starts, segments = self._path
        times, pols = [], []
        for start, end, seg in zip(starts, (*starts[1:], math.inf), segments, strict=True):
            lo, hi = max(t0_us, start), min(t1_us, end)
            if lo < hi:
                t, p = seg.sync_edges(lo, hi)
                times.append(t)
                pols.append(p)
        if not times:
            return np.empty(0), np.empty(0, np.int16)
        return np.concatenate(times), np.concatenate(pols).astype(np.int16)


def trigger_events(times_us: np.ndarray, polarity: np.ndarray, channel: int = 0) -> np.ndarray:
    """Edges as EVK external-trigger events (t rounded to the µs of the CD clock) on trigger-in ``channel``."""
    out = np.zeros(len(times_us), EVENT_EXT_TRIGGER)
    out["t"] = np.round(times_us).astype(np.int64)
    out["p"] = polarity
    out["id"] = channel
    return out
