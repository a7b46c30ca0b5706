"""`focalrig fuse REC`: a recording through its calibration and slicing into fusion, one output per sweep."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.model import Calibration, TemporalCalibration
from capture.engine import CaptureEngine
from capture.recording import Recording
from tests.capture_rigs import plan, sim_rig

runner = CliRunner()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 3-sweep simulated recording captured with a (temporal) calibration file named in its metadata."""
    root = tmp_path_factory.mktemp("fuse")
    rig, _ = sim_rig()
    calib = Calibration(temporal=TemporalCalibration(lag_us=rig.sim.trajectory.lag_us)).save(root / "calib.json")
    with rig:
        status = CaptureEngine(rig, plan(sweeps=3), root / "recs", calibration_path=calib).run()
    assert status.exit_status == "success"
    return status.recording, calib


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_fuse_all_sweeps_with_the_recordings_own_calibration(recorded, tmp_path):
    rec, calib = recorded
    result = invoke("fuse", rec, "--out", tmp_path, "--all", "--no-events", "--planes", "4")
    assert result.exit_code == 0, result.output
    with Recording.open(rec) as recording:
        n, uid, (w, h) = len(recording), recording.uid, recording.frame_geometry
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == [f"sweep{k:05d}" for k in range(n)]
    for k, name in enumerate(folders):
        info = json.loads((tmp_path / name / "result.json").read_text())
        assert info["input"]["meta"]["sweep_index"] == k
        assert info["input"]["meta"]["recording_uid"] == uid
        assert info["input"]["meta"]["calibration_id"] == Calibration.load(calib).id
        assert info["input"]["planes"] == 4
        fused = cv2.imread(str(tmp_path / name / "fused.png"), cv2.IMREAD_UNCHANGED)
        assert fused.shape[:2] == (h, w)
        index = np.load(tmp_path / name / "focal_index.npy")
        assert index.min() >= 0 and index.max() <= 3


def test_one_sweep_by_index(recorded, tmp_path):
    rec, calib = recorded
    result = invoke("fuse", rec, "--calib", calib, "--out", tmp_path, "--sweep", "1", "--no-events")
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["sweep00001"]


def test_blend_and_exposure_reach_the_method(recorded, tmp_path):
    rec, _ = recorded
    result = invoke("fuse", rec, "--out", tmp_path, "--no-events", "--method", "classical", "--blend", "gather",
                    "--no-exposure")
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "sweep00000" / "result.json").read_text())["settings"]
    assert settings["output"] == "gather" and settings["exposure"] is False


@pytest.mark.parametrize("args, message", [
    (["--sweep", "7"], "no sweep 7"),
    (["--sweep", "0", "--all"], "not both"),
])
def test_bad_sweep_choice_is_one_clear_error(recorded, tmp_path, args, message):
    rec, _ = recorded
    result = invoke("fuse", rec, "--out", tmp_path, "--no-events", *args)
    assert result.exit_code == 2 and message in result.output


def test_missing_calibration_says_what_to_do(recorded, tmp_path):
    rec, calib = recorded
    meta = json.loads((rec / "metadata.json").read_text())
    moved = tmp_path / "elsewhere.json"
    calib.rename(moved)
    try:
        result = invoke("fuse", rec, "--out", tmp_path / "out", "--no-events")
    finally:
        moved.rename(calib)
    assert result.exit_code == 2
    assert "no calibration" in result.output and "--calib" in result.output
    assert meta["calibration_file"] == str(calib)


def test_events_need_the_spatial_calibration(recorded, tmp_path):
    rec, _ = recorded
    result = invoke("fuse", rec, "--out", tmp_path)
    assert result.exit_code == 2 and "spatial" in result.output


def test_planes_default_to_every_frame_and_a_shortfall_is_said_once(recorded, tmp_path):
    """Without --planes a stack takes up to the plan's n_planes (16) frames; the 25 Hz / 200 fps sweep has 8 per
    period, so every stack has 8 planes at the frames' own powers and one note says what would give 16."""
    rec, _ = recorded
    result = invoke("fuse", rec, "--out", tmp_path, "--all", "--no-events")
    assert result.exit_code == 0, result.output
    assert result.output.count("note:") == 1
    assert "gives 8 frames per period" in result.output and "record at >= 400 fps or sweep at <= 12.50 Hz" in \
        result.output
    for folder in tmp_path.iterdir():
        info = json.loads((folder / "result.json").read_text())
        powers = info["input"]["focal_powers_dpt"]
        assert info["input"]["planes"] == 8 and info["input"]["meta"]["span"] == "period"
        assert [p["powers_dpt"][0] for p in info["input"]["meta"]["planes"]] == pytest.approx(powers)
        assert np.ptp(np.diff(powers)) > 0.05  # a sine samples the range unevenly: non-uniform planes
    half = invoke("fuse", rec, "--out", tmp_path / "half", "--span", "half", "--no-events")
    assert half.exit_code == 0, half.output
    info = json.loads((tmp_path / "half" / "sweep00000" / "result.json").read_text())
    assert info["input"]["planes"] == 4 and {p["half"] for p in info["input"]["meta"]["planes"]} == {"rising"}


def test_with_the_event_geometry_the_events_own_depth_is_written(recorded, tmp_path):
    """A calibration with the event→RGB geometry slices events into the stack: the result folder then holds the
    events' own depth (NaN where they cannot tell) beside the fused depth, and result.json says how much they
    covered."""
    from calibration.model import SpatialCalibration
    from tests.capture_rigs import sim_rig

    rec, calib = recorded
    rig, _ = sim_rig()
    geometry = rig.sim.renderer.geometry
    with Recording.open(rec) as recording:
        rgb, ev = recording.frame_geometry, recording.event_geometry
    rig.close()
    full = Calibration(SpatialCalibration(tuple(rgb), tuple(ev), np.linalg.inv(geometry.homography)),
                       Calibration.load(calib).temporal).save(tmp_path / "full.json")
    result = invoke("fuse", rec, "--calib", full, "--out", tmp_path / "out", "--method", "classical")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "sweep00000"
    depth_events = np.load(folder / "depth_events.npy")
    info = json.loads((folder / "result.json").read_text())
    assert depth_events.shape == (rgb[1], rgb[0]) and np.isfinite(depth_events).any() and np.isnan(depth_events).any()
    assert info["events"]["event_focus_coverage"] == pytest.approx(np.isfinite(depth_events).mean())
    assert info["settings"]["event_focus_used"] is True
    single = invoke("fuse", rec, "--calib", full, "--out", tmp_path / "one", "--method", "classical", "--single-frame",
                    "--planes", "6")
    assert single.exit_code == 0, single.output
    meta = json.loads((tmp_path / "one" / "sweep00000" / "result.json").read_text())["input"]["meta"]
    kinds = [p["kind"] for p in meta["planes"]]
    assert meta["single_frame"] and kinds.count("frame") == 1 and kinds.count("refocused") == 5
