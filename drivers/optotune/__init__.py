"""Optotune focus-tunable lenses: the Lens Driver 4 / 4i serial protocol and its driver."""

from drivers.optotune.driver import OptotuneLensDriver4

__all__ = ["OptotuneLensDriver4"]
