"""Damaged files and recordings as a user meets them on the command line: one line naming the file and the
problem (exit 2), or a report that says what is wrong; never a traceback, never a silent success."""

from __future__ import annotations

import shutil
import tracemalloc

import pytest
from typer.testing import CliRunner

from app.cli import app
from calibration.model import Calibration, TemporalCalibration
from capture.fuzz.seeds import write_hdf5_seed, write_recording_seed
from tests.test_bad_event_files import wrapping_evt2

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})


@pytest.fixture(scope="module")
def seed_recording(tmp_path_factory):
    return write_recording_seed(tmp_path_factory.mktemp("seed")).path


@pytest.fixture
def recording(seed_recording, tmp_path):
    return shutil.copytree(seed_recording, tmp_path / "rec")


def test_events_info_on_a_file_of_time_wraps_stays_small(tmp_path):
    path, n_events = wrapping_evt2(tmp_path / "wraps.raw")
    tracemalloc.start()
    try:
        result = cli("events", "info", path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert f"{n_events}  (ON" in result.output and peak < 64 << 20


def test_events_info_and_convert_on_hdf5_with_broken_attributes(tmp_path):
    data = bytearray(write_hdf5_seed(tmp_path).path.read_bytes())
    at = data.find(b"geometry\x00")
    data[at - 6:at - 4] = b"\xff\xff"  # HDF5's attribute iteration raised RuntimeError: a traceback
    path = tmp_path / "attrs.hdf5"
    path.write_bytes(bytes(data))
    result = cli("events", "info", path)
    assert result.exit_code == 0, result.output
    assert "attributes unreadable" in result.output and "20,000" in result.output
    result = cli("events", "convert", path, tmp_path / "out.raw")
    assert result.exit_code == 2 and str(path) in result.output and "--width and --height" in result.output
    result = cli("events", "convert", path, tmp_path / "out.raw", "--width", 320, "--height", 240, "--force")
    assert result.exit_code == 0, result.output


def test_events_convert_names_the_source_whose_events_cannot_be_stored(tmp_path):
    path, _ = wrapping_evt2(tmp_path / "wraps.raw")
    result = cli("events", "convert", path, tmp_path / "out.hdf5")
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and "timestamps are probably corrupt" in result.output


@pytest.mark.parametrize("part", ["frames.h5", "events.raw", "sync.h5"])
def test_inspect_does_not_call_a_recording_with_a_missing_part_a_success(recording, part):
    (recording / part).unlink()
    result = cli("inspect", recording)
    assert result.exit_code == 0, result.output
    assert "success" not in result.output and "incomplete" in result.output
    assert f"{part}: missing" in result.output
    assert "no stop document" not in result.output  # the run did end in order; a part is what is missing


def test_inspect_words_a_raw_file_cut_in_half(recording):
    raw = recording / "events.raw"
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) // 2 | 1])
    result = cli("inspect", recording)
    assert result.exit_code == 0, result.output
    assert "cut mid-word" in result.output and "flush boundary" not in result.output


def test_fuse_all_without_sync_data_says_why_nothing_is_fused(recording, tmp_path):
    calib = Calibration(temporal=TemporalCalibration(lag_us=0.0)).save(tmp_path / "cal.json")
    (recording / "sync.h5").unlink()
    result = cli("fuse", recording, "--all", "--calib", calib, "--out", tmp_path / "fused", "--no-events")
    assert result.exit_code == 2, result.output
    assert "sync.h5: missing" in result.output and "no sweep to fuse" in result.output
    assert not (tmp_path / "fused").exists()


def test_calibrate_without_sync_data_fails_naming_it(recording, tmp_path):
    (recording / "sync.h5").unlink()
    result = cli("calibrate", recording, "--target", recording, "--out", tmp_path / "cal.json")
    assert result.exit_code == 2 and "sync.h5: missing" in result.output
    assert not (tmp_path / "cal.json").exists()


def test_calibrate_and_fuse_without_metadata_name_the_missing_file(recording, tmp_path):
    calib = Calibration(temporal=TemporalCalibration(lag_us=0.0)).save(tmp_path / "cal.json")
    (recording / "metadata.json").unlink()
    for args in (("calibrate", recording, "--out", tmp_path / "new.json"),
                 ("fuse", recording, "--calib", calib, "--out", tmp_path / "fused", "--no-events")):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert "metadata.json: missing" in result.output and "no commanded sweep" not in result.output
