"""Live Prophesee event cameras (EVK4 and friends) through OpenEB's HAL Python bindings (``metavision_hal``).

Only the HAL's raw byte stream is used: ``I_EventsStream.poll_buffer`` / ``get_latest_raw_data`` hand over the
camera's native encoding (EVT 3.0 on an EVK4), which focalrig decodes with its own streaming decoders
(:mod:`drivers.events`), so recordings get the camera's bytes verbatim and nothing depends on the SDK's decoder
or event types. Trigger-in (``I_TriggerIn``), biases (``I_LL_Biases``) and the ROI (``I_ROI``) are the HAL
facilities of the same names. ``metavision_hal`` is imported when a camera is opened, never before: OpenEB is
not on PyPI (hardware-protocols.md §10).

:class:`RawChunker` is the SDK-free half: raw buffers in any split → :class:`~drivers.camera.EventChunk` s of
``chunk_us`` stream time. It is what tests exercise with real EVT3 bytes.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from drivers.camera import CameraError, CameraIdentity, EventCamera, EventChunk, NotSupportedError
from drivers.events.codec import EventDecoder
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.events.formats import DECODABLE_FORMATS, make_decoder

log = logging.getLogger(__name__)

INSTALL_HINT = ("the Prophesee backend needs OpenEB's Python bindings (metavision_hal), which are not on PyPI: "
                "build OpenEB 5 from https://github.com/prophesee-ai/openeb with -DCOMPILE_PYTHON3_BINDINGS=ON and "
                "put its python3 package folder on PYTHONPATH (or install the Metavision SDK); "
                "`python -c 'import metavision_hal'` must work")
_POLL_SLEEP_S = 0.001


class RawChunker:
    """Raw camera buffers → EventChunks covering ``chunk_us`` of stream time each (the last may run longer).

    A chunk closes once the stream's time words pass its end; its ``t_end_us`` is a multiple of ``chunk_us``
    and events at or after it wait for the next chunk, so chunks are disjoint and sorted. ``raw`` holds the
    whole buffers fed since the previous chunk: buffer borders are not time borders, so a chunk's bytes may
    already contain the first events of the next one; over the stream, the bytes and the events are each
    complete and in order (a recorder appending ``raw`` writes exactly the camera's stream).
    """

    def __init__(self, decoder: EventDecoder, chunk_us: int) -> None:
        if chunk_us <= 0:
            raise ValueError("chunk_us must be positive")
        self.decoder = decoder
        self.chunk_us = int(chunk_us)
        self._cd: list[np.ndarray] = []
        self._trig: list[np.ndarray] = []
        self._raw: list[bytes] = []
        self._t_end: int | None = None

    def feed(self, data: bytes) -> list[EventChunk]:
        """Decode one buffer; return the chunks it completed (often none, sometimes several)."""
        cd, trig = self.decoder.decode(data)
        self._raw.append(bytes(data))
        self._cd.append(cd)
        self._trig.append(trig)
        now = self.decoder.current_time_us
        if now is None:
            return []
        if self._t_end is None:
            first = min([int(a["t"][0]) for a in (*self._cd, *self._trig) if a.shape[0]], default=now)
            self._t_end = (first // self.chunk_us + 1) * self.chunk_us
        chunks = []
        while now >= self._t_end:  # everything before t_end has been decoded: time words only increase
            chunks.append(self._cut(self._t_end))
            self._t_end += self.chunk_us
        return chunks

    def _cut(self, t_end: int) -> EventChunk:
        cd = concat_events(self._cd, EVENT_CD)
        trig = concat_events(self._trig, EVENT_EXT_TRIGGER)
        n_cd, n_trig = int(np.searchsorted(cd["t"], t_end)), int(np.searchsorted(trig["t"], t_end))
        self._cd, self._trig = [cd[n_cd:]], [trig[n_trig:]]
        raw, self._raw = b"".join(self._raw), []
        return EventChunk(cd[:n_cd], trig[:n_trig], t_end, raw)


def _as_bytes(buffer) -> bytes:
    """The HAL's raw buffer as bytes: a numpy array (OpenEB 4), or a bound ``RawDataBuffer`` vector (OpenEB 5)."""
    if isinstance(buffer, np.ndarray):
        return buffer.tobytes()
    try:
        return memoryview(buffer).tobytes()
    except TypeError:
        return bytes(buffer)  # element-wise copy; fine for a few MB/s, the fallback when no buffer protocol


class PropheseeCamera(EventCamera):
    """The camera with ``serial`` ("" = the first found), opened at construction; CameraError if absent."""

    def __init__(self, serial: str = "", *, chunk_us: int = 10_000) -> None:
        try:
            import metavision_hal as hal
        except ImportError as exc:
            raise CameraError(f"prophesee: {INSTALL_HINT}") from exc
        self._hal = hal
        self._streaming = False
        try:
            device = hal.DeviceDiscovery.open(serial)
        except Exception as exc:  # the HAL raises its own HalException types
            raise CameraError(f"prophesee {serial or '(first camera)'}: cannot open: {exc}") from exc
        if device is None:
            found = ", ".join(hal.DeviceDiscovery.list()) or "none"
            raise CameraError(f"prophesee: no camera{f' with serial {serial}' if serial else ''} found (cameras "
                              f"found: {found}); check the USB3 cable, and that metavision_platform_info lists it")
        self._device = device
        ident = device.get_i_hw_identification()
        geometry = device.get_i_geometry()
        self._size = (int(geometry.get_width()), int(geometry.get_height()))
        self._format = str(ident.get_current_data_encoding_format()).upper().replace(".", "")
        if self._format not in DECODABLE_FORMATS:
            self.close()
            raise CameraError(f"prophesee: the camera streams {self._format}, which focalrig cannot decode "
                              f"({', '.join(DECODABLE_FORMATS)}); select EVT3 in the camera's settings")
        sensor = ident.get_sensor_info()
        self._identity = CameraIdentity("Prophesee", str(ident.get_integrator()) + " " + str(sensor.name),
                                        str(ident.get_serial()),
                                        extra={"system_id": str(ident.get_system_id()),
                                               "generation": f"{sensor.major_version}.{sensor.minor_version}",
                                               "format": self._format})
        self._stream = device.get_i_events_stream()
        self._chunker = RawChunker(make_decoder(self._format, *self._size), chunk_us)
        self._ready: list[EventChunk] = []

    # -- EventCamera -------------------------------------------------------------------------------------
    @property
    def identity(self) -> CameraIdentity:
        return self._identity

    @property
    def geometry(self) -> tuple[int, int]:
        return self._size

    @property
    def raw_format(self) -> str:
        return self._format

    @property
    def raw_header(self) -> dict[str, str]:
        w, h = self._size
        fmt = {"EVT3": "3.0", "EVT2": "2.0", "EVT21": "2.1"}[self._format]
        return {"evt": fmt, "format": f"{self._format};height={h};width={w}", "geometry": f"{w}x{h}",
                "generation": self._identity.extra["generation"], "serial_number": self._identity.serial,
                "system_ID": self._identity.extra["system_id"], "integrator_name": "Prophesee"}

    def start(self) -> None:
        if not self._streaming:
            self._stream.start()
            self._streaming = True

    def stop(self) -> None:
        if self._streaming:
            self._streaming = False
            self._stream.stop()

    def read(self, timeout_s: float) -> EventChunk | None:
        """Poll the HAL until a chunk completes or ``timeout_s`` passes; CameraError when the stream breaks."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while not self._ready:
            if not self._streaming:
                return None
            status = self._stream.poll_buffer()
            if status < 0:
                self._streaming = False
                raise CameraError(f"prophesee {self._identity.serial}: the event stream ended (camera unplugged?); "
                                  "check the USB3 cable and reconnect")
            if status > 0:
                self._ready.extend(self._chunker.feed(_as_bytes(self._stream.get_latest_raw_data())))
            elif time.monotonic() >= deadline:
                return None
            else:
                time.sleep(_POLL_SLEEP_S)
        return self._ready.pop(0)

    def enable_trigger_in(self, channel: int) -> None:
        """Enable the trigger-in channel whose event id is ``channel`` (0 = Main on EVK4)."""
        trigger_in = self._device.get_i_trigger_in()
        if trigger_in is None:
            raise NotSupportedError(f"prophesee {self._identity.serial}: no trigger input")
        channels = dict(trigger_in.get_available_channels())  # Channel enum -> event id
        for name, event_id in channels.items():
            if int(event_id) == channel:
                if not trigger_in.enable(name):
                    raise CameraError(f"prophesee {self._identity.serial}: trigger-in {name} refused to enable")
                return
        ids = ", ".join(f"{int(i)} ({n})" for n, i in channels.items())
        raise NotSupportedError(f"prophesee {self._identity.serial}: no trigger-in channel {channel}; it has {ids}")

    def set_biases(self, biases: dict[str, int]) -> None:
        ll = self._device.get_i_ll_biases()
        if ll is None:
            raise NotSupportedError(f"prophesee {self._identity.serial}: biases cannot be set")
        known = ll.get_all_biases()
        for name, value in biases.items():
            if name not in known:
                raise CameraError(f"prophesee {self._identity.serial}: unknown bias {name!r}; this sensor has "
                                  f"{', '.join(sorted(known))}")
            if not ll.set(name, int(value)):
                raise CameraError(f"prophesee {self._identity.serial}: bias {name} = {value} was refused "
                                  f"(range {ll.get_bias_info(name).get_bias_allowed_range()})")

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        w, h = self._size
        if width <= 0 or height <= 0 or x < 0 or y < 0 or x + width > w or y + height > h:
            raise CameraError(f"prophesee: ROI {width}x{height}+{x}+{y} is not inside the {w}x{h} sensor")
        roi = self._device.get_i_roi()
        if roi is None:
            raise NotSupportedError(f"prophesee {self._identity.serial}: no region of interest")
        roi.set_window(self._hal.I_ROI.Window(x, y, width, height))
        roi.enable(True)

    def close(self) -> None:
        """Stop the stream and drop the device (the HAL closes it); never raises."""
        try:
            self.stop()
        except Exception as exc:  # an unplugged camera fails to stop; release it anyway
            log.warning("prophesee: stopping the stream failed: %s", exc)
        self._device = None
