"""The calibration JSON: round trip, merging, and one clear error per kind of bad file."""

import json
import uuid

import numpy as np
import pytest

from calibration.model import (
    FILE_VERSION,
    Breathing,
    Calibration,
    CalibrationError,
    Intrinsics,
    SpatialCalibration,
    TemporalCalibration,
)


def full() -> Calibration:
    h = np.array([[-1.25, 0.01, 199.0], [0.02, 1.25, -3.0], [1e-5, 0.0, 1.0]])
    k = np.array([[220.0, 0, 119.5], [0, 221.0, 89.5], [0, 0, 1]])
    spatial = SpatialCalibration((320, 240), (240, 180), h, None, Intrinsics(k, np.array([-0.2, 0.05, 0, 0, 0]),
                                                                              0.1, 9), 2.0, 9, {"mean": 0.1})
    return Calibration(spatial, TemporalCalibration(2300.0, 15.0, n_patches=40),
                       Breathing(2.0, (0.01,), (160.0, 120.0), 12, 0.001), meta={"board": [9, 6]})


def test_round_trip_keeps_everything(tmp_path):
    cal = full()
    again = Calibration.load(cal.save(tmp_path / "c.json"))
    assert again.id == cal.id and uuid.UUID(again.id).version == 4
    assert again.to_dict() == cal.to_dict()
    assert again.spatial.mirrored and again.spatial.event_intrinsics.n_views == 9
    pts = np.array([[10.0, 20.0], [200.0, 150.0]])
    assert np.allclose(again.spatial.rgb_to_event(again.spatial.event_to_rgb(pts)), pts, atol=1e-6)
    assert again.breathing.scale(3.0) == pytest.approx(1.01)


def test_merge_takes_the_newer_parts_and_gets_a_new_id():
    a = full()
    b = Calibration(temporal=TemporalCalibration(1000.0))
    m = a.merged(b)
    assert m.temporal.lag_us == 1000.0 and m.spatial is a.spatial and m.id not in (a.id, b.id)
    assert m.meta["merged_from"] == [a.id, b.id]
    with pytest.raises(CalibrationError, match="no spatial or breathing part"):
        b.require("spatial", "breathing")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(version=FILE_VERSION + 1), "newer than this focalrig reads"),
    (lambda d: d.pop("version"), "missing or invalid 'version'"),
    (lambda d: d.update(format="something"), "not a focalrig calibration"),
    (lambda d: d.pop("temporal"), "missing key 'temporal'"),
    (lambda d: d["spatial"].pop("homography_event_to_rgb"), "missing key 'homography_event_to_rgb'"),
    (lambda d: d["spatial"].update(homography_event_to_rgb=[[1, 0], [0, 1]]), "3x3"),
    (lambda d: d["spatial"]["event_intrinsics"].update(distortion=[0.1, 0.2, 0.3]), "distortion must have"),
    (lambda d: d["spatial"].update(event_size=[64, 48]), "principal point .* inconsistent sizes"),
    (lambda d: d.update(id="not-a-uuid"), "is not a uuid"),
    (lambda d: d.update(spatial=None, temporal=None, breathing=None), "has no spatial, temporal or breathing"),
    (lambda d: d["temporal"].update(gain=-1), "gain > 0"),
])
def test_bad_files_give_one_clear_error(tmp_path, edit, message):
    d = full().to_dict()
    edit(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match=message) as info:
        Calibration.load(path)
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(CalibrationError, match="no such calibration file"):
        Calibration.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        Calibration.load(tmp_path / "x.json")
