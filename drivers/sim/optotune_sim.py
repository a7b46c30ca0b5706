"""A simulated Optotune Lens Driver 4 with a liquid lens attached, speaking the real wire protocol.

The simulator is a byte-level state machine (docs/hardware-protocols.md §9.2): it accumulates what the
host writes, recognises frames by the documented request lengths and their CRC, and answers exactly as
the device would, including the unsolicited ``N\\r\\n`` after a bad CRC. It shares only the CRC and the
documented request lengths with :mod:`drivers.optotune.protocol`; replies are built and focal powers
encoded here, independently, so a driver bug cannot hide behind a shared helper.

Time comes from an injectable clock. With :class:`VirtualClock` nothing sleeps: a host read that
waits for a reply advances the clock to the moment the reply arrives (USB latency and jitter
included), and a timeout advances it by the timeout. The optical model is evaluated lazily up to the
clock's present: the drive current (DC, generator waveform, or the current the firmware computes for a
focal-power set point) goes through a static current→dioptre map with a temperature offset, then a
first-order lag and a 150 Hz resonance, which gives the lag and the ringing after turnarounds that
focal-sweep calibration has to measure.

Two transports reach it. In process: ``serial.serial_for_url("optosim://NAME?fault=bad_crc")``
(registered by importing :mod:`drivers.sim`); the simulator behind NAME is kept in a registry so tests
can inspect it (:func:`get_simulator`). Out of process: :func:`serve_pty` serves a raw-mode pty from a
thread in real time; stop it with ``server.stop()`` or by leaving its ``with`` block.
"""

from __future__ import annotations

import math
import struct
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from serial.serialutil import SerialException

from drivers.optotune.protocol import (
    HANDSHAKE,
    HANDSHAKE_REPLY,
    NACK,
    REQUEST_LENGTHS,
    TERMINATOR,
    crc16_arc,
)
from drivers.sim.clock import Clock, MonotonicClock, VirtualClock
from drivers.sim.link import PtyServer, SimulatedSerial, TimedLink

# -- clocks ---------------------------------------------------------------------------------------


# -- the lens -------------------------------------------------------------------------------------


@dataclass
class LensModel:
    """Optics of the simulated lens. Defaults are plausible for an EL-16-40-TC "5D" on an LD4, not measured.

    The static map is linear in current (≈ −2 … +3 dpt over ±Imax) plus a temperature offset; the
    dynamics are a first-order lag followed by a second-order resonance (§2.6: ≈15 ms transient,
    150 Hz resonance, 2.5–5 ms rise). Temperature coefficient and hysteresis are unverified; hysteresis
    is not modelled.
    """

    imax_ma: float = 292.84
    dpt_at_zero: float = 0.5
    dpt_per_ma: float = 2.5 / 292.84
    temp_coeff_dpt_per_c: float = -0.01
    ref_temp_c: float = 30.0
    lag_s: float = 1.5e-3
    resonance_hz: float = 150.0
    damping: float = 0.4

    def static_dpt(self, current_ma: float, temp_c: float) -> float:
        return self.dpt_at_zero + self.dpt_per_ma * current_ma + self.temp_coeff_dpt_per_c * (temp_c - self.ref_temp_c)

    def current_for(self, dpt: float, temp_c: float) -> float:
        """The current that gives ``dpt`` at ``temp_c`` (what the firmware does in focal-power mode)."""
        return (dpt - self.static_dpt(0.0, temp_c)) / self.dpt_per_ma

    @property
    def ramp_lag_s(self) -> float:
        """Steady-state delay of the focal power behind a ramp of the drive: τ + 2ζ/ω."""
        return self.lag_s + 2 * self.damping / (2 * math.pi * self.resonance_hz)


def _zoh(lens: LensModel, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact zero-order-hold discretisation of (lag → resonance) for one step of ``dt`` seconds."""
    w = 2 * math.pi * lens.resonance_hz
    a = np.zeros((4, 4))
    a[0, 0], a[0, 3] = -1 / lens.lag_s, 1 / lens.lag_s   # y' = (u − y)/τ ; column 3 carries u
    a[1, 2] = 1.0                                          # x' = v
    a[2, 0], a[2, 1], a[2, 2] = w * w, -w * w, -2 * lens.damping * w
    m = a * dt
    out, term = np.eye(4), np.eye(4)
    for k in range(1, 30):                                  # ‖m‖ < 0.1 for the defaults: converges fast
        term = term @ m / k
        out = out + term
    return out[:3, :3], out[:3, 3]


# -- faults ---------------------------------------------------------------------------------------


@dataclass
class Faults:
    """Fault switches; flip them at any time (``sim.faults.silence = True``)."""

    bad_crc: bool = False     # replies carry a corrupted CRC
    silence: bool = False     # replies are lost; commands still execute (a half-dead link)
    disconnect: bool = False  # the device is gone: the transport raises on every access
    garble_rx: bool = False   # one byte of every incoming write is flipped → the device answers N

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return ("bad_crc", "silence", "disconnect", "garble_rx")


@dataclass(frozen=True)
class LensDrive:
    """What the driver is making the lens do, as static focal power (before the lens' lag and resonance).

    ``waveform`` "dc" holds ``lower_dpt`` (= ``upper_dpt``): DC current or a focal-power set point. Generator modes
    swing between the static powers of the lower and upper current codes (after the soft limits) at
    ``frequency_hz``; sine and triangle are at the lower swing at phase 0, the rectangle at the upper one for the
    first half period. ``phase_s`` is the device time elapsed since phase 0 when this state was published, so a
    listener on another clock places phase 0 at (its now − ``phase_s``). ``phase_origin_s`` is phase 0 on the
    device clock: a new state with the same origin (a swing or temperature change) continues the generator's
    phase, and a listener keeps its own placement of phase 0 rather than re-deriving it from clocks that need not
    run at the same pace. ``lens`` carries the dynamics.
    """

    waveform: Literal["dc", "sine", "triangle", "rectangle"]
    lower_dpt: float
    upper_dpt: float
    frequency_hz: float
    phase_s: float
    lens: LensModel
    phase_origin_s: float | None = None


DriveListener = Callable[[LensDrive], None]


@dataclass(frozen=True)
class ReceivedFrame:
    """A request as the device executed it: device time and the command bytes without CRC."""

    t: float
    command: bytes


# -- the device -----------------------------------------------------------------------------------

def _i16(cmd: bytes, offset: int) -> int:
    return struct.unpack_from(">h", cmd, offset)[0]


_MODE_BY_LETTER = {b"D": 1, b"S": 2, b"T": 3, b"Q": 4, b"C": 5}
_LETTER_BY_MODE = {v: k for k, v in _MODE_BY_LETTER.items()}
_FLAG_NO_TEMP_LIMITS = 0x20
_STEP_S = 50e-6                 # optical model time step
_MAX_CATCH_UP_S = 0.25          # transients are gone long before this: skip longer idle stretches
_TEMP_TICK_S = 0.1
_FRAME_TIMEOUT_S = 0.05         # a partial frame older than this is discarded, like a device-side timeout


class LensDriver4Sim(TimedLink):
    """The device: feed it host bytes, collect its reply bytes once they have crossed the simulated USB."""

    def __init__(self, *, clock: Clock | None = None, lens: LensModel | None = None, seed: int = 0,
                 latency_s: float = 1.0e-3, jitter_s: float = 1.0e-3, fw_type: bytes = b"A",
                 serial_number: str = "LF123456", firmware_version: tuple[int, int, int, int] = (1, 9, 3021, 0),
                 temperature_c: float = 30.0, temp_walk_c: float = 0.005,
                 unknown: Literal["silence", "nack"] = "silence", resync: Literal["flush", "byte"] = "flush") -> None:
        self._init_link(clock, seed, latency_s, jitter_s)
        self.lens = lens or LensModel()
        self.faults = Faults()
        self.fw_type, self.serial_number, self.firmware_version = fw_type, serial_number, firmware_version
        self.unknown, self.resync = unknown, resync
        self.received: list[ReceivedFrame] = []
        self.nacks_sent = 0
        # device state
        self.mode = 1
        self.dc_raw = 0
        self.imax_centi_ma = round(self.lens.imax_ma * 100)
        self.upper_limit_raw, self.lower_limit_raw = 4095, -4095
        self.gen_upper_raw, self.gen_lower_raw, self.gen_mhz, self.gen_t0 = 0, 0, 1000, 0.0
        self.temp_limits_c: tuple[float, float] | None = None
        self.fp_raw = self._encode_fp(0.0)
        # link state
        self._rx = bytearray()
        self._rx_t = 0.0
        # optical and thermal state
        t0 = self.clock.now()
        self._t_model = t0
        self._y = [self.lens.static_dpt(0.0, temperature_c)] * 2 + [0.0]   # lag output, focal power, its rate
        self._ad, self._bd = _zoh(self.lens, _STEP_S)
        self.temperature_c = temperature_c
        self.ambient_c = temperature_c
        self.temp_walk_c = temp_walk_c
        self._t_temp = t0
        self._listeners: list[DriveListener] = []
        self._published: tuple | None = None

    # -- drive listeners ----------------------------------------------------------------------------
    def add_listener(self, listener: DriveListener) -> None:
        """Call ``listener(LensDrive)`` now and after every command that changes the drive (simulated rigs follow
        the lens this way). It runs on the thread that fed the command, under the simulator's lock: keep it short
        and do not call back into the simulator. Temperature drift is not published."""
        with self.lock:
            self._listeners.append(listener)
            listener(self.drive_state(self.clock.now()))

    def remove_listener(self, listener: DriveListener) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def deliver_pending(self) -> None:
        """Let every host byte already written reach the device (listeners then see the commands' effect).

        Set commands get no reply, so with a :class:`VirtualClock` nothing would make their latency elapse until
        the host's next read; a simulated rig following the lens calls this before each camera step, standing in
        for the time that passes while a camera streams. A real-time clock only delivers what is due by now.
        """
        with self.lock:
            if isinstance(self.clock, VirtualClock) and self._inbox:
                self.clock.sleep_until(self._inbox[-1][0])
            self._pump()

    def drive_state(self, t: float) -> LensDrive:
        """The drive at device time ``t`` (see :class:`LensDrive`)."""
        imax, temp = self.lens.imax_ma, self.temperature_c
        if self.mode in (2, 3, 4):
            lower, upper = (self.lens.static_dpt(self._clamp_raw(raw) * imax / 4095, temp)
                            for raw in (self.gen_lower_raw, self.gen_upper_raw))
            waveform = {2: "sine", 3: "triangle", 4: "rectangle"}[self.mode]
            return LensDrive(waveform, lower, upper, self.gen_mhz / 1000.0, t - self.gen_t0, self.lens, self.gen_t0)
        held = self.lens.static_dpt(self._drive_ma(t), temp)
        return LensDrive("dc", held, held, 0.0, 0.0, self.lens)

    def _publish(self, t: float) -> None:
        """Tell the listeners if a command changed the drive (mode, current codes, soft limits, set point,
        generator frequency or phase origin); temperature drift alone publishes nothing.

        The key is the commanded codes, not the powers they give: those move with the lens temperature, whose
        random walk advances with every host read, so a key of rounded powers flipped now and then between two
        polls — and a listener's lens path (a simulated rig's) changed at a moment only thread timing decided.
        """
        if not self._listeners:
            return
        key: tuple = (self.mode, self.upper_limit_raw, self.lower_limit_raw)
        if self.mode in (2, 3, 4):
            key += (self.gen_lower_raw, self.gen_upper_raw, self.gen_mhz, self.gen_t0)
        elif self.mode == 5:
            key += (self.fp_raw,)
        else:
            key += (self.dc_raw,)
        if key == self._published:
            return
        self._published = key
        state = self.drive_state(t)
        for listener in list(self._listeners):
            listener(state)

    # -- link ---------------------------------------------------------------------------------------
    def _inbound(self, data: bytes) -> bytes:
        if self.faults.garble_rx and data:
            return data[:-1] + bytes([data[-1] ^ 0x5A])
        return data

    def commands(self) -> list[bytes]:
        """The commands executed so far, without CRC (the handshake appears as ``b"Start"``)."""
        with self.lock:
            return [f.command for f in self.received]

    def _receive(self, t: float, data: bytes) -> None:
        if self._rx and t - self._rx_t > _FRAME_TIMEOUT_S:
            self._rx.clear()
        self._rx += data
        self._rx_t = t
        self._parse(t)

    def _reply(self, t: float, payload: bytes) -> None:
        crc = crc16_arc(payload)
        if self.faults.bad_crc:
            crc ^= 0x0101
        self._send(t, payload + crc.to_bytes(2, "little") + TERMINATOR)

    def _parse(self, t: float) -> None:
        buf = self._rx
        while buf:
            if buf.startswith(HANDSHAKE):
                del buf[:len(HANDSHAKE)]
                self._record(t, HANDSHAKE)
                self.dc_raw = 0
                self._publish(t)
                self._send(t, HANDSHAKE_REPLY)
                continue
            head = bytes(buf)
            lengths = sorted(n for key, ns in REQUEST_LENGTHS.items() if head.startswith(key) for n in ns)
            partial = HANDSHAKE.startswith(head) or any(
                key.startswith(head) and len(key) > len(head) for key in REQUEST_LENGTHS)
            if not lengths:
                if partial:
                    return
                buf.clear()                       # unknown command of unknown length: drop it all
                if self.unknown == "nack":
                    self._nack(t)
                continue
            for n in lengths:
                if len(buf) < n + 2:
                    return                        # wait for the rest of the frame
                if crc16_arc(bytes(buf[:n + 2])) == 0:
                    command = bytes(buf[:n])
                    del buf[:n + 2]
                    self._record(t, command)
                    self._execute(t, command)
                    self._publish(t)
                    break
            else:
                self._nack(t)
                if self.resync == "byte":
                    del buf[:1]
                else:
                    buf.clear()

    def _nack(self, t: float) -> None:
        self.nacks_sent += 1
        self._send(t, NACK)

    def _record(self, t: float, command: bytes) -> None:
        self.received.append(ReceivedFrame(t, command))

    # -- commands -----------------------------------------------------------------------------------
    def _execute(self, t: float, cmd: bytes) -> None:
        self._advance(t)
        if cmd == b"H":
            self._reply(t, b"H" + self.fw_type)
        elif cmd == b"F":
            self._reply(t, b"F\x01")
        elif cmd == b"J":
            self._reply(t, b"J\x00\x04\x00")
        elif cmd == b"X":
            self._reply(t, b"X" + self.serial_number.encode("ascii")[:8].ljust(8))
        elif cmd in (b"V", b"V\x00"):
            self._reply(t, b"V" + struct.pack(">BBHH", *self.firmware_version))
        elif cmd.startswith(b"IR"):
            self._reply(t, b"IR" + b"LD4SIM01")
        elif cmd.startswith(b"CrMA"):
            self._reply(t, b"CMA" + struct.pack(">h", self.imax_centi_ma))
        elif cmd[:4] in (b"CrUA", b"CwUA", b"CrLA", b"CwLA"):
            upper = cmd[2:3] == b"U"
            if cmd[1:2] == b"w":
                value = max(-4095, min(4095, _i16(cmd, 4)))
                if upper:
                    self.upper_limit_raw = value
                else:
                    self.lower_limit_raw = value
            value = self.upper_limit_raw if upper else self.lower_limit_raw
            self._reply(t, b"C" + cmd[2:4] + struct.pack(">h", value))
        elif cmd.startswith(b"Ar"):
            raw = round(self._drive_ma(t) / self.lens.imax_ma * 4095)
            self._reply(t, b"A" + struct.pack(">h", raw))
        elif cmd.startswith(b"Aw"):
            self.dc_raw = _i16(cmd, 2)
        elif cmd == b"MMA":
            self._reply(t, b"MMA" + bytes([self.mode]))
        elif cmd.startswith(b"Mw"):
            self._set_mode(t, cmd[2:3])
        elif cmd.startswith(b"PwUA"):
            self.gen_upper_raw = _i16(cmd, 4)
        elif cmd.startswith(b"PwLA"):
            self.gen_lower_raw = _i16(cmd, 4)
        elif cmd.startswith(b"PwFA"):
            self.gen_mhz = struct.unpack_from(">I", cmd, 4)[0]
            self.gen_t0 = t
        elif cmd.startswith(b"PwTA"):
            self.temp_limits_c = (_i16(cmd, 4) / 16, _i16(cmd, 6) / 16)
            self._reply(t, b"PT" + self._fp_range_bytes())
        elif cmd.startswith(b"PwDA"):
            self.fp_raw = _i16(cmd, 4)
        elif cmd.startswith(b"PrDA"):
            self._reply(t, b"PD" + struct.pack(">h", self.fp_raw))
        elif cmd == b"TCA":
            self._reply(t, b"TCA" + struct.pack(">h", round(self.temperature_c * 16)))

    def _set_mode(self, t: float, letter: bytes) -> None:
        if letter == b"C":
            if self.temp_limits_c is None:        # firmware refuses focal-power mode without limits (§2.5)
                self._reply(t, b"MCA" + bytes([_FLAG_NO_TEMP_LIMITS]) + b"\x00\x00\x00\x00")
                return
            self.mode = 5
            self._reply(t, b"MCA" + self._fp_range_bytes())
            return
        self.mode = _MODE_BY_LETTER[letter]
        self.gen_t0 = t
        self._reply(t, b"M" + letter + b"A")

    def _fp_range_bytes(self) -> bytes:
        lo_t, hi_t = sorted(self.temp_limits_c or (self.temperature_c, self.temperature_c))
        i_hi = self.upper_limit_raw * self.lens.imax_ma / 4095
        i_lo = self.lower_limit_raw * self.lens.imax_ma / 4095
        max_fp = min(self.lens.static_dpt(i_hi, temp) for temp in (lo_t, hi_t))
        min_fp = max(self.lens.static_dpt(i_lo, temp) for temp in (lo_t, hi_t))
        return struct.pack(">Bhh", 0, self._encode_fp(max_fp), self._encode_fp(min_fp))

    def _encode_fp(self, dpt: float) -> int:
        return round((dpt + 5.0) * 200) if self.fw_type == b"A" else round(dpt * 200)

    @property
    def focal_power_setpoint_dpt(self) -> float:
        return self.fp_raw / 200 - (5.0 if self.fw_type == b"A" else 0.0)

    # -- optics -------------------------------------------------------------------------------------
    def _clamp_raw(self, raw: float) -> float:
        return max(self.lower_limit_raw, min(self.upper_limit_raw, raw))

    def _drive_ma(self, t: float) -> float:
        """The output current at device time ``t``, after soft limits."""
        imax = self.lens.imax_ma
        if self.mode == 1:
            raw = self.dc_raw
        elif self.mode == 5:
            raw = self.lens.current_for(self.focal_power_setpoint_dpt, self.temperature_c) / imax * 4095
        else:
            lo, hi = self.gen_lower_raw, self.gen_upper_raw
            phase = ((t - self.gen_t0) * self.gen_mhz / 1000.0) % 1.0
            if self.mode == 2:
                shape = (1 - math.cos(2 * math.pi * phase)) / 2          # starts at the lower swing
            elif self.mode == 3:
                shape = 2 * phase if phase < 0.5 else 2 - 2 * phase
            else:
                shape = 1.0 if phase < 0.5 else 0.0
            raw = lo + (hi - lo) * shape
        return self._clamp_raw(raw) * imax / 4095

    def _advance(self, t: float) -> None:
        """Run the thermal and optical model up to device time ``t``."""
        if t - self._t_temp > 1000 * _TEMP_TICK_S:
            self._t_temp = t - 1000 * _TEMP_TICK_S
        while self._t_temp + _TEMP_TICK_S <= t:
            self._t_temp += _TEMP_TICK_S
            pull = (self.ambient_c - self.temperature_c) * 0.05
            self.temperature_c += pull + self._rng.gauss(0.0, self.temp_walk_c)
        if t - self._t_model > _MAX_CATCH_UP_S:
            self._t_model = t - _MAX_CATCH_UP_S
        (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = self._ad.tolist()
        b0, b1, b2 = self._bd.tolist()
        y0, y1, y2 = self._y
        temp = self.temperature_c
        while self._t_model + _STEP_S <= t:
            u = self.lens.static_dpt(self._drive_ma(self._t_model), temp)
            y0, y1, y2 = (a00 * y0 + a01 * y1 + a02 * y2 + b0 * u, a10 * y0 + a11 * y1 + a12 * y2 + b1 * u,
                          a20 * y0 + a21 * y1 + a22 * y2 + b2 * u)
            self._t_model += _STEP_S
        self._y = [y0, y1, y2]

    def focal_power_dpt(self) -> float:
        """The lens' optical power now (what a focimeter would read), on a 50 µs grid."""
        with self.lock:
            self._pump()
            self._advance(self.clock.now())
            return self._y[1]

    def drive_current_ma(self) -> float:
        with self.lock:
            self._pump()
            now = self.clock.now()
            self._advance(now)
            return self._drive_ma(now)


# -- registry and pyserial URL handler ---------------------------------------------------------

_SIMULATORS: dict[str, LensDriver4Sim] = {}
_SIM_LOCK = threading.Lock()


def register_simulator(name: str, sim: LensDriver4Sim) -> LensDriver4Sim:
    """Make ``optosim://NAME`` reach ``sim`` (replacing any simulator of that name)."""
    with _SIM_LOCK:
        _SIMULATORS[name] = sim
    return sim


def get_simulator(name: str = "") -> LensDriver4Sim:
    """The simulator behind ``optosim://NAME``, created with a virtual clock on first use."""
    with _SIM_LOCK:
        if name not in _SIMULATORS:
            _SIMULATORS[name] = LensDriver4Sim()
        return _SIMULATORS[name]


def forget_simulators() -> None:
    with _SIM_LOCK:
        _SIMULATORS.clear()


def _from_url(url: str) -> LensDriver4Sim:
    """``optosim://NAME?fault=bad_crc,silence&latency_ms=2&jitter_ms=1&seed=3``; the query applies to NAME."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "optosim":
        raise SerialException(f"{url}: not an optosim:// URL")
    name = parts.netloc + parts.path
    query = urllib.parse.parse_qs(parts.query)
    known = {"fault", "latency_ms", "jitter_ms", "seed"}
    if set(query) - known:
        raise SerialException(f"{url}: unknown option(s) {sorted(set(query) - known)}; known: {sorted(known)}")
    with _SIM_LOCK:
        if name not in _SIMULATORS or "seed" in query:
            seed = int(query.get("seed", ["0"])[0])
            _SIMULATORS[name] = LensDriver4Sim(seed=seed)
        sim = _SIMULATORS[name]
    if "latency_ms" in query:
        sim.latency_s = float(query["latency_ms"][0]) / 1000
    if "jitter_ms" in query:
        sim.jitter_s = float(query["jitter_ms"][0]) / 1000
    for fault in ",".join(query.get("fault", [])).split(","):
        if fault and fault not in Faults.names():
            raise SerialException(f"{url}: unknown fault {fault!r}; known: {', '.join(Faults.names())}")
        if fault:
            setattr(sim.faults, fault, True)
    return sim


class Serial(SimulatedSerial):
    """pyserial port for ``optosim://`` URLs."""

    resolve = staticmethod(_from_url)


# -- pty server -------------------------------------------------------------------------------------


def serve_pty(sim: LensDriver4Sim | None = None) -> PtyServer:
    """Serve ``sim`` (default: a fresh real-time simulator) on a new pty; open ``server.path`` as the port."""
    return PtyServer(sim if sim is not None else LensDriver4Sim(clock=MonotonicClock()))
