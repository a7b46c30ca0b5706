"""Simulated devices that speak the real wire protocols, for tests, demos and development without hardware.

Importing this package registers the ``optosim://`` pyserial URL scheme: pyserial resolves a URL
``scheme://`` by importing ``<package>.protocol_<scheme>`` for each package in
``serial.protocol_handler_packages``. This package is added to that list and holds
``protocol_optosim``, so ``serial.serial_for_url("optosim://lens0")`` opens a
simulated Optotune Lens Driver 4 exactly as ``/dev/ttyACM0`` opens a real one.
"""

import serial

from drivers.sim.optotune_sim import (
    Faults,
    LensDriver4Sim,
    LensModel,
    MonotonicClock,
    PtyServer,
    ReceivedFrame,
    VirtualClock,
    forget_simulators,
    get_simulator,
    register_simulator,
    serve_pty,
)

if __name__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(__name__)

__all__ = [
    "Faults",
    "LensDriver4Sim",
    "LensModel",
    "MonotonicClock",
    "PtyServer",
    "ReceivedFrame",
    "VirtualClock",
    "forget_simulators",
    "get_simulator",
    "register_simulator",
    "serve_pty",
]
