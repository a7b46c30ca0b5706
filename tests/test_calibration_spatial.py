"""Spatial calibration on a simulated blinking chessboard: mirrored, distorted, lower-resolution event sensor.

Ground truth: the event camera is a pinhole camera sharing the RGB camera's centre (K_ev·mirror·R·K_rgb⁻¹, a beam
splitter with coincident pupils) behind a barrel-distorting lens; the board is posed in 3-D and seen by both.
"""

import cv2
import numpy as np
import pytest

from calibration.model import Calibration, CalibrationError
from calibration.pipeline import blink_views, calibrate
from calibration.report import write_report
from calibration.spatial import Board, TargetView, calibrate_spatial, detect_corners
from drivers.events.dtypes import EVENT_CD, concat_events
from drivers.sim.optics import EventGeometry
from drivers.sim.target import BlinkingTargetRig, board_homography

RGB, EV = (320, 240), (240, 180)
K_RGB = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
K_EV = np.array([[220.0, 0, 119.5], [0, 220.0, 89.5], [0, 0, 1]])
DIST = np.array([-0.25, 0.08, 0.0, 0.0, 0.0])
BOARD = Board((9, 6))


def make_target_rig() -> BlinkingTargetRig:
    r = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(2.0)]))[0]
    h = K_EV @ np.diag([-1.0, 1.0, 1.0]) @ r @ np.linalg.inv(K_RGB)
    return BlinkingTargetRig(RGB, EventGeometry(*EV, h / h[2, 2]), corners=BOARD.corners,
                             event_camera_matrix=K_EV, event_distortion=DIST)


@pytest.fixture(scope="module")
def recording():
    """Nine poses, one blink each 50 ms apart: the frames and the concatenated event stream of a recording."""
    rig = make_target_rig()
    rng = np.random.default_rng(3)
    frames, cds, truth = [], [], []
    for i in range(9):
        rvec = np.radians(rng.uniform(-25, 25, 3)) * np.array([1, 1, 0.4])
        tvec = np.array([rng.uniform(-3, 3) - 5, rng.uniform(-2, 2) - 3.5, rng.uniform(15, 19)])
        view = rig.view(board_homography(K_RGB, rvec, tvec), i, 50_000.0 * (i + 1))
        frames.append(view.frame)
        cds.append(view.cd)
        inner = (BOARD.object_points()[:, :2] + 1).reshape(-1, 1, 2).astype(np.float64)
        truth.append(cv2.perspectiveTransform(inner, view.board_to_rgb).reshape(-1, 2))
    cd = concat_events(cds, EVENT_CD)
    return rig, frames, cd, np.concatenate(truth), blink_views(frames, cd, EV, BOARD)


def test_homography_recovered_within_half_a_pixel(recording, tmp_path):
    rig, _, _, truth_rgb, views = recording
    assert len(views) == 9 and all(v.view.rgb is not None and v.view.event is not None for v in views)
    run = calibrate(views=views, board=BOARD, rgb_size=RGB, event_size=EV)
    spatial = run.calibration.spatial
    assert spatial.mirrored and spatial.n_views == 9
    assert spatial.event_intrinsics is not None and spatial.rgb_intrinsics is not None
    assert spatial.event_intrinsics.distortion[0] == pytest.approx(DIST[0], abs=0.05)
    # Ground truth: where every board corner of every pose lands on the event sensor, mapped back to RGB.
    err = np.linalg.norm(spatial.event_to_rgb(rig.event_point(truth_rgb)) - truth_rgb, axis=1)
    assert err.mean() < 0.5
    assert spatial.error_px["mean"] < 0.5 and len(spatial.error_px["per_view"]) == 9
    # Round trip through the file keeps the mapping.
    path = run.calibration.save(tmp_path / "calib.json")
    again = Calibration.load(path)
    assert again.id == run.calibration.id
    assert np.allclose(again.spatial.event_to_rgb(rig.event_point(truth_rgb)),
                       spatial.event_to_rgb(rig.event_point(truth_rgb)), atol=1e-6)
    report = write_report(run, tmp_path / "report.png")
    img = cv2.imread(str(report))
    assert img is not None and img.shape[0] >= 360 and img.shape[1] >= 800


def test_too_few_views_skips_intrinsics_and_says_so(recording):
    views = [v.view for v in recording[4][:3]]
    spatial, notes = calibrate_spatial(views, BOARD, RGB, EV, min_views_intrinsics=8)
    assert spatial.event_intrinsics is None and spatial.rgb_intrinsics is None
    assert any("event intrinsics skipped: 3 views" in n for n in notes)
    assert spatial.mirrored  # the corner order is still resolved across the three poses
    # Without undistortion a homography cannot absorb the barrel distortion: the fit is visibly worse.
    assert spatial.error_px["mean"] > 0.5


def test_no_target_found_is_a_clear_error(recording):
    frames = recording[1]
    assert detect_corners(np.full((120, 160), 128, np.uint8), BOARD) is None
    with pytest.raises(CalibrationError, match="found in both cameras in none of 2 views"):
        calibrate_spatial([TargetView(None, None), TargetView(np.zeros((54, 2)) + 5, None)], BOARD, RGB, EV)
    with pytest.raises(CalibrationError, match="no blinks"):
        blink_views(frames, np.empty(0, EVENT_CD), EV, BOARD)


def test_inconsistent_sizes_are_rejected(recording):
    _, frames, cd, _, views = recording
    with pytest.raises(CalibrationError, match="inconsistent sizes"):
        calibrate_spatial([v.view for v in views[:2]], BOARD, RGB, (120, 90))
    with pytest.raises(CalibrationError, match="inconsistent sizes"):
        blink_views(frames, cd, (120, 90), BOARD)
    with pytest.raises(CalibrationError, match="cols != rows"):
        Board((6, 6))


def test_cli_calibrates_from_a_target_recording(recording, tmp_path):
    from typer.testing import CliRunner

    from app.cli import app
    from drivers.events.dtypes import EVENT_EXT_TRIGGER
    from tests.calibration_recordings import write_recording

    _, frames, cd, _, _ = recording
    rec = write_recording(tmp_path / "target", cd, np.empty(0, EVENT_EXT_TRIGGER), frames, EV, RGB)
    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", str(rec), "--out", str(tmp_path / "c.json"), "--min-views", "20"])
    assert res.exit_code == 0, res.output
    cal = Calibration.load(tmp_path / "c.json")
    assert cal.temporal is None and cal.spatial.n_views == 9 and "intrinsics skipped" in res.output
    assert (tmp_path / "c.png").is_file()
    res = runner.invoke(app, ["calibrate", str(rec), "--out", str(tmp_path / "d.json"), "--board", "9by6"])
    assert res.exit_code == 2 and "--board must be COLSxROWS" in res.output
