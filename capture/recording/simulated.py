"""A sweep recording of the simulated rig with its ground truth: what ``focalrig simulate`` and the product-path
benchmark both record.

The recording is made the way every recording is — the capture engine drives the rig's lens and reads its
cameras into a folder — and the simulated world's truth (all-in-focus image, depth, homography, lens path) is
written beside it, so calibration, stacking and fusion can be scored against it.

A simulated recording is a function of its configuration, plan and ``sim.seed``, however many were recorded before
it in the same process: the in-process LD4 simulator (``optosim://NAME``) otherwise lives as long as the process,
like a real driver, and its lens temperature walk would carry one recording's history into the next (measured:
three recordings of one seed in one process gave 225,246, 225,233 and 225,235 events and different frames).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from capture.engine import CaptureEngine, EngineStatus
from capture.plan import SweepPlan
from capture.recording.ground_truth import write_ground_truth
from drivers.registry import RigConfig, open_rig, optosim_name


def record_simulation(cfg: RigConfig, plan: SweepPlan, out_dir: str | Path, *,
                      run: Callable[[CaptureEngine], EngineStatus] | None = None) -> EngineStatus:
    """Record ``plan`` on the simulated rig ``cfg`` describes into a new folder under ``out_dir``, with its ground
    truth. ``run`` runs the engine (default: on this thread; the CLI passes one that shows progress)."""
    if "sim" not in (cfg.event_camera.backend, cfg.frame_camera.backend):
        raise ValueError("a simulated recording needs the simulated cameras: event_camera.backend / "
                         "frame_camera.backend = \"sim\" (as in configs/sim.toml)")
    with open_rig(seeded_lens_simulator(cfg)) as rig:
        engine = CaptureEngine(rig, plan, out_dir, keep_sweeps=False)
        status = engine.run() if run is None else run(engine)
        if status.recording is not None and rig.sim is not None:
            write_ground_truth(status.recording, rig.sim, 0.0, max(status.t_event_us, 1))
    return status


def seeded_lens_simulator(cfg: RigConfig) -> RigConfig:
    """``cfg`` with an ``optosim://NAME`` lens port asking for a fresh simulator seeded by ``sim.seed`` (``?seed=``),
    unless the port names a seed itself; any other lens is left as it is."""
    port = cfg.lens.port
    if cfg.lens.backend != "optotune-ld4" or optosim_name(port) is None:
        return cfg
    query = urllib.parse.urlsplit(port).query
    if "seed" in urllib.parse.parse_qs(query):
        return cfg
    seeded = f"{port}{'&' if query else '?'}seed={cfg.sim.seed}"
    return cfg.model_copy(update={"lens": cfg.lens.model_copy(update={"port": seeded})})
