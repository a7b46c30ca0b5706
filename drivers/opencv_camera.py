"""Frame camera through OpenCV's ``cv2.VideoCapture``: a UVC/V4L2 camera by index, or a video file replayed.

OpenCV exposes no hardware trigger, strobe or exposure timestamp, so frames are stamped on the host clock
(``time.monotonic_ns() // 1000``) and reach the event clock only through capture's soft synchronisation.
A live frame's exposure is taken to end when ``VideoCapture.read`` returned it (the transfer latency is not
known); a file's frames are stamped at the host time they are due in playback (``start()`` + the frame's
position in the file), so a file behaves like a camera with a perfectly steady clock.

``VideoCapture.read`` cannot time out, so one grabber thread reads frames into a small queue and ``read``
waits on the queue. A live camera never waits for the consumer: when the queue is full the oldest frame is
dropped and its index is missing downstream (gaps are drops). A file waits for the consumer instead, so
nothing of it is lost, and is paced at its own frame rate with ``realtime`` (else as fast as it decodes).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from drivers.camera import CameraError, CameraIdentity, Frame, FrameCamera, NotSupportedError

log = logging.getLogger(__name__)

_PROP_NAMES = {cv2.CAP_PROP_AUTO_EXPOSURE: "auto exposure", cv2.CAP_PROP_EXPOSURE: "exposure",
               cv2.CAP_PROP_FPS: "frame rate"}
_QUEUE_FRAMES = 4
#: A live camera that fails this many reads in a row is reported gone.
_MAX_FAILED_READS = 10


def _host_us() -> int:
    return time.monotonic_ns() // 1000


class OpenCVCamera(FrameCamera):
    """``source``: a camera index ("0", "1", ...) or a video file path. Opens at construction (CameraError)."""

    def __init__(self, source: str, *, realtime: bool = True) -> None:
        self.source = str(source)
        self.is_file = not self.source.isdigit()
        self.realtime = realtime
        if self.is_file and not Path(self.source).is_file():
            raise CameraError(f"opencv: video file {self.source} does not exist; set [frame_camera] source to a "
                              "camera index (0, 1, ...) or an existing video file")
        self._cap = cv2.VideoCapture(self.source if self.is_file else int(self.source))
        if not self._cap.isOpened():
            what = f"video file {self.source}" if self.is_file else f"camera {self.source}"
            hint = ("is it a video format OpenCV's FFmpeg can decode?" if self.is_file else
                    "is it plugged in, and not open in another program? (v4l2-ctl --list-devices lists cameras)")
            self._cap.release()
            raise CameraError(f"opencv: cannot open {what}; {hint}")
        self._size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self._file_fps = fps if self.is_file and math.isfinite(fps) and fps > 0 else None
        self._exposure_us: float | None = None
        #: What the camera reported back after ``configure`` (auto exposure, exposure in 100 µs, frame rate).
        self.settings: dict[str, float] = {}
        self._identity = CameraIdentity("OpenCV", f"VideoCapture ({self._cap.getBackendName()})", self.source,
                                        extra={"kind": "video file" if self.is_file else "camera"})
        self._queue: queue.Queue[Frame | None] = queue.Queue(_QUEUE_FRAMES)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: CameraError | None = None
        self._ended = False
        self._lock = threading.Lock()

    @property
    def identity(self) -> CameraIdentity:
        return self._identity

    @property
    def geometry(self) -> tuple[int, int]:
        return self._size

    @property
    def frame_rate_hz(self) -> float | None:
        """The file's frame rate, or what the camera reports (None when it does not say)."""
        if self._file_fps is not None or self._cap is None:
            return self._file_fps
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        return fps if math.isfinite(fps) and fps > 0 else None

    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        """Ask a camera for manual exposure and the frame rate; a file keeps its own rate (``exposure_us`` is then
        only the window its frames are stamped with).

        UVC drivers differ in what they accept: a setting the backend refuses or adjusts is logged with what the
        camera kept (``settings`` has the values read back), and capture goes on with it. External trigger does
        not exist for OpenCV captures.
        """
        if trigger == "external":
            raise NotSupportedError("opencv: cameras through VideoCapture have no hardware trigger; use free-run "
                                    "(frames are soft-synchronised on the host clock)")
        if trigger != "free-run":
            raise CameraError(f"opencv: unknown trigger mode {trigger!r}")
        if not (exposure_us > 0 and frame_rate_hz > 0):
            raise CameraError(f"opencv: exposure ({exposure_us} µs) and frame rate ({frame_rate_hz} Hz) must be > 0")
        if self._thread is not None:
            raise CameraError("opencv: stop() before configure()")
        self._exposure_us = float(exposure_us)
        if self.is_file:
            if self._file_fps is not None and abs(frame_rate_hz - self._file_fps) > 1e-3:
                log.info("opencv: %s plays at its own %.3f fps, not %.3f", self.source, self._file_fps, frame_rate_hz)
            return
        # V4L2: CAP_PROP_AUTO_EXPOSURE 1 = manual; CAP_PROP_EXPOSURE in units of 100 µs (exposure_time_absolute).
        settings = ((cv2.CAP_PROP_AUTO_EXPOSURE, 1.0), (cv2.CAP_PROP_EXPOSURE, exposure_us / 100.0),
                    (cv2.CAP_PROP_FPS, float(frame_rate_hz)))
        for prop, value in settings:
            accepted = self._cap.set(prop, value)
            kept = float(self._cap.get(prop))
            self.settings[_PROP_NAMES[prop]] = kept
            if not accepted or abs(kept - value) > 1e-6 * max(1.0, abs(value)):
                log.warning("opencv: camera %s (backend %s) kept %s = %g instead of %g; set it with v4l2-ctl if it "
                            "matters", self.source, self._cap.getBackendName(), _PROP_NAMES[prop], kept, value)

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self._cap is None:
                raise CameraError(f"opencv: {self.source} is closed")
            self._stop.clear()
            self._error = None
            self._ended = False
            self._thread = threading.Thread(target=self._grab_loop, name=f"opencv-{self.source}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop grabbing; frames already queued are still returned by ``read``. A file restarts from frame 0."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        while thread.is_alive():  # a file's grabber may be blocked on a full queue: make room until it sees stop
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            thread.join(0.05)
        if self.is_file and self._cap is not None:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame; None after ``timeout_s``, when stopped with nothing queued, or at the end of a file."""
        try:
            if self._thread is None or self._ended:
                item = self._queue.get_nowait()
            else:
                item = self._queue.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            if self._error is not None:
                raise self._error from None
            return None
        if item is None:  # end of file
            self._ended = True
            return None
        return item

    @property
    def ended(self) -> bool:
        """True once a video file has been read to its end."""
        return self._ended

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    # -- grabber thread -------------------------------------------------------------------------------
    def _grab_loop(self) -> None:
        t0_us = _host_us()
        index, failures = 0, 0
        period_us = 1e6 / self._file_fps if self._file_fps else None
        while not self._stop.is_set():
            ok, bgr = self._cap.read()
            t_read_us = _host_us()
            if not ok:
                if self.is_file:
                    self._put(None)
                    return
                failures += 1
                if failures >= _MAX_FAILED_READS:
                    self._error = CameraError(f"opencv: camera {self.source} stopped delivering frames; check the "
                                              "cable and that no other program took the camera")
                    return
                continue
            failures = 0
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if bgr.ndim == 3 else bgr
            if self.is_file:
                start_us = t0_us + round(index * period_us) if period_us else t_read_us
                due_us = start_us + (period_us or 0.0)
                if self.realtime and due_us > t_read_us and self._stop.wait((due_us - t_read_us) * 1e-6):
                    return
                exposure = min(self._exposure_us or period_us or 0.0, period_us or math.inf)
                end_us = int(start_us + exposure)
            else:
                end_us = t_read_us
                start_us = end_us - int(self._exposure_us or 0)
            self._put(Frame(np.ascontiguousarray(image), index, int(start_us), end_us, "host"))
            index += 1

    def _put(self, item: Frame | None) -> None:
        """Queue a frame: a file waits for room (nothing lost), a live camera drops the oldest frame."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if not self.is_file:
                    try:
                        dropped = self._queue.get_nowait()
                        log.debug("opencv: dropped frame %s (consumer too slow)", getattr(dropped, "index", "?"))
                    except queue.Empty:
                        pass
