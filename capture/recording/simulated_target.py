"""A spatial-calibration recording made on the simulated rig: a blinking chessboard at random poses.

``focalrig simulate --target`` writes this, so the whole calibration path (``focalrig calibrate``) can be run and
scored without a rig: the recording has exactly the layout and content of a real target capture — one RGB frame
per pose on the event clock and the events of the board switching to its inverse — and ``ground_truth/`` holds
the simulator's event→RGB homography and the board corners of every pose, so the recovered geometry can be
checked to the pixel.

The poses are seen by the simulated rig's own beam splitter (``SimConfig`` sizes, mirror and resolution ratio), so
a calibration made from this recording is the right one for ``focalrig simulate`` sweep recordings of the same
config.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from capture.plan import SweepPlan
from capture.recording.ground_truth import write_homography
from capture.recording.layout import GROUND_TRUTH_DIR, create_recording_dir, preflight
from capture.recording.metadata import write_json_atomic
from capture.recording.writer import RecordingWriter
from drivers.camera import EventChunk
from drivers.config import SimConfig
from drivers.events.dtypes import EVENT_EXT_TRIGGER
from drivers.sim.rig import SimRig
from drivers.sim.target import BlinkingTargetRig, board_homography

#: Event time between two poses (each blink's events end a few ms after it starts).
POSE_INTERVAL_US = 50_000
#: Fraction of the image the board's outline may come closest to the border.
BORDER = 0.04


def rgb_camera_matrix(rgb_size: tuple[int, int]) -> np.ndarray:
    """A plausible pinhole camera for the RGB sensor (≈ 56° horizontal field of view), principal point centred."""
    w, h = rgb_size
    f = 0.94 * w
    return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])


def random_poses(rig: BlinkingTargetRig, n_views: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Board→RGB homographies of ``n_views`` varied poses whose whole board is seen by both sensors."""
    k = rgb_camera_matrix(rig.rgb_size)
    cols, rows = rig.corners
    outline = np.array([[0, 0], [cols + 1, 0], [cols + 1, rows + 1], [0, rows + 1]], np.float64)
    scale = k[0, 0] / 300.0  # distances for which a 320-px-wide view sees the board at about half its width
    rw, rh = rig.rgb_size
    ew, eh = rig.geometry.width, rig.geometry.height
    poses: list[np.ndarray] = []
    for _ in range(200 * n_views):
        if len(poses) == n_views:
            break
        rvec = np.radians(rng.uniform(-25, 25, 3)) * np.array([1.0, 1.0, 0.4])
        tvec = np.array([rng.uniform(-2, 2) - (cols + 1) / 2, rng.uniform(-1.5, 1.5) - (rows + 1) / 2,
                         rng.uniform(15, 19) * scale])
        h = board_homography(k, rvec, tvec)
        pts = np.c_[outline, np.ones(4)] @ h.T
        if np.any(pts[:, 2] <= 0):
            continue
        rgb = pts[:, :2] / pts[:, 2:]
        ev = rig.geometry.map_points(rgb)
        inside = all(np.all((p >= BORDER * np.array(s)) & (p <= (1 - BORDER) * np.array(s)))
                     for p, s in ((rgb, (rw, rh)), (ev, (ew, eh))))
        if inside:
            poses.append(h)
    if len(poses) < n_views:
        raise ValueError(f"could not place {n_views} board poses inside both sensors; use a smaller --board")
    return poses


def record_blinking_target(out_dir: Path, cfg: SimConfig, *, n_views: int = 12, corners: tuple[int, int] = (9, 6),
                           power_dpt: float = 1.0) -> Path:
    """Record ``n_views`` blinks of a chessboard with ``corners`` inner corners; returns the recording folder.

    The lens is held at ``power_dpt`` with the board in focus (a target is calibrated at one focus setting; focus
    breathing comes from the sweeps). Everything is written through :class:`RecordingWriter`, so the folder is a
    normal recording: ``focalrig inspect`` reads it and ``focalrig calibrate`` takes it as ``--target``.
    """
    sim = SimRig.from_config(cfg)
    geometry = sim.renderer.geometry
    rig = BlinkingTargetRig(tuple(cfg.rgb_size), geometry, corners=corners, power_dpt=power_dpt,
                            optics=sim.renderer.optics, noise=sim.noise, threshold=cfg.event_threshold,
                            seed=cfg.seed)
    poses = random_poses(rig, n_views, np.random.default_rng([cfg.seed, 7]))
    frame_bytes = int(np.prod(cfg.rgb_size)) * 3 * (2 if cfg.bit_depth > 8 else 1)
    out = preflight(out_dir, n_views * frame_bytes * 2, 16.0)
    uid = str(uuid.uuid4())
    folder = create_recording_dir(out, SweepPlan.model_fields["name_pattern"].default, "calibration-target", uid)
    plan = {"name": "calibration-target", "kind": "blinking chessboard", "views": n_views,
            "board_inner_corners": list(corners), "lens_power_dpt": power_dpt,
            "pose_interval_us": POSE_INTERVAL_US}
    writer = RecordingWriter(folder, uid=uid, plan=plan, describe={"sim": sim.describe()},
                             event_geometry=(geometry.width, geometry.height), raw_format=None, raw_header=None,
                             calibration_path=None, extra={"event_geometry": [geometry.width, geometry.height],
                                                           "frame_geometry": list(cfg.rgb_size), "simulated": True})
    n_events, status, reason = 0, "success", None
    try:
        for i, board_to_rgb in enumerate(poses):
            view = rig.view(board_to_rgb, i, POSE_INTERVAL_US * (i + 1))
            writer.write_frames([view.frame], ["event"])
            writer.write_events(EventChunk(view.cd, np.empty(0, EVENT_EXT_TRIGGER),
                                           POSE_INTERVAL_US * (i + 2) - 1))
            n_events += len(view.cd)
            writer.flush()
    except BaseException as exc:  # Ctrl-C or a failure: close the files so what was recorded stays readable
        status, reason = ("aborted", "interrupted") if isinstance(exc, KeyboardInterrupt) else ("failed", str(exc))
        raise
    finally:
        writer.close(status, reason, {"counts": {"events": n_events, "frames": writer.n_frames, "sweeps": 0}})
    gt = folder / GROUND_TRUTH_DIR
    gt.mkdir(exist_ok=True)
    write_homography(gt, geometry)
    write_json_atomic(gt / "board_poses.json", {"format": "focalrig.board-poses", "version": 1,
                                                "maps": "board units -> rgb px (inner corner (i, j) at (i+1, j+1))",
                                                "board_inner_corners": list(corners),
                                                "board_to_rgb": [h.tolist() for h in poses]})
    return folder
