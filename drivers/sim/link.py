"""The link between a simulated device and a program: a pyserial port class and a pty server.

Every serial-device simulator in :mod:`drivers.sim` is a byte-level state machine with the same
small surface (:class:`SimulatedDevice`), so one pyserial ``Serial`` class (subclassed per URL scheme
for its resolver) and one pty server serve them all.
"""

from __future__ import annotations

import math
import os
import random
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import serial
from serial.serialutil import SerialBase, SerialException

from drivers.sim.clock import Clock, VirtualClock


class SimFaults(Protocol):
    disconnect: bool


class SimulatedDevice(Protocol):
    """What the link needs from a simulator: bytes in, bytes due out, and when the next ones are due."""

    clock: Clock
    faults: SimFaults

    def feed(self, data: bytes) -> None: ...
    def take_ready(self) -> bytes: ...
    def next_event_time(self) -> float | None: ...


class TimedLink:
    """The host side of a simulated device: bytes cross the link after a latency with jitter.

    Device models inherit this, call :meth:`_init_link` from ``__init__``, receive bytes in
    :meth:`_receive` at the simulated time they arrive, and answer with :meth:`_send`. ``byte_s`` is the
    wire time of one byte (a UART at 115200 8N1: 10/115200 s; 0 for USB CDC devices). Everything runs
    on the device's clock, so with a :class:`~drivers.sim.clock.VirtualClock` tests never sleep.
    """

    byte_s: float = 0.0

    def _init_link(self, clock: Clock | None, seed: int, latency_s: float, jitter_s: float) -> None:
        self.clock: Clock = clock or VirtualClock()
        self.latency_s, self.jitter_s = latency_s, jitter_s
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self._inbox: deque[tuple[float, bytes]] = deque()
        self._outbox: deque[tuple[float, bytes]] = deque()
        self._last_in = self._last_out = -math.inf

    def _receive(self, t: float, data: bytes) -> None:
        """Bytes from the host reaching the device at time ``t``."""
        raise NotImplementedError

    def _inbound(self, data: bytes) -> bytes:
        """What the device will receive for bytes the host wrote (a fault may alter them)."""
        return data

    def feed(self, data: bytes) -> None:
        """Host bytes written now; they reach the device after the link latency."""
        with self.lock:
            data = self._inbound(bytes(data))
            t = max(self.clock.now() + self._latency() + len(data) * self.byte_s, self._last_in)
            self._last_in = t
            self._inbox.append((t, data))

    def take_ready(self) -> bytes:
        """Reply bytes that have arrived at the host by now."""
        with self.lock:
            self._pump()
            now, out = self.clock.now(), bytearray()
            while self._outbox and self._outbox[0][0] <= now:
                out += self._outbox.popleft()[1]
            return bytes(out)

    def next_event_time(self) -> float | None:
        """When something next happens on the link (host bytes reaching the device, a reply reaching the host)."""
        with self.lock:
            times = [q[0][0] for q in (self._inbox, self._outbox) if q]
            return min(times) if times else None

    def _pump(self) -> None:
        """Deliver every host byte due by now (device state that depends on commands is then current)."""
        now = self.clock.now()
        while self._inbox and self._inbox[0][0] <= now:
            self._receive(*self._inbox.popleft())

    def _latency(self) -> float:
        return self.latency_s + self._rng.random() * self.jitter_s

    def _send(self, t: float, data: bytes) -> None:
        """Queue a reply produced at device time ``t`` (nothing is sent while the silence fault is on)."""
        if self.faults.silence:
            return
        wire = len(data) * self.byte_s
        t_out = max(t + self._latency() + wire, self._last_out + wire)
        self._last_out = t_out
        self._outbox.append((t_out, data))


class SimulatedSerial(SerialBase):
    """pyserial port onto a simulated device: the simulator runs inside ``write()`` and ``read()``.

    Subclasses set :meth:`resolve`, which turns the port URL into the simulated device.

    Reads wait on the simulator's clock: with a virtual clock a read that must wait for a reply (or
    time out) advances the clock instead of sleeping. A read without a timeout returns what the
    device will ever send in answer rather than blocking forever.
    """

    @staticmethod
    def resolve(url: str) -> SimulatedDevice:
        """The simulated device a URL names (each simulator module supplies its own)."""
        raise NotImplementedError

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        self._sim = self.resolve(self._port)
        self._buf = bytearray()
        self._check()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self, force_update: bool = False) -> None:
        """Baud rate and framing mean nothing to the simulator (devices that need 115200 8N1 get it)."""

    def _check(self) -> None:
        if self._sim.faults.disconnect:
            raise SerialException(f"{self._port}: device disconnected (simulated)")

    @property
    def in_waiting(self) -> int:
        self._check()
        self._buf += self._sim.take_ready()
        return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        self._check()
        clock = self._sim.clock
        deadline = None if self._timeout is None else clock.now() + self._timeout
        while True:
            self._buf += self._sim.take_ready()
            if len(self._buf) >= size or self._timeout == 0:
                break
            t_next = self._sim.next_event_time()
            if t_next is None or (deadline is not None and t_next > deadline):
                if deadline is not None:
                    clock.sleep_until(deadline)
                self._check()
                self._buf += self._sim.take_ready()
                break
            clock.sleep_until(t_next)
            self._check()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        self._check()
        self._sim.feed(bytes(data))
        return len(data)

    def reset_input_buffer(self) -> None:
        self._buf.clear()
        self._sim.take_ready()

    def reset_output_buffer(self) -> None:
        """Writes reach the simulator at once: there is never output waiting."""


@dataclass
class PtyServer:
    """A simulator served on a raw-mode pty in real time. ``path`` is the port to open; ``stop()`` ends it.

    The slave end stays open in the server so the pty survives the client closing and reopening it.
    Setting ``sim.faults.disconnect`` closes the master end: client reads then fail with EIO, as when
    a USB device is unplugged; the server ends.
    """

    sim: SimulatedDevice
    path: str = ""

    def __post_init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)                # a fresh pty is cooked: it would echo and translate CR/LF
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-pty {self.path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        try:
            while not self._stop.is_set():
                if self.sim.faults.disconnect:
                    return
                t_next = self.sim.next_event_time()
                wait = 0.05 if t_next is None else min(0.05, max(0.0, t_next - time.monotonic()))
                readable, _, _ = select.select([self._master, self._wake_r], [], [], wait)
                if self._master in readable:
                    try:
                        data = os.read(self._master, 4096)
                    except BlockingIOError:
                        data = b""
                    if data:
                        self.sim.feed(data)
                pending += self.sim.take_ready()
                if pending:
                    try:
                        pending = pending[os.write(self._master, pending):]
                    except BlockingIOError:
                        pass                      # the client is not reading; keep the bytes, never block
        finally:
            os.close(self._master)

    def stop(self) -> None:
        """Stop serving and release the pty (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join()
        for fd in (self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> PtyServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
