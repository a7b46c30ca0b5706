"""The calibration capture-and-fuse uses when none was loaded: estimated from the sweep being fused.

The temporal part (lens lag) and focus breathing are what the calibration layer estimates from any sweep of a
textured scene (``calibration.pipeline.calibrate(sweeps=...)``), so one button works on a fresh rig. The
spatial part (event → RGB geometry) needs a target recording; on the simulated rig the simulator's own
beam-splitter geometry stands in for it (its ground truth, labelled as such), elsewhere the stack is built
without events until a calibration with a spatial part is loaded.
"""

from __future__ import annotations

import numpy as np

from calibration.model import Calibration, SpatialCalibration
from calibration.pipeline import calibrate
from capture.sweep import SweepData


def simulator_spatial(sim) -> SpatialCalibration | None:
    """The simulated rig's true event → RGB homography (``EventGeometry`` maps RGB → event; inverted here)."""
    geometry = sim.renderer.geometry if sim is not None else None
    if geometry is None:
        return None
    scene = sim.renderer.scene
    return SpatialCalibration((scene.width, scene.height), (geometry.width, geometry.height),
                              np.linalg.inv(geometry.homography), error_px={"mean": 0.0, "rms": 0.0, "max": 0.0})


def auto_calibration(sweep: SweepData, spatial: SpatialCalibration | None = None) -> Calibration:
    """Temporal + breathing from ``sweep``; the spatial part as given (the simulator's, or None)."""
    run = calibrate(sweeps=[sweep], meta={"source": f"auto: estimated from sweep {sweep.index}"})
    meta = dict(run.calibration.meta)
    if spatial is not None:
        meta["spatial_source"] = "simulator ground truth"
    return Calibration(spatial, run.calibration.temporal, run.calibration.breathing, meta=meta)
