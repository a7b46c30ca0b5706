"""Configuration files: defaults load, and every mistake names the file and the key."""

import pytest

from app.config import DEFAULT_CONFIG, ConfigError, FocalrigConfig, load_config, parse_override


def test_default_config_is_the_simulated_rig_and_valid():
    assert DEFAULT_CONFIG.name == "sim.toml" and DEFAULT_CONFIG.is_file()
    cfg = load_config()
    assert isinstance(cfg, FocalrigConfig)
    assert cfg.io.default_evt == 3


def test_unknown_key_names_file_and_field(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text("[io]\ndefualt_evt = 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in str(exc.value) and "io.defualt_evt" in str(exc.value)


def test_bad_value_names_file_field_and_value(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text("[io]\nread_block_mib = -1\n")
    with pytest.raises(ConfigError, match=r"rig\.toml: io\.read_block_mib: .*greater than 0.*-1"):
        load_config(path)


def test_toml_syntax_error_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[io\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_overrides_use_toml_values_and_are_validated():
    cfg = load_config(overrides=["io.default_evt=2", "io.time_shift=true", "io.hdf5_generation=4.1"])
    assert (cfg.io.default_evt, cfg.io.time_shift, cfg.io.hdf5_generation) == (2, True, "4.1")
    with pytest.raises(ConfigError, match=r"io\.default_evt"):
        load_config(overrides=["io.default_evt=4"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("io.default_evt")
