"""Basler frame cameras (USB3 / GigE) through pypylon, the optional extra ``pip install "focalrig[basler]"``.

pypylon's wheel bundles the pylon runtime, so nothing else is installed; with ``PYLON_CAMEMU=1`` in the
environment (set before pypylon is first imported) pylon offers an emulated camera, which the tests use.
Settings go through the GenICam SFNC nodes (docs/hardware-protocols.md §5): ``ExposureTime`` (``ExposureTimeAbs``
on older GigE models), ``AcquisitionFrameRate(Abs)`` for free-run, ``TriggerSelector=FrameStart``,
``TriggerMode=On``, ``TriggerSource=<trigger_line>`` for the external (hardware) trigger, and
``LineSource=ExposureActive`` on ``strobe_line`` for the strobe that the event camera records.

Frame index = the grab result's ``BlockID`` (counted by the camera from the start of grabbing), so an index gap
is a frame the camera exposed but the host lost. Timestamps: the camera's ``TimeStamp`` when it sends one
(clock "camera", converted with the tick frequency; taken as the exposure start, which is how Basler cameras
latch it — unverified for every model), else the host time the frame was retrieved, taken as the exposure end
(clock "host"; the pylon emulator always sends 0). Either way frames reach the event clock only through the
strobe edges.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import cv2
import numpy as np

from drivers.camera import CameraError, CameraIdentity, Frame, FrameCamera

log = logging.getLogger(__name__)

_INSTALL = 'pypylon is not installed: pip install "focalrig[basler]" (or pip install pypylon)'
#: Pixel formats delivered as RGB after demosaicing (GenICam Bayer name prefix → OpenCV conversion).
_BAYER = {"BayerRG": cv2.COLOR_BayerRG2RGB, "BayerGR": cv2.COLOR_BayerGR2RGB, "BayerGB": cv2.COLOR_BayerGB2RGB,
          "BayerBG": cv2.COLOR_BayerBG2RGB}


def _pylon():
    """pypylon's modules, imported on first use only (the extra is optional)."""
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise CameraError(f"basler: {_INSTALL}") from exc
    return pylon, genicam


class BaslerCamera(FrameCamera):
    """The Basler camera with ``serial`` (empty: the first one found); opens at construction (CameraError)."""

    def __init__(self, serial: str = "", *, pixel_format: str = "", trigger_line: str = "Line1",
                 strobe_line: str = "") -> None:
        pylon, genicam = _pylon()
        self._pylon, self._genicam = pylon, genicam
        self.trigger_line, self.strobe_line = trigger_line, strobe_line
        self._cam = None
        try:
            factory = pylon.TlFactory.GetInstance()
            devices = [d for d in factory.EnumerateDevices() if not serial or d.GetSerialNumber() == serial]
            if not devices:
                found = ", ".join(d.GetSerialNumber() for d in factory.EnumerateDevices()) or "none"
                raise CameraError(f"basler: no camera{f' with serial {serial}' if serial else ''} found (cameras "
                                  f"found: {found}); check the cable and power, and that pylon Viewer sees it")
            info = devices[0]
            self._cam = pylon.InstantCamera(factory.CreateDevice(info))
            self._cam.Open()
            self._identity = CameraIdentity(info.GetVendorName(), info.GetModelName(), info.GetSerialNumber(),
                                            self._get("DeviceFirmwareVersion", ""),
                                            extra={"device_class": info.GetDeviceClass()})
            if pixel_format:
                self._set("PixelFormat", pixel_format)
            if strobe_line:
                self._set("LineSelector", strobe_line)
                self._set("LineMode", "Output")
                self._set("LineSource", "ExposureActive")
            self._tick_hz = self._timestamp_tick_hz()
        except genicam.GenericException as exc:
            self.close()
            raise CameraError(f"basler {serial or '(first camera)'}: {_short(exc)}") from exc
        except CameraError:
            self.close()
            raise
        self._exposure_us = float(self._get(self._exposure_node(), 0.0))
        self._frames = 0

    # -- nodes ------------------------------------------------------------------------------------------
    def _node(self, name: str):
        node = self._cam.GetNodeMap().GetNode(name)
        return node if node is not None and self._genicam.IsAvailable(node) else None

    def _get(self, name: str, default=None):
        node = self._node(name)
        if node is None or not self._genicam.IsReadable(node):
            return default
        return node.GetValue()

    def _set(self, name: str, value) -> None:
        """Set a node, with an error naming the node, the value and what the camera allows."""
        node = self._node(name)
        if node is None or not self._genicam.IsWritable(node):
            raise CameraError(f"basler {self._identity.serial}: {name} is not available or not writable on this "
                              "camera")
        try:
            node.SetValue(value)
        except self._genicam.GenericException as exc:
            allowed = ""
            if hasattr(node, "GetEntries"):
                allowed = "; allowed: " + ", ".join(e.GetSymbolic() for e in node.GetEntries())
            elif hasattr(node, "GetMin"):
                allowed = f"; allowed: {node.GetMin():g} … {node.GetMax():g}"
            raise CameraError(f"basler: cannot set {name} = {value}{allowed}") from exc

    def _exposure_node(self) -> str:
        return "ExposureTime" if self._node("ExposureTime") is not None else "ExposureTimeAbs"

    def _timestamp_tick_hz(self) -> float:
        """Ticks per second of the camera's TimeStamp: GigE says so; USB3 counts nanoseconds."""
        return float(self._get("GevTimestampTickFrequency", 1e9))

    # -- FrameCamera ------------------------------------------------------------------------------------
    @property
    def identity(self) -> CameraIdentity:
        return self._identity

    @property
    def geometry(self) -> tuple[int, int]:
        return int(self._get("Width")), int(self._get("Height"))

    @property
    def pixel_format(self) -> str:
        return str(self._get("PixelFormat", ""))

    @property
    def frame_rate_hz(self) -> float | None:
        """The rate the camera says it will run at (ResultingFrameRate), None where it does not say."""
        rate = self._get("ResultingFrameRate", self._get("ResultingFrameRateAbs"))
        return float(rate) if rate else None

    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        """Timed exposure of ``exposure_us``; free-run at ``frame_rate_hz``, or one frame per rising edge on
        ``trigger_line`` (the rate is then the trigger's; ``frame_rate_hz`` only checks the exposure fits)."""
        if trigger not in ("free-run", "external"):
            raise CameraError(f"basler: unknown trigger mode {trigger!r}")
        if not (exposure_us > 0 and frame_rate_hz > 0):
            raise CameraError(f"basler: exposure ({exposure_us} µs) and frame rate ({frame_rate_hz} Hz) must be > 0")
        if exposure_us > 1e6 / frame_rate_hz:
            raise CameraError(f"basler: exposure {exposure_us} µs exceeds the frame period at {frame_rate_hz} Hz")
        if self._cam.IsGrabbing():
            raise CameraError("basler: stop() before configure()")
        if self._node("ExposureAuto") is not None:
            self._set("ExposureAuto", "Off")
        if self._node("ExposureMode") is not None:
            self._set("ExposureMode", "Timed")
        self._set(self._exposure_node(), float(exposure_us))
        self._exposure_us = float(self._get(self._exposure_node()))
        self._set("TriggerSelector", "FrameStart")
        rate_node = "AcquisitionFrameRate" if self._node("AcquisitionFrameRate") is not None \
            else "AcquisitionFrameRateAbs"
        if trigger == "external":
            self._set("TriggerMode", "On")
            self._set("TriggerSource", self.trigger_line)
            if self._node("TriggerActivation") is not None:
                self._set("TriggerActivation", "RisingEdge")
            if self._node("AcquisitionFrameRateEnable") is not None:
                self._set("AcquisitionFrameRateEnable", False)
        else:
            self._set("TriggerMode", "Off")
            if self._node("AcquisitionFrameRateEnable") is not None:
                self._set("AcquisitionFrameRateEnable", True)
            self._set(rate_node, float(frame_rate_hz))

    def start(self) -> None:
        try:
            if not self._cam.IsGrabbing():
                self._cam.StartGrabbing(self._pylon.GrabStrategy_OneByOne)
        except self._genicam.GenericException as exc:
            raise CameraError(f"basler {self._identity.serial}: cannot start grabbing: {_short(exc)}") from exc

    def stop(self) -> None:
        if self._cam is not None and self._cam.IsGrabbing():
            self._cam.StopGrabbing()

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame, None when none came within ``timeout_s`` (or not grabbing); CameraError if it is gone."""
        pylon = self._pylon
        if self._cam is None or not self._cam.IsGrabbing():
            return None
        try:
            result = self._cam.RetrieveResult(max(0, round(timeout_s * 1000)), pylon.TimeoutHandling_Return)
        except self._genicam.GenericException as exc:
            raise self._gone(exc) from exc
        if not result.IsValid():
            if self._cam.IsCameraDeviceRemoved():
                raise self._gone(None)
            return None
        try:
            t_host_us = time.monotonic_ns() // 1000
            if not result.GrabSucceeded():
                log.warning("basler %s: frame %d failed: %s", self._identity.serial, result.BlockID,
                            result.GetErrorDescription())
                return None
            image = self._to_image(result.GetArray(), self.pixel_format)
            exposure = round(self._exposure_us)
            if result.TimeStamp:
                start = int(result.TimeStamp * 1e6 / self._tick_hz)
                return Frame(image, int(result.BlockID), start, start + exposure, "camera")
            return Frame(image, int(result.BlockID), t_host_us - exposure, t_host_us, "host")
        finally:
            result.Release()

    @staticmethod
    def _to_image(array: np.ndarray, pixel_format: str) -> np.ndarray:
        """Mono stays (H, W); Bayer is demosaiced and BGR reordered, so colour frames are always RGB."""
        for prefix, code in _BAYER.items():
            if pixel_format.startswith(prefix):
                return cv2.cvtColor(array, code)
        if pixel_format.startswith("BGR") and array.ndim == 3:
            return np.ascontiguousarray(array[..., 2::-1])
        return np.array(array, copy=True)

    def _gone(self, exc: Exception | None) -> CameraError:
        detail = f" ({_short(exc)})" if exc is not None else ""
        return CameraError(f"basler {self._identity.serial}: the camera is gone{detail}; check the cable and power")

    def close(self) -> None:
        """Stop grabbing and release the camera; never raises."""
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            if cam.IsGrabbing():
                cam.StopGrabbing()
            cam.Close()
        except Exception as exc:  # a camera unplugged mid-close must not stop the rest of the rig's close()
            log.warning("basler: closing failed: %s", exc)


def _short(exc: BaseException) -> str:
    """pylon's messages end with the C++ file and line: keep the part a user can act on."""
    text = str(exc).split(" : ")[0]
    return text.strip()
