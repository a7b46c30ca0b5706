"""pyserial URL handler for ``cefsim://NAME?options``: a simulated Pinefeat cef168 and EF lens (see cef168_sim)."""

from drivers.sim.cef168_sim import Serial

__all__ = ["Serial"]
