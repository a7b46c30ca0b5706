"""``focalrig bench capture``: sustained recording throughput of the capture engine, printed, never asserted.

The simulated rig's ESIM camera produces a few Mev/s on this machine (``focalrig bench sim``), far below the
20 Mev/s target, so the throughput figures come from synthetic live-paced sources: an event camera that delivers
sensor-like bursts (``drivers.events.synthetic``) at a fixed rate as real EVT3 bytes (encoded live by the encoder
the simulator uses, plus strobe and lens-sync trigger edges), and a 640×480 RGB frame camera at a fixed rate
whose exposures match the strobe edges. Everything else is the real path: the Optotune LD4 driver on the
in-process simulator, the engine's reader threads, bounded queues, strobe pairing, sweep assembly and the
recording writer on disk.
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import numpy as np
from rich.console import Console

from app.bench.timing import Stopwatch
from capture.engine import CaptureEngine
from capture.plan import SweepPlan
from drivers.camera import CameraIdentity, EventCamera, EventChunk, Frame, FrameCamera
from drivers.events.dtypes import EVENT_EXT_TRIGGER
from drivers.events.evt3 import Evt3Encoder
from drivers.events.synthetic import synthetic_events
from drivers.optotune import OptotuneLensDriver4
from drivers.rig import Rig


class _WallOrigin:
    """Event-clock 0 on the wall clock, set by whichever synthetic camera starts first."""

    def __init__(self) -> None:
        self._t: float | None = None
        self._lock = threading.Lock()

    def start(self) -> float:
        with self._lock:
            if self._t is None:
                self._t = time.monotonic()
            return self._t


class SyntheticEventCamera(EventCamera):
    """Sensor-like events at ``rate_hz``, paced by the wall clock, as EVT3 bytes; strobe and sync edges."""

    def __init__(self, origin: _WallOrigin, *, rate_hz: float, size: tuple[int, int] = (1280, 720),
                 chunk_us: int = 10_000, frame_rate_hz: float = 100.0, exposure_us: float = 2000.0,
                 sweep_hz: float = 10.0, seed: int = 0) -> None:
        self._origin = origin
        self._size = size
        self.chunk_us = chunk_us
        n = int(rate_hz * chunk_us * 1e-6)
        # Sensor-like bursts (runs of neighbouring pixels), rescaled to exactly one chunk's time span.
        pool, _ = synthetic_events(n, *size, rate=rate_hz, seed=seed)
        self._offsets = (pool["t"] - pool["t"][0]) * (chunk_us - 1) // max(int(pool["t"][-1] - pool["t"][0]), 1)
        self._pool = pool
        self._encoder = Evt3Encoder(*size)
        self._frame_period = 1e6 / frame_rate_hz
        self._exposure = exposure_us
        self._sweep_period = 1e6 / sweep_hz
        self._enabled: set[int] = set()
        self._t = 0
        self._start: float | None = None

    @property
    def identity(self) -> CameraIdentity:
        return CameraIdentity("focalrig", "synthetic benchmark event camera", "BENCH")

    @property
    def geometry(self) -> tuple[int, int]:
        return self._size

    @property
    def raw_format(self) -> str:
        return "EVT3"

    @property
    def raw_header(self) -> dict[str, str]:
        return {"serial_number": "BENCH", "generation": "4.2"}

    def enable_trigger_in(self, channel: int) -> None:
        self._enabled.add(channel)

    def start(self) -> None:
        self._start = self._origin.start()

    def stop(self) -> None:
        self._start = None

    def read(self, timeout_s: float) -> EventChunk | None:
        if self._start is None:
            return None
        t0, t1 = self._t, self._t + self.chunk_us
        wait = self._start + t1 * 1e-6 - time.monotonic()
        if wait > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            return None
        if wait > 0:
            time.sleep(wait)
        cd = self._pool.copy()
        cd["t"] = self._offsets + t0
        triggers = self._triggers(t0, t1)
        raw = self._encoder.encode(cd, triggers)
        self._t = t1
        return EventChunk(cd, triggers, t1, raw)

    def _triggers(self, t0: int, t1: int) -> np.ndarray:
        edges = []
        if 0 in self._enabled:
            k = np.arange(np.floor(t0 / self._frame_period) - 1, np.ceil(t1 / self._frame_period) + 1)
            start = k * self._frame_period
            edges += [(np.round(start), 1, 0), (np.round(start + self._exposure), 0, 0)]
        if 1 in self._enabled:
            k = np.arange(np.floor(t0 / self._sweep_period) - 1, np.ceil(t1 / self._sweep_period) + 1)
            edges += [(np.round(k * self._sweep_period), 1, 1), (np.round((k + 0.5) * self._sweep_period), 0, 1)]
        if not edges:
            return np.empty(0, EVENT_EXT_TRIGGER)
        t = np.concatenate([e[0] for e in edges]).astype(np.int64)
        out = np.zeros(len(t), EVENT_EXT_TRIGGER)
        out["t"] = t
        out["p"] = np.concatenate([np.full(len(e[0]), e[1]) for e in edges])
        out["id"] = np.concatenate([np.full(len(e[0]), e[2]) for e in edges])
        out = out[(out["t"] >= t0) & (out["t"] < t1)]
        return out[np.argsort(out["t"], kind="stable")]


class SyntheticFrameCamera(FrameCamera):
    """640×480 RGB frames at the configured rate, paced by the wall clock; frame k exposes from k / fps."""

    def __init__(self, origin: _WallOrigin, size: tuple[int, int] = (640, 480), seed: int = 0) -> None:
        self._origin = origin
        self._size = size
        rng = np.random.default_rng(seed)
        self._images = [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(4)]
        self._period = 1e6 / 100.0
        self._exposure = 2000.0
        self._k = 0
        self._start: float | None = None

    @property
    def identity(self) -> CameraIdentity:
        return CameraIdentity("focalrig", "synthetic benchmark frame camera", "BENCH")

    @property
    def geometry(self) -> tuple[int, int]:
        return self._size

    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        self._period, self._exposure = 1e6 / frame_rate_hz, exposure_us

    def start(self) -> None:
        self._start = self._origin.start()
        self._k = 0

    def stop(self) -> None:
        self._start = None

    def read(self, timeout_s: float) -> Frame | None:
        if self._start is None:
            return None
        k = self._k
        start = round(k * self._period)
        end = round(k * self._period + self._exposure)
        wait = self._start + end * 1e-6 - time.monotonic()
        if wait > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            return None
        if wait > 0:
            time.sleep(wait)
        self._k += 1
        return Frame(self._images[k % 4], k, start, end, "event")


def run_capture_benchmark(console: Console, *, rate_mev_s: float, fps: float, seconds: float,
                          out: Path | None) -> dict:
    """One live-paced capture of ``seconds`` at the given rates; prints and returns the figures."""
    origin = _WallOrigin()
    sweep_hz = 10.0
    events = SyntheticEventCamera(origin, rate_hz=rate_mev_s * 1e6, frame_rate_hz=fps, sweep_hz=sweep_hz)
    frames = SyntheticFrameCamera(origin)
    lens = OptotuneLensDriver4(f"optosim://bench-capture-{time.monotonic_ns()}")
    plan = SweepPlan(name="bench", waveform="sine", low_dpt=0.0, high_dpt=2.0, frequency_hz=sweep_hz,
                     duration_s=seconds, frame_rate_hz=fps, exposure_us=2000.0, strobe_channel=0, sync_channel=1,
                     expected_event_rate_mev_s=rate_mev_s)
    with tempfile.TemporaryDirectory(prefix="focalrig-bench-") as tmp, Rig(lens, events, frames) as rig:
        engine = CaptureEngine(rig, plan, out or Path(tmp), keep_sweeps=True)
        sweeps = []
        engine.signals.sweep_finished.connect(lambda data: sweeps.append(len(data.cd)))
        with Stopwatch() as sw:
            st = engine.run()
        cpu, wall = sw.cpu_s, sw.wall_s
        span_s = max(st.t_event_us, 1) * 1e-6
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"events": st.events_total, "frames": st.frames_total, "span_s": span_s, "wall_s": wall,
              "event_rate": st.events_total / wall, "frame_rate": st.frames_total / wall, "drops": st.drops,
              "realtime_factor": span_s / wall, "sweeps": st.sweeps_done, "cpu_cores": cpu / wall,
              "rss_mib": rss_mib, "overhead_ms_per_sweep": 1e3 * engine.pipeline_busy_s / max(st.sweeps_done, 1),
              "bytes": st.bytes_written, "status": st.exit_status, "reason": st.reason}
    drops = ", ".join(f"{k} {v:,}" for k, v in st.drops.items() if v) or "none"
    console.print(f"target {rate_mev_s:g} Mev/s + {fps:g} fps 640x480 for {seconds:g} s: recorded "
                  f"{result['event_rate'] / 1e6:.2f} Mev/s and {result['frame_rate']:.1f} fps sustained over "
                  f"{wall:.2f} s wall ({span_s:.2f} s of event time, real-time factor "
                  f"{result['realtime_factor']:.2f}), {st.bytes_written / wall / (1 << 20):.0f} MiB/s to disk, "
                  f"{st.sweeps_done} sweeps; drops: {drops}; status {st.exit_status}", highlight=False)
    console.print(f"  engine overhead {result['overhead_ms_per_sweep']:.2f} ms per {1e3 / sweep_hz:g} ms sweep "
                  f"(pipeline thread CPU time: write, strobe pairing, sweep assembly); process CPU "
                  f"{result['cpu_cores']:.2f} cores (synthetic sources' event generation and EVT3 encoding "
                  f"included); peak RSS {rss_mib:.0f} MiB", highlight=False)
    return result
