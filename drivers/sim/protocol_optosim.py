"""pyserial URL handler for ``optosim://NAME?options``: a simulated Optotune Lens Driver 4 (see optotune_sim)."""

from drivers.sim.optotune_sim import Serial

__all__ = ["Serial"]
