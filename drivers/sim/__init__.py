"""The simulated rig, for tests, demos and development without hardware: lens drivers that speak the real wire
protocols, and the event and frame cameras of one shared simulated world (scene, optics, lens path, event clock;
:mod:`drivers.sim.rig`), computed in this process or in child processes of their own.

Importing this package registers the ``optosim://`` and ``cefsim://`` pyserial URL schemes: pyserial resolves a URL
``scheme://`` by importing ``<package>.protocol_<scheme>`` for each package in
``serial.protocol_handler_packages``. This package is added to that list and holds
``protocol_optosim``, so ``serial.serial_for_url("optosim://lens0")`` opens a
simulated Optotune Lens Driver 4 exactly as ``/dev/ttyACM0`` opens a real one.
"""

import serial

from drivers.sim.cef168_sim import (
    Cef168Sim,
    CefFaults,
    EFLens,
    forget_cef_simulators,
    get_cef_simulator,
    register_cef_simulator,
    serve_cef_pty,
)
from drivers.sim.clock import MonotonicClock, VirtualClock
from drivers.sim.link import PtyServer
from drivers.sim.optotune_sim import (
    Faults,
    LensDrive,
    LensDriver4Sim,
    LensModel,
    ReceivedFrame,
    forget_simulators,
    get_simulator,
    register_simulator,
    serve_pty,
)

if __name__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(__name__)

__all__ = [
    "Cef168Sim",
    "CefFaults",
    "EFLens",
    "Faults",
    "LensDrive",
    "LensDriver4Sim",
    "LensModel",
    "MonotonicClock",
    "PtyServer",
    "ReceivedFrame",
    "VirtualClock",
    "forget_cef_simulators",
    "forget_simulators",
    "get_cef_simulator",
    "get_simulator",
    "register_cef_simulator",
    "register_simulator",
    "serve_cef_pty",
    "serve_pty",
]
