"""Optotune Lens Driver 4 / 4i over a serial port (USB CDC), or any pyserial URL such as ``optosim://``.

Every reply is read by its expected length and checked (CRC, terminator, echoed command letters);
set commands are written without waiting, because the device answers them only when it rejects
them. Any failure, whether a timeout, a bad CRC, an ``N`` reply or an unplugged device, becomes one
FocusError naming the port, raised after the lens has been sent to its safe state (DC mode, zero current)
as far as the link still carries bytes. Nothing blocks longer than the port timeout.
"""

from __future__ import annotations

import logging

from serial.serialutil import SerialException

from drivers.focus import (
    FocusCapabilities,
    FocusIdentity,
    FocusMode,
    FocusStatus,
    Unit,
    Waveform,
    within_range,
)
from drivers.optotune import protocol as p
from drivers.serial_focus import SerialFocusActuator

log = logging.getLogger(__name__)

_MODE_NAMES = {p.MODE_CURRENT: FocusMode.CURRENT, p.MODE_SINE: FocusMode.SINE, p.MODE_TRIANGLE: FocusMode.TRIANGLE,
               p.MODE_RECTANGLE: FocusMode.RECTANGLE, p.MODE_FOCAL_POWER: FocusMode.FOCAL_POWER,
               p.MODE_ANALOG: FocusMode.ANALOG}
_WAVEFORM_MODES = {Waveform.SINE: p.MODE_SINE, Waveform.TRIANGLE: p.MODE_TRIANGLE,
                   Waveform.RECTANGLE: p.MODE_RECTANGLE}
_HINT_LINK = "check the USB cable and power, and that no other program has the port open"


class OptotuneLensDriver4(SerialFocusActuator):
    """An Optotune LD4/LD4i on ``port`` (``/dev/ttyACM0``, ``COM3`` or a pyserial URL).

    ``temperature_limits_c`` (upper, lower) are sent before focal-power mode, as the firmware requires;
    wider limits give a narrower guaranteed focal-power range. ``handshake`` sends ``Start`` on
    connect, which also zeroes the current.
    """

    device_name = "Optotune lens driver"
    baudrate = p.BAUDRATE

    def __init__(self, port: str, *, timeout_s: float = 0.5, handshake: bool = True,
                 temperature_limits_c: tuple[float, float] = (50.0, 10.0)) -> None:
        super().__init__(port, timeout_s=timeout_s)
        self.handshake = handshake
        self.temperature_limits_c = temperature_limits_c
        self._mode: int | None = None
        self._fw_type = b"A"
        self._imax_ma = 0.0

    # -- link -------------------------------------------------------------------------------------
    def _connect(self) -> None:
        if self.handshake:
            self._handshake()
        self._fw_type = self._transact(p.firmware_type(), "firmware type")[1:2]
        lens_serial = self._transact(p.lens_serial(), "lens serial")[1:9].decode("ascii", "replace").strip()
        version = p.decode_firmware_version(self._transact(p.firmware_version(), "firmware version"))
        self._imax_ma = p.decode_i16(self._transact(p.max_current(), "maximum current"), 3) / 100
        upper = p.decode_i16(self._transact(p.upper_current_limit(), "upper current limit"), 3)
        lower = p.decode_i16(self._transact(p.lower_current_limit(), "lower current limit"), 3)
        reply = self._transact(p.temperature_limits(*self.temperature_limits_c), "temperature limits")
        _, fp_min, fp_max = p.decode_fp_range(reply, self._fw_type)
        self._identity = FocusIdentity("Optotune", "Lens Driver 4", lens_serial,
                                       f"type {self._fw_type.decode('ascii', 'replace')} {version}")
        self._capabilities = FocusCapabilities(
            position_unit="mA",
            position_range=(p.raw_to_current(lower, self._imax_ma), p.raw_to_current(upper, self._imax_ma)),
            focal_power_range_dpt=(fp_min, fp_max),
            waveforms=frozenset(_WAVEFORM_MODES),
            frequency_range_hz=None,      # not documented by Optotune (hardware-protocols.md §11)
            has_sync_output=False,
        )

    def _handshake(self) -> None:
        port = self._require()
        try:
            port.reset_input_buffer()
            port.write(p.HANDSHAKE)
            # Replies to a previous session's last commands may still be in flight: skip them. Reading up
            # to a terminator is safe here only because the handshake reply is plain ASCII without CRC.
            reply = port.read_until(p.HANDSHAKE_REPLY, 64)
        except (SerialException, OSError) as exc:
            self._fail(f"the link failed during the handshake ({exc})", "replug the device and reconnect")
        if reply.endswith(p.HANDSHAKE_REPLY) and reply != p.HANDSHAKE_REPLY:
            log.warning("%s: discarded stale bytes before the handshake reply: %s", self.port, reply[:-7].hex(" "))
        elif reply != p.HANDSHAKE_REPLY:
            what = "no answer" if not reply else f"answer {reply!r}"
            self._fail(f"{what} to the Start handshake within {self.timeout_s} s",
                       f"is this an Optotune Lens Driver 4? {_HINT_LINK}")

    def _release(self) -> None:
        super()._release()
        self._mode = None

    def _before_fail(self) -> None:
        """Send the lens to its safe state as far as the link allows before the error is raised."""
        self._safe_state_best_effort()
        self._mode = None

    def _safe_state_best_effort(self) -> None:
        """Write zero current and DC mode without waiting for anything: the link may be half dead."""
        port = self._serial
        if port is None:
            return
        try:
            for request in (p.set_current(0), p.set_mode(p.MODE_CURRENT), p.set_current(0)):
                port.write(request.data)
        except (SerialException, OSError):
            pass

    def _transact(self, request: p.Request, what: str) -> bytes:
        """Send one request and return its checked reply payload (b"" for a set command)."""
        port = self._require()
        try:
            waiting = port.in_waiting
            if waiting:
                log.warning("%s: discarding %d stray bytes before %s: %s", self.port, waiting, what,
                            port.read(waiting).hex(" "))
            port.write(request.data)
            if not request.reply_len:
                return b""
            raw = port.read(len(p.NACK))
            if len(raw) == len(p.NACK) and raw != p.NACK:
                raw += port.read(request.reply_len + 4 - len(raw))
        except (SerialException, OSError) as exc:
            self._fail(f"the link failed while asking for {what} ({exc})", "replug the device and reconnect")
        if not raw:
            self._fail(f"no reply to {what} within {self.timeout_s} s", _HINT_LINK)
        if raw != p.NACK and len(raw) < request.reply_len + 4:
            self._fail(f"incomplete reply to {what} within {self.timeout_s} s ({raw.hex(' ')})", _HINT_LINK)
        try:
            return p.parse_reply(raw, request.reply_len, request.echo)
        except p.ProtocolError as exc:
            self._fail(f"bad reply to {what}: {exc}", "replug the USB cable; power-cycle the driver if it persists")
        raise AssertionError("unreachable")  # pragma: no cover - _fail always raises

    # -- identity ----------------------------------------------------------------------------------
    # -- control -----------------------------------------------------------------------------------
    def _set_mode(self, mode: int) -> bytes:
        payload = self._transact(p.set_mode(mode), f"mode {_MODE_NAMES[mode].value}")
        self._mode = mode
        return payload

    def _enter_focal_power_mode(self) -> None:
        if self._mode == p.MODE_FOCAL_POWER:
            return
        self._transact(p.temperature_limits(*self.temperature_limits_c), "temperature limits")
        status = self._set_mode(p.MODE_FOCAL_POWER)[3]
        if self._transact(p.read_mode(), "mode")[3] != p.MODE_FOCAL_POWER:
            self._fail(f"the driver refused focal-power mode (status 0x{status:02x})",
                       "check the lens temperature and the temperature limits")

    def _check_range(self, value: float, lo_hi: tuple[float, float] | None, what: str) -> None:
        """Refuse ``value`` outside ``lo_hi``, give or take float noise (a stepped plan's last set point, computed as
        low + k·step, may land an ulp beyond its high end, which is the same wire code)."""
        if lo_hi is not None and not within_range(value, lo_hi):
            raise ValueError(f"{what} {value:g} is outside the range {lo_hi[0]:g} … {lo_hi[1]:g} of the lens on "
                             f"{self.port}")

    def set_focal_power(self, dpt: float) -> None:
        self._check_range(dpt, self.capabilities.focal_power_range_dpt, "focal power (dpt)")
        self._enter_focal_power_mode()
        self._transact(p.set_focal_power(dpt, self._fw_type), "set focal power")

    def set_position(self, raw: float) -> None:
        """Hold a DC current of ``raw`` mA."""
        self._check_range(raw, self.capabilities.position_range, "current (mA)")
        if self._mode != p.MODE_CURRENT:
            self._set_mode(p.MODE_CURRENT)
        self._transact(p.set_current(p.current_to_raw(raw, self._imax_ma)), "set current")

    def _current_code_for(self, dpt: float) -> int:
        """The current code the firmware drives for ``dpt`` at the present lens temperature.

        The generator swings in current, and the current→dioptre curve drifts with temperature; the
        firmware's focal-power mode knows that curve, so it is asked rather than modelled here.
        """
        self._enter_focal_power_mode()
        self._transact(p.set_focal_power(dpt, self._fw_type), "set focal power")
        return p.decode_i16(self._transact(p.get_current(), "current"), 1)

    def start_sweep(self, waveform: Waveform, frequency_hz: float, low: float, high: float,
                    unit: Unit = "dpt") -> None:
        """Run the internal generator between ``low`` and ``high``; phase 0 is about when this returns.

        The LD4 has no sync output, so the sweep's phase in camera time must come from elsewhere
        (hardware-protocols.md §1.2). In dioptres, the limits are converted to currents once, at the
        present temperature; a temperature change later shifts the swing.
        """
        if waveform not in _WAVEFORM_MODES:
            raise ValueError(f"the Lens Driver 4 has no {waveform} generator")
        if not low < high:
            raise ValueError(f"sweep low {low:g} must be below high {high:g}")
        millihertz = round(frequency_hz * 1000)
        if not 1 <= millihertz <= 0xFFFFFFFF:
            raise ValueError(f"sweep frequency {frequency_hz:g} Hz is outside what the LD4 can encode "
                             f"(0.001 … {0xFFFFFFFF / 1000:.3f} Hz, in 1 mHz steps)")
        caps = self.capabilities
        if unit == "dpt":
            self._check_range(low, caps.focal_power_range_dpt, "sweep low (dpt)")
            self._check_range(high, caps.focal_power_range_dpt, "sweep high (dpt)")
            lo_code, hi_code = self._current_code_for(low), self._current_code_for(high)
        elif unit == "raw":
            self._check_range(low, caps.position_range, "sweep low (mA)")
            self._check_range(high, caps.position_range, "sweep high (mA)")
            lo_code, hi_code = (p.current_to_raw(v, self._imax_ma) for v in (low, high))
        else:
            raise ValueError(f"unit must be 'dpt' or 'raw', not {unit!r}")
        self._set_mode(_WAVEFORM_MODES[waveform])
        self._transact(p.generator_upper(hi_code), "generator upper swing")
        self._transact(p.generator_lower(lo_code), "generator lower swing")
        self._transact(p.generator_frequency(millihertz), "generator frequency")

    def stop_sweep(self) -> None:
        self.safe_state()

    def safe_state(self) -> None:
        """Zero current, then DC mode (confirmed by the device), then zero current again.

        Zero first so that leaving focal-power or generator mode never lands on a stale DC set point;
        again after the mode change in case the firmware only takes ``Aw`` in DC mode.
        """
        self._transact(p.set_current(0), "set current")
        self._set_mode(p.MODE_CURRENT)
        self._transact(p.set_current(0), "set current")

    # -- readings ----------------------------------------------------------------------------------
    def status(self) -> FocusStatus:
        mode = self._transact(p.read_mode(), "mode")[3]
        current = p.raw_to_current(p.decode_i16(self._transact(p.get_current(), "current"), 1), self._imax_ma)
        fp = None
        if mode == p.MODE_FOCAL_POWER:
            fp = p.decode_focal_power(p.decode_i16(self._transact(p.get_focal_power(), "focal power"), 2),
                                      self._fw_type)
        return FocusStatus(_MODE_NAMES.get(mode, FocusMode.OTHER), current, fp, self.temperature_c())

    def temperature_c(self) -> float:
        return p.decode_temperature(self._transact(p.temperature(), "temperature"))
