"""Canon EF lenses focused through a Pinefeat cef168 controller: its ASCII serial protocol and the driver."""

from drivers.pinefeat.driver import PinefeatCanonEF, SweepSample

__all__ = ["PinefeatCanonEF", "SweepSample"]
