"""What a sweep may ask of the configured focus actuator: focal-power range, sweep waveforms, sweep frequency.

A plan the lens cannot run must fail before anything moves, with one message naming the limit, not half-way
through starting a capture. Two moments know different amounts: before the lens is connected only the backend
and the port are known (:func:`expected_limits`: enough for ``capture --dry-run`` and for every simulated lens),
once it is connected the lens reports its own range (:func:`connected_limits`: a real LD4's range depends on the
lens attached and on the temperature limits). Both are checked by :meth:`capture.plan.SweepPlan.check_lens`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from drivers.config import LensConfig
from drivers.focus import FocusActuator, FocusCapabilities, Waveform

#: The LD4 generator's frequency goes over the wire as an unsigned 32-bit count of millihertz.
LD4_FREQUENCY_RANGE_HZ = (0.001, 0xFFFFFFFF / 1000)
#: Focal power is encoded in steps of 1/200 dpt.
_LD4_FP_STEPS_PER_DPT = 200


@dataclass(frozen=True)
class FocusLimits:
    """The limits of one configured focus actuator, as far as they are known (None: not known yet)."""

    device: str                                      #: names it in messages: "the Optotune LD4 on optosim://x"
    focal_power_range_dpt: tuple[float, float] | None
    sweep_waveforms: frozenset[Waveform]             #: what its periodic sweep runs (a stepped plan needs none)
    frequency_range_hz: tuple[float, float] | None
    no_focal_power: str = ""                         #: why it takes no focal power at all ("" when it does)


def expected_limits(cfg: LensConfig) -> FocusLimits:
    """The limits of ``cfg``'s lens known without connecting to it (nothing is opened or moved)."""
    if cfg.backend == "optotune-ld4":
        return FocusLimits(f"the Optotune Lens Driver 4 on {cfg.port}", _optosim_range(cfg.port),
                           frozenset({Waveform.SINE, Waveform.TRIANGLE, Waveform.RECTANGLE}), LD4_FREQUENCY_RANGE_HZ)
    if cfg.backend == "pinefeat-cef168":
        return FocusLimits(f"the Canon EF lens on the Pinefeat cef168 at {cfg.port}", None,
                           frozenset({Waveform.TRIANGLE}), None, no_focal_power=_CEF168_NO_TABLE)
    raise ValueError(f"unknown focus backend {cfg.backend!r}")


def connected_limits(cfg: LensConfig, caps: FocusCapabilities) -> FocusLimits:
    """The limits of ``cfg``'s lens once connected: the range it reports replaces the expected one."""
    limits = expected_limits(cfg)
    frequency = caps.frequency_range_hz or limits.frequency_range_hz
    no_focal_power = "" if caps.focal_power_range_dpt is not None else limits.no_focal_power or \
        "the lens reports no focal-power range, so it cannot be driven in dioptres"
    return FocusLimits(limits.device, caps.focal_power_range_dpt, limits.sweep_waveforms | caps.waveforms,
                       frequency, no_focal_power)


def lens_limits(lens: FocusActuator, config: dict | LensConfig | None = None) -> FocusLimits:
    """The limits of the connected ``lens``: :func:`connected_limits` of the configuration it was opened from
    (``config``: the rig's ``config["lens"]``), or, for a lens built in code, of the backend its class is and its
    port. The capture engine checks every plan against this, so a plan started from anywhere — the GUI, a script —
    is refused in one message before the lens is asked for a sweep it would refuse half-way through starting."""
    if isinstance(config, dict):
        config = LensConfig.model_validate(config)
    if config is None:
        config = _config_of(lens)
    if config is None:  # a lens of no configured backend: what it reports is all there is
        caps = lens.capabilities
        return FocusLimits(f"the {type(lens).__name__}", caps.focal_power_range_dpt, caps.waveforms,
                           caps.frequency_range_hz)
    return connected_limits(config, lens.capabilities)


def _config_of(lens: FocusActuator) -> LensConfig | None:
    """The configuration a lens of a known backend would have been opened from (None for any other class)."""
    from drivers.optotune import OptotuneLensDriver4
    from drivers.pinefeat import PinefeatCanonEF

    for backend, cls in (("optotune-ld4", OptotuneLensDriver4), ("pinefeat-cef168", PinefeatCanonEF)):
        if isinstance(lens, cls):
            return LensConfig(backend=backend, port=lens.port, timeout_s=lens.timeout_s)
    return None


_CEF168_NO_TABLE = ("the configuration gives the cef168 no dioptre calibration, so it moves only in focus steps and "
                    "cannot run a sweep plan (plans are in dioptres); use an optotune-ld4 lens for captures")


def _optosim_range(port: str) -> tuple[float, float] | None:
    """The range the built-in LD4 simulator behind ``optosim://NAME`` reports (None for a real port: that depends
    on the lens attached, known once connected)."""
    from drivers.registry import optosim_name

    name = optosim_name(port)
    if name is None:
        return None
    from drivers.optotune import OptotuneLensDriver4
    from drivers.sim import get_simulator

    sim = get_simulator(name)
    lens = sim.lens
    upper_c, lower_c = inspect.signature(OptotuneLensDriver4).parameters["temperature_limits_c"].default
    i_hi = sim.upper_limit_raw * lens.imax_ma / 4095
    i_lo = sim.lower_limit_raw * lens.imax_ma / 4095
    # Guaranteed over the whole temperature window: the narrowest range at either end of it.
    high = min(lens.static_dpt(i_hi, t) for t in (lower_c, upper_c))
    low = max(lens.static_dpt(i_lo, t) for t in (lower_c, upper_c))
    n = _LD4_FP_STEPS_PER_DPT
    return round(low * n) / n, round(high * n) / n
