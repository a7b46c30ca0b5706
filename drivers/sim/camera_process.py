"""Simulated cameras that compute in a child process, as a real camera's SDK delivers from its own threads.

Simulating a camera is CPU-heavy Python/numpy work (ESIM steps, defocus integration). Run in the application's
process it holds the GIL for long stretches, and every other Python thread — the GUI thread above all — waits
for it: a live window stalls for a hundred milliseconds at a time, which no real camera would cause, because
their SDKs decode in C threads. :class:`ProcessEventCamera` and :class:`ProcessFrameCamera` therefore run the very
same :class:`~drivers.sim.event_camera.SimEventCamera` / :class:`~drivers.sim.frame_camera.SimFrameCamera`
in a ``spawn`` child each and forward the camera calls over a pipe; a thread waiting for a chunk or a frame sits
in a system call with the GIL released, exactly as it would waiting on a USB driver.

The shared world stays in the parent: the :class:`~drivers.sim.rig.SimRig` there follows the simulated lens
driver, keeps the event clock and is what ground truth and calibration read. Each child builds its own copy of
the rig from the same ``[sim]`` config (same seed, same scene), then its camera with the factory it is handed
(:mod:`drivers.registry` passes the function it builds the in-process camera with; this module knows no
backends), and, before every read, is handed the parent's lens path and frame timing when they changed, so its
output is byte for byte what the in-process camera would deliver. A child that dies (killed, out of memory)
surfaces as a CameraError naming it, as an unplugged camera does.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Any, Literal

from drivers import ipc
from drivers.camera import Camera, CameraError, CameraIdentity, EventCamera, Frame, FrameCamera
from drivers.config import SimConfig
from drivers.sim.rig import SimRig

#: Seconds a child may take to import and build its rig and camera before opening it counts as failed.
START_TIMEOUT_S = 60.0

#: Builds the in-process simulated camera of the rig it is given; it crosses to the child by pickling, so it must
#: be a module-level function or a :func:`functools.partial` of one (with picklable arguments).
CameraFactory = Callable[[SimRig], Camera]


def _serve(conn, kind: str, factory: CameraFactory, sim_cfg: SimConfig, sync: tuple) -> None:
    """The child: build the rig (in the parent rig's present state, ``sync``) and ``factory``'s camera of it, then
    answer (method, args, kwargs, sync) messages until None arrives."""
    ipc.lower_priority()  # simulated hardware yields the CPU to the application using it
    ipc.detach_from_terminal(signal.SIGTERM)  # the parent stops it (and owns the lens): it ends when the pipe does
    try:
        rig = SimRig.from_config(sim_cfg)
        rig.lens_path, rig.frame_rate_hz, rig.exposure_us = sync
        camera = factory(rig)
        info = {"identity": camera.identity, "geometry": camera.geometry}
        if kind == "event":
            info.update(raw_format=camera.raw_format, raw_header=camera.raw_header)
    except Exception as exc:
        ipc.send(conn, ("error", _picklable(exc), 0.0, None))
        return
    ipc.send(conn, ("ok", info, rig.simulated_us(), _next_end(camera)))
    for method, args, kwargs, sync in ipc.messages(conn):
        if sync is not None:
            rig.lens_path, rig.frame_rate_hz, rig.exposure_us = sync
        try:
            reply = ("ok", getattr(camera, method)(*args, **kwargs))
        except Exception as exc:  # every failure goes back to the caller, as the in-process camera would raise it
            reply = ("error", _picklable(exc))
        ipc.send(conn, (*reply, rig.simulated_us(), _next_end(camera)))
    camera.close()


def _next_end(camera: Camera) -> float | None:
    """Where the camera's next item ends (``next_end_us``), sent with every reply so the parent knows it without
    asking; None for a camera that cannot say."""
    upcoming = getattr(camera, "next_end_us", None)
    try:
        return None if upcoming is None else upcoming()
    except Exception:  # a camera that cannot place its next item now (e.g. not configured) just cannot say
        return None


def _picklable(exc: Exception) -> Exception:
    """``exc`` itself when it survives pickling (CameraError, ValueError, ...), else a CameraError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return CameraError(f"{type(exc).__name__}: {exc}")


class _CameraChild:
    """One child process running one simulated camera; :meth:`call` is a blocking, thread-safe remote call.

    The child starts at once but is waited for on the first use of :attr:`info` or :meth:`call`, so two cameras
    opened one after the other import and build their worlds in parallel.
    """

    def __init__(self, kind: str, factory: CameraFactory, sim_cfg: SimConfig, name: str, sync: tuple) -> None:
        self.name = name
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, kind, factory, sim_cfg, sync),
                                 name=f"focalrig-sim-{kind}-camera", daemon=True)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()
        self._closed = False
        self._info: dict | None = None
        #: How far the child's camera has simulated (µs on the event clock), as of its last reply.
        self.simulated_us = 0.0
        #: Where its next item will end (µs on the event clock; None: it cannot say), as of its last reply.
        self.next_end_us: float | None = None

    @property
    def info(self) -> dict:
        """Identity, geometry (and raw format/header) of the child's camera; raises what building it raised."""
        with self._lock:
            self._wait_ready()
            return self._info

    def _wait_ready(self) -> None:
        if self._info is not None:
            return
        if self._closed:
            raise CameraError(f"{self.name}: closed")
        if not self._conn.poll(START_TIMEOUT_S):
            raise CameraError(f"{self.name}: its simulator process did not start within {START_TIMEOUT_S:.0f} s")
        self._info = self._reply(lambda: ipc.recv(self._conn))

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, method: str, *args: Any, sync: tuple | None = None, **kwargs: Any) -> Any:
        with self._lock:
            self._wait_ready()
            if self._closed:
                raise CameraError(f"{self.name}: closed")
            return self._reply(lambda: (ipc.send(self._conn, (method, args, kwargs, sync)), ipc.recv(self._conn))[1])

    def _reply(self, exchange) -> Any:
        try:
            status, value, self.simulated_us, self.next_end_us = exchange()
        except (EOFError, OSError):
            raise CameraError(f"{self.name}: its simulator process stopped ({ipc.exit_reason(self._proc)})") from None
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop the child (asking first, killing it if it does not exit); safe to call twice, never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                ipc.send(self._conn, None)
            except (OSError, ValueError):
                pass
        self._proc.join(2.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
        self._conn.close()


class _RigSync:
    """What a child needs of the parent's rig before each read: the lens path and frame timing, sent on change."""

    def __init__(self, rig: SimRig) -> None:
        self.rig = rig
        self._sent: tuple | None = None

    def pending(self) -> tuple | None:
        """The (lens path, fps, exposure) to send now, or None when the child already has them."""
        rig = self.rig
        rig.poll_lens()  # the simulated lens driver lives in this process: bring the path up to date first
        path = rig.lens_path
        key = (id(path), path.version, rig.frame_rate_hz, rig.exposure_us)
        if key == self._sent:
            return None
        self._sent = key
        return path, rig.frame_rate_hz, rig.exposure_us

    def forget(self) -> None:
        """Send everything again with the next call (after a call that failed)."""
        self._sent = None


class _ProcessCamera:
    """What both process-backed cameras share: the child, the rig sync, start/stop/close and the remote read."""

    def __init__(self, kind: str, rig: SimRig, factory: CameraFactory, sim_cfg: SimConfig, name: str) -> None:
        self._rig = rig
        self._sync = _RigSync(rig)
        self._child = _CameraChild(kind, factory, sim_cfg, name, self._sync.pending())
        self._streaming = False

    @property
    def identity(self) -> CameraIdentity:
        return self._child.info["identity"]

    @property
    def geometry(self) -> tuple[int, int]:
        return self._child.info["geometry"]

    def start(self) -> None:
        self._remote("start")
        self._rig.start_clock()
        self._streaming = True

    def stop(self) -> None:
        self._streaming = False  # a read after this returns None at once, even while the call below waits
        if not self._child.closed:
            self._child.call("stop")

    def close(self) -> None:
        self._streaming = False
        self._child.close()

    def read(self, timeout_s: float) -> Any:
        """The child's next chunk/frame (None when stopped or nothing came in time); the rig's present follows it
        (to the child's exact float time, so a lens command takes effect where it would in-process)."""
        if not self._streaming:
            return None
        item = self._remote("read", timeout_s)
        self._rig.advance(self._child.simulated_us)
        return item

    def next_end_us(self) -> float | None:
        """Where the child's camera's next item ends, as of its last reply (see ``SimEventCamera.next_end_us``)."""
        return self._child.next_end_us

    def _remote(self, method: str, *args: Any) -> Any:
        """Call ``method`` in the child with the rig's lens path and frame timing brought up to date first."""
        try:
            return self._child.call(method, *args, sync=self._sync.pending())
        except BaseException:
            self._sync.forget()
            raise


class ProcessEventCamera(_ProcessCamera, EventCamera):
    """The simulated event camera ``factory`` builds (a :class:`~drivers.sim.event_camera.SimEventCamera`), of a
    copy of ``rig`` built from ``sim_cfg``, computed in a child process."""

    def __init__(self, rig: SimRig, factory: CameraFactory, sim_cfg: SimConfig) -> None:
        super().__init__("event", rig, factory, sim_cfg, "simulated event camera")

    @property
    def raw_format(self) -> str:
        return self._child.info["raw_format"]

    @property
    def raw_header(self) -> dict[str, str]:
        return dict(self._child.info["raw_header"])

    def enable_trigger_in(self, channel: int) -> None:
        self._child.call("enable_trigger_in", channel)

    def set_biases(self, biases: dict[str, int]) -> None:
        self._child.call("set_biases", biases)

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        self._child.call("set_roi", x, y, width, height)


class ProcessFrameCamera(_ProcessCamera, FrameCamera):
    """The simulated frame camera ``factory`` builds (a :class:`~drivers.sim.frame_camera.SimFrameCamera`), of a
    copy of ``rig`` built from ``sim_cfg``, rendered in a child process.

    ``configure`` sets the parent rig's frame rate and exposure too, which is how the event camera's strobe edges
    follow it (the simulated strobe wire, as in-process).
    """

    def __init__(self, rig: SimRig, factory: CameraFactory, sim_cfg: SimConfig) -> None:
        super().__init__("frame", rig, factory, sim_cfg, "simulated frame camera")

    @property
    def frame_rate_hz(self) -> float:
        return self._rig.frame_rate_hz

    def configure(self, *, exposure_us: float, frame_rate_hz: float,
                  trigger: Literal["free-run", "external"] = "free-run") -> None:
        self._child.call("configure", exposure_us=exposure_us, frame_rate_hz=frame_rate_hz, trigger=trigger)
        self._rig.frame_rate_hz, self._rig.exposure_us = float(frame_rate_hz), float(exposure_us)

    def frame_at(self, k: int) -> Frame:
        """Frame k as ``read`` delivers it, without streaming (as :meth:`SimFrameCamera.frame_at`)."""
        return self._remote("frame_at", k)
