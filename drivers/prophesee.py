"""Prophesee event cameras (EVK4 and friends) through OpenEB's HAL Python bindings (``metavision_hal``).

The camera's bytes are what focalrig uses: it decodes them with its own streaming decoders
(:mod:`drivers.events`), so recordings get the camera's bytes verbatim and sweeps the events those bytes
hold, whatever the SDK's decoder would make of them. OpenEB 5.1.1's bindings do not expose a raw buffer's
contents, so the bytes are read back from the HAL's own recorder (:mod:`drivers.hal_rawlog`).
Trigger-in (``I_TriggerIn``), biases (``I_LL_Biases``) and the ROI (``I_ROI``) are the HAL facilities of
the same names; a device without one says so (:class:`~drivers.camera.NotSupportedError`).

``raw_file`` opens a RAW recording as the device instead of a camera (``DeviceDiscovery.open_raw_file``):
the HAL then streams the file through the same events stream and decoders, and it has no biases, ROI or
trigger-in, as some cameras lack them too. A recorded camera thus runs through the live code path —
``tests/test_prophesee_hal.py`` does exactly that on OpenEB 5.1.1 — and a user can check an OpenEB install
and rehearse a capture without hardware. The file streams as fast as the HAL reads it, so capture waits for
queue room rather than dropping (``paced`` is False), and the stream's end is the capture's end.

``metavision_hal`` is imported when a camera is opened, never before: OpenEB is not on PyPI
(hardware-protocols.md §10); :func:`drivers.openeb.import_hal` also finds an install outside the import path.

:class:`RawChunker` is the SDK-free half: raw buffers in any split → :class:`~drivers.camera.EventChunk` s of
``chunk_us`` stream time.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np

from drivers.camera import CameraError, CameraIdentity, EventCamera, EventChunk, NotSupportedError
from drivers.events.codec import EventDecoder
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER, concat_events
from drivers.events.formats import DECODABLE_FORMATS, make_decoder
from drivers.hal_rawlog import HalRawLog
from drivers.openeb import import_hal

log = logging.getLogger(__name__)

INSTALL_HINT = ("the Prophesee backend needs OpenEB's Python bindings (metavision_hal), which are not on PyPI: "
                "build OpenEB 5 from https://github.com/prophesee-ai/openeb with -DCOMPILE_PYTHON3_BINDINGS=ON and "
                "put its python3 package folder on PYTHONPATH (or install the Metavision SDK, or set "
                "FOCALRIG_OPENEB to an OpenEB install prefix); `python -c 'import metavision_hal'` must work")
_POLL_SLEEP_S = 0.001
#: Longest the newest bytes may wait in the HAL's raw-log buffer before the log is flushed (see hal_rawlog).
MAX_LOG_LAG_S = 0.02


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

    def flush(self, *, final: bool) -> EventChunk | None:
        """What was fed but not yet delivered, as one chunk; None when nothing is waiting.

        ``final`` (the stream ended): every event, ``t_end_us`` just after the last time decoded. Otherwise
        (the stream stops and may resume) the chunk ends at the decoder's present: events of that very
        microsecond may still follow, so they stay for the next chunk, and the chunk grid restarts there.
        """
        now = self.decoder.current_time_us
        if now is None or not (self._raw or any(a.shape[0] for a in (*self._cd, *self._trig))):
            return None
        if final:
            last = [int(a["t"][-1]) for a in (*self._cd, *self._trig) if a.shape[0]]
            chunk = self._cut(max([now, *last]) + 1)
        else:
            chunk = self._cut(now)
        self._t_end = (chunk.t_end_us // self.chunk_us + 1) * self.chunk_us
        return chunk

    def _cut(self, t_end: int) -> EventChunk:
        cd = concat_events(self._cd, EVENT_CD)
        trig = concat_events(self._trig, EVENT_EXT_TRIGGER)
        n_cd, n_trig = int(np.searchsorted(cd["t"], t_end)), int(np.searchsorted(trig["t"], t_end))
        self._cd, self._trig = [cd[n_cd:]], [trig[n_trig:]]
        raw, self._raw = b"".join(self._raw), []
        return EventChunk(cd[:n_cd], trig[:n_trig], t_end, raw)




class PropheseeCamera(EventCamera):
    """The camera with ``serial`` ("" = the first found), or the RAW file ``raw_file`` played by the HAL as a
    device; opened at construction, CameraError (one line: what and what to do) when it cannot be."""

    def __init__(self, serial: str = "", *, chunk_us: int = 10_000, raw_file: str | Path | None = None,
                 read_words: int | None = None) -> None:
        """``read_words``: for a RAW file, how many words the HAL reads per buffer (its default when None);
        a few hundred makes the file arrive in buffers the size a camera's USB transfers have."""
        try:
            hal = import_hal()
        except ImportError as exc:
            raise CameraError(f"prophesee: {INSTALL_HINT} ({_one_line(exc)})") from exc
        self._hal = hal
        self._streaming = False
        self.at_end = False
        self.raw_file = Path(raw_file) if raw_file else None
        self._device = (self._open_file(hal, self.raw_file, read_words) if self.raw_file
                        else self._open_camera(hal, serial))
        try:
            self._describe(self._device)
        except BaseException:
            self._device = None
            raise
        self._stream = self._device.get_i_events_stream()
        self._log = HalRawLog(self._stream, label=self._name)
        self._chunker = RawChunker(make_decoder(self._format, *self._size, self._endianness), chunk_us)
        self._ready: list[EventChunk] = []

    # -- opening -----------------------------------------------------------------------------------------
    @staticmethod
    def _open_camera(hal, serial: str):
        try:
            device = hal.DeviceDiscovery.open(serial)
        except Exception as exc:  # the HAL raises its own exception types, with multi-line messages
            raise CameraError(f"prophesee {serial or '(first camera)'}: cannot open: {_hal_message(exc)}") from exc
        if device is None:
            found = ", ".join(hal.DeviceDiscovery.list()) or "none"
            raise CameraError(f"prophesee: no camera{f' with serial {serial}' if serial else ''} found (cameras "
                              f"found: {found}); check the USB3 cable, and that metavision_platform_info lists it")
        return device

    @staticmethod
    def _open_file(hal, path: Path, read_words: int | None):
        if not path.is_file():
            raise CameraError(f"prophesee: event_camera.raw_file {path} does not exist; give the path of a RAW "
                              "recording (or leave raw_file empty to open a camera)")
        config = hal.RawFileConfig()
        config.do_time_shifting = False  # absolute camera times, as a live camera and every focalrig reader give
        config.build_index = False       # no seeking here, and no .tmp_index file written beside the recording
        if read_words is not None:
            config.n_events_to_read = int(read_words)
        try:
            device = hal.DeviceDiscovery.open_raw_file(str(path), config)
        except Exception as exc:
            raise CameraError(f"prophesee: cannot open {path} as a device: {_hal_message(exc)}; is it a RAW file "
                              "Metavision tools open (metavision_file_info -i FILE)?") from exc
        if device is None:
            raise CameraError(f"prophesee: OpenEB opened no device for {path}; check it with metavision_file_info")
        return device

    def _describe(self, device) -> None:
        """Identity, geometry, encoding and RAW header, from the HAL's identification and geometry facilities."""
        ident = device.get_i_hw_identification()
        geometry = device.get_i_geometry()
        header = {str(k): str(v) for k, v in dict(ident.get_header().get_header_map()).items()}
        serial = str(ident.get_serial())
        self._name = f"prophesee (RAW file {self.raw_file})" if self.raw_file else f"prophesee {serial}"
        self._size = (int(geometry.get_width()), int(geometry.get_height()))
        self._format = str(ident.get_current_data_encoding_format()).upper().replace(".", "")
        if self._format not in DECODABLE_FORMATS:
            raise CameraError(f"{self._name}: streams {self._format}, which focalrig cannot decode "
                              f"({', '.join(DECODABLE_FORMATS)}); select EVT3 in the camera's settings")
        endianness = re.search(r"endianness=(\w+)", header.get("format", ""))
        self._endianness = endianness.group(1) if endianness else header.get("endianness") or None
        sensor = ident.get_sensor_info()
        extra = {"generation": f"{sensor.major_version}.{sensor.minor_version}", "format": self._format,
                 "connection": str(ident.get_system_info().get("Connection", ""))}
        if header.get("system_ID"):
            extra["system_id"] = header["system_ID"]
        if self.raw_file:
            extra["raw_file"] = str(self.raw_file)
        self._identity = CameraIdentity("Prophesee", f"{ident.get_integrator()} {sensor.name}".strip(), serial,
                                        extra=extra)
        self._header = {k: v for k, v in header.items() if k.lower() != "date" and " " not in k}

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
    def paced(self) -> bool:
        """A camera delivers at the world's pace; a RAW file as fast as the HAL reads it."""
        return self.raw_file is None

    @property
    def raw_header(self) -> dict[str, str]:
        """The device's own RAW header keys (what ``log_raw_data`` writes for it), with its encoding and size."""
        w, h = self._size
        fmt = {"EVT3": "3.0", "EVT2": "2.0", "EVT21": "2.1"}[self._format]
        keys = dict(self._header)
        keys.setdefault("evt", fmt)
        keys.setdefault("format", f"{self._format};height={h};width={w}")
        keys.setdefault("geometry", f"{w}x{h}")
        keys.setdefault("generation", self._identity.extra["generation"])
        if self._identity.serial:
            keys.setdefault("serial_number", self._identity.serial)
        return keys

    def start(self) -> None:
        if self._streaming or self.at_end:
            return
        self._log.start()
        self._stream.start()
        self._streaming = True

    def stop(self) -> None:
        """Stop streaming; what was received until now is still delivered by ``read``, then None."""
        if not self._streaming:
            return
        self._streaming = False
        self._stream.stop()  # also closes the HAL's raw log
        self._deliver(self._log.finish())
        self._flush(final=False)

    def read(self, timeout_s: float) -> EventChunk | None:
        """Poll the HAL until a chunk completes or ``timeout_s`` passes; CameraError when a camera's stream breaks.

        A RAW file's end is the stream's end: its last chunk comes out, then ``at_end`` is True and ``read``
        returns None.
        """
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while not self._ready:
            if not self._streaming:
                return None
            status = self._stream.poll_buffer()
            if status < 0:
                self._end_of_stream()
            elif status > 0:
                self._log.note(self._stream.get_latest_raw_data().size())  # the HAL logs the buffer it hands out
                self._deliver(self._log.read())
            else:
                if self._log.waiting_s() > MAX_LOG_LAG_S:
                    self._deliver(self._log.read(flush=True))
                if self._ready or time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_SLEEP_S)
        return self._ready.pop(0) if self._ready else None

    def _deliver(self, data: bytes) -> None:
        if data:
            self._ready.extend(self._chunker.feed(data))

    def _flush(self, *, final: bool) -> None:
        chunk = self._chunker.flush(final=final)
        if chunk is not None:
            self._ready.append(chunk)

    def _end_of_stream(self) -> None:
        """The HAL stopped the stream: a RAW file ended (deliver the rest) or a camera went away (an error)."""
        self._streaming = False
        self._stream.stop()
        self._deliver(self._log.finish())
        if self.raw_file is None:
            raise CameraError(f"{self._name}: the event stream ended (camera unplugged?); check the USB3 cable and "
                              "reconnect")
        self._flush(final=True)
        self.at_end = True

    def enable_trigger_in(self, channel: int) -> None:
        """Enable the trigger-in channel whose event id is ``channel`` (0 = Main on EVK4)."""
        trigger_in = self._device.get_i_trigger_in()
        if trigger_in is None:
            raise NotSupportedError(self._missing("trigger input", "I_TriggerIn", f"trigger-in channel {channel}"))
        channels = dict(trigger_in.get_available_channels())  # Channel enum -> event id
        for name, event_id in channels.items():
            if int(event_id) == channel:
                if not trigger_in.enable(name):
                    raise CameraError(f"{self._name}: trigger-in {name} refused to enable")
                return
        ids = ", ".join(f"{int(i)} ({n})" for n, i in channels.items())
        raise NotSupportedError(f"{self._name}: no trigger-in channel {channel}; it has {ids}")

    def set_biases(self, biases: dict[str, int]) -> None:
        ll = self._device.get_i_ll_biases()
        if ll is None:
            raise NotSupportedError(self._missing("biases", "I_LL_Biases", "event_camera.biases"))
        known = ll.get_all_biases()
        for name, value in biases.items():
            if name not in known:
                raise CameraError(f"{self._name}: unknown bias {name!r}; this sensor has {', '.join(sorted(known))}")
            if not ll.set(name, int(value)):
                raise CameraError(f"{self._name}: bias {name} = {value} was refused "
                                  f"(range {ll.get_bias_info(name).get_bias_allowed_range()})")

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        w, h = self._size
        if width <= 0 or height <= 0 or x < 0 or y < 0 or x + width > w or y + height > h:
            raise CameraError(f"{self._name}: ROI {width}x{height}+{x}+{y} is not inside the {w}x{h} sensor")
        roi = self._device.get_i_roi()
        if roi is None:
            raise NotSupportedError(self._missing("region of interest", "I_ROI", "event_camera.roi"))
        roi.set_window(self._hal.I_ROI.Window(x, y, width, height))
        roi.enable(True)

    def _missing(self, what: str, facility: str, asked: str) -> str:
        """One line: the facility this device lacks, why, and what to change."""
        if self.raw_file is not None:
            return (f"{self._name}: no {what} ({facility}): a RAW file opened as a device has none and replays "
                    f"the events it recorded; remove {asked} from the configuration or plan")
        return f"{self._name}: this camera has no {what} ({facility}); remove {asked} from the configuration or plan"

    def close(self) -> None:
        """Stop the stream, drop the device (the HAL closes it) and the raw-log spool; never raises."""
        try:
            self.stop()
        except Exception as exc:  # an unplugged camera fails to stop; release it anyway
            log.warning("%s: stopping the stream failed: %s", self._name, exc)
        self._log.close()
        self._device = None


def _hal_message(exc: BaseException) -> str:
    """A HAL exception's message on one line (the HAL frames it in dashes over several lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]
    lines = [ln for ln in lines if ln != "Metavision HAL exception"]
    return "; ".join(lines) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
