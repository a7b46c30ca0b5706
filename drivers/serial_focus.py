"""Link handling shared by focus actuators on a serial port (a USB CDC device or a UART).

Opening with an error that says what to check, releasing the port when connecting fails half-way,
closing into the safe state without ever raising, and one FocusError format naming device and port:
every serial focus backend needs exactly these, so they live here once.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import ClassVar, NoReturn

import serial
from serial.serialutil import SerialException

import drivers.sim  # noqa: F401 - registers the simulators' URL schemes (optosim://, cefsim://) with pyserial
from drivers.focus import FocusActuator, FocusCapabilities, FocusError, FocusIdentity

log = logging.getLogger(__name__)


class SerialFocusActuator(FocusActuator):
    """A focus actuator reached through ``serial.serial_for_url(port)``; subclasses speak the protocol."""

    #: How messages name the device ("Optotune lens driver").
    device_name: ClassVar[str]
    baudrate: ClassVar[int]

    def __init__(self, port: str, *, timeout_s: float) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self._serial: serial.SerialBase | None = None
        self._identity: FocusIdentity | None = None
        self._capabilities: FocusCapabilities | None = None

    @abstractmethod
    def _connect(self) -> None:
        """Talk to the freshly opened device and set ``_identity`` and ``_capabilities`` (FocusError on failure)."""

    @property
    def identity(self) -> FocusIdentity:
        self._require()
        assert self._identity is not None
        return self._identity

    @property
    def capabilities(self) -> FocusCapabilities:
        self._require()
        assert self._capabilities is not None
        return self._capabilities

    def connect(self) -> None:
        if self._serial is not None:
            return
        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.timeout_s,
                                                 write_timeout=self.timeout_s)
        except (SerialException, OSError, ValueError) as exc:
            raise FocusError(f"{self.device_name} on {self.port}: cannot open the port ({exc}); check the port "
                             "name and that you may use it (on Linux: the dialout group)") from None
        try:
            self._connect()
        except FocusError:
            self._release()
            raise

    def close(self) -> None:
        """Put the lens in its safe state as far as the link allows and release the port; never raises."""
        if self._serial is None:
            return
        try:
            self.safe_state()
        except OSError as exc:
            log.warning("%s", exc)
        finally:
            self._release()

    def _release(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (SerialException, OSError):
                pass

    def _require(self) -> serial.SerialBase:
        if self._serial is None:
            raise FocusError(f"{self.device_name} on {self.port}: not connected; call connect() first")
        return self._serial

    def _before_fail(self) -> None:
        """Called before every FocusError is raised (e.g. to push the lens into its safe state)."""

    def _fail(self, problem: str, hint: str) -> NoReturn:
        """Raise the one FocusError for ``problem``, with ``hint`` saying what to do."""
        self._before_fail()
        raise FocusError(f"{self.device_name} on {self.port}: {problem}; {hint}")
