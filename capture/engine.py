"""The capture engine: runs a :class:`~capture.plan.SweepPlan` on a :class:`~drivers.rig.Rig`, Qt-free.

Threads (app-notes.md §2.1, §3): one reader per camera pulls ``read()`` in a loop and hands results to one
queue whose size is bounded per stream (bytes of events, number of frames) — when the writer falls behind, new
data is dropped and counted, memory never grows; one pipeline thread writes the recording, places frames on the
event clock (:mod:`capture.sync`), cuts sweeps and emits signals; the control thread (``run()``'s caller or
``start()``'s thread) sets the devices up, drives stepped sweeps, polls the lens, and tears everything down —
the lens to its safe state — on success, error and cancel alike. Nothing here needs an event loop: the GUI polls
``status()`` and the mailboxes on a timer, the CLI blocks in ``run()``.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import logging
import math
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from capture.lockstep import Lockstep
from capture.losses import Losses
from capture.merge import TimeMerge
from capture.plan import PlanError, SweepPlan
from capture.recording import RecordingWriter, create_recording_dir, preflight
from capture.recording.diskfull import DiskFull
from capture.replay import ReplayRig
from capture.signals import Signal
from capture.sweep import CommandedSweep
from capture.sync import HostClockMap, StrobeMatcher, SweepAssembler, SyncStats, commanded_samples
from drivers.camera import EventChunk, Frame
from drivers.events.dtypes import EVENT_CD, concat_events
from drivers.focus import Waveform
from drivers.focus_limits import lens_limits
from drivers.rig import Rig

log = logging.getLogger(__name__)

HISTORY_POINTS = 20_000

State = Literal["idle", "preparing", "running", "stopping", "finished"]
#: ``success_with_losses``: the plan ran to its end, but more than LOSS_LIMIT of its frames or events were lost.
ExitStatus = Literal["success", "success_with_losses", "aborted", "failed"]



@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of the engine, cheap to take from any thread (the GUI polls it on a timer)."""

    state: State = "idle"
    sweeps_done: int = 0
    sweeps_total: int | None = None
    event_rate_hz: float = 0.0
    frame_rate_hz: float = 0.0
    bytes_written: int = 0
    write_rate_bps: float = 0.0
    drops: dict[str, int] = field(default_factory=dict)
    exit_status: ExitStatus | None = None
    reason: str | None = None
    recording: Path | None = None
    soft_synced: bool = False
    t_event_us: int = 0
    events_total: int = 0
    frames_total: int = 0
    sync: dict = field(default_factory=dict)
    #: What was lost (at the end): see :class:`capture.losses.Losses`; empty while running.
    losses: dict = field(default_factory=dict)
    #: The lens was put in its safe state at the end (None: not yet, or a lens that cannot move: a replay).
    lens_safe: bool | None = None


class EngineSignals:
    """Emitted from engine threads; slots must be quick (hand work to another thread or event loop)."""

    def __init__(self) -> None:
        self.started = Signal("started")              # (recording path | None)
        self.sweep_started = Signal("sweep_started")  # (sweep index)
        self.sweep_finished = Signal("sweep_finished")  # (SweepData)
        self.frame = Signal("frame")                  # (Frame on the event clock where synced)
        self.error = Signal("error")                  # (message)
        self.finished = Signal("finished")            # (EngineStatus)


class _Rates:
    """Events/s and frames/s over the last second of event time, bytes/s over the last second of wall time."""

    def __init__(self) -> None:
        self.events: collections.deque[tuple[int, int]] = collections.deque()
        self.frames: collections.deque[int] = collections.deque()
        self.bytes: collections.deque[tuple[float, int]] = collections.deque()

    def add_events(self, t_end: int, n: int) -> float:
        self.events.append((t_end, n))
        while self.events and self.events[0][0] < t_end - 1_000_000:
            self.events.popleft()
        span = t_end - self.events[0][0] if len(self.events) > 1 else 0
        return sum(n for _, n in list(self.events)[1:]) / (span * 1e-6) if span else 0.0

    def add_frame(self, t_us: int) -> float:
        self.frames.append(t_us)
        while self.frames and self.frames[0] < t_us - 1_000_000:
            self.frames.popleft()
        span = self.frames[-1] - self.frames[0]
        return (len(self.frames) - 1) / (span * 1e-6) if span > 0 else 0.0

    def add_bytes(self, total: int) -> float:
        now = time.monotonic()
        self.bytes.append((now, total))
        while self.bytes and self.bytes[0][0] < now - 1.0:
            self.bytes.popleft()
        (t0, b0), (t1, b1) = self.bytes[0], self.bytes[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


class CaptureEngine:
    """Runs ``plan`` on ``rig``, recording into a new folder under ``out_dir`` (None: no recording, live only).

    ``keep_sweeps`` builds a :class:`~capture.sweep.SweepData` per sweep and emits ``sweep_finished`` (the GUI and
    fusion need it; a headless recorder can skip the cost). Queue bounds: ``event_queue_mib`` of event data,
    ``frame_queue`` frames (waiting for their strobe included); over them data is dropped and counted, except
    from ``lossless`` sources (default: a simulated rig or a replay not paced in real time), whose readers wait.
    Files are flushed at least every ``flush_interval_s`` and fsynced at sweep ends (at most twice a second).
    A hard-synced plan fails (with advice) when no lens sync edge comes within ``sync_timeout_s`` of events.
    The rig stays open afterwards (its owner closes it); the lens is left in its safe state.
    """

    def __init__(self, rig: Rig, plan: SweepPlan, out_dir: str | Path | None = None, *,
                 calibration_path: str | Path | None = None, keep_sweeps: bool = True,
                 event_queue_mib: float = 128.0, frame_queue: int = 128, flush_interval_s: float = 0.5,
                 lens_poll_s: float = 0.1, lossless: bool | None = None,
                 sync_timeout_s: float = 2.0) -> None:
        if rig.event_camera is None and rig.frame_camera is None:
            raise ValueError("the rig has no camera: nothing to capture")
        self.rig = rig
        self.plan = plan
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.calibration_path = str(calibration_path) if calibration_path is not None else None
        self.keep_sweeps = keep_sweeps
        if lossless is None:  # sources not paced by the wall clock can be throttled instead of dropped
            lossless = (rig.sim is not None and not rig.sim.realtime) or (
                isinstance(rig, ReplayRig) and rig.config.get("realtime") is False) or (
                rig.event_camera is not None and not rig.event_camera.paced)
        self.lossless = lossless
        #: A simulation not paced by the wall clock runs in lockstep with the control thread (capture.lockstep):
        #: the same seed gives the same recording, whatever the machine's load.
        self.deterministic = lossless and rig.sim is not None and not rig.sim.realtime
        streams = [name for name, cam in (("events", rig.event_camera), ("frames", rig.frame_camera))
                   if cam is not None]
        self._lockstep = Lockstep(streams) if self.deterministic else None
        #: Sources that wait for the engine — a simulation or a replay not paced by the wall clock — reach the
        #: pipeline in time order, not in the order their threads ran (capture.merge); "control" carries the
        #: sweep starts a lockstep stepped sweep sets. (A lossless event camera beside a live frame camera is not
        #: merged: the merge would hold the events for frames that need not come.)
        replay_fast = isinstance(rig, ReplayRig) and rig.config.get("realtime") is False
        self._merge = TimeMerge(["control", *streams]) if lossless and (self.deterministic or replay_fast) else None
        self._merge_lock = threading.Lock()
        if self._merge is not None and not (self.deterministic and plan.waveform == "stepped"):
            self._merge.finish("control")
        self.signals = EngineSignals()
        self.uid = str(uuid.uuid4())
        self._event_budget = int(event_queue_mib * (1 << 20))
        self._frame_budget = int(frame_queue)
        self._flush_interval_s = flush_interval_s
        self._lens_poll_s = lens_poll_s
        self._sync_timeout_us = sync_timeout_s * 1e6
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)   # readers wait here for queue room (lossless sources)
        self._status = EngineStatus(sweeps_total=plan.sweeps_total)
        self._queue: queue.Queue = queue.Queue()
        self._queued = {"events": 0, "frames": 0}
        self._drops = {"events": 0, "event_chunks": 0, "frames": 0}
        self._done = threading.Event()          # the capture should end (plan complete, stop, or failure)
        self._abort = threading.Event()         # end without draining the queue
        self._stop_after: int | None = plan.sweeps_total
        self._exit: tuple[ExitStatus, str | None] | None = None
        self._stopped_now = False               # an immediate stop was requested (its reason stands)
        self._thread: threading.Thread | None = None
        self._latest_frame: Frame | None = None
        self._recent_events: collections.deque[np.ndarray] = collections.deque()
        #: Plot histories: the newest HISTORY_POINTS samples (≈ 3 min of 10 ms chunks, ≈ 30 s of 10 Hz sweeps).
        self._lens_hist: collections.deque[tuple[float, float]] = collections.deque(maxlen=HISTORY_POINTS)
        self._rate_hist: collections.deque[tuple[float, float]] = collections.deque(maxlen=HISTORY_POINTS)
        self._stats = SyncStats()
        self._rates = _Rates()
        self._clock = HostClockMap()
        self._writer: RecordingWriter | None = None
        self._assembler: SweepAssembler | None = None
        self._strobe: StrobeMatcher | None = None
        self._measured: list[tuple[float, float, float, float]] = []
        self._commanded_steps: list[tuple[float, float]] = []
        self._cmd_host_us: float | None = None
        self._t_event = 0
        self._t_first_event: int | None = None
        self._t_stream: int | None = None         # end of the first chunk: when the event stream began
        self._t_chunk_start = 0                   # where the latest chunk began (the one before it ended there)
        self._n_events = 0
        self._n_frames = 0
        self._frame_span: list[int] = []          # [first, last] index of the frames written
        #: Index and exposure end of every event-clock frame the frame camera delivered, dropped ones included:
        #: what the event span should hold, to count the frames lost inside it (capture.losses).
        self._delivered = (array.array("q"), array.array("q"))
        self._waiting: list[Frame] = []           # event-clock frames without a strobe, until the events pass them
        self._complete = False                    # the plan's last sweep is out
        self._stepping: dict = {"sweep": 0, "step": 0, "due": None, "ended": False}
        self._first_sweep_announced = False
        #: CPU seconds the pipeline thread spent working (writing, syncing, assembling): the engine's overhead.
        self.pipeline_busy_s = 0.0

    # -- public API ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run in a background thread and return at once (the GUI's way)."""
        if self._thread is not None:
            raise RuntimeError("this engine has already run; build a new one")
        self._thread = threading.Thread(target=self._run, name="capture-control", daemon=True)
        self._thread.start()

    def run(self) -> EngineStatus:
        """Run on the calling thread until the plan is done, stopped or failed (the CLI's way)."""
        if self._thread is not None:
            raise RuntimeError("this engine has already run; build a new one")
        self._thread = threading.current_thread()
        self._run()
        return self.status()

    def request_stop(self, immediate: bool = False, by: str = "the user") -> None:
        """First call: finish the sweep in progress, then stop; ``immediate``: stop now (files stay readable).

        ``by`` names who asked, for the recorded reason ("stopped immediately by SIGTERM"). The first immediate
        stop's reason stands (a signal that stopped the capture is not renamed by the shutdown after it), and a
        failure before it stays the exit status.
        """
        with self._lock:
            if immediate:
                if not self._stopped_now and (self._exit is None or self._exit[0] != "failed"):
                    self._exit = ("aborted", f"stopped immediately by {by}")
                self._stopped_now = True
                self._abort.set()
                self._done.set()
                return
            asm = self._assembler
            current = asm.sweeps_done if asm is not None and asm.started else 0
            if self._stop_after is None or current + 1 < self._stop_after:
                self._stop_after = current + 1
                status = "success" if self.plan.sweeps_total is None else "aborted"
                self._exit = self._exit or (status, f"stopped by {by} after sweep {current}")
            if asm is None or not asm.started:
                self._done.set()

    def wait(self, timeout_s: float | None = None) -> EngineStatus:
        """Block until finished (or ``timeout_s``), then return the status."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        return self.status()

    def status(self) -> EngineStatus:
        with self._lock:
            return dataclasses.replace(self._status, drops=dict(self._drops), sync=self._stats.as_dict())

    def latest_frame(self) -> Frame | None:
        return self._latest_frame

    def latest_events(self, window_us: int) -> np.ndarray:
        """CD events of the newest ``window_us`` of the stream (for a live accumulation view)."""
        cutoff = self._t_event - window_us
        with self._lock:
            parts = []
            for part in reversed(self._recent_events):  # newest first; stop at the first chunk wholly older
                if part["t"][-1] < cutoff:
                    break
                parts.append(part)
        if not parts:
            return np.empty(0, EVENT_CD)
        cd = concat_events(parts[::-1], EVENT_CD)
        return cd[np.searchsorted(cd["t"], cutoff):]

    def lens_history(self) -> np.ndarray:
        """(k, 2) [t_us, dpt] of the recent focal power (commanded per sweep, measured where the lens says)."""
        with self._lock:
            return np.array(self._lens_hist, dtype=np.float64).reshape(-1, 2)

    def rate_history(self) -> np.ndarray:
        """(k, 2) [t_us, events/s] per delivered chunk."""
        with self._lock:
            return np.array(self._rate_hist, dtype=np.float64).reshape(-1, 2)

    # -- control thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        threads: list[threading.Thread] = []   # the reader threads started (only those can be joined)
        pipeline: threading.Thread | None = None
        try:
            self._update(state="preparing")
            self._prepare()
            pipeline = threading.Thread(target=self._pipeline, name="capture-pipeline", daemon=True)
            pipeline.start()
            self._start_lens()  # a lens that refuses the sweep fails here, before any reader runs
            for cam in (self.rig.event_camera, self.rig.frame_camera):
                if cam is not None:
                    cam.start()
            for cam, target in ((self.rig.event_camera, self._read_events), (self.rig.frame_camera, self._read_frames)):
                if cam is not None:
                    reader = threading.Thread(target=target, name=f"capture-{target.__name__}", daemon=True)
                    reader.start()
                    threads.append(reader)
            self._update(state="running")
            self.signals.started.emit(self._writer.folder if self._writer else None)
            self._control_loop()
        except Exception as exc:
            self._fail(exc)
        finally:
            self._teardown(threads, pipeline)

    def _prepare(self) -> None:
        """Checks and set-up before anything moves: output, disk space, trigger wiring, camera timing."""
        plan, rig = self.plan, self.rig
        if self.out_dir is not None:
            frame_size = (*rig.frame_camera.geometry, 3) if rig.frame_camera is not None else (0, 0, 0)
            out = preflight(self.out_dir, plan.expected_volume(frame_size)["total_bytes"], plan.min_free_mib)
        if rig.sim is not None:  # the simulated wiring is known: a plan that disagrees would only time out later
            for key, planned, wired in (("strobe_channel", plan.strobe_channel, rig.sim.strobe_channel),
                                        ("sync_channel", plan.sync_channel, rig.sim.sync_channel)):
                if planned is not None and planned != wired:
                    raise ValueError(f"plan.{key} = {planned}, but the simulated rig has "
                                     f"{'nothing' if wired is None else f'channel {wired}'} wired there "
                                     f"(sim.{key}); set plan.{key}={'none' if wired is None else wired}")
        if rig.frame_camera is not None:
            rig.frame_camera.configure(exposure_us=plan.exposure_us, frame_rate_hz=plan.frame_rate_hz)
        if rig.event_camera is not None:
            for channel in (plan.strobe_channel if rig.frame_camera is not None else None, plan.sync_channel):
                if channel is not None:
                    rig.event_camera.enable_trigger_in(channel)
        rig.lens.connect()
        if not isinstance(rig, ReplayRig):  # a plan the lens cannot run fails here, before anything moves or is written
            plan.check_lens(lens_limits(rig.lens, rig.config.get("lens")))
        event_geom = rig.event_camera.geometry if rig.event_camera is not None else (0, 0)
        frame_geom = rig.frame_camera.geometry if rig.frame_camera is not None else (0, 0)
        template = self._template()
        hard = plan.sync_channel is not None and rig.event_camera is not None and plan.waveform != "stepped"
        meta = {"recording_uid": self.uid if self.out_dir else None, "plan": plan.name,
                "strobe_channel": plan.strobe_channel, "sync_channel": plan.sync_channel,
                "calibration_file": self.calibration_path}
        self._assembler = SweepAssembler(template, event_geom, frame_geom, self._stats,
                                         sync_channel=plan.sync_channel if hard else None, keep=self.keep_sweeps,
                                         meta=meta, wait_for_frames=rig.frame_camera is not None)
        if plan.strobe_channel is not None and rig.event_camera is not None and rig.frame_camera is not None:
            self._strobe = StrobeMatcher(plan.strobe_channel, self._stats)
        self._update(soft_synced=not hard)
        if self.out_dir is not None:
            folder = create_recording_dir(out, plan.name_pattern, plan.name, self.uid)
            cam = rig.event_camera
            commanded = {k: v for k, v in dataclasses.asdict(template).items() if k not in ("t0_us", "soft_synced")}
            self._writer = RecordingWriter(
                folder, uid=self.uid, plan=plan.model_dump(mode="json"), describe=rig.describe(),
                event_geometry=cam.geometry if cam is not None else None,
                raw_format=cam.raw_format if cam is not None else None,
                raw_header=cam.raw_header if cam is not None else None, calibration_path=self.calibration_path,
                extra={"commanded": commanded, "event_geometry": list(event_geom) if cam else None,
                       "frame_geometry": list(frame_geom) if rig.frame_camera else None,
                       "soft_synced": not hard, "replay_of": str(rig.recording.path)
                       if isinstance(rig, ReplayRig) else None})
            self._update(recording=folder)

    def _template(self) -> CommandedSweep:
        p = self.plan
        if p.waveform == "stepped":
            return CommandedSweep("stepped", p.low_dpt, p.high_dpt, 0.0, step_powers_dpt=p.step_powers_dpt,
                                  dwell_us=p.dwell_ms * 1000.0, soft_synced=True)
        return CommandedSweep(p.waveform, p.low_dpt, p.high_dpt, 0.0, frequency_hz=p.frequency_hz,
                              soft_synced=p.sync_channel is None)

    def _event_now(self) -> float | None:
        """The present on the event clock: the simulated world's clock, or the host clock mapped onto it."""
        if self.rig.sim is not None:
            return self.rig.sim.now_us()
        return self._clock.to_event(time.monotonic_ns() / 1000)

    def _start_lens(self) -> None:
        plan, lens, asm = self.plan, self.rig.lens, self._assembler
        assert asm is not None
        if isinstance(self.rig, ReplayRig) and (plan.waveform == "stepped" or plan.sync_channel is None):
            for t0 in self.rig.sweep_starts_us():  # the recording's own sweep origins (soft-synced or stepped)
                asm.add_start(t0)
            return
        if plan.waveform == "stepped":
            lens.set_focal_power(plan.step_powers_dpt[0])
            return
        lens.start_sweep(Waveform(plan.waveform), plan.frequency_hz, plan.low_dpt, plan.high_dpt, "dpt")
        self._cmd_host_us = time.monotonic_ns() / 1000
        if plan.sync_channel is None and self.rig.sim is not None:
            asm.set_origin(self.rig.sim.now_us())

    def _control_loop(self) -> None:
        """Poll the lens, run stepped sweeps, watch for a missing sync, until the capture is done.

        In lockstep (a simulation not paced by the wall clock) each action waits until the cameras stand at its
        time and happens there: the simulated cameras stop short of it, so the present is made that time and a
        stepped set point takes effect exactly ``dwell_ms`` after the one before (a camera that cannot say where its
        next item ends may stand past it: then the action happens at the present). Polls come every ``lens_poll_s``
        of simulated time. Otherwise actions happen when the wall clock says, and polls every ``lens_poll_s`` of
        wall time.
        """
        stepped = self.plan.waveform == "stepped" and not isinstance(self.rig, ReplayRig)
        gate = self._lockstep
        next_poll = 0.0 if gate is not None else time.monotonic()
        while not self._done.is_set():
            if gate is not None:
                if gate.wait_all_at(self._done, 0.02):
                    sim = self.rig.sim
                    t = max(sim.now_us(), gate.horizon_us)  # decided by the simulation alone
                    sim.advance(t)  # the present, where a lens command sent now takes effect
                    if t >= next_poll:
                        self._poll_lens(t)
                        next_poll = t + self._lens_poll_s * 1e6
                    due = self._step(t) if stepped else None
                    sim.poll_lens()  # a set point just sent reaches the simulated lens at t, before any camera moves
                    horizon = min(next_poll, math.inf if due is None else due)
                    if stepped:
                        self._promise_control(horizon)
                    gate.advance(horizon)
            else:
                now = time.monotonic()
                if now >= next_poll:
                    self._poll_lens()
                    next_poll = now + self._lens_poll_s
                if stepped:
                    self._step(self._event_now())
            self._check_sync()
            if isinstance(self.rig, ReplayRig) and self.rig.at_end:
                with self._lock:
                    self._exit = self._exit or ("success", "end of the replayed recording")
                break
            cam = self.rig.event_camera
            if not isinstance(self.rig, ReplayRig) and cam is not None and cam.at_end:  # a recording as a camera
                with self._lock:
                    self._exit = self._exit or ("success", "end of the event camera's recording")
                break
            if gate is None:
                self._done.wait(0.001 if stepped else 0.02)

    def _step(self, t: float | None) -> float | None:
        """The stepped sweep at event time ``t``: the next set point once the last was held ``dwell_ms``, the last
        sweep's end once its last set point was. Returns when the next step is due (None: nothing left)."""
        st = self._stepping
        if t is None or st["ended"] or (st["due"] is not None and t < st["due"]):
            return None if st["ended"] else st["due"]
        if self._stop_after is not None and st["sweep"] >= self._stop_after:  # the last set point has been held
            self._call(lambda t1=t: self._assembler.add_start(t1), t)
            st["ended"] = True
            return None
        power = self.plan.step_powers_dpt[st["step"]]
        if st["step"] > 0 or st["sweep"] > 0:
            self.rig.lens.set_focal_power(power)
            if self._lockstep is None:
                t = self._event_now()  # when it was set (in lockstep the present did not move meanwhile)
        if st["step"] == 0:
            self._call(lambda t0=t: self._assembler.add_start(t0), t)
        with self._lock:
            self._commanded_steps.append((t, power))
        st["due"] = t + self.plan.dwell_ms * 1000.0  # each set point held at least dwell_ms, however late it came
        st["step"] += 1
        if st["step"] == self.plan.n_planes:
            st["step"], st["sweep"] = 0, st["sweep"] + 1
        return st["due"]

    def _check_sync(self) -> None:
        asm = self._assembler
        if asm is None or asm.started or asm.sync_channel is None or self._t_stream is None:
            return
        if self._t_event - self._t_stream > self._sync_timeout_us + 2 * asm.period_us:
            raise RuntimeError(f"no lens sync edge on trigger-in channel {asm.sync_channel} within "
                               f"{(self._t_event - self._t_stream) / 1e6:.1f} s of events; check the sync "
                               "wiring, or set plan.sync_channel=none for soft sync")

    def _poll_lens(self, t: float | None = None) -> None:
        """Measured lens state with its event-clock time ``t`` (default: now; the lens reports focal power only
        where it knows it)."""
        st = self.rig.lens.status()
        t = self._event_now() if t is None else t
        if t is None:
            return
        dpt = st.focal_power_dpt
        row = (t, np.nan if st.position is None else st.position, np.nan if dpt is None else dpt,
               np.nan if st.temperature_c is None else st.temperature_c)
        with self._lock:
            self._measured.append(row)
            if dpt is not None:
                self._lens_hist.append((t, dpt))

    def _fail(self, exc: BaseException) -> None:
        # A full disk and a plan the lens refuses are worded for the user already ("disk full after 12.3 s; everything
        # up to 11.9 s is saved", "plan.high_dpt = 3 dpt is outside the focal-power range …");
        # whoever runs the engine reports the reason once (the CLI's last line, the GUI's dialog).
        reason = str(exc) if isinstance(exc, (DiskFull, PlanError)) else f"{type(exc).__name__}: {exc}"
        log.info("capture failed: %s", reason)
        with self._lock:
            if self._exit is None or self._exit[0] != "failed":  # the first failure is the reason
                self._exit = ("failed", reason)
        self._done.set()  # what arrived before the failure is still drained into the recording
        self.signals.error.emit(reason)

    def _teardown(self, threads: list[threading.Thread], pipeline: threading.Thread | None) -> None:
        """Wind the capture down (:meth:`_wind_down`); never raises, and whatever happens on the way the engine ends
        "finished" and emits ``finished`` — the CLI's progress loop and the GUI wait for exactly that."""
        final: dict = {}
        try:
            final = self._wind_down(threads, pipeline)
        except Exception as exc:  # a fault here must not leave the engine "stopping" with nobody told
            log.exception("ending the capture failed")
            with self._lock:
                first = self._exit[1] if self._exit is not None and self._exit[0] == "failed" else None
            final = {"exit_status": "failed",
                     "reason": "; ".join(filter(None, [first, f"ending the capture: {type(exc).__name__}: {exc}"]))}
        finally:
            self._update(state="finished", **final)
            self.signals.finished.emit(self.status())

    def _wind_down(self, threads: list[threading.Thread], pipeline: threading.Thread | None) -> dict:
        """Stop cameras, drain (unless aborting), lens to its safe state, close the files; returns the final
        status fields (exit status, reason, losses, lens_safe)."""
        self._update(state="stopping")
        self._done.set()
        for cam in (self.rig.event_camera, self.rig.frame_camera):
            if cam is not None:
                try:
                    cam.stop()
                except Exception as exc:
                    log.warning("stopping %s failed: %s", type(cam).__name__, exc)
        for t in threads:
            if t.ident is not None:  # started
                t.join(5.0)
        if self._lockstep is not None and self.rig.sim is not None:
            # The cameras have stopped, so nothing recorded can show the release below; left following, the
            # simulated lens path would gain a segment at wherever the readers happened to stop.
            self.rig.sim.unfollow_lens()
        lens_note, lens_safe = None, None
        try:
            self.rig.lens.safe_state()
            lens_safe = not isinstance(self.rig, ReplayRig) or None
        except Exception as exc:
            lens_note, lens_safe = f"lens safe state not confirmed: {exc}", False
            log.warning("%s", lens_note)
        if pipeline is not None:
            if self._merge is not None:
                with self._merge_lock:
                    for queued in self._merge.drain():
                        self._queue.put(queued)
            self._queue.put(("end", None))
            pipeline.join(30.0)
        with self._lock:
            exit_status, reason = self._exit or ("success", None)
        total, done = self.plan.sweeps_total, self.status().sweeps_done
        if exit_status == "success" and total is not None and done < total:  # the source's data ended first
            reason = f"{reason or 'the source ended'}: {done} of the plan's {total} sweeps"
        losses = self._losses()
        if exit_status == "success" and losses.large:
            exit_status, reason = "success_with_losses", "; ".join(filter(None, [reason, losses.summary()]))
        if lens_note and exit_status != "failed":
            reason = "; ".join(filter(None, [reason, lens_note]))
        if self._writer is not None:
            try:
                self._writer.close(exit_status, reason, self._results())
            except Exception as exc:
                exit_status, reason = "failed", "; ".join(filter(None, [reason, f"closing the recording: {exc}"]))
                log.error("closing the recording failed: %s", exc)
        return {"exit_status": exit_status, "reason": reason, "losses": losses.as_dict(), "lens_safe": lens_safe}

    def _losses(self) -> Losses:
        """Frames missing inside the event span (from the first frame delivered to the last one the event
        clock reached, camera-side gaps included), or — for frames on another clock — between the first and the
        last frame written; events dropped from the queue."""
        index, end = (np.frombuffer(a, np.int64) for a in self._delivered)
        if len(index) and self.rig.event_camera is not None:
            k = int(np.searchsorted(end, self._t_event, side="right"))
            missing = int(index[k - 1] - index[0] + 1) - self._n_frames if k else 0
        else:
            span = self._frame_span
            missing = span[1] - span[0] + 1 - self._n_frames if span else 0
        return Losses(frames_written=self._n_frames, frames_missing=max(0, missing),
                      frames_after_events=self._stats.frames_after_events, events_written=self._n_events,
                      events_dropped=self._drops["events"], event_chunks_dropped=self._drops["event_chunks"])

    def _results(self) -> dict:
        st = self.status()
        return {"counts": {"events": self._n_events, "frames": self._n_frames, "sweeps": st.sweeps_done},
                "drops": dict(self._drops), "sync": self._stats.as_dict(), "soft_synced": st.soft_synced,
                "losses": self._losses().as_dict(), "t_first_event_us": self._t_first_event,
                "t_last_event_us": self._t_event}

    # -- reader threads ----------------------------------------------------------------------------------
    def _read_events(self) -> None:
        self._read("events", self.rig.event_camera, lambda c: (
            c.cd.nbytes + len(c.raw or b""), self._event_budget, len(c.cd), c.t_end_us))

    def _read_frames(self) -> None:
        self._read("frames", self.rig.frame_camera, lambda f: (1, self._frame_budget, 1, f.exposure_end_us))

    def _read(self, stream: str, cam, measure) -> None:
        """One camera's reader thread: read and offer until stopped or the camera's recording has ended.

        ``measure(item)`` gives (size in the stream's budget, the budget, items it counts as, its end time).
        In lockstep it stops before reading past the control thread's horizon, and once the capture is done.
        """
        gate = self._lockstep
        try:
            while not self._abort.is_set():
                if gate is not None:
                    upcoming = getattr(cam, "next_end_us", None)  # simulated cameras say where their next item ends
                    gate.wait_turn(stream, self._done, next_end_us=upcoming() if upcoming is not None else None)
                    if self._done.is_set():
                        break
                item = cam.read(0.05)
                if item is None:
                    if self._done.is_set() or getattr(cam, "at_end", False):
                        break
                    continue
                size, budget, count, end_us = measure(item)
                if gate is not None:
                    gate.delivered(stream, end_us)
                self._offer(stream, item, size, budget, count, end_us)
        except Exception as exc:
            self._fail(exc)
        finally:
            if gate is not None:
                gate.finish(stream)
            if self._merge is not None:
                with self._merge_lock:
                    for queued in self._merge.finish(stream):
                        self._queue.put(queued)

    def _offer(self, stream: str, item: EventChunk | Frame, size: int, budget: int, count: int,
               end_us: float) -> None:
        """Queue ``item`` unless its stream's budget is used up; then drop it and count the drop.

        Lossless sources (simulation or replay not paced by the wall clock) wait for room instead: nothing is
        lost by waiting for them. Their items pass the time merge (key ``end_us``), so the pipeline sees events
        and frames in time order whatever order the reader threads ran in.
        """
        host_us = time.monotonic_ns() / 1000
        if stream == "frames" and item.clock == "event":
            self._delivered[0].append(item.index)
            self._delivered[1].append(item.exposure_end_us)
        with self._space:
            while self.lossless and self._queued[stream] + size > budget and self._queued[stream] > 0 \
                    and not self._done.is_set():
                self._space.wait(0.05)
            if self._queued[stream] and self._queued[stream] + size > budget and not self.lossless:
                self._drops[stream] += count
                if stream == "events":
                    self._drops["event_chunks"] += 1
                dropped = True
            else:
                self._queued[stream] += size
                dropped = False
        if dropped:
            if stream == "events":
                self._queue.put(("gap", None))
            return
        if self._merge is not None:
            with self._merge_lock:
                for queued in self._merge.put(stream, end_us, (stream, (item, host_us, size))):
                    self._queue.put(queued)
            return
        self._queue.put((stream, (item, host_us, size)))

    # -- pipeline thread ---------------------------------------------------------------------------------
    def _call(self, fn, t_us: float | None = None) -> None:
        """Run ``fn`` on the pipeline thread (which owns the assembler): in lockstep at its place ``t_us`` in the
        streams' time order, otherwise when it reaches the queue."""
        if self._merge is not None and self._lockstep is not None and t_us is not None \
                and self.plan.waveform == "stepped":
            with self._merge_lock:
                for item in self._merge.put("control", t_us, ("call", fn)):
                    self._queue.put(item)
            return
        self._queue.put(("call", fn))

    def _promise_control(self, horizon_us: float) -> None:
        """In lockstep: the control thread will act at no event time before ``horizon_us`` (data up to it may pass)."""
        if self._merge is not None:
            with self._merge_lock:
                for item in self._merge.promise("control", horizon_us):
                    self._queue.put(item)

    def _pipeline(self) -> None:
        try:
            while True:
                try:
                    kind, payload = self._queue.get(timeout=0.05)
                except queue.Empty:
                    kind, payload = "idle", None
                if self._abort.is_set():
                    break
                busy = time.thread_time()
                if kind == "end":
                    self._finish_pipeline()
                    break
                if self._complete and self.lossless and kind in ("events", "frames"):
                    self._discard(kind, payload)  # past the plan's end: a source that waited owes nothing more
                    continue
                if kind == "events":
                    self._on_events(*payload)
                elif kind == "frames":
                    self._on_frame(*payload)
                elif kind == "gap" and self._writer is not None:
                    self._writer.events_dropped()
                elif kind == "call":
                    payload()
                self._advance()
                self.pipeline_busy_s += time.thread_time() - busy
        except Exception as exc:
            self._fail(exc)

    def _discard(self, kind: str, payload: tuple) -> None:
        """Give back the budget of an item that will not be recorded."""
        with self._space:
            self._queued[kind] -= payload[2]
            self._space.notify_all()

    def _on_events(self, chunk: EventChunk, host_us: float, size: int) -> None:
        with self._space:
            self._queued["events"] -= size
            self._space.notify_all()
        if self._writer is not None:
            self._writer.write_events(chunk)
        self._clock.observe(host_us, chunk.t_end_us)
        asm = self._assembler
        if self._cmd_host_us is not None and asm.sync_channel is None and asm.sweeps_done == 0 \
                and self.rig.sim is None and not isinstance(self.rig, ReplayRig) and self.plan.waveform != "stepped":
            asm.set_origin(self._clock.to_event(self._cmd_host_us))  # refined until the first sweep is out
        if self._strobe is not None:
            self._strobe.add_triggers(chunk.triggers)
        asm.add_events(chunk.cd, chunk.triggers, chunk.t_end_us)
        n = len(chunk.cd)
        if self._t_stream is None:
            self._t_stream = chunk.t_end_us
        if self._t_first_event is None and n:
            self._t_first_event = int(chunk.cd["t"][0])
        self._n_events += n
        self._t_chunk_start, self._t_event = self._t_event, chunk.t_end_us
        rate = self._rates.add_events(chunk.t_end_us, n)
        with self._lock:
            if n:
                self._recent_events.append(chunk.cd)
                total = sum(len(c) for c in self._recent_events)
                while len(self._recent_events) > 1 and (
                        self._recent_events[0]["t"][-1] < chunk.t_end_us - 1_000_000 or total > 4_000_000):
                    total -= len(self._recent_events.popleft())
            self._rate_hist.append((chunk.t_end_us, rate))
        self._update(event_rate_hz=rate, t_event_us=chunk.t_end_us, events_total=self._n_events)

    def _on_frame(self, frame: Frame, host_us: float, _size: int) -> None:
        if self._strobe is not None:
            self._strobe.add_frame(frame)
            return
        frame = self._unstrobed(frame, host_us)
        if frame.clock == "event" and self.rig.event_camera is not None:
            self._waiting.append(frame)  # placed once the event stream has reached its end (_advance)
        else:
            self._place([frame])

    def _unstrobed(self, frame: Frame, host_us: float) -> Frame:
        """A frame without strobe pairing: event-clock sources keep their times, host times are mapped."""
        if frame.clock == "host":
            t = self._clock.to_event(frame.exposure_start_us)
            if t is not None:
                shift = round(t) - frame.exposure_start_us
                return dataclasses.replace(frame, exposure_start_us=frame.exposure_start_us + shift,
                                           exposure_end_us=frame.exposure_end_us + shift, clock="event")
        return frame

    def _place(self, frames: list[Frame], sources: list[str] | None = None) -> None:
        """Frames with their final times: focal power filled in, written, assembled, announced.

        A frame dated on the event clock beyond the last event received is not placed: the event stream never
        reached it (it stopped, or fell behind a frame camera that kept going), so nothing recorded vouches for
        its time. It is counted (``frames_after_events``), not written.
        """
        if not frames:
            return
        with self._space:  # a frame holds its place in the budget until placed (strobe wait included)
            self._queued["frames"] -= len(frames)
            self._space.notify_all()
        asm = self._assembler
        if sources is None:
            sources = ["event" if f.clock == "event" else "camera" for f in frames]
        done, kept = [], []
        for f, source in zip(frames, sources, strict=True):
            if f.clock == "event" and self.rig.event_camera is not None and f.exposure_end_us > self._t_event:
                self._stats.frames_after_events += 1
                continue
            if f.focal_power_dpt is None and f.clock == "event":
                power = asm.commanded_at((f.exposure_start_us + f.exposure_end_us) / 2)
                f = dataclasses.replace(f, focal_power_dpt=power)
            done.append(f)
            kept.append(source)
            asm.add_frame(f)
        if not done:
            return
        if self._writer is not None:
            self._writer.write_frames(done, kept)
        self._n_frames += len(done)
        span = self._frame_span
        self._frame_span = [min(span[0], done[0].index), max(span[1], done[-1].index)] if span else \
            [done[0].index, done[-1].index]
        self._latest_frame = done[-1]
        rate = 0.0
        for f in done:
            rate = self._rates.add_frame(f.exposure_start_us)
            self.signals.frame.emit(f)
        self._update(frame_rate_hz=rate, frames_total=self._n_frames)

    def _advance(self) -> None:
        """After each item: place frames whose strobe arrived, hand out finished sweeps, flush when due."""
        if self._strobe is not None:
            ready = self._strobe.ready(self._t_event)
            self._place(ready, ["strobe" if f.clock == "event" else "camera" for f in ready])
        if self._waiting:
            n = next((i for i, f in enumerate(self._waiting) if f.exposure_end_us > self._t_event),
                     len(self._waiting))
            ready, self._waiting = self._waiting[:n], self._waiting[n:]
            self._place(ready)
        self._hand_out(final=False)
        w = self._writer
        if w is not None:
            with self._lock:
                # In lockstep a lens sample is written once the events have passed its time: by then every
                # sample before it exists, so the samples written depend on the simulation alone.
                upto = self._t_chunk_start if self._lockstep is not None else math.inf
                measured = [row for row in self._measured if row[0] <= upto]
                self._measured = self._measured[len(measured):]
            w.write_lens(np.array(measured, np.float64).reshape(-1, 4))
            if w.flush_due(self._flush_interval_s):
                w.flush()
            self._update(bytes_written=w.bytes_written, write_rate_bps=self._rates.add_bytes(w.bytes_written))

    def _hand_out(self, final: bool) -> None:
        asm = self._assembler
        if not self._first_sweep_announced and asm.started:
            self._first_sweep_announced = True
            self.signals.sweep_started.emit(0)
        for record, data in asm.pop_ready(final=final):
            k = record["index"]
            limit = self._stop_after
            if limit is not None and k >= limit:
                self._complete = True
                self._done.set()
                break
            commanded = asm.commanded(k)
            samples = commanded_samples(commanded, record["t_start_us"], record["t_end_us"])
            if self._writer is not None:
                if self.plan.waveform == "stepped":
                    with self._lock:
                        steps = [s for s in self._commanded_steps if s[0] < record["t_end_us"]]
                        self._commanded_steps = [s for s in self._commanded_steps if s[0] >= record["t_end_us"]]
                    if steps:
                        samples = np.array(steps, np.float64)
                self._writer.write_sweep(record, samples)
            with self._lock:
                self._lens_hist.extend(map(tuple, samples))
            self._update(sweeps_done=k + 1)
            if data is not None:
                self.signals.sweep_finished.emit(data)
            if limit is not None and k + 1 >= limit:
                self._complete = True
                self._done.set()
            else:
                self.signals.sweep_started.emit(k + 1)

    def _finish_pipeline(self) -> None:
        """Drained after the readers stopped: place the last frames, hand out complete sweeps, flush."""
        if self._strobe is not None:
            ready = self._strobe.ready(self._t_event)
            self._place(ready, ["strobe" if f.clock == "event" else "camera" for f in ready])
            self._place(self._strobe.flush(), None)
        self._place(self._waiting)  # those the event stream reached; the others are counted
        self._waiting = []
        self._hand_out(final=True)
        if self._writer is not None:
            self._writer.flush(durable=True)

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = dataclasses.replace(self._status, **changes)
