"""The focalrig command line as a user runs it: output, files written, and one-line errors."""

import subprocess
import sys

import cv2
import h5py
import numpy as np
from typer.testing import CliRunner

from app.cli import app
from capture.formats.raw import RawEventWriter
from capture.formats.registry import open_events
from capture.render import PALETTE_DARK
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events, make_cd, make_triggers
from tests.reference import assert_matches_reference, reference_decodes, shared_event_file

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_command_groups():
    result = run("--help")
    assert result.exit_code == 0
    for group in ("events", "config", "bench"):
        assert group in result.output
    assert "convert" in run("events", "--help").output


def test_events_info_on_real_file_with_triggers():
    name = "ros_event_camera_codecs_evt3_trigger.raw"
    ref = reference_decodes()[name]
    result = run("events", "info", shared_event_file(name))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "EVT3" in out and "1280 x 720" in out
    assert f"{ref['n_cd']:,}" in out and f"ON {ref['n_on']:,}" in out
    assert "ch 0 falling: 1" in out and "ch 0 rising: 1" in out
    assert f"{ref['t_first']:,} µs" in out and f"{ref['t_last']:,} µs" in out


def test_events_info_reports_legacy_inference():
    result = run("events", "info", shared_event_file("expelliarmus_evt3_sample.raw"))
    assert result.exit_code == 0
    assert "system_ID 48" in result.output


def test_convert_round_trip_and_refuses_overwrite(tmp_path):
    cd = make_cd([0, 5, 639, 10], [0, 7, 479, 3], [1, 0, 1, 1], [10, 10, 5000, 9_000_000])
    trig = make_triggers([1, 0], [20, 4000], [2, 2])
    src = tmp_path / "in.raw"
    with RawEventWriter(src, 640, 480) as w:
        w.write(cd, trig)
    h5 = tmp_path / "out.hdf5"
    result = run("events", "convert", src, h5)
    assert result.exit_code == 0, result.output
    assert "wrote 4 CD events and 2 trigger events" in result.output
    back = tmp_path / "back.raw"
    assert run("events", "convert", h5, back, "--evt", "2").exit_code == 0
    with open_events(back) as r:
        assert r.info.format == "EVT2"
        got = [(c, t) for c, t in r.read_chunks()]
    assert np.array_equal(np.concatenate([c for c, _ in got]), cd)
    assert np.array_equal(np.concatenate([t for _, t in got]), trig)
    again = run("events", "convert", src, h5)
    assert again.exit_code == 2 and "--force" in again.output


def test_convert_csv_without_geometry_explains(tmp_path):
    csv = tmp_path / "ev.csv"
    csv.write_text("1,2,1,100\n3,4,0,200\n")
    result = run("events", "convert", csv, tmp_path / "ev.raw")
    assert result.exit_code == 2
    assert "--width and --height" in result.output
    assert "Traceback" not in result.output
    ok = run("events", "convert", csv, tmp_path / "ev.raw", "--width", "8", "--height", "8")
    assert ok.exit_code == 0, ok.output


def test_bad_file_gives_one_line_error(tmp_path):
    bad = tmp_path / "noise.raw"
    bad.write_bytes(bytes(range(256)) * 4)
    result = run("events", "info", bad)
    assert result.exit_code == 2
    assert "noise.raw" in result.output and "no Prophesee RAW header" in result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) <= 3


def test_render_png_frames_show_on_and_off(tmp_path):
    cd = make_cd([1, 2, 3, 4], [1, 1, 2, 2], [1, 0, 1, 0], [15_000, 15_100, 55_000, 55_050])
    src = tmp_path / "r.raw"
    with RawEventWriter(src, 16, 8) as w:
        w.write(cd)
    out = tmp_path / "frames"
    result = run("events", "render", src, "--out", out, "--accumulation", "10ms", "--fps", "50")
    assert result.exit_code == 0, result.output
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 3  # 20 ms frames covering 0..60 ms, each showing its last 10 ms
    first = cv2.cvtColor(cv2.imread(str(frames[0])), cv2.COLOR_BGR2RGB)
    assert tuple(first[1, 1]) == PALETTE_DARK[1] and tuple(first[1, 2]) == PALETTE_DARK[2]
    assert tuple(first[2, 3]) == PALETTE_DARK[0]  # later event, not in this frame
    third = cv2.cvtColor(cv2.imread(str(frames[2])), cv2.COLOR_BGR2RGB)
    assert tuple(third[2, 3]) == PALETTE_DARK[1] and tuple(third[1, 1]) == PALETTE_DARK[0]


def test_config_check_reports_bad_key(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[io]\ndefault_evt = 7\n")
    result = run("config", "check", cfg)
    assert result.exit_code == 2 and "io.default_evt" in result.output and "c.toml" in result.output
    good = run("--set", "io.default_evt=2", "config", "check")
    assert good.exit_code == 0 and "default_evt = 2" in good.output
    table = run("--set", "sim.moving_object={depth_dpt=2.4}", "config", "check")  # nested tables print too
    assert table.exit_code == 0 and "[sim.moving_object]" in table.output and "depth_dpt = 2.4" in table.output


def test_installed_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "focalrig" in result.stdout


def test_convert_real_legacy_raw_to_hdf5_keeps_provenance(tmp_path):
    name = "expelliarmus_evt3_sample.raw"
    out = tmp_path / "gen41.hdf5"
    assert run("events", "convert", shared_event_file(name), out).exit_code == 0
    with h5py.File(out) as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    assert attrs["generation"] == "4.1"  # inferred from system_ID 48, not the config default
    assert attrs["serial_number"] == "00000307" and attrs["geometry"] == "1280x720"
    with open_events(out) as r:
        parts = list(r.read_chunks())
    assert_matches_reference(concat_events([c for c, _ in parts], EVENT_CD),
                             concat_events([t for _, t in parts], EVENT_EXT_TRIGGER), reference_decodes()[name])
