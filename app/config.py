"""TOML configuration files loaded into validated pydantic models.

Every error names where the bad value came from and the offending key (``configs/sim.toml: io.default_evt:
...``, or ``--set io.default_evt=three: io.default_evt: ...`` when the command line set it), so a typo in a
config is found before any device is touched. ``--set key=value`` overrides use TOML value syntax
(``--set io.default_evt=2``, ``--set io.hdf5_generation='"4.1"'``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from drivers.config import (
    EventCameraConfig,
    FrameCameraConfig,
    LensConfig,
    SimConfig,
    StrictModel,
    describe_validation_error,
    read_toml,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "sim.toml"

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file or override that cannot be used; the message says where and why."""


class EventIOConfig(StrictModel):
    """Defaults of event-file reading and writing."""

    default_evt: Literal[2, 3] = Field(3, description="RAW encoding written by default (EVT 3.0 is the native one)")
    read_block_mib: float = Field(4.0, gt=0, le=256, description="RAW read block; bounds memory while streaming")
    hdf5_generation: str = Field("4.2", description="sensor generation written to HDF5 when the source has none")
    time_shift: bool = Field(False, description="subtract OpenEB's RAW time shift (absolute times when false)")


class FocalrigConfig(StrictModel):
    """The whole configuration file: event-file I/O defaults, the lens, both cameras and the simulated rig (sweep
    plans are files of their own, :class:`capture.plan.SweepPlan`)."""

    io: EventIOConfig = EventIOConfig()
    lens: LensConfig = LensConfig()
    event_camera: EventCameraConfig = EventCameraConfig()
    frame_camera: FrameCameraConfig = FrameCameraConfig()
    sim: SimConfig = SimConfig()


def _set_dotted(data: dict, key: str, value: object) -> None:
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is a value, not a section")
    node[leaf] = value


def parse_override(text: str) -> tuple[str, object]:
    """``key.path=value`` with a TOML value (bare words are taken as strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. io.default_evt=2")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.startswith(("[", "{", '"', "'")):  # meant as an array, a table or a quoted string, not a bare word
            raise ConfigError(f"--set {text.strip()}: {raw} is not a TOML value ({exc}); quote the strings inside, "
                              "e.g. --set 'sim.rgb_size=[640, 480]' or --set 'key=[\"a\", \"b\"]'") from None
        value = raw
    return key, value


def load_config(
    path: str | Path | None = None, model: type[M] = FocalrigConfig, overrides: list[str] | None = None
) -> M:
    """Load ``path`` (default ``configs/sim.toml``) into ``model``, applying ``key=value`` overrides."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = read_toml(path, ConfigError, f"no such config file (the defaults live in {CONFIG_DIR})")
    given: dict[str, str] = {}  # dotted key -> the option that set it, which errors about that key name
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
        given[key] = f"--set {text.strip()}"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, model, str(path), given)) from exc
