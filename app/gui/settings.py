"""GUI preferences persisted as JSON between runs: window layout, last config and recording, view options.

A bad settings file must never stop the window from opening: unreadable or corrupt JSON yields the defaults,
and each key that fails validation is dropped on its own (with a warning) while the valid ones are kept.
Writes are atomic (temp file + rename), so a crash while saving cannot corrupt the previous file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger("focalrig.gui")

SETTINGS_VERSION = 1
#: Environment variable naming the settings file (tests and portable installs).
SETTINGS_ENV = "FOCALRIG_GUI_SETTINGS"


class GuiSettings(BaseModel):
    """Everything the window remembers. Unknown keys (from newer versions) are ignored, not errors."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    version: int = SETTINGS_VERSION
    last_config: str | None = None
    last_recording: str | None = None
    export_dir: str | None = None
    #: Base64 of QMainWindow.saveGeometry() / saveState() (restoring garbage is harmless: Qt refuses it).
    window_geometry: str = ""
    window_state: str = ""
    accumulation_ms: float = Field(10.0, gt=0, le=10_000)
    display_fps: float = Field(30.0, ge=1, le=120)
    fusion_method: str = "auto"

    @field_validator("fusion_method", mode="before")
    @classmethod
    def _renamed_method(cls, value: object) -> object:
        """Settings saved before "best available" became "auto" (the same choice, now device-aware)."""
        return "auto" if value == "best" else value
    fusion_device: Literal["auto", "cpu", "cuda"] = "auto"
    n_planes: int | None = Field(None, ge=2, le=256)
    continuous: bool = False
    depth_colormap: str = "viridis"
    replay_speed: float = Field(1.0, gt=0, le=1000)

    @classmethod
    def load(cls, path: Path) -> tuple[GuiSettings, list[str]]:
        """The settings in ``path`` and a list of warnings; never raises (the defaults stand in for anything bad)."""
        warnings: list[str] = []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(), warnings
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"{path}: unreadable settings ({exc}); using the defaults")
            return cls(), warnings
        if not isinstance(data, dict):
            warnings.append(f"{path}: settings must be a JSON object; using the defaults")
            return cls(), warnings
        data = {k: v for k, v in data.items() if k in cls.model_fields}
        while True:
            try:
                return cls.model_validate(data), warnings
            except ValidationError as exc:
                bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
                if not bad & set(data):  # nothing left to drop: give up on the file
                    warnings.append(f"{path}: invalid settings; using the defaults")
                    return cls(), warnings
                for key in sorted(bad & set(data)):
                    warnings.append(f"{path}: dropped invalid setting {key}={data.pop(key)!r}")

    def save(self, path: Path) -> None:
        """Write atomically; a failure is logged, not raised (losing preferences must not lose data)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self.model_dump(), indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not save GUI settings to %s: %s", path, exc)


def default_settings_path() -> Path:
    """``$FOCALRIG_GUI_SETTINGS``, else the platform's per-user config folder (Qt's own lookup)."""
    env = os.environ.get(SETTINGS_ENV)
    if env:
        return Path(env)
    from PyQt6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return Path(base or Path.home() / ".config") / "focalrig" / "gui.json"
