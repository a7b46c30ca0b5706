"""The whole calibration path as a user runs it on the simulated rig, scored against the simulator's ground truth.

``focalrig simulate --target`` records a blinking chessboard, ``focalrig simulate`` records sweeps (the rig
follows the simulated Lens Driver 4, temperature drift included), ``focalrig calibrate SWEEPS --target TARGET``
recovers geometry and lag, and ``focalrig fuse`` slices events with that calibration.
"""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.model import Calibration
from capture.recording import Recording
from tests.capture_rigs import lens_port

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("simcal")
    port = ["--set", f"lens.port={lens_port()}"]
    result = cli("simulate", "--target", "--views", 10, "--out", root / "target", *port)
    assert result.exit_code == 0, result.output
    result = cli("simulate", "--out", root / "sweeps", "--sweeps", 3, *port)
    assert result.exit_code == 0, result.output
    target, sweeps = (next((root / name).iterdir()) for name in ("target", "sweeps"))
    result = cli("calibrate", sweeps, "--target", target, "--out", root / "cal.json")
    assert result.exit_code == 0, result.output
    return target, sweeps, Calibration.load(root / "cal.json"), root


def true_lag_us(folder) -> float:
    """Delay of the simulated lens' actual power behind what each recorded sweep says was commanded."""
    gt = np.load(folder / "ground_truth" / "lens_trajectory.npz")
    t, actual = gt["t_us"], gt["actual_dpt"]
    with Recording.open(folder) as rec:
        sweep = rec.sweep(1)
    inside = (t >= sweep.t_start_us) & (t < sweep.t_end_us)
    lags = np.arange(-5000.0, 5000.0, 10.0)
    err = [np.mean((sweep.commanded.commanded_dpt(t[inside] - lag) - actual[inside]) ** 2) for lag in lags]
    return float(lags[int(np.argmin(err))])


def test_target_recording_is_a_normal_recording_with_ground_truth(recordings):
    target, *_ = recordings
    with Recording.open(target) as rec:
        assert rec.status == "success" and len(rec) == 0
        assert len(rec.frames) == 10 and rec.frames.on_event_clock.all()
    poses = json.loads((target / "ground_truth" / "board_poses.json").read_text())
    assert len(poses["board_to_rgb"]) == 10 and poses["board_inner_corners"] == [9, 6]


def test_geometry_matches_the_simulated_beam_splitter_within_half_a_pixel(recordings):
    target, _, cal, _ = recordings
    truth = np.array(json.loads((target / "ground_truth" / "homography_event_to_rgb.json").read_text())["matrix"])
    w, h = cal.spatial.event_size
    grid = np.stack(np.meshgrid(np.linspace(0.1 * w, 0.9 * w, 9), np.linspace(0.1 * h, 0.9 * h, 7)), -1)
    pts = grid.reshape(-1, 2)
    expected = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), truth).reshape(-1, 2)
    assert cal.spatial.mirrored
    assert np.linalg.norm(cal.spatial.event_to_rgb(pts) - expected, axis=1).mean() < 0.5


def test_sweeps_are_whole_periods_and_the_lag_matches_the_simulated_lens(recordings):
    _, sweeps, cal, _ = recordings
    with Recording.open(sweeps) as rec:
        period = rec.sweep(0).commanded.period_us
        assert len(rec) == 3 and all(rec.sweep(k).t_end_us - rec.sweep(k).t_start_us == period for k in range(3))
    lag = true_lag_us(sweeps)
    assert lag > 1000  # the simulated liquid lens really lags (first-order response)
    assert abs(cal.temporal.lag_us - lag) < 200  # 0.2 ms on the slow (4 Hz), mildly blurring default rig


def test_fuse_slices_events_and_recovers_the_scene_depth(recordings):
    _, sweeps, _, root = recordings
    result = cli("fuse", sweeps, "--calib", root / "cal.json", "--sweep", 1, "--out", root / "fused")
    assert result.exit_code == 0, result.output
    out = next((root / "fused").iterdir())
    meta = json.loads((out / "result.json").read_text())
    assert meta["input"]["events"] and cv2.imread(str(out / "fused.png")).shape[:2] == (240, 320)
    powers = np.array(meta["input"]["focal_powers_dpt"])
    index = np.load(out / "focal_index.npy")
    depth = np.interp(index, np.arange(len(powers)), powers)
    truth = np.load(sweeps / "ground_truth" / "depth_dpt.npy")
    assert np.median(np.abs(depth - truth)) < 0.1  # a tenth of a dioptre, under one plane spacing (0.14)
