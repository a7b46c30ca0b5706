"""``focalrig bench sim``: throughput of the simulated rig's defocus rendering and ESIM event generation.

Figures are printed, never asserted.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console

from app.bench.timing import Stopwatch
from drivers.sim.esim import EventSensorModel
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics
from drivers.sim.scene import make_scene


def benchmark_render(width: int, height: int, n_frames: int) -> dict:
    """Render ``n_frames`` along a 0..4 dpt sweep of the default 3-layer scene and feed them to the event model.

    The event sensor has the same size as the RGB one (mirrored); blur scales with resolution (k = width/40
    px/dpt). Returns frames/s for RGB and for event-grid log luma, and events/s of ``EventSensorModel.step``.
    """
    scene = make_scene(width, height, seed=0)
    optics = SweepOptics(blur_px_per_dpt=width / 40.0)
    geom = EventGeometry.beam_splitter((width, height), (width, height))
    r = DefocusRenderer(scene, optics, geom)
    sensor = EventSensorModel(width, height, seed=0)
    powers = np.linspace(0.0, 4.0, n_frames)
    r.render_rgb(4.0), r.render_log_luma(4.0)  # spectra, padding and numba compilation outside the timing
    sensor.step(r.render_log_luma(0.0), 0.0)
    sensor.step(r.render_log_luma(0.0), 1.0)

    with Stopwatch() as rgb:
        for p in powers:
            r.render_rgb(p)

    with Stopwatch() as luma:
        logs = [r.render_log_luma(p) for p in powers]

    n_events = 0
    with Stopwatch() as esim:
        for k, img in enumerate(logs):
            n_events += len(sensor.step(img, 2.0 + 100.0 * k))
    rgb_s, log_s, esim_s = rgb.wall_s, luma.wall_s, esim.wall_s
    return {"width": width, "height": height, "frames": n_frames, "rgb_fps": n_frames / rgb_s,
            "log_luma_fps": n_frames / log_s, "events": n_events, "esim_events_per_s": n_events / esim_s,
            "esim_frames_per_s": n_frames / esim_s}


def benchmark_event_camera(width: int = 320, height: int = 240, *, sweeps: int = 3) -> dict:
    """The simulated event camera on the default rig (10 Hz sine 0..4 dpt): wall time of the first 0.1 s of
    stream (which fills the log-luma cache) and the best wall time per further 0.1 s sweep, with its events/s."""
    from drivers.sim.event_camera import SimEventCamera
    from drivers.sim.rig import SimRig

    rig = SimRig.default((width, height))
    cam = SimEventCamera(rig, chunk_us=10_000)
    cam.start()
    per_sweep = round(rig.trajectory.period_us / cam.chunk_us)
    with Stopwatch() as first:
        for _ in range(per_sweep):
            cam.read(1.0)
    first_s = first.wall_s
    best_s, n_events = float("inf"), 0
    for _ in range(sweeps):
        with Stopwatch() as sweep:
            n = sum(cam.read(1.0).cd.shape[0] for _ in range(per_sweep))
        if sweep.wall_s < best_s:
            best_s, n_events = sweep.wall_s, n
    return {"width": width, "height": height, "first_sweep_s": first_s, "sweep_s": best_s,
            "sweep_stream_s": rig.trajectory.period_us * 1e-6, "events": n_events, "events_per_s": n_events / best_s}


def run_sim_benchmarks(console: Console, *, frames: int) -> None:
    for w, h in ((320, 240), (640, 480)):
        b = benchmark_render(w, h, frames)
        console.print(f"{w}x{h}: RGB {b['rgb_fps']:.0f} frames/s, event-grid log luma {b['log_luma_fps']:.0f} "
                      f"frames/s, ESIM {b['esim_events_per_s'] / 1e6:.1f} Mev/s ({b['events']} events, "
                      f"{b['esim_frames_per_s']:.0f} samples/s)", highlight=False)
    e = benchmark_event_camera()
    console.print(f"simulated event camera {e['width']}x{e['height']} (10 Hz sine, 0..4 dpt): first sweep "
                  f"{e['first_sweep_s']:.2f} s (fills the log-luma cache), then {e['sweep_s']:.2f} s wall per "
                  f"{e['sweep_stream_s']:.1f} s sweep ({e['events'] / 1e3:.0f} k events, "
                  f"{e['events_per_s'] / 1e6:.2f} Mev/s)", highlight=False)
