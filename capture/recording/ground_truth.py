"""Ground truth of a simulated recording (``focalrig simulate``): what the simulated world really was.

Written into ``ground_truth/`` of the recording so calibration and fusion can be scored against it:
``all_in_focus.png`` (noise-free, the frame camera's encoding) and ``all_in_focus.npy`` (linear radiance),
``depth_dpt.npy`` (float32, dioptres per RGB pixel), ``homography_event_to_rgb.json`` (3×3, event px → RGB px,
the beam splitter's mirror included), ``lens_trajectory.npz`` (``t_us``, ``actual_dpt`` and ``commanded_dpt`` on a
100 µs grid over the recording; the lens' optical response, lag and ringing included; with a moving object also
``object_xy`` (its centre, RGB px) at ``object_t_us``, every ms) and ``sim.json`` (the simulated rig's
description: sizes, depths, wiring, lens path segments, moving object). The depth map is the static scene's.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from capture.recording.layout import GROUND_TRUTH_DIR
from capture.recording.metadata import write_json_atomic
from drivers.sim.optics import EventGeometry
from drivers.sim.rig import SimRig

GRID_US = 100


def write_ground_truth(folder: Path, sim: SimRig, t_start_us: float, t_end_us: float) -> Path:
    """Write the ground-truth files for [t_start_us, t_end_us) of the event clock; returns the folder."""
    out = folder / GROUND_TRUTH_DIR
    out.mkdir(exist_ok=True)
    scene = sim.renderer.scene
    radiance = np.asarray(scene.radiance, np.float32)
    np.save(out / "all_in_focus.npy", radiance)
    noise = sim.noise
    dn = np.clip(radiance * noise.electrons_per_unit / noise.gain_e_per_dn, 0, noise.max_dn)
    image = np.round(dn).astype(np.uint8 if noise.bit_depth <= 8 else np.uint16)
    cv2.imwrite(str(out / "all_in_focus.png"), image[..., ::-1] if image.ndim == 3 else image)
    np.save(out / "depth_dpt.npy", np.asarray(scene.depth, np.float32))
    write_homography(out, sim.renderer.geometry)
    t = np.arange(np.floor(t_start_us), np.ceil(t_end_us), GRID_US, dtype=np.float64)
    path = sim.lens_path
    extra = {}
    if sim.moving is not None:  # where the moving object's centre was (RGB px); depth_dpt.npy is the static scene
        extra["object_xy"] = sim.moving.track(t[::10])
        extra["object_t_us"] = t[::10]
    np.savez_compressed(out / "lens_trajectory.npz", t_us=t, actual_dpt=path.actual_dpt(t),
                        commanded_dpt=path.commanded_dpt(t), **extra)
    (out / "sim.json").write_text(json.dumps(sim.describe(), indent=2), encoding="utf-8")
    return out


def write_homography(out: Path, geometry: EventGeometry | None) -> Path:
    """``homography_event_to_rgb.json``: the simulated beam splitter's event px → RGB px map (identity if none)."""
    h = np.eye(3) if geometry is None else np.linalg.inv(np.asarray(geometry.homography, np.float64))
    path = out / "homography_event_to_rgb.json"
    write_json_atomic(path, {"format": "focalrig.homography", "version": 1, "maps": "event px -> rgb px",
                             "matrix": (h / h[2, 2]).tolist()})
    return path


def all_in_focus_at(gt_folder: Path, t_us: float) -> np.ndarray:
    """The all-in-focus image at event-clock time ``t_us``, encoded like ``all_in_focus.png``: the static scene's,
    with the moving object (if the rig had one) composited over it in focus where it was at that moment. The
    static ``all_in_focus.png`` cannot judge a picture of a moving scene; this can."""
    gt_folder = Path(gt_folder)
    encoded = cv2.imread(str(gt_folder / "all_in_focus.png"), cv2.IMREAD_UNCHANGED)
    encoded = encoded[..., ::-1].copy() if encoded.ndim == 3 else encoded
    sim = json.loads((gt_folder / "sim.json").read_text(encoding="utf-8"))
    obj = sim.get("moving_object")
    if not obj:
        return encoded
    from drivers.sim.moving import MovingObject
    from drivers.sim.optics import SweepOptics

    radiance = np.load(gt_folder / "all_in_focus.npy").astype(np.float32)
    bright = radiance > 0.05
    scale = float(np.median(encoded[bright].astype(np.float64) / radiance[bright]))  # code values per unit radiance
    mover = MovingObject(float(obj["depth_dpt"]), float(obj["radius_px"]), tuple(obj["start_xy"]),
                         tuple(obj["velocity_px_s"]), tuple(obj["bounces_inside"]), seed=int(sim.get("seed", 0)))
    colour, alpha = mover.layers(t_us, float(obj["depth_dpt"]), SweepOptics())
    composed = colour + (1.0 - alpha[..., None]) * radiance
    top = np.iinfo(encoded.dtype).max
    inside = alpha > 0  # elsewhere the static image stands, code for code
    out = encoded.copy()
    out[inside] = np.clip(np.rint(composed[inside] * scale), 0, top).astype(encoded.dtype)
    return out
