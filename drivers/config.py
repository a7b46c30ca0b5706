"""Validated configuration of the devices: which backend drives each device, and how to reach it.

These pydantic models sit in the lowest layer so that the capture engine can build devices from a
validated configuration without knowing where it was read from (``app`` loads the TOML files).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Base of all config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class LensConfig(StrictModel):
    """The focus actuator."""

    backend: Literal["optotune-ld4", "pinefeat-cef168"] = Field(
        "optotune-ld4",
        description="focus backend: optotune-ld4 (Optotune Lens Driver 4 over USB serial) or pinefeat-cef168 "
        "(Canon EF lens through a Pinefeat cef168 serial adapter)",
    )
    port: str = Field(
        "optosim://sim-lens",
        description="serial port (/dev/ttyACM0, COM3) or pyserial URL; optosim://NAME and cefsim://NAME are the "
        "built-in simulators of the two backends",
    )
    timeout_s: float = Field(0.5, gt=0, le=10, description="reply timeout; a silent device fails after this")
