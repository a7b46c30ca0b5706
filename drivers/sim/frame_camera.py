"""A simulated frame camera that exposes the shared :class:`SimRig` exactly where the event camera sees its strobe.

docs/hardware-protocols.md §9.4 and §6 item 1: frame k is the k-th exposure window of ``rig.frames_starting`` on
the event clock, so the strobe edges the simulated event camera reports for that window are this frame's exposure
start and end. Everything is a pure function of (rig, k): the image integrates the exposure over the lens trajectory
and adds sensor noise from a generator seeded by (rig.seed, k), so a frame's pixels do not depend on when, in which
order, or by which camera instance it was read. Nothing is shared with the event camera but the rig itself.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Literal

import numpy as np

from drivers.camera import CameraError, CameraIdentity, Frame, FrameCamera, NotSupportedError
from drivers.sim.exposure import expose
from drivers.sim.optics import RgbCache
from drivers.sim.rig import SimRig

#: Mixed into each frame's noise seed so the frame camera's noise is a stream of its own, independent of any
#: other simulator drawing from ``rig.seed``.
_NOISE_STREAM = 0x46524D  # "FRM"

log = logging.getLogger(__name__)


class SimFrameCamera(FrameCamera):
    """Free-running RGB camera rendering the rig's scene along its lens path; frame k starts at k / fps.

    ``realtime``: ``read`` waits until frame k's exposure has ended on the wall clock, taking the moment of
    ``start()`` as event-clock 0 (for demos and the capture engine's timing paths); otherwise frames come as fast
    as they render. ``drop_every`` = n loses every n-th frame (k = n−1, 2n−1, ...) after exposure, as a congested
    link does: its strobe edges still exist on the rig but its index is missing from the frames read, which is
    what drop detection must notice.

    The scene's renders come from an :class:`~drivers.sim.optics.RgbCache` over the lens path's range of actual
    power (nodes 0.1 px of blur apart, filled lazily; ~4x less work per frame once filled); with
    ``rgb_cache=False``, or when the cache would exceed its memory bound, every sub-frame is rendered directly.
    A frame depends on the cache's nodes, which depend on the lens path's range when the cache was built: a
    re-commanded lens that widens the range rebuilds it, and a frame rendered again afterwards may differ from
    the first rendering by the interpolation error (:class:`~drivers.sim.optics.RgbCache`).
    """

    def __init__(self, rig: SimRig, *, realtime: bool = False, drop_every: int | None = None,
                 rgb_cache: bool = True) -> None:
        if drop_every is not None and drop_every < 2:
            raise ValueError("drop_every must be >= 2 (1 would drop every frame)")
        self._rig = rig
        self._realtime = realtime
        self._drop_every = drop_every
        self._next_k = 0
        self._wall_origin_s = 0.0
        self._streaming = False
        self._closed = False
        #: Set while stopped, so a realtime read sleeping for its frame wakes as soon as stop() is called.
        self._stopped = threading.Event()
        self._stopped.set()
        self._use_cache = bool(rgb_cache)
        self._cache: RgbCache | None = None
        self._cache_version = -1

    @property
    def identity(self) -> CameraIdentity:
        return CameraIdentity("focalrig", "simulated frame camera", f"sim-{self._rig.seed}")

    @property
    def geometry(self) -> tuple[int, int]:
        scene = self._rig.renderer.scene
        return scene.width, scene.height

    @property
    def frame_rate_hz(self) -> float:
        """The rig's frame rate (what ``configure`` last set)."""
        return self._rig.frame_rate_hz

    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        """Set the rig's frame rate and exposure (not a private copy).

        The rig is shared with the simulated event camera, so its strobe edges follow this configuration: that is
        the simulated equivalent of the strobe wire. Refused while streaming, because frame k's window is k / fps
        from event-clock 0 and a rate change mid-stream would renumber frames already delivered.
        """
        if self._streaming:
            raise CameraError("simulated frame camera: stop() before configure()")
        if trigger == "external":
            raise NotSupportedError("external trigger is not supported by the simulated frame camera yet")
        if trigger != "free-run":
            raise CameraError(f"simulated frame camera: unknown trigger mode {trigger!r}")
        if not (math.isfinite(frame_rate_hz) and frame_rate_hz > 0):
            raise CameraError(f"simulated frame camera: frame rate must be > 0 Hz, got {frame_rate_hz}")
        if not (math.isfinite(exposure_us) and exposure_us > 0):
            raise CameraError(f"simulated frame camera: exposure must be > 0 µs, got {exposure_us}")
        period_us = 1e6 / frame_rate_hz
        if exposure_us > period_us:
            raise CameraError(f"simulated frame camera: exposure {exposure_us} µs exceeds the frame period "
                              f"{period_us:.1f} µs at {frame_rate_hz} Hz; shorten it or lower the frame rate")
        self._rig.frame_rate_hz = float(frame_rate_hz)
        self._rig.exposure_us = float(exposure_us)

    def start(self) -> None:
        """Stream from frame 0 (the window starting at event-clock 0), also after a previous stop()."""
        if self._closed:
            raise CameraError("simulated frame camera: closed")
        self._next_k = 0
        self._wall_origin_s = time.monotonic()
        self._streaming = True
        self._stopped.clear()
        self._rig.start_clock()

    def stop(self) -> None:
        self._streaming = False
        self._stopped.set()

    def read(self, timeout_s: float) -> Frame | None:
        """The next frame not dropped, or None when stopped or (realtime) its exposure has not ended in time."""
        if self._closed:
            raise CameraError("simulated frame camera: closed")
        if not self._streaming:
            return None
        self._rig.poll_lens()
        k = self._next_index()
        start_us, end_us, mid_us = self._window(k)
        if self._realtime:
            wait_s = self._wall_origin_s + end_us * 1e-6 - time.monotonic()
            if wait_s > timeout_s:
                self._stopped.wait(max(timeout_s, 0.0))
                return None
            if wait_s > 0 and self._stopped.wait(wait_s):
                return None
        self._next_k = k + 1
        frame = self._render(k, start_us, end_us, mid_us)
        self._rig.advance(end_us)
        return frame

    def next_end_us(self) -> float:
        """Where on the event clock the next frame read ends its exposure (see
        :meth:`~drivers.sim.event_camera.SimEventCamera.next_end_us`: a lockstep capture holds the camera before
        a frame whose exposure would cross the next lens command)."""
        return self._window(self._next_index())[1]

    def _next_index(self) -> int:
        """The index of the next frame read delivers (a dropped frame's index is skipped)."""
        k = self._next_k
        if self._drop_every is not None and k % self._drop_every == self._drop_every - 1:
            k += 1
        return k

    def frame_at(self, k: int) -> Frame:
        """Frame k as ``read`` delivers it, without streaming: for tests and for re-rendering a frame on demand."""
        return self._render(k, *self._window(k))

    def close(self) -> None:
        """Stop and refuse further reads; holds no resources, so it cannot fail."""
        self.stop()
        self._closed = True

    def _render(self, k: int, start_us: float, end_us: float, mid_us: float) -> Frame:
        """Frame k over its window; a pure function of (rig, k), whatever the read order or timing."""
        rig = self._rig
        self._refresh_cache()
        linear = expose(rig.renderer, rig.lens_path, start_us, end_us, moving=rig.moving, render=self._cache)
        image = rig.noise.apply(linear, np.random.default_rng([rig.seed, _NOISE_STREAM, k]))
        return Frame(image=image, index=k, exposure_start_us=int(np.round(start_us)),
                     exposure_end_us=int(np.round(end_us)), clock="event",
                     focal_power_dpt=float(rig.lens_path.actual_dpt(mid_us)))

    def _refresh_cache(self) -> None:
        """(Re)build the render cache when the lens path changed beyond it (:meth:`RgbCache.covering`)."""
        path = self._rig.lens_path
        if not self._use_cache or path.version == self._cache_version:
            return
        self._cache_version = path.version
        try:
            self._cache = RgbCache.covering(self._rig.renderer, *path.power_range(), self._cache)
        except ValueError as exc:  # larger than its memory bound: render directly
            log.info("simulated frame camera renders without a cache: %s", exc)
            self._cache, self._use_cache = None, False

    def _window(self, k: int) -> tuple[float, float, float]:
        """Frame k's (start, end, mid) in float µs, taken from the rig's own schedule rather than recomputed.

        Asking for the frames starting within half a period of k / fps returns exactly frame k, with the very
        floats the event camera turns into strobe edges, so the two cameras cannot disagree by a rounding.
        """
        period_us = 1e6 / self._rig.frame_rate_hz
        schedule = self._rig.frames_starting((k - 0.5) * period_us, (k + 0.5) * period_us)
        if schedule.starts_us.size != 1:
            raise CameraError(f"simulated frame camera: the rig's schedule has {schedule.starts_us.size} "
                              f"exposures near frame {k}, expected one")
        return float(schedule.starts_us[0]), float(schedule.ends_us[0]), float(schedule.mid_us[0])
