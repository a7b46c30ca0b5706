"""Devices chosen by name from the configuration, and `focalrig devices list|check`."""

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import ConfigError, load_config
from drivers.config import LensConfig
from drivers.optotune import OptotuneLensDriver4
from drivers.pinefeat import PinefeatCanonEF
from drivers.registry import make_focus_actuator
from drivers.sim import LensDriver4Sim, register_simulator

runner = CliRunner()
#: Small, batch-paced simulated cameras keep `devices check` quick.
SMALL = ["--set", "sim.rgb_size=[32,24]", "--set", "sim.event_size=[32,24]", "--set", "sim.realtime=false"]


def test_default_config_selects_the_simulated_lens():
    cfg = load_config()
    assert cfg.lens.backend == "optotune-ld4" and cfg.lens.port.startswith("optosim://")
    lens = make_focus_actuator(cfg.lens)
    assert isinstance(lens, OptotuneLensDriver4)


def test_unknown_backend_is_a_config_error(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text('[lens]\nbackend = "acme-zoom"\n')
    with pytest.raises(ConfigError, match=r"lens\.backend"):
        load_config(path)


def test_devices_list_and_check_against_the_simulator():
    sim = register_simulator("devcheck", LensDriver4Sim(temp_walk_c=0.0, seed=2))
    listed = runner.invoke(app, ["--set", "lens.port=optosim://devcheck", "devices", "list"])
    assert listed.exit_code == 0 and "optosim://devcheck" in listed.output and "optotune-ld4" in listed.output
    checked = runner.invoke(app, [*SMALL, "--set", "lens.port=optosim://devcheck", "devices", "check"])
    assert checked.exit_code == 0, checked.output
    assert "Optotune" in checked.output and "all configured devices answer" in checked.output
    sim.clock.advance(0.05)
    assert sim.dc_raw == 0 and sim.drive_current_ma() == 0.0  # released in the safe state


def test_devices_check_reports_a_silent_lens():
    register_simulator("devsilent", LensDriver4Sim(temp_walk_c=0.0, seed=3))
    result = runner.invoke(app, [*SMALL, "--set", "lens.port=optosim://devsilent?fault=silence", "devices", "check"])
    assert result.exit_code == 2
    assert "devsilent" in result.output and "no answer" in result.output


def test_lens_config_rejects_bad_timeout():
    with pytest.raises(ValueError, match="timeout_s"):
        LensConfig(timeout_s=0)


def test_canon_ef_backend_is_selectable_and_checks_against_its_simulator():
    cfg = load_config(overrides=["lens.backend=pinefeat-cef168", "lens.port=cefsim://devcef?calibrated=1"])
    assert isinstance(make_focus_actuator(cfg.lens), PinefeatCanonEF)
    result = runner.invoke(app, [*SMALL, "--set", "lens.backend=pinefeat-cef168", "--set", "lens.port=cefsim://devcef2",
                                 "devices", "check"])
    assert result.exit_code == 0, result.output
    assert "steps" in result.output and "none (host-timed sweeps)" in result.output


def test_devices_check_covers_both_cameras_and_reports_each_failure_on_its_own(tmp_path):
    listed = runner.invoke(app, [*SMALL, "devices", "list"])
    assert "event camera" in listed.output and "simulated rig, 32x24" in listed.output
    ok = runner.invoke(app, [*SMALL, "--set", "lens.port=optosim://devcams", "devices", "check"])
    assert ok.exit_code == 0, ok.output
    assert "simulated event camera" in ok.output and "EVT3" in ok.output and "CD events" in ok.output
    assert "simulated frame camera" in ok.output and "30 Hz" in ok.output and "24x32x3 uint8" in ok.output
    missing = tmp_path / "missing.avi"
    bad = runner.invoke(app, [*SMALL, "--set", "lens.port=optosim://devcams2", "--set", "frame_camera.backend=opencv",
                              "--set", f"frame_camera.source={missing}", "--set", "event_camera.roi=[0,0,64,64]",
                              "devices", "check"])
    assert bad.exit_code == 2
    assert "Optotune" in bad.output  # the lens still checked and printed
    assert "event camera:" in bad.output and "ROI 64x64+0+0 is not inside the 32x24 sensor" in bad.output
    assert "frame camera:" in bad.output and "missing.avi does not exist" in bad.output
