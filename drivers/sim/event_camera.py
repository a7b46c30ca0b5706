"""A simulated EVK4-like event camera: ESIM events of the rig's swept scene, trigger-in edges and EVT3 raw bytes.

Everything is derived from the :class:`~drivers.sim.rig.SimRig` (scene, lens trajectory, frame schedule, seed), so
the strobe edges this camera records match the simulated frame camera's exposures without any shared state. The
stream is simulated chunk by chunk on demand: each ``read`` advances the event clock by ``chunk_us``, samples the
log luminance along the lens' actual focal power (see :meth:`SimEventCamera.sample_times`) and feeds it to one
persistent :class:`~drivers.sim.esim.EventSensorModel`, so pixel state (L_ref, refractory) carries across chunk
borders exactly as in one long simulation. One persistent EVT3 encoder turns each chunk into the bytes an EVK4
would send, so recorders append ``EventChunk.raw`` verbatim and the file decodes to exactly the delivered events.

Biases are not modelled (``set_biases`` raises NotSupportedError): thresholds are constructor options instead.
"""

from __future__ import annotations

import math
import time

import numpy as np

from drivers.camera import CameraError, CameraIdentity, EventCamera, EventChunk, NotSupportedError
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.events.evt3 import Evt3Encoder
from drivers.sim.esim import EventSensorModel, adaptive_samples
from drivers.sim.optics import LogLumaCache
from drivers.sim.rig import SimRig
from drivers.sim.trajectory import trigger_events

#: IMX636 (Gen 4.2) nominal contrast sensitivity of about 25 %: ln(1.25).
IMX636_THRESHOLD = 0.22
#: Trigger-in channel ids an EVT3 EXT_TRIGGER word can carry.
MAX_TRIGGER_CHANNEL = Evt3Encoder.max_trigger_id
#: Spacing (µs) of the focal-power probes that locate the cache's node crossings: finer than the lens path's own
#: response table (16384 points a period, 15 µs at 4 Hz), so no crossing or turnaround falls between probes.
_PROBE_US = 10.0


class SimEventCamera(EventCamera):
    """Event camera of a :class:`SimRig`; stream time is the rig's event clock, starting at 0 on ``start()``.

    Each ``read`` delivers the events of [t, t + ``chunk_us``) and advances t; with ``realtime`` it first waits
    until that much wall time has passed since ``start()`` (as a live camera would), otherwise it returns as fast
    as the simulation runs. Samples are at most ``max_sample_dt_us`` apart; :meth:`sample_times` says where.
    Triggers are off until ``enable_trigger_in`` (as on Prophesee cameras): ``rig.strobe_channel`` carries the
    frame camera's strobe edges, ``rig.sync_channel`` the lens driver's sync edges.

    With ``log_luma_cache`` (default) the log luminance comes from a :class:`~drivers.sim.optics.LogLumaCache`
    over the lens path's range of actual power (plus a margin): nodes ≤ 0.1 px of blur/breathing apart,
    filled lazily, linearly interpolated in between; memory ≤ nodes·H·W·4 bytes (≈ 100 MB at 320x240, 0–4 dpt).
    A lens command that leaves that range (the rig following a simulated lens driver) rebuilds the cache for the
    wider range. Without it every sample is rendered directly (slow: ~4 ms per sample at 320x240).
    """

    def __init__(self, rig: SimRig, *, chunk_us: int = 10_000, realtime: bool = False,
                 threshold: float = IMX636_THRESHOLD, sigma: float = 0.03, refractory_us: float = 100.0,
                 noise_rate_hz: float = 0.1, n_hot: int = 0, hot_rate_hz: float = 100.0, lam: float = 0.5,
                 max_sample_dt_us: float = 500.0, log_luma_cache: bool = True) -> None:
        if chunk_us <= 0:
            raise ValueError("chunk_us must be positive")
        self.rig = rig
        self.chunk_us = int(chunk_us)
        self.realtime = bool(realtime)
        self.lam = float(lam)
        self.max_sample_dt_us = float(max_sample_dt_us)
        geometry = rig.renderer.geometry
        scene = rig.renderer.scene
        self._size = (geometry.width, geometry.height) if geometry is not None else (scene.width, scene.height)
        self.sensor = EventSensorModel(*self._size, threshold=threshold, sigma=sigma, refractory_us=refractory_us,
                                       noise_rate_hz=noise_rate_hz, n_hot=n_hot, hot_rate_hz=hot_rate_hz,
                                       seed=rig.seed)
        self._encoder = Evt3Encoder(*self._size)
        self._identity = CameraIdentity("focalrig", "simulated event camera", f"SIM{rig.seed:08d}",
                                        extra={"generation": "4.2", "simulator": "ESIM"})
        self._enabled: set[int] = set()
        self._roi: tuple[int, int, int, int] | None = None
        self._state = "idle"  # idle -> streaming -> stopped (final)
        self._t_us = 0
        self._wall_start = 0.0
        self._carry = np.empty(0, EVENT_CD)  # events rounded onto the next chunk's first µs
        self._last_sample: tuple[float, np.ndarray] | None = None
        self._use_cache = bool(log_luma_cache)
        self._cache: LogLumaCache | None = None
        self._cache_version = -1
        self._refresh_cache()

    # -- EventCamera -----------------------------------------------------------------------------------
    @property
    def identity(self) -> CameraIdentity:
        return self._identity

    @property
    def geometry(self) -> tuple[int, int]:
        return self._size

    @property
    def raw_format(self) -> str:
        return "EVT3"

    @property
    def raw_header(self) -> dict[str, str]:
        """A synthetic source's keys (prophesee-formats.md §2.4): no system_ID, which would claim real hardware.

        ``date`` is left to the writer, which knows when the recording was made.
        """
        w, h = self._size
        return {"evt": "3.0", "format": f"EVT3;height={h};width={w}", "geometry": f"{w}x{h}",
                "generation": "4.2", "serial_number": self._identity.serial}

    def start(self) -> None:
        if self._state == "stopped":
            raise CameraError(f"{self._identity.model}: cannot restart after stop(); build a new camera")
        if self._state == "idle":
            self._state = "streaming"
            self._wall_start = time.monotonic()
            self.rig.start_clock()

    def stop(self) -> None:
        """Stop the stream; nothing is buffered (chunks are simulated on demand), so ``read`` then returns None."""
        self._state = "stopped"

    def read(self, timeout_s: float) -> EventChunk | None:
        if self._state != "streaming":
            return None
        t0, t1 = self._t_us, self._t_us + self.chunk_us
        if self.realtime:
            wait = self._wall_start + t1 * 1e-6 - time.monotonic()
            if wait > timeout_s:
                time.sleep(max(timeout_s, 0.0))
                return None
            if wait > 0:
                time.sleep(wait)
        self.rig.poll_lens()
        self._refresh_cache()
        cd = self._simulate(t0, t1)
        triggers = self._triggers(t0, t1)
        raw = self._encoder.encode(cd, triggers)
        self._t_us = t1
        self.rig.advance(t1)
        return EventChunk(cd, triggers, t1, raw)

    def enable_trigger_in(self, channel: int) -> None:
        """Deliver edges on ``channel``; channels with nothing wired to them are accepted and stay silent."""
        if not 0 <= channel <= MAX_TRIGGER_CHANNEL:
            raise NotSupportedError(f"{self._identity.model}: no trigger-in channel {channel}")
        self._enabled.add(int(channel))

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Keep only events in [x, x + width) × [y, y + height) from the next chunk on."""
        w, h = self._size
        if width <= 0 or height <= 0 or x < 0 or y < 0 or x + width > w or y + height > h:
            raise ValueError(f"ROI {width}x{height}+{x}+{y} is not inside the {w}x{h} sensor")
        self._roi = (int(x), int(y), int(width), int(height))

    def next_end_us(self) -> float:
        """Where on the event clock the next read will have simulated to (its chunk's end). A capture that keeps
        the simulation in lockstep with the lens commands holds the camera before a chunk that would cross the
        moment of the next command, so the command takes effect at that moment, not where the camera stood."""
        return float(self._t_us + self.chunk_us)

    def close(self) -> None:
        self._state = "stopped"

    # -- internals -------------------------------------------------------------------------------------
    def _refresh_cache(self) -> None:
        """(Re)build the cache when the lens path's power range is no longer inside it.

        See :meth:`~drivers.sim.optics.RenderCache.covering`: small changes (a lens re-commanded to a nearby
        swing, temperature drift) reuse the cache instead of refilling it.
        """
        path = self.rig.lens_path
        if not self._use_cache or path.version == self._cache_version:
            return
        self._cache_version = path.version
        cache = LogLumaCache.covering(self.rig.renderer, *path.power_range(), self._cache)
        if cache is not self._cache:
            self._cache, self._last_sample = cache, None

    def _render(self, t_us: float) -> np.ndarray:
        """Log luma at the lens' actual power at ``t_us``, reusing the previous chunk's last sample at its end."""
        if self._last_sample is not None and self._last_sample[0] == t_us:
            return self._last_sample[1]
        power = float(self.rig.lens_path.actual_dpt(t_us))
        renderer = self.rig.renderer
        log_luma = self._cache(power) if self._cache is not None else renderer.render_log_luma(power)
        moving = self.rig.moving
        if moving is None:
            return log_luma
        h = None if renderer.geometry is None else renderer.geometry.homography
        return moving.over_log_luma(log_luma, t_us, power, renderer.optics, h)

    def _simulate(self, t0: int, t1: int) -> np.ndarray:
        """CD events of [t0, t1): ESIM over the samples of [t0, t1], events rounded to t1 kept for the next chunk.

        Event times are rounded to the nearest µs, so crossings in (t1 − ½, t1] land on t1 and belong to the next
        chunk; they are held back (and dropped if the stream stops), which keeps chunks disjoint and sorted.
        """
        parts = [self._carry]
        times = self.sample_times(float(t0), float(t1))
        samples = (adaptive_samples(self._render, float(t0), float(t1), threshold=self.sensor.threshold,
                                    lam=self.lam, max_dt_us=self.max_sample_dt_us) if times is None
                   else ((float(t), self._render(float(t))) for t in times))
        for t, image in samples:
            if self.sensor.time_us != t:  # the chunk's first sample is the previous chunk's last one
                parts.append(self.sensor.step(image, t))
            self._last_sample = (t, image)
        cd = concat_events(parts, EVENT_CD)
        cd = cd[np.argsort(cd["t"], kind="stable")]
        split = int(np.searchsorted(cd["t"], t1))
        self._carry = cd[split:]
        return self._in_roi(cd[:split])

    def sample_times(self, t0: float, t1: float) -> np.ndarray | None:
        """Where to sample the log luminance in [t0, t1] when it comes from the cache and nothing in the scene
        moves; None otherwise (then ESIM's adaptive sampling: samples bisected until no pixel changes by more
        than ``lam``·threshold between two of them).

        The cache's L is linear in the focal power D between two neighbouring nodes, and D(t) is smooth and
        monotonic between sweep turnarounds, so L(t) is as linear between samples as the model allows when the
        samples are the times D crosses a node, the turnarounds, and the chunk ends, with any gap longer than
        ``max_sample_dt_us`` split evenly (the slow stretches around a turnaround, where D(t) curves). ESIM's
        linear interpolation of crossing times is then as good as with adaptive samples, which past a node
        only subdivide a straight segment, at a fraction of the samples.
        """
        if self._cache is None or self.rig.moving is not None:
            return None
        cache = self._cache
        probe = np.linspace(t0, t1, max(2, math.ceil((t1 - t0) / _PROBE_US)) + 1)
        x = (self.rig.lens_path.actual_dpt(probe) - cache.d_min) / cache.step_dpt
        cell = np.floor(x)
        i = np.flatnonzero(cell[1:] != cell[:-1])
        node = np.maximum(cell[i], cell[i + 1])
        crossings = probe[i] + (node - x[i]) / (x[i + 1] - x[i]) * (probe[i + 1] - probe[i])
        slope = np.sign(np.diff(x))
        turns = probe[1:-1][slope[1:] * slope[:-1] < 0]
        times = np.unique(np.concatenate([[t0, t1], crossings, turns]))
        gaps = np.diff(times)
        splits = [np.linspace(times[j], times[j + 1], math.ceil(gaps[j] / self.max_sample_dt_us) + 1)[1:-1]
                  for j in np.flatnonzero(gaps > self.max_sample_dt_us)]
        return np.sort(np.concatenate([times, *splits]))

    def _in_roi(self, cd: np.ndarray) -> np.ndarray:
        if self._roi is None:
            return cd
        x, y, w, h = self._roi
        keep = (cd["x"] >= x) & (cd["x"] < x + w) & (cd["y"] >= y) & (cd["y"] < y + h)
        return cd[keep]

    def _triggers(self, t0: int, t1: int) -> np.ndarray:
        """Edges on the enabled channels whose µs-rounded time lies in [t0, t1), sorted by time."""
        rig = self.rig
        parts = []
        if rig.strobe_channel in self._enabled:
            # Frames starting up to one exposure (and a µs of rounding) before t0 still have an edge in the window.
            frames = rig.frames_starting(t0 - rig.exposure_us - 1.0, t1 + 1.0)
            parts.append(trigger_events(*frames.strobe_edges(), rig.strobe_channel))
        if rig.sync_channel is not None and rig.sync_channel in self._enabled:
            parts.append(trigger_events(*rig.lens_path.sync_edges(t0 - 1.0, t1 + 1.0), rig.sync_channel))
        triggers = concat_events(parts, EVENT_EXT_TRIGGER)
        triggers = triggers[(triggers["t"] >= t0) & (triggers["t"] < t1)]
        return triggers[np.argsort(triggers["t"], kind="stable")]
