"""A Canon EF lens on a Pinefeat cef168 controller, over a UART (115200 8N1) or any pyserial URL such as ``cefsim://``.

The cef168 speaks one ASCII command per line and answers each with a line ending in ``\\r\\n``
(docs/hardware-protocols.md §3, ``pinefeat/cef168: doc/serial.md``). Positions are the board's focus
steps, counted from the minimum focus distance after a calibration run (``c``, stored in the
board's EEPROM). A move is confirmed with ``ok`` and then runs for tens to hundreds of ms; the driver
polls the busy flag (``e``) until the motor stops, bounded by ``move_timeout_s``, so a call that
returns has a lens that is standing still.

The lens has no waveform generator and no sync output, so sweeps are host-timed: a background thread
steps a triangle between two positions and records, for each step, when it was commanded, when the
motor was seen to stop, where the board says it stopped and how long the board says the move took,
all on ``time.monotonic_ns``. Capture code reconstructs position over time from that record.

The safe state of a motorised lens is simply "not moving": it draws no holding current and keeps its
position unpowered. The protocol has no stop command, so reaching the safe state means ending the
sweep thread and waiting for the move in progress to finish.

Every failure, whether no answer, a garbled line, ``er``, ``nc`` or a broken link, becomes one
FocusError naming the port and what to try. Nothing blocks longer than a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from serial.serialutil import SerialException

from drivers.focus import (
    FocusCapabilities,
    FocusError,
    FocusIdentity,
    FocusMode,
    FocusStatus,
    Unit,
    Waveform,
)
from drivers.serial_focus import SerialFocusActuator

log = logging.getLogger(__name__)

BAUDRATE = 115200
_EOL = b"\r\n"
_MAX_REPLY = 128                 # the longest documented reply is the serial number (22 characters)
_INFO_GAP_S = 0.1                # the lens info is several lines: it has ended when none follows within this
_HINT_LINK = ("check the wiring (TX/RX crossed, 3.3 V levels, common ground), that the port runs 115200 8N1 "
              "and that no other program has it open")
_HINT_REPLUG = "replug the serial adapter and reconnect"
_HINT_LENS = "mount a Canon EF lens, clean its contacts and check the board's power"


@dataclass(frozen=True)
class SweepSample:
    """One stepped move of a host-timed sweep; times are ``time.monotonic_ns`` (or the injected clock).

    The counter goes from the previous sample's ``readback`` to this one's within
    [``t_command_ns``, ``t_settled_ns``]; the board measured the move itself as ``move_ms``.
    ``t_scheduled_ns`` is when the step was due: a later ``t_command_ns`` means the lens could not
    keep up with the requested frequency.
    """

    half: int           # 0, 1, 2, …: half 0 rises from wherever the lens was, odd halves fall
    direction: int      # +1 towards infinity (rising steps), −1 towards the minimum
    t_scheduled_ns: int
    t_command_ns: int
    t_settled_ns: int
    commanded: int      # focus steps
    readback: int       # focus steps the board reported after the move
    move_ms: int


class _DioptreTable:
    """A measured steps↔dioptre map, linearly interpolated; it must be strictly monotone to be inverted."""

    def __init__(self, pairs: Sequence[tuple[float, float]]) -> None:
        points = sorted((float(s), float(d)) for s, d in pairs)
        steps = np.array([s for s, _ in points])
        dpt = np.array([d for _, d in points])
        if len(points) < 2 or np.any(np.diff(steps) <= 0):
            raise ValueError("focal_power_table needs at least two (steps, dpt) pairs with distinct steps")
        if not (np.all(np.diff(dpt) > 0) or np.all(np.diff(dpt) < 0)):
            raise ValueError("focal_power_table must be strictly monotone in dioptres to be inverted")
        self.steps, self.dpt = steps, dpt
        self._by_dpt = np.argsort(dpt)

    def steps_for(self, dpt: float) -> float:
        return float(np.interp(dpt, self.dpt[self._by_dpt], self.steps[self._by_dpt]))

    def dpt_range(self, low_steps: float, high_steps: float) -> tuple[float, float]:
        """The dioptres reachable inside the position range (where table and range overlap)."""
        ends = np.interp(np.clip([self.steps[0], self.steps[-1]], low_steps, high_steps), self.steps, self.dpt)
        return float(ends.min()), float(ends.max())


class PinefeatCanonEF(SerialFocusActuator):
    """A Canon EF lens on a Pinefeat cef168 on ``port`` (``/dev/ttyAMA0``, ``/dev/ttyUSB0`` or a pyserial URL).

    ``calibrate``: None runs the board's calibration only when the lens has none, True always (after
    a lens swap the board may keep the previous lens's count), False never (connect then fails on an
    uncalibrated lens). ``speed`` (1–4) is sent on connect if given. ``focal_power_table`` maps focus
    steps to dioptres, measured for this lens; without it only raw steps can be set. ``clock_ns`` and
    ``sleep`` time busy polling and the sweep; replace them only to run against a simulator's clock.
    Connecting moves the lens to both ends to learn the range, then back to where it was.
    """

    device_name = "Pinefeat cef168"
    baudrate = BAUDRATE

    def __init__(self, port: str, *, timeout_s: float = 0.5, move_timeout_s: float = 3.0,
                 calibration_timeout_s: float = 20.0, calibrate: bool | None = None, speed: int | None = None,
                 focal_power_table: Sequence[tuple[float, float]] | None = None, poll_s: float = 0.005,
                 clock_ns: Callable[[], int] = time.monotonic_ns, sleep: Callable[[float], None] = time.sleep) -> None:
        if speed is not None and speed not in (1, 2, 3, 4):
            raise ValueError(f"speed must be 1, 2, 3 or 4, not {speed!r}")
        super().__init__(port, timeout_s=timeout_s)
        self.move_timeout_s = move_timeout_s
        self.calibration_timeout_s = calibration_timeout_s
        self.calibrate, self.speed, self.poll_s = calibrate, speed, poll_s
        self._table = _DioptreTable(focal_power_table) if focal_power_table is not None else None
        self._clock_ns, self._sleep = clock_ns, sleep
        self._io = threading.RLock()
        self._lens_info: dict[str, str] = {}
        self._mode = FocusMode.CURRENT
        self._setpoint_dpt: float | None = None
        self._sweep: threading.Thread | None = None
        self._stop = threading.Event()
        self._sweep_error: FocusError | None = None
        self._trajectory: list[SweepSample] = []

    # -- link -------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._require().reset_input_buffer()
        firmware = self._query("v", "firmware version")
        board = self._query("n", "serial number")
        self._lens_info = self._read_lens_info()
        if self.speed is not None:
            self._expect_ok(f"s{self.speed}", f"speed {self.speed}")
        uncalibrated = self._exchange("f", "focus position") == "er"
        if self.calibrate or uncalibrated:
            self._calibrate()
        start = self._read_position()
        low = self._move("m", "move to the minimum")[1]
        high = self._move("i", "move to infinity")[1]
        if not low < high:
            self._fail(f"the focus range {low} … {high} is empty", "recalibrate: connect with calibrate=True")
        self._move(f"f{start}", "return to the starting position")
        serial_number = board.removeprefix("PINEFEAT").strip()
        self._identity = FocusIdentity("Pinefeat", f"cef168 + Canon EF lens {self._lens_info.get('Lens ID', '?')}",
                                       serial_number, firmware)
        self._capabilities = FocusCapabilities(
            position_unit="steps",
            position_range=(float(low), float(high)),
            focal_power_range_dpt=self._table.dpt_range(low, high) if self._table else None,
            waveforms=frozenset(),        # no generator on the board: sweeps are host-timed steps
            frequency_range_hz=None,      # bounded by the lens's traverse time, not by the board
            has_sync_output=False,
        )

    def _calibrate(self) -> None:
        """The board traverses minimum → infinity counting steps (§3: once per lens; it keeps the count)."""
        if self.calibrate is False:
            self._fail("the lens is not calibrated (reading the focus answered er)",
                       "connect once with calibrate=True or None; the board stores the calibration in EEPROM")
        log.info("%s: calibrating the lens focus range", self.port)
        self._expect_ok("c", "calibration", timeout_s=self.calibration_timeout_s)
        self._wait_settled(self.calibration_timeout_s, "calibration")

    def _read_lens_info(self) -> dict[str, str]:
        """``h`` answers several ``Key: value`` lines; the count is not documented, so read until they stop."""
        lines = [self._check(self._exchange("h", "lens info"), "lens info")]
        port = self._require()
        with self._io:
            try:
                port.timeout = _INFO_GAP_S
                while raw := port.read_until(_EOL, _MAX_REPLY):
                    lines.append(self._decode(raw, "lens info", _INFO_GAP_S))
            except (SerialException, OSError) as exc:
                self._fail(f"the link failed while reading the lens info ({exc})", _HINT_REPLUG)
            finally:
                port.timeout = self.timeout_s
        info = {}
        for line in lines:
            key, sep, value = line.partition(":")
            if not sep:
                self._fail(f"garbled lens info line {line!r}", _HINT_LINK)
            info[key.strip()] = value.strip()
        return info

    # -- one command, one reply line --------------------------------------------------------------
    def _decode(self, raw: bytes, what: str, timeout_s: float) -> str:
        if not raw:
            self._fail(f"no answer to {what} within {timeout_s:g} s", _HINT_LINK)
        text = raw[:-len(_EOL)].decode("ascii", "replace") if raw.endswith(_EOL) else ""
        if not text or not text.isprintable() or "\ufffd" in text:
            self._fail(f"garbled reply to {what}: {raw!r}", _HINT_LINK)
        return text

    def _exchange(self, command: str, what: str, timeout_s: float | None = None) -> str:
        """Send ``command`` and return its reply line, undecided whether it is an error (``er``, ``nc``)."""
        port = self._require()
        with self._io:
            try:
                waiting = port.in_waiting
                if waiting:
                    log.warning("%s: discarding %d stray bytes before %s: %r", self.port, waiting, what,
                                port.read(waiting))
                port.write(command.encode("ascii") + _EOL)
                if timeout_s is not None:
                    port.timeout = timeout_s
                try:
                    raw = port.read_until(_EOL, _MAX_REPLY)
                finally:
                    port.timeout = self.timeout_s
            except (SerialException, OSError) as exc:
                self._fail(f"the link failed while asking for {what} ({exc})", _HINT_REPLUG)
        return self._decode(raw, what, self.timeout_s if timeout_s is None else timeout_s)

    def _check(self, reply: str, what: str) -> str:
        """The reply, unless the board refused (``er``) or has no lens (``nc``)."""
        if reply == "er":
            self._fail(f"the board refused {what} (er)", "check the value is inside the focus range and that "
                       "the lens is calibrated; update the board firmware if the command is unknown to it")
        if reply == "nc":
            self._fail(f"no lens attached (nc) when asking for {what}", _HINT_LENS)
        return reply

    def _query(self, command: str, what: str) -> str:
        return self._check(self._exchange(command, what), what)

    def _expect_ok(self, command: str, what: str, timeout_s: float | None = None) -> None:
        reply = self._check(self._exchange(command, what, timeout_s), what)
        if reply != "ok":
            self._fail(f"garbled reply to {what}: {reply!r} instead of ok", _HINT_LINK)

    def _int(self, command: str, what: str) -> int:
        reply = self._query(command, what)
        try:
            return int(reply)
        except ValueError:
            self._fail(f"garbled reply to {what}: {reply!r} is not a number", _HINT_LINK)
        raise AssertionError("unreachable")  # pragma: no cover - _fail always raises

    def _read_position(self) -> int:
        return self._int("f", "focus position")

    def _busy(self) -> bool:
        reply = self._query("e", "busy flag")
        if reply not in ("y", "n"):
            self._fail(f"garbled reply to busy flag: {reply!r} instead of y or n", _HINT_LINK)
        return reply == "y"

    def _wait_settled(self, timeout_s: float, what: str) -> int:
        """Poll the busy flag until the motor stops; returns the clock when it was seen stopped."""
        t0 = self._clock_ns()
        while self._busy():
            if self._clock_ns() - t0 > timeout_s * 1e9:
                self._fail(f"the motor was still running {timeout_s} s after {what}",
                           "check nothing blocks the focus ring and the lens's AF/MF switch is on AF; "
                           "raise move_timeout_s for slow speed settings")
            self._sleep(self.poll_s)
        return self._clock_ns()

    def _move(self, command: str, what: str) -> tuple[int, int, int]:
        """Run one move to its end: (clock when commanded, board position after it, clock when seen stopped)."""
        t_command = self._clock_ns()
        self._expect_ok(command, what, timeout_s=self.move_timeout_s)
        t_settled = self._wait_settled(self.move_timeout_s, what)
        return t_command, self._read_position(), t_settled

    # -- identity -----------------------------------------------------------------------------------
    @property
    def lens_info(self) -> dict[str, str]:
        """The lens's own description (``h``): lens ID, focal length, aperture and focus distance ranges."""
        self._require()
        return dict(self._lens_info)

    # -- control -------------------------------------------------------------------------------------
    def _check_range(self, value: float, lo_hi: tuple[float, float] | None, what: str) -> None:
        if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:
            raise ValueError(f"{what} {value:g} is outside the range {lo_hi[0]:g} … {lo_hi[1]:g} of the lens on "
                             f"{self.port}")

    def _require_idle(self) -> None:
        if self._sweep is not None and self._sweep.is_alive():
            raise RuntimeError(f"a sweep is running on {self.port}; call stop_sweep() first")

    def _need_table(self) -> _DioptreTable:
        if self._table is None:
            self._fail("focal power needs a dioptre calibration of this lens",
                       "pass focal_power_table=[(steps, dpt), …] measured on the rig, or use set_position(steps)")
        assert self._table is not None
        return self._table

    def set_position(self, raw: float) -> None:
        """Move to ``raw`` focus steps (rounded) and return once the motor has stopped."""
        self._require_idle()
        self._check_range(raw, self.capabilities.position_range, "focus position (steps)")
        steps = round(raw)
        self._move(f"f{steps}", f"move to {steps} steps")
        self._mode, self._setpoint_dpt = FocusMode.CURRENT, None

    def set_focal_power(self, dpt: float) -> None:
        """Move to the steps that the dioptre table gives for ``dpt``; raises FocusError without a table."""
        table = self._need_table()
        self._check_range(dpt, self.capabilities.focal_power_range_dpt, "focal power (dpt)")
        self.set_position(table.steps_for(dpt))
        self._mode, self._setpoint_dpt = FocusMode.FOCAL_POWER, dpt

    def start_sweep(self, waveform: Waveform, frequency_hz: float, low: float, high: float,
                    unit: Unit = "dpt", *, steps_per_half: int = 8, cycles: int | None = None) -> None:
        """Step a triangle between ``low`` and ``high`` from a background thread, recording every step.

        Each half has ``steps_per_half`` moves, due every 1 / (2 · frequency · steps_per_half) s; a
        lens slower than that runs late rather than skipping (see :class:`SweepSample`). In dioptres
        the steps are equal in dioptres, which is what equal-dioptre focal bins want. Half 0 starts
        with a move to ``low`` from wherever the lens is. ``cycles`` None runs until
        :meth:`stop_sweep`; otherwise the thread ends by itself after that many full periods.
        """
        if waveform is not Waveform.TRIANGLE:
            raise ValueError(f"the cef168 has no generator: only host-stepped triangle sweeps, not {waveform}")
        if not low < high:
            raise ValueError(f"sweep low {low:g} must be below high {high:g}")
        if frequency_hz <= 0 or steps_per_half < 1 or (cycles is not None and cycles < 1):
            raise ValueError("frequency_hz must be positive, steps_per_half and cycles at least 1")
        caps = self.capabilities
        if unit == "dpt":
            table = self._need_table()
            self._check_range(low, caps.focal_power_range_dpt, "sweep low (dpt)")
            self._check_range(high, caps.focal_power_range_dpt, "sweep high (dpt)")
            targets = [table.steps_for(d) for d in np.linspace(low, high, steps_per_half + 1)]
        elif unit == "raw":
            self._check_range(low, caps.position_range, "sweep low (steps)")
            self._check_range(high, caps.position_range, "sweep high (steps)")
            targets = list(np.linspace(low, high, steps_per_half + 1))
        else:
            raise ValueError(f"unit must be 'dpt' or 'raw', not {unit!r}")
        self.stop_sweep()
        self._stop.clear()
        self._sweep_error = None
        with self._io:
            self._trajectory = []
        step_ns = round(1e9 / (2 * frequency_hz * steps_per_half))
        self._sweep = threading.Thread(target=self._run_sweep, args=([round(t) for t in targets], step_ns, cycles),
                                       name=f"cef168 sweep {self.port}", daemon=True)
        self._mode, self._setpoint_dpt = FocusMode.CURRENT, None     # what it holds once the sweep ends
        self._sweep.start()

    def _run_sweep(self, targets: list[int], step_ns: int, cycles: int | None) -> None:
        t_due = self._clock_ns()
        half = 0
        try:
            while not self._stop.is_set() and (cycles is None or half < 2 * cycles):
                direction = 1 if half % 2 == 0 else -1
                # half 0 includes the approach to targets[0]; later halves start at the last turnaround
                steps = targets[1:] if direction > 0 else targets[-2::-1]
                for target in targets if half == 0 else steps:
                    self._pace(t_due)
                    if self._stop.is_set():
                        return
                    t_command, readback, t_settled = self._move(f"f{target}", f"sweep step to {target} steps")
                    move_ms = self._int("t", "last move time")
                    with self._io:
                        self._trajectory.append(SweepSample(half, direction, t_due, t_command, t_settled, target,
                                                            readback, move_ms))
                    t_due += step_ns
                half += 1
        except FocusError as exc:
            log.warning("%s", exc)
            self._sweep_error = exc

    def _pace(self, t_due: int) -> None:
        """Wait until a step is due, in slices short enough that a stop is noticed promptly."""
        while not self._stop.is_set() and (remaining := t_due - self._clock_ns()) > 0:
            self._sleep(min(self.poll_s, remaining / 1e9))

    def _end_sweep(self) -> None:
        """Ask the sweep thread to stop after the move in progress and wait for it (the move is bounded)."""
        self._stop.set()
        thread, self._sweep = self._sweep, None
        if thread is not None:
            thread.join(self.move_timeout_s + 4 * self.timeout_s + 1.0)
            if thread.is_alive():
                log.warning("%s: the sweep thread did not end in time", self.port)

    @property
    def trajectory(self) -> list[SweepSample]:
        """The samples of the current or last sweep, oldest first (a copy; the sweep keeps appending)."""
        with self._io:
            return list(self._trajectory)

    def wait_sweep(self, timeout_s: float) -> bool:
        """Wait (wall time) for a sweep started with ``cycles`` to end by itself; True if it has."""
        thread = self._sweep
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def stop_sweep(self) -> None:
        """End the sweep after its current step and wait for the motor; raises the error that ended it early."""
        self._end_sweep()
        error, self._sweep_error = self._sweep_error, None
        if error is not None:
            raise error
        self._wait_settled(self.move_timeout_s, "stopping")

    def safe_state(self) -> None:
        """Stop moving: end the sweep thread, then wait for any move in progress to finish.

        A motorised EF lens holds its position unpowered and draws no current at rest, so "not
        moving" is its whole safe state; the protocol has no stop command to cut a move short.
        """
        self._end_sweep()
        self._wait_settled(self.move_timeout_s, "stopping")

    # -- readings ------------------------------------------------------------------------------------
    def status(self) -> FocusStatus:
        mode = FocusMode.TRIANGLE if self._sweep is not None and self._sweep.is_alive() else self._mode
        return FocusStatus(mode, float(self._read_position()), self._setpoint_dpt, None)

    def temperature_c(self) -> float | None:
        """None: neither the board nor an EF lens reports a temperature."""
        return None
