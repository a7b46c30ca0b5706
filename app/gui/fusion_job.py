"""Sweep → focal stack → fusion → display arrays: the fusion worker's job, run in a child process.

Building a stack and fusing it is CPU-heavy Python/numpy work; in the GUI's process it would compete with the
GUI thread for the GIL and stall the event loop. The controller therefore runs :func:`run_fusion` in a
single persistent ``spawn`` worker process (:class:`FusionProcess`), which also keeps CUDA out of the GUI
process. Everything crossing the process boundary is plain picklable data (SweepData, Calibration, FocalStack,
FusionResult), sent through :mod:`drivers.ipc` (large arrays out of band, so pickling a sweep never holds the GIL
against the GUI thread). This module must not import Qt: the child imports it without a GUI.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any

from app.gui.imaging import ResultPictures, result_pictures
from capture.focal_stack import FocalStack
from capture.sweep import SweepData
from drivers import ipc

log = logging.getLogger("focalrig.gui")

_UNAVAILABLE: dict[str, str] = {}  # methods that failed to load in this process, with why


@dataclass(frozen=True)
class FusionRequest:
    """What to fuse and how. Exactly one of ``sweep``, ``stack`` and ``recording`` is given.

    ``recording`` is the path of a recording whose sweep ``index`` the fusion process reads itself, so a replayed
    sweep is never decoded (GIL-heavy file and event work) in the GUI's process.
    """

    source: str                          # "live", a recording's name, or where a stack came from
    index: int
    method: str = "auto"
    device: str = "auto"
    n_planes: int = 15
    span: str = "period"                 # frames a stack takes from its sweep (plan.stack_span)
    single_frame: bool = False           # the single-exposure mode: one frame refocused by the sweep's events
    sweep: SweepData | None = None
    stack: FocalStack | None = None
    recording: str | None = None
    calibration: Any = None              # the loaded Calibration, or None: estimate one from the sweep
    auto: tuple | None = None            # (key, Calibration) estimated earlier, reused when the key matches
    sim_spatial: Any = None              # simulator ground-truth SpatialCalibration for estimated calibrations


@dataclass(frozen=True)
class FusedSweep:
    """One capture-and-fuse outcome, as the result views show it."""

    sweep_index: int
    source: str
    stack: FocalStack
    result: Any                          # fusion.engine.FusionResult
    stack_s: float                       # time to build the focal stack (including an estimated calibration)
    fuse_s: float                        # time to fuse it
    pictures: ResultPictures             # display arrays, prepared off the GUI thread
    #: (key, Calibration) when a calibration was estimated for this sweep (none was loaded), else None.
    auto_calibration: tuple | None = None
    notes: tuple[str, ...] = ()          # things the GUI should log (a method that was unavailable, ...)


def auto_key(sweep: SweepData, source: str) -> tuple:
    """What an estimated calibration depends on: the commanded waveform, the geometry and where data came from."""
    c = sweep.commanded
    return (source, c.waveform, c.low_dpt, c.high_dpt, c.frequency_hz, c.dwell_us, tuple(sweep.event_geometry),
            tuple(sweep.frame_geometry))


def fuse_with(stack: FocalStack, method: str, device: str, notes: list[str]) -> Any:
    """``fusion.engine.fuse`` with ``method`` (``auto``: :data:`fusion.engine.AUTO`); a method that cannot load here
    (no weights, a missing optional dependency) falls back to classical, once noted."""
    from fusion.engine import FusionError, fuse, resolve_method

    chosen = resolve_method(method, device)
    if chosen in _UNAVAILABLE:
        chosen = "classical"
    try:
        return fuse(stack, chosen, device)
    except (FusionError, ImportError, OSError) as exc:
        if chosen == "classical":
            raise
        _UNAVAILABLE[chosen] = str(exc)
        notes.append(f"fusion method {chosen} unavailable, using classical: {exc}")
        return fuse(stack, "classical", "cpu")


def run_fusion(request: FusionRequest) -> FusedSweep:
    """Build the stack (estimating a calibration when none was loaded), fuse it, prepare the display arrays."""
    notes: list[str] = []
    t0 = time.perf_counter()
    made = None
    stack = request.stack
    if stack is None:
        from app.gui.autocal import auto_calibration
        from calibration.stack import build_focal_stack

        sweep = request.sweep if request.sweep is not None else _recorded_sweep(request.recording, request.index)
        cal = request.calibration
        if cal is None:
            key = auto_key(sweep, request.source)
            cal = request.auto[1] if request.auto is not None and request.auto[0] == key else None
            if cal is None:
                cal = auto_calibration(sweep, request.sim_spatial)
                made = (key, cal)
        stack = build_focal_stack(sweep, cal, request.n_planes, span=request.span, with_events=cal.spatial is not None,
                                  single_frame=request.single_frame and cal.spatial is not None)
        index = sweep.index
    else:
        index = request.index
    t1 = time.perf_counter()
    result = fuse_with(stack, request.method, request.device, notes)
    t2 = time.perf_counter()
    return FusedSweep(index, request.source, stack, result, t1 - t0, t2 - t1, result_pictures(stack, result), made,
                      tuple(notes))


def _recorded_sweep(path: str, row: int) -> SweepData:
    from capture.recording import Recording

    with Recording.open(path) as recording:
        return recording.sweep(row)


def warm_up(method: str) -> None:
    """Import what fusing will need (calibration, the fusion method and, for ``net``, torch) ahead of time."""
    import calibration.stack  # noqa: F401 - imported for its import cost only
    from fusion.engine import FusionError, get_method, resolve_method

    candidate = resolve_method(method)
    try:
        get_method(candidate)
    except (FusionError, ImportError, OSError) as exc:
        _UNAVAILABLE[candidate] = str(exc)
    except Exception as exc:  # a broken method must not take the fusion process down: skip it, say why
        _UNAVAILABLE[candidate] = f"{type(exc).__name__}: {exc}"
        log.error("fusion method %s cannot be loaded: %s: %s", candidate, type(exc).__name__, exc)


def _serve(conn) -> None:
    """The child's loop: ("warm", method) imports ahead; ("fuse", request) answers ("ok"|"error", value).

    It runs at a lower priority than the GUI: on a 2-core machine a fusion must not take the CPU the event loop
    needs to stay responsive (the result comes a little later instead).
    """
    ipc.lower_priority()
    ipc.detach_from_terminal()  # Ctrl-C and a closed terminal are the GUI's to handle, not this child's
    for kind, payload in ipc.messages(conn):
        if kind == "warm":
            warm_up(payload)
            continue
        try:
            reply = ("ok", run_fusion(payload))
        except Exception as exc:  # every failure goes back to the GUI as a message
            reply = ("error", str(exc) or type(exc).__name__)
        ipc.send(conn, reply)


class FusionProcess:
    """One persistent ``spawn`` worker process for :func:`run_fusion`, started on first use, restarted if it dies.

    ``run`` blocks its caller (a worker thread, never the GUI thread); ``shutdown`` stops the child at once
    (terminating it when it is busy), which also releases a ``run`` waiting on it.
    """

    def __init__(self) -> None:
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child,), name="focalrig-fusion", daemon=True)
            proc.start()  # may raise: then neither the process nor the pipe is kept
            child.close()
            self._proc, self._conn = proc, parent

    def warm(self, method: str) -> None:
        """Start the process and let it import the fusion code in the background (returns at once)."""
        try:
            with self._lock:
                self._ensure()
                ipc.send(self._conn, ("warm", method))
        except (OSError, RuntimeError) as exc:  # no process now: the first fuse tries again and reports
            log.warning("could not start the fusion process ahead of time: %s", exc)

    def run(self, request: FusionRequest) -> FusedSweep:
        with self._lock:
            self._ensure()
            try:
                ipc.send(self._conn, ("fuse", request))
                status, value = ipc.recv(self._conn)
            except (EOFError, OSError, BrokenPipeError):
                proc, self._proc = self._proc, None
                raise RuntimeError(f"the fusion process stopped ({_exit_reason(proc)}); the next capture-and-fuse "
                                   "starts a new one") from None
        if status == "error":
            raise FusionJobError(value)
        return value

    def shutdown(self, timeout_s: float = 0.2) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        try:
            ipc.send(conn, None)
        except (OSError, ValueError):
            pass
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()  # holds nothing that needs a clean exit (it may be mid-import of torch)
            proc.join(5.0)
        conn.close()


def _exit_reason(proc) -> str:
    """Why the fusion child ended (:func:`drivers.ipc.exit_reason`); None: the window shut it down."""
    return "the window is closing" if proc is None else ipc.exit_reason(proc)


class FusionJobError(RuntimeError):
    """Building or fusing the stack failed in the fusion process; the message is the original error's."""
