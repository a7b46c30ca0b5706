"""Wrong configs fail at load with one message that names where the value came from (the file, or the --set
option that set it), the key and what is wrong, before any device or simulator is touched."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import DEFAULT_CONFIG, ConfigError, load_config

runner = CliRunner()


@pytest.mark.parametrize("size", ["[0, 0]", "[-5, 10]", "[100000, 100000]", "[15, 240]", "[320, 8193]"])
def test_simulated_image_sizes_outside_16_to_8192_are_refused(size):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=[f"sim.rgb_size={size}"])
    assert str(exc.value).startswith(f"--set sim.rgb_size={size}: sim.rgb_size: ")
    assert "16..8192 pixels" in str(exc.value)
    with pytest.raises(ConfigError, match=r"sim\.event_size: .*16\.\.8192"):
        load_config(overrides=[f"sim.event_size={size}"])


def test_sizes_at_the_limits_load():
    cfg = load_config(overrides=["sim.rgb_size=[16, 8192]", "sim.event_size=[8192, 16]"])
    assert cfg.sim.rgb_size == (16, 8192) and cfg.sim.event_size == (8192, 16)


def test_config_check_reports_a_zero_size_in_one_line_without_a_traceback():
    result = runner.invoke(app, ["--set", "sim.rgb_size=[0,0]", "config", "check"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: --set sim.rgb_size=[0,0]: sim.rgb_size: [width, height] must each be 16..8192 pixels, "
                     "e.g. [320, 240] (got [0, 0])"]


@pytest.mark.parametrize("override, key", [("io.default_evt=three", "io.default_evt"), ("nosuch.key=1", "nosuch")])
def test_a_bad_set_option_is_blamed_not_the_config_file(override, key):
    result = runner.invoke(app, ["--set", override, "config", "check"])
    assert result.exit_code == 2
    assert f"error: --set {override}: {key}: " in result.output
    assert DEFAULT_CONFIG.name not in result.output


def test_a_bad_value_in_the_file_is_blamed_on_the_file_even_with_other_set_options(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text("[sim]\nrgb_size = [0, 0]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, overrides=["io.default_evt=2"])
    assert str(exc.value).startswith(f"{path}: sim.rgb_size: ") and "--set" not in str(exc.value)


def test_an_unknown_key_lists_the_known_ones_and_the_nearest():
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=["io.defualt_evt=2"])
    assert "did you mean default_evt?" in str(exc.value)
    assert "known keys in [io]: default_evt, hdf5_generation, read_block_mib, time_shift" in str(exc.value)


def test_square_brackets_in_messages_reach_the_user_verbatim():
    """rich would read ``[io]`` and ``[width, height]`` as markup and drop them from the message."""
    result = runner.invoke(app, ["--set", "io.defualt_evt=2", "config", "check"])
    assert "known keys in [io]:" in result.output


def test_an_array_that_is_not_toml_says_how_to_quote_it():
    with pytest.raises(ConfigError, match=r"--set sim\.rgb_size=\[a,b\]: \[a,b\] is not a TOML value.*quote"):
        load_config(overrides=["sim.rgb_size=[a,b]"])
    assert load_config(overrides=["io.hdf5_generation=4.1"]).io.hdf5_generation == "4.1"  # bare words stay strings


@pytest.mark.parametrize("override, match", [
    ("sim.depths_dpt=[-1.0]", r"sim\.depths_dpt: depths must be 0\.\.20 dpt"),
    ("sim.depths_dpt=[0.5, 100.0]", r"sim\.depths_dpt: depths must be 0\.\.20 dpt"),
    ("sim.slant_dpt=[0.3, 1e6]", r"sim\.slant_dpt: depths must be 0\.\.20 dpt"),
    ("sim.moving_object={depth_dpt=25.0}", r"sim\.moving_object\.depth_dpt: .*less than or equal to 20"),
    ("sim.sweep_hz=1e9", r"sim\.sweep_hz: .*less than or equal to 1000"),
    ("sim.noise_rate_hz=1e7", r"sim\.noise_rate_hz: .*less than or equal to 1000"),
    ("sim.hot_pixels=100000", r"hot_pixels \(100000\) exceeds the 320x240 event sensor's pixels"),
    ("event_camera.chunk_us=1", r"event_camera\.chunk_us: .*greater than or equal to 1000"),
])
def test_values_that_would_hang_or_crash_the_simulator_are_refused_at_load(override, match):
    with pytest.raises(ConfigError, match=match) as exc:
        load_config(overrides=[override])
    assert str(exc.value).startswith(f"--set {override}: ")


def test_keys_that_disagree_name_the_file_and_the_options():
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=["sim.moving_object={depth_dpt=2.4, radius_px=500.0}"])
    assert str(exc.value).startswith("--set sim.moving_object={depth_dpt=2.4, radius_px=500.0}: sim: ")
