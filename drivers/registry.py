"""Backends by name: the one place that turns a device config into a device object.

Adding a backend means writing its module and adding one line here (and its name to the config's
``Literal``); imports are lazy so an optional vendor SDK is only needed when its backend is used.
"""

from __future__ import annotations

from drivers.config import LensConfig
from drivers.focus import FocusActuator


def make_focus_actuator(cfg: LensConfig) -> FocusActuator:
    """An unconnected focus actuator for ``cfg``; use it as a context manager to connect and release it."""
    if cfg.backend == "optotune-ld4":
        from drivers.optotune import OptotuneLensDriver4

        return OptotuneLensDriver4(cfg.port, timeout_s=cfg.timeout_s)
    if cfg.backend == "pinefeat-cef168":
        from drivers.pinefeat import PinefeatCanonEF

        return PinefeatCanonEF(cfg.port, timeout_s=cfg.timeout_s)
    raise ValueError(f"unknown focus backend {cfg.backend!r}")
