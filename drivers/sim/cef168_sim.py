"""A simulated Pinefeat cef168 lens controller with a Canon EF lens attached, speaking the real ASCII protocol.

The protocol (docs/hardware-protocols.md §3, ``pinefeat/cef168: doc/serial.md``) is one command per
line, ended by CR, LF or both, case-insensitive; replies are ASCII lines ended by ``\\r\\n``. This
simulator parses the bytes the host writes and answers line by line as the board would. It shares
nothing with :mod:`drivers.pinefeat.driver`, so a driver bug cannot hide behind a shared helper.

The lens is a motor with a position counter (the "focus steps" the board reports) and a focus group
behind a gear train with backlash: on a reversal the counter moves through the slack before the
focus group does (:meth:`Cef168Sim.focus_group_steps` is the optical truth). A move takes a fixed
start/stop overhead plus a traverse time proportional to its distance, which depends on the speed
setting ``s1``–``s4``; while it lasts ``e`` answers ``y``. Until the lens has been calibrated (``c``,
stored in the board's EEPROM) reading or setting the focus answers ``er``; with no lens mounted every
lens command answers ``nc``.

Behaviour the public manual does not settle, chosen here and flagged so it can be checked on hardware:
``ok`` to a move or to ``c`` is sent at once (the motor then runs, busy); a move that arrives while
the motor runs starts from where the motor is; an absolute target outside the range is clamped; the
speed setting ``s4`` is the fastest; ``t`` reports the last completed move; ``f``/``p`` before
calibration answer ``er``; ``i``/``m`` work before calibration.

Time comes from an injectable clock (the Optotune simulator's :class:`VirtualClock` or
:class:`MonotonicClock`): with a virtual clock nothing sleeps, and a host read that waits for a reply
advances the clock to the moment the reply arrives. Transports: ``serial.serial_for_url("cefsim://NAME")``
in process (the simulator behind NAME is kept in a registry, :func:`get_cef_simulator`), or
:func:`serve_cef_pty` for a raw-mode pty served in real time.
"""

from __future__ import annotations

import math
import threading
import urllib.parse
from dataclasses import dataclass, field

from serial.serialutil import SerialException

from drivers.sim.clock import Clock, MonotonicClock
from drivers.sim.link import PtyServer, SimulatedSerial, TimedLink

_EOL = b"\r\n"
_BYTE_S = 10 / 115200                  # one 8N1 character at 115200 baud
_LINE_TIMEOUT_S = 1.0                  # a partial command older than this is dropped (a device-side timeout)
_MAX_LINE = 64                         # longer lines are junk: dropped and answered er


@dataclass
class EFLens:
    """The mounted lens. Defaults are plausible for a ring-USM EF prime, not measured.

    ``traverse_s`` is the time for a full minimum→infinity traverse at each speed setting (tens to
    hundreds of ms, §3); ``overhead_s`` is added to every move (motor start, stop and the board's
    confirmation). ``backlash_steps`` is the slack the counter crosses on a reversal before the
    focus group moves.
    """

    lens_id: int = 0x94
    focal_length_mm: tuple[int, int] = (100, 100)
    aperture: tuple[float, float] = (2.8, 32.0)
    focus_distance_m: tuple[float, float] = (0.31, 0.31)
    total_steps: int = 1500
    traverse_s: dict[int, float] = field(default_factory=lambda: {1: 0.64, 2: 0.32, 3: 0.16, 4: 0.08})
    overhead_s: float = 0.012
    backlash_steps: float = 6.0

    def info_lines(self) -> list[str]:
        """The ``h`` reply, in the layout of the manual's example."""
        f_lo, f_hi = self.focal_length_mm
        a_lo, a_hi = self.aperture
        d_lo, d_hi = self.focus_distance_m
        return [f"Lens ID: 0x{self.lens_id:02X}", f"Focal length: {f_lo}-{f_hi} mm", "Zoom: 1x",
                f"Aperture: f/{a_lo:.1f}({a_lo:.1f})-{a_hi:.1f}", f"Focus distance: {d_lo:.2f}-{d_hi:.2f} m"]


@dataclass
class CefFaults:
    """Fault switches; flip them at any time (``sim.faults.silence = True``)."""

    silence: bool = False     # replies are lost; commands still execute
    garbage: bool = False     # every reply line is replaced by line noise (a wrong baud rate, a bad ground)
    error: bool = False       # every command is answered er and not executed
    disconnect: bool = False  # the board is gone: the transport raises on every access

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return ("silence", "garbage", "error", "disconnect")


@dataclass(frozen=True)
class ReceivedCommand:
    """A command line as the board executed it: device time and the line without its terminator."""

    t: float
    line: str


@dataclass
class _Move:
    """One motor run: the counter goes linearly from ``start`` to ``target`` during [t_run, t_arrive].

    The board is busy from the command (``t0``) until ``t_end``: motor start before ``t_run``, stop
    and confirmation after ``t_arrive``.
    """

    t0: float
    t_run: float
    t_arrive: float
    t_end: float
    start: float
    target: float

    def position(self, t: float) -> float:
        if t <= self.t_run:
            return self.start
        if t >= self.t_arrive:
            return self.target
        return self.start + (self.target - self.start) * (t - self.t_run) / (self.t_arrive - self.t_run)


class Cef168Sim(TimedLink):
    """The board and lens: feed it host bytes, collect reply bytes once they have crossed the link."""

    byte_s = _BYTE_S

    def __init__(self, *, clock: Clock | None = None, lens: EFLens | None = None, lens_attached: bool = True,
                 calibrated: bool = False, speed: int = 4, seed: int = 0, latency_s: float = 1.0e-3,
                 jitter_s: float = 1.0e-3, serial_number: str = "PINEFEAT CEF1680000011",
                 firmware: str = "1.0") -> None:
        self._init_link(clock, seed, latency_s, jitter_s)
        self.lens = lens or EFLens()
        self.lens_attached = lens_attached
        self.calibrated = calibrated
        self.speed = speed
        self.serial_number, self.firmware = serial_number, firmware
        self.faults = CefFaults()
        self.received: list[ReceivedCommand] = []
        self.aperture_f = self.lens.aperture[0]
        # the counter starts somewhere in the middle, as after a power cycle with the lens left there
        t0 = self.clock.now()
        middle = self.lens.total_steps / 2
        self._move = _Move(t0, t0, t0, t0, middle, middle)
        self._last_move_ms = 0
        self._group = middle - self.lens.backlash_steps / 2    # focus group, behind the slack
        self._t_group = t0
        # link state
        self._rx = bytearray()
        self._rx_t = 0.0

    # -- link ---------------------------------------------------------------------------------------
    def commands(self) -> list[str]:
        """The command lines executed so far, as sent (case kept)."""
        with self.lock:
            return [c.line for c in self.received]

    def _receive(self, t: float, data: bytes) -> None:
        if self._rx and t - self._rx_t > _LINE_TIMEOUT_S:
            self._rx.clear()
        self._rx_t = t
        for byte in data:
            if byte in b"\r\n":
                if self._rx:
                    line = self._rx.decode("ascii", "replace")
                    self._rx.clear()
                    self._command(t, line)
            elif len(self._rx) < _MAX_LINE:
                self._rx.append(byte)
            else:
                self._rx.clear()
                self._reply(t, "er")

    def _reply(self, t: float, *lines: str) -> None:
        for line in lines:
            data = line.encode("ascii") + _EOL
            if self.faults.garbage:
                data = bytes(self._rng.choice(b"\x00\x7f\x80\xfe\xff?~#") for _ in data[:-2]) + _EOL
            self._send(t, data)

    # -- commands -----------------------------------------------------------------------------------
    def _command(self, t: float, line: str) -> None:
        self.received.append(ReceivedCommand(t, line))
        if self.faults.error:
            self._reply(t, "er")
            return
        cmd, arg = line[:1].lower(), line[1:].strip()
        if cmd == "n" and not arg:
            self._reply(t, self.serial_number)
        elif cmd == "v" and not arg:
            self._reply(t, self.firmware)
        elif cmd == "s":
            self._set_speed(t, arg)
        elif not cmd or cmd not in "hcldfpmiaet":
            self._reply(t, "er")
        elif not self.lens_attached:
            self._reply(t, "nc")
        else:
            self._lens_command(t, cmd, arg)

    def _set_speed(self, t: float, arg: str) -> None:
        if arg not in ("1", "2", "3", "4"):
            self._reply(t, "er")
            return
        self.speed = int(arg)
        self._reply(t, "ok")

    def _lens_command(self, t: float, cmd: str, arg: str) -> None:
        lens = self.lens
        if cmd == "h" and not arg:
            self._reply(t, *lens.info_lines())
        elif cmd == "l" and not arg:
            self._reply(t, str(lens.focal_length_mm[0]))
        elif cmd == "d" and not arg:
            self._reply(t, f"{lens.focus_distance_m[0]:.2f}-{lens.focus_distance_m[1]:.2f}")
        elif cmd == "e" and not arg:
            self._reply(t, "y" if self.busy(t) else "n")
        elif cmd == "t" and not arg:
            self._reply(t, str(self._last_completed_ms(t)))
        elif cmd == "c" and not arg:
            self._calibrate(t)
        elif cmd == "i" and not arg:
            self._start_move(t, lens.total_steps)
        elif cmd == "m" and not arg:
            self._start_move(t, 0)
        elif cmd == "a":
            self._aperture(t, arg)
        elif cmd in "fpm":
            self._focus(t, cmd, arg)
        else:
            self._reply(t, "er")

    def _focus(self, t: float, cmd: str, arg: str) -> None:
        if not self.calibrated:
            self._reply(t, "er")
            return
        if not arg and cmd in "fp":
            self._reply(t, str(round(self.motor_steps(t))))
            return
        if cmd == "p" or not _is_int(arg):
            self._reply(t, "er")
            return
        target = float(arg) + (self.motor_steps(t) if arg[0] in "+-" else 0.0)
        self._start_move(t, round(min(max(target, 0.0), self.lens.total_steps)))

    def _aperture(self, t: float, arg: str) -> None:
        lo, hi = self.lens.aperture
        if not arg:
            self._reply(t, f"{lo:.1f}-{hi:.1f}")
            return
        try:
            value = float(arg)
        except ValueError:
            self._reply(t, "er")
            return
        stops = math.log2(self.aperture_f) * 2
        f_number = 2 ** ((stops - value) / 2) if arg[0] in "+-" else value   # a+ opens: smaller f-number
        if not lo - 1e-9 <= f_number <= hi + 1e-9:
            self._reply(t, "er")
            return
        self.aperture_f = f_number
        self._reply(t, "ok")

    def _calibrate(self, t: float) -> None:
        """Drive to the minimum end stop, then traverse to infinity counting steps; ``ok`` at once."""
        lens = self.lens
        start = self.motor_steps(t)
        self._settle_group(t)
        to_min = lens.overhead_s + start / lens.total_steps * lens.traverse_s[self.speed]
        self._move = _Move(t, t, t + to_min, t + to_min, start, 0.0)
        t_min = t + to_min
        self._settle_group(t_min)
        full = lens.overhead_s + lens.traverse_s[self.speed]
        self._move = _Move(t_min, t_min, t_min + lens.traverse_s[self.speed], t_min + full, 0.0,
                           float(lens.total_steps))
        self._last_move_ms = round((to_min + full) * 1000)
        self.calibrated = True
        self._reply(t, "ok")

    # -- motion -------------------------------------------------------------------------------------
    def _start_move(self, t: float, target: float) -> None:
        start = self.motor_steps(t)
        self._settle_group(t)
        self._last_move_ms = self._last_completed_ms(t)
        run_s = abs(target - start) / self.lens.total_steps * self.lens.traverse_s[self.speed]
        t_run = t + self.lens.overhead_s / 2
        self._move = _Move(t, t_run, t_run + run_s, t + self.lens.overhead_s + run_s, start, target)
        self._reply(t, "ok")

    def _last_completed_ms(self, t: float) -> int:
        move = self._move
        if t >= move.t_end and move.t_end > move.t0:
            return round((move.t_end - move.t0) * 1000)
        return self._last_move_ms

    def busy(self, t: float | None = None) -> bool:
        """Whether the motor runs at device time ``t`` (default: now)."""
        return (self.clock.now() if t is None else t) < self._move.t_end

    def motor_steps(self, t: float | None = None) -> float:
        """The board's focus counter at device time ``t`` (default: now)."""
        with self.lock:
            return self._move.position(self.clock.now() if t is None else t)

    def _settle_group(self, t: float) -> None:
        """Bring the focus group up to ``t``; within one move the counter is monotone, so the end is enough."""
        half = self.lens.backlash_steps / 2
        motor = self._move.position(t)
        for m in (self._move.position(self._t_group), motor):
            self._group = min(max(self._group, m - half), m + half)
        self._t_group = t

    def focus_group_steps(self) -> float:
        """Where the focus group is now, in counter steps: the counter minus the slack taken up on a reversal."""
        with self.lock:
            self._pump()
            now = self.clock.now()
            self._settle_group(now)
            return self._group


def _is_int(text: str) -> bool:
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isdigit()


# -- registry and pyserial URL handler ---------------------------------------------------------------

_SIMULATORS: dict[str, Cef168Sim] = {}
_SIM_LOCK = threading.Lock()
_URL_OPTIONS = {"fault", "latency_ms", "jitter_ms", "seed", "calibrated", "lens"}


def register_cef_simulator(name: str, sim: Cef168Sim) -> Cef168Sim:
    """Make ``cefsim://NAME`` reach ``sim`` (replacing any simulator of that name)."""
    with _SIM_LOCK:
        _SIMULATORS[name] = sim
    return sim


def get_cef_simulator(name: str = "") -> Cef168Sim:
    """The simulator behind ``cefsim://NAME``, created with a virtual clock on first use."""
    with _SIM_LOCK:
        if name not in _SIMULATORS:
            _SIMULATORS[name] = Cef168Sim()
        return _SIMULATORS[name]


def forget_cef_simulators() -> None:
    with _SIM_LOCK:
        _SIMULATORS.clear()


def _flag(url: str, query: dict[str, list[str]], key: str) -> bool | None:
    if key not in query:
        return None
    value = query[key][0]
    if value not in ("0", "1"):
        raise SerialException(f"{url}: option {key} must be 0 or 1, not {value!r}")
    return value == "1"


def _from_url(url: str) -> Cef168Sim:
    """``cefsim://NAME?fault=silence&latency_ms=2&jitter_ms=1&seed=3&calibrated=1&lens=0``; the query applies to NAME.

    A new simulator (first use of NAME, or ``seed`` given) starts uncalibrated with a lens mounted;
    ``calibrated`` and ``lens`` (0/1) set those states on the simulator either way.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "cefsim":
        raise SerialException(f"{url}: not a cefsim:// URL")
    name = parts.netloc + parts.path
    query = urllib.parse.parse_qs(parts.query)
    if set(query) - _URL_OPTIONS:
        raise SerialException(f"{url}: unknown option(s) {sorted(set(query) - _URL_OPTIONS)}; "
                              f"known: {sorted(_URL_OPTIONS)}")
    with _SIM_LOCK:
        if name not in _SIMULATORS or "seed" in query:
            _SIMULATORS[name] = Cef168Sim(seed=int(query.get("seed", ["0"])[0]))
        sim = _SIMULATORS[name]
    if "latency_ms" in query:
        sim.latency_s = float(query["latency_ms"][0]) / 1000
    if "jitter_ms" in query:
        sim.jitter_s = float(query["jitter_ms"][0]) / 1000
    for key, attr in (("calibrated", "calibrated"), ("lens", "lens_attached")):
        value = _flag(url, query, key)
        if value is not None:
            setattr(sim, attr, value)
    for fault in ",".join(query.get("fault", [])).split(","):
        if fault and fault not in CefFaults.names():
            raise SerialException(f"{url}: unknown fault {fault!r}; known: {', '.join(CefFaults.names())}")
        if fault:
            setattr(sim.faults, fault, True)
    return sim


class Serial(SimulatedSerial):
    """pyserial port for ``cefsim://`` URLs."""

    resolve = staticmethod(_from_url)


def serve_cef_pty(sim: Cef168Sim | None = None) -> PtyServer:
    """Serve ``sim`` (default: a fresh real-time simulator) on a new raw pty; open ``server.path`` as the port.

    The shared :class:`~drivers.sim.link.PtyServer` needs only the link methods
    (``feed``, ``take_ready``, ``next_event_time``, ``faults.disconnect``) that this simulator shares.
    """
    return PtyServer(sim if sim is not None else Cef168Sim(clock=MonotonicClock()))
