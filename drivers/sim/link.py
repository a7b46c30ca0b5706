"""The link between a simulated device and a program: a pyserial port class and a pty server.

Every serial-device simulator in :mod:`drivers.sim` is a byte-level state machine with the same
small surface (:class:`SimulatedDevice`), so one pyserial ``Serial`` class (subclassed per URL scheme
for its resolver) and one pty server serve them all.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from dataclasses import dataclass
from typing import Protocol

import serial
from serial.serialutil import SerialBase, SerialException

from drivers.sim.clock import Clock


class SimFaults(Protocol):
    disconnect: bool


class SimulatedDevice(Protocol):
    """What the link needs from a simulator: bytes in, bytes due out, and when the next ones are due."""

    clock: Clock
    faults: SimFaults

    def feed(self, data: bytes) -> None: ...
    def take_ready(self) -> bytes: ...
    def next_event_time(self) -> float | None: ...


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
