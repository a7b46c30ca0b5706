"""The one place the GUI touches the Qt-free layers: rig, capture engine, calibration, fusion, replay.

Widgets call methods here and listen to its Qt signals; they never open devices, run the capture engine,
calibrate or fuse themselves (the Qt-free helpers beside this module do the data work: :mod:`~app.gui.live`,
:mod:`~app.gui.replay`, :mod:`~app.gui.fusion_job`). Slow work never runs on the GUI thread:

- connecting/disconnecting devices and loading recordings or calibrations run on a :class:`JobRunner`;
- the capture engine runs in its own threads; its pure-Python signals are bridged into Qt by emitting private
  Qt signals from the engine's threads (queued to the GUI thread), tagged with the engine they came from so a
  late signal of a stopped engine is ignored;
- simulated cameras compute in child processes (``open_rig(..., sim_processes=True)``), as real cameras deliver
  from their SDKs' C threads: in this process their numpy/Python work would hold the GIL against the GUI thread;
- frames and events are pulled by :class:`~app.gui.live.LiveFeed` (worker thread) into mailboxes;
- building the focal stack and fusing it run in a child process (:mod:`app.gui.fusion_job`), fed by
  the fusion runner (newest sweep wins), so the GIL-heavy work never competes with the GUI thread.

On any device or engine failure the rig is closed, which leaves the lens in its safe state, and ``error`` is
emitted with a message for a dialog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal

from app.config import FocalrigConfig, load_config, parse_override
from app.gui.autocal import simulator_spatial
from app.gui.fusion_job import FusedSweep, FusionProcess, FusionRequest
from app.gui.live import LiveFeed
from app.gui.replay import ReplaySession
from app.gui.workers import JobRunner
from capture.focal_stack import FocalStack
from capture.plan import SweepPlan
from capture.sweep import SweepData

log = logging.getLogger("focalrig.gui")


def lens_reading(rig: Any) -> dict:
    """Temperature, mode and set point of the rig's lens (one status query; call it on the device thread)."""
    status = rig.lens.status()
    return {"temperature_c": status.temperature_c, "focal_power_dpt": status.focal_power_dpt,
            "mode": status.mode.value, "position": status.position}


class RigController(QObject):
    """Owns the configuration, the connected rig, the running engine, the calibration and the workers."""

    connection_changed = pyqtSignal(str)      # "disconnected" | "connecting" | "connected" | "failed"
    engine_status = pyqtSignal(object)        # EngineStatus, 5 Hz while an engine exists
    engine_running = pyqtSignal(bool)
    sweep_done = pyqtSignal(object)           # SweepData of the live engine
    fused = pyqtSignal(object)                # FusedSweep
    fusion_failed = pyqtSignal(str)
    fusion_busy = pyqtSignal(bool)
    error = pyqtSignal(str, str)              # title, message (the window shows a dialog)
    recording_changed = pyqtSignal(object)    # Path of the recording being written, or None
    calibration_changed = pyqtSignal(object)  # the active calibration, or None
    plan_changed = pyqtSignal(object)         # SweepPlan
    lens_polled = pyqtSignal(object)          # dict: temperature_c, focal_power_dpt, mode
    replay_changed = pyqtSignal(object)       # the open ReplaySession, or None (back to live)
    overlay_ready = pyqtSignal(object)        # RGB uint8 image: events drawn through the calibration
    auto_range_done = pyqtSignal(object)      # app.auto_range.AutoRange: the plan a pre-sweep gives (not applied)
    auto_range_failed = pyqtSignal(str)       # why no range was chosen

    # Engine → GUI bridge (emitted from engine threads, queued to this object's thread).
    _from_engine_sweep = pyqtSignal(object, object)
    _from_engine_error = pyqtSignal(object, str)
    _from_engine_finished = pyqtSignal(object, object)

    def __init__(self, config_path: str | Path | None = None, overrides: list[str] | None = None,
                 parent: QObject | None = None, *, plan_path: str | Path | None = None) -> None:
        super().__init__(parent)
        self.config_path = Path(config_path) if config_path is not None else None
        self.overrides = list(overrides or [])
        # ``--set plan.KEY=V`` goes to the sweep plan, every other key to the rig config (as `focalrig capture`)
        plan_sets = [parse_override(o) for o in self.overrides if o.strip().startswith("plan.")]
        self.cfg: FocalrigConfig = load_config(self.config_path, overrides=[
            o for o in self.overrides if not o.strip().startswith("plan.")])
        self.plan: SweepPlan = SweepPlan.load(plan_path, plan_sets)
        self.rig: Any = None
        self.engine: Any = None
        self.calibration: Any = None
        self.calibration_path: Path | None = None
        self.replay: ReplaySession | None = None
        self._auto: tuple | None = None           # (key, Calibration) estimated from a sweep
        self.recording_path: Path | None = None
        self._releasing: Any = None               # a rig whose close() is queued on the device thread
        self._rig_spent = False                   # an engine ran on this (simulated) rig: reopen before the next
        self._reopening = False
        self._after_reopen: Callable[[], None] | None = None
        self.state = "disconnected"
        self._shut = False                        # shutdown() ran: late results are dropped
        self._auto_ranging = False                # a pre-sweep owns the rig: engines wait for it (_after_auto)
        self._after_auto: Callable[[], None] | None = None
        self._presweep: Any = None                # the pre-sweep's engine while it runs (shutdown stops it)
        self.fusion_method = "auto"
        self.single_frame = False                 # fuse one frame refocused by the events (scenes that move)
        self.fusion_device = "auto"
        self.n_planes: int | None = None          # None: the plan's n_planes
        self.continuous = False
        self._fuse_next = False
        self._recording = False
        self._next_start: Callable[[], None] | None = None
        self.feed = LiveFeed()
        self.devices = JobRunner("devices", self, latest_only=False)
        self.fusion = JobRunner("fusion", self)
        self._fusion_process = FusionProcess()
        self.loader = JobRunner("loader", self, latest_only=False)
        self.devices.finished.connect(self._device_job_done)
        self.devices.failed.connect(self._device_job_failed)
        self.fusion.started.connect(lambda _tag: self.fusion_busy.emit(True))
        self.fusion.finished.connect(self._fusion_done)
        self.fusion.failed.connect(self._fusion_failed)
        self.loader.finished.connect(self._loader_done)
        self.loader.failed.connect(self._loader_failed)
        queued = Qt.ConnectionType.QueuedConnection
        self._from_engine_sweep.connect(self._on_engine_sweep, queued)
        self._from_engine_error.connect(self._on_engine_error, queued)
        self._from_engine_finished.connect(self._on_engine_finished, queued)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(200)
        self._status_timer.timeout.connect(self._poll_status)
        self._status_timer.start()
        self.feed.start()

    # -- configuration and plan ---------------------------------------------------------------------
    def set_plan(self, plan: SweepPlan) -> None:
        """Use ``plan`` from now on; a running live view restarts on it (a recording keeps its plan)."""
        self.plan = plan
        self.plan_changed.emit(plan)
        if self.engine is not None and not self._recording:
            self._restart(self._start_live, immediate=True)

    # -- devices ------------------------------------------------------------------------------------
    def connect_rig(self) -> None:
        if self.rig is not None or self.state == "connecting":
            return
        self._set_state("connecting")
        cfg = self.cfg

        def job():
            from drivers.registry import open_rig

            rig = open_rig(cfg, sim_processes=True)
            try:
                return rig, lens_reading(rig)
            except Exception:
                rig.close()
                raise

        self.devices.submit("connect", job)

    def disconnect_rig(self) -> None:
        """Stop any capture now and release every device (lens to its safe state)."""
        if self.engine is not None:
            self._restart(self._close_rig, immediate=True)
        else:
            self._close_rig()

    def _close_rig(self) -> None:
        self._after_reopen = None
        rig, self.rig = self.rig, None
        self.feed.set_source(None)
        if rig is not None:
            self._releasing = rig
            self.devices.submit("disconnect", rig.close)
        elif self.state != "failed":
            self._set_state("disconnected")

    def _reopen_rig(self, then: Callable[[], None]) -> None:
        """Close the rig and open it again on the device thread, then call ``then`` (simulated rigs only)."""
        rig, self.rig = self.rig, None
        self._reopening, self._after_reopen = True, then
        self.feed.set_source(None)
        cfg = self.cfg

        def job():
            from drivers.registry import open_rig

            rig.close()
            return open_rig(cfg, sim_processes=True), None

        self.devices.submit("reopen", job)

    def poll_lens(self) -> None:
        """Read lens temperature and state on the device thread while no engine owns the lens."""
        rig = self.rig
        if rig is None or self.engine is not None or self.devices.busy:
            return

        self.devices.submit("poll", lambda: lens_reading(rig))

    def describe(self) -> dict:
        """Identity and configuration of every connected device ({} when disconnected)."""
        return self.rig.describe() if self.rig is not None else {}

    def _device_job_done(self, tag: str, result: Any) -> None:
        if self._shut:  # a result queued before shutdown: release what it opened, start nothing
            if tag in ("connect", "reopen"):
                result[0].close()
            return
        if tag == "connect":
            self.rig, reading = result
            self.lens_polled.emit(reading)
            self._fusion_process.warm(self.fusion_method)  # imports in the background while the view streams
            self._set_state("connected")
            self._start_live()
        elif tag == "reopen":
            self._reopening, then, self._after_reopen = False, self._after_reopen, None
            self.rig, self._rig_spent = result[0], False
            if self.state != "connected":  # disconnected or failed meanwhile
                self._close_rig()
            elif then is not None:
                then()
        elif tag == "disconnect":
            self._releasing = None
            if self.state != "failed":
                self._set_state("disconnected")
        elif tag == "poll":
            self.lens_polled.emit(result)
        elif tag == "auto-range":
            self._auto_range_over()
            self.auto_range_done.emit(result)

    def _device_job_failed(self, tag: str, message: str) -> None:
        if self._shut:
            return
        if tag == "auto-range":  # the pre-sweep's engine left the lens safe; the rig is still usable
            log.warning("auto range: %s", message)
            self._auto_range_over()
            self.auto_range_failed.emit(message)
        elif tag == "poll":
            log.warning("lens poll failed: %s", message)
            self._fail("Lens not answering", message)
        elif tag in ("connect", "reopen"):
            self._reopening, self._after_reopen = False, None
            self._set_state("failed")
            self.error.emit("Cannot connect the rig", message)
        else:
            self._set_state("failed")
            self.error.emit("Error while releasing the devices", message)

    def _fail(self, title: str, message: str) -> None:
        """A device failed: close everything (lens safe), report once."""
        log.error("%s: %s", title, message)
        self._set_state("failed")
        self._next_start = None
        if self.engine is not None:
            self.engine.request_stop(immediate=True)
            self._next_start = self._close_rig
        else:
            self._close_rig()
        self.error.emit(title, message)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.connection_changed.emit(state)

    # -- capture engine -----------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._recording

    def start_live(self) -> None:
        """Stream (without recording) until stopped."""
        self._restart(self._start_live, immediate=True)

    def stop_capture(self, immediate: bool = True) -> None:
        self._next_start = None
        if self.engine is not None:
            self.engine.request_stop(immediate=immediate)

    def start_recording(self, out_dir: Path | None = None) -> None:
        """Record with the current plan (its sweeps/duration, else until stopped) into ``out_dir``."""
        if self.state != "connected":
            self.error.emit("Cannot record", "Connect the rig first.")
            return
        out = Path(out_dir) if out_dir is not None else Path(self.plan.out_dir)
        self._restart(lambda: self._start_engine(self.plan, out), immediate=True)

    def stop_recording(self) -> None:
        """Finish the current sweep, close the recording, go back to live view."""
        if self._recording and self.engine is not None:
            self._restart(self._start_live, immediate=False)

    def capture_and_fuse(self) -> None:
        """Fuse the next complete sweep (starting a one-sweep capture when nothing streams).

        While a recording is replayed, fuse the sweep under the replay cursor instead.
        """
        if self.replay is not None:
            row = self.replay.sweep_at(self.replay.t_us)
            if row is None:
                self.error.emit("Capture & fuse", f"{self.replay.name} has no sweeps to fuse (events only).")
            else:
                self.fuse_replay_sweep(row)
            return
        if self.state != "connected":
            self.error.emit("Capture & fuse", "Connect the rig first (Devices ▸ Connect).")
            return
        self._fuse_next = True
        if self.engine is None:
            self._start_engine(self.plan.model_copy(update={"sweeps": 1, "duration_s": None}), None)

    def set_continuous(self, on: bool) -> None:
        self.continuous = bool(on)

    def _restart(self, start: Callable[[], None], *, immediate: bool) -> None:
        """Run ``start`` once the current engine has finished (at once when none runs)."""
        if self.engine is None:
            start()
            return
        self._next_start = start
        self.engine.request_stop(immediate=immediate)

    def _start_live(self) -> None:
        if self.state != "connected":
            return
        self._start_engine(self.plan.model_copy(update={"sweeps": None, "duration_s": None}), None)

    def _start_engine(self, plan: SweepPlan, out_dir: Path | None) -> None:
        from capture.engine import CaptureEngine

        if self._auto_ranging:  # the pre-sweep has the lens and the cameras: start once it is done
            self._after_auto = lambda: self._start_engine(plan, out_dir)
            return
        if self._reopening:
            self._after_reopen = lambda: self._start_engine(plan, out_dir)
            return
        if self.rig is None:
            return
        if self._rig_spent:
            self._reopen_rig(lambda: self._start_engine(plan, out_dir))
            return
        try:
            engine = CaptureEngine(self.rig, plan, out_dir, calibration_path=self.calibration_path)
            signals = engine.signals
            signals.sweep_finished.connect(lambda sweep, e=engine: self._from_engine_sweep.emit(e, sweep))
            signals.error.connect(lambda message, e=engine: self._from_engine_error.emit(e, str(message)))
            signals.finished.connect(lambda status, e=engine: self._from_engine_finished.emit(e, status))
            self.engine = engine
            self._recording = out_dir is not None
            # Simulated cameras are single-use ("build a new camera" after stop()): the next engine needs a
            # freshly opened rig. Real cameras restart, so their rig is kept.
            self._rig_spent = self.rig.sim is not None
            engine.start()
        except Exception as exc:
            self.engine = None
            self._recording = False
            self._fail("Cannot start the capture", str(exc) or type(exc).__name__)
            return
        geometry = self.rig.event_camera.geometry if self.rig.event_camera is not None else None
        if self.replay is None:
            self.feed.set_source(engine, geometry)
        self.engine_running.emit(True)

    # -- auto range -----------------------------------------------------------------------------------
    def run_auto_range(self) -> None:
        """Sweep the lens's whole range once on the connected rig (the live view pauses for it) and find where the
        scene is in focus, on the device thread; ``auto_range_done`` then carries the plan it gives, for the Sweep
        panel to show (Apply uses it), or ``auto_range_failed`` the reason. The lens is left safe either way."""
        if self.state != "connected" or self.replay is not None:
            self.auto_range_failed.emit("Connect the rig first (Devices ▸ Connect)." if self.replay is None
                                        else "Close the replay first: the auto range sweeps the live lens.")
            return
        if self._recording:
            self.auto_range_failed.emit("Stop recording first: the pre-sweep needs the lens and the cameras.")
            return
        self._restart(self._start_auto_range, immediate=True)

    def _start_auto_range(self) -> None:
        if self._reopening:
            self._after_reopen = self._start_auto_range
            return
        rig, plan, cfg = self.rig, self.plan, self.cfg
        if rig is None or self.state != "connected":
            self.auto_range_failed.emit("The rig was disconnected.")
            return
        if self._rig_spent:
            self._reopen_rig(self._start_auto_range)
            return
        temporal = getattr(self.calibration, "temporal", None)
        self._auto_ranging = True
        self._rig_spent = rig.sim is not None  # the pre-sweep runs an engine: simulated cameras are then spent

        def job():
            from app.auto_range import auto_range
            from drivers.focus_limits import connected_limits

            return auto_range(rig, plan, connected_limits(cfg.lens, rig.lens.capabilities), temporal=temporal,
                              on_engine=lambda engine: setattr(self, "_presweep", engine))

        self.devices.submit("auto-range", job)

    def _auto_range_over(self) -> None:
        """The pre-sweep ended: start what waited for it, else the live view again."""
        self._auto_ranging, self._presweep = False, None
        then, self._after_auto = self._after_auto, None
        (then or self._start_live)()

    def _on_engine_sweep(self, engine: Any, sweep: SweepData) -> None:
        if engine is not self.engine:
            return
        self.sweep_done.emit(sweep)
        if self._fuse_next or self.continuous:
            self._fuse_next = False
            self.fuse_sweep(sweep, "live")

    def _on_engine_error(self, engine: Any, message: str) -> None:
        if engine is self.engine:
            log.error("capture engine: %s", message)

    def _on_engine_finished(self, engine: Any, status: Any) -> None:
        if engine is not self.engine:
            return
        self.engine = None
        was_recording, self._recording = self._recording, False
        self.engine_status.emit(status)
        self.engine_running.emit(False)
        if was_recording:
            self.recording_path = getattr(status, "recording", None)
            self.recording_changed.emit(None)
        if status.exit_status == "failed":
            self._next_start = None
            if self.state == "failed":  # already reported (the failure that stopped it): just release
                self._close_rig()
            else:
                self._fail("Capture failed", status.reason or "the capture engine stopped with an error")
            return
        start, self._next_start = self._next_start, None
        if start is not None:
            start()

    def _poll_status(self) -> None:
        engine = self.engine
        if engine is None:
            return
        status = engine.status()
        self.engine_status.emit(status)
        if self._recording and getattr(status, "recording", None) != self.recording_path:
            self.recording_path = status.recording
            self.recording_changed.emit(self.recording_path)

    # -- fusion -------------------------------------------------------------------------------------
    def fuse_sweep(self, sweep: SweepData, source: str) -> None:
        """Build the focal stack of ``sweep`` with the active calibration and fuse it (fusion process)."""
        sim_spatial = simulator_spatial(self.rig.sim) if self.rig is not None else None
        self._fuse(sweep, sweep.index, source, sim_spatial)

    def fuse_replay_sweep(self, row: int) -> None:
        """Fuse sweep ``row`` of the open replay; the fusion process reads it from the recording itself."""
        session = self.replay
        if session is None:
            return
        if not session.n_sweeps:
            self.fusion_failed.emit(session.no_sweeps_message())
            return
        self._fuse(str(session.path), row, session.name, None)

    @staticmethod
    def fusion_methods() -> list[str]:
        """Every fusion method the engine knows (built in or registered)."""
        from fusion.engine import available_methods

        return available_methods()

    @property
    def active_calibration(self) -> Any:
        """The loaded calibration, else the one estimated automatically for the last fused sweep (or None)."""
        return self.calibration if self.calibration is not None else self.auto_calibration

    def _fuse(self, sweep: SweepData | str, index: int, source: str, sim_spatial: Any) -> None:
        """Sweep (or a recording's path: its sweep ``index``) → focal stack (calibration layer) → fusion, in the
        fusion process.

        Without a loaded calibration one is estimated from the sweep (:mod:`app.gui.autocal`) and reused for
        later sweeps of the same commanded waveform and geometry; events join the stack only when the
        calibration has a spatial part.
        """
        request = FusionRequest(source, index, self.fusion_method, self.fusion_device,
                                self.n_planes or self.plan.n_planes, self.plan.stack_span, self.single_frame,
                                calibration=self.calibration, auto=self._auto, sim_spatial=sim_spatial)
        request = replace(request, recording=sweep) if isinstance(sweep, str) else replace(request, sweep=sweep)
        process = self._fusion_process
        self.fusion.submit(("sweep", source, index), lambda: process.run(request))

    def fuse_stack(self, stack: FocalStack, source: str) -> None:
        """Fuse an already built stack (a loaded NPZ, a synthetic one) in the fusion process."""
        request = FusionRequest(source, int(stack.meta.get("sweep_index", 0)), self.fusion_method,
                                self.fusion_device, stack=stack)
        process = self._fusion_process
        self.fusion.submit(("stack", source), lambda: process.run(request))

    def _fusion_done(self, _tag: Any, fused: FusedSweep) -> None:
        if self._shut:
            return
        self.fusion_busy.emit(self.fusion.busy)
        for note in fused.notes:
            log.warning(note)
        if fused.auto_calibration is not None and self.calibration is None:
            self._auto = fused.auto_calibration
            log.info("calibration estimated from sweep %d (%s)", fused.sweep_index,
                     self._auto[1].meta.get("spatial_source", "no spatial part: events not used"))
            self.calibration_changed.emit(self.active_calibration)
        self.fused.emit(fused)

    def _fusion_failed(self, _tag: Any, message: str) -> None:
        if self._shut:
            return
        self.fusion_busy.emit(self.fusion.busy)
        log.error("fusion failed: %s", message)
        self.fusion_failed.emit(message)

    # -- calibration --------------------------------------------------------------------------------------
    def load_calibration(self, path: str | Path) -> None:
        from calibration.model import Calibration

        self.loader.submit(("calibration", str(path)), lambda: (Path(path), Calibration.load(path)))

    @property
    def auto_calibration(self) -> Any:
        return self._auto[1] if self._auto is not None else None

    def run_calibration(self, recording: str | Path, *, target: str | Path | None = None,
                        board: tuple[int, int] = (9, 6), n_sweeps: int = 5) -> None:
        """Calibrate from recordings as ``focalrig calibrate`` does (loader thread): lag and breathing from the
        first sweeps of ``recording``, geometry from the blinking-board ``target`` (or ``recording`` itself when
        it has no sweeps). The calibration becomes active; its report (corners, overlay, lag fit) is shown."""
        def job():
            import tempfile

            import cv2

            from calibration.pipeline import calibrate_recording
            from calibration.report import write_report
            from calibration.spatial import Board

            run = calibrate_recording(recording, target=target, board=Board(tuple(board)), n_sweeps=n_sweeps)
            with tempfile.TemporaryDirectory() as tmp:
                png = write_report(run, Path(tmp) / "report.png")
                report = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
            for note in run.notes:
                log.warning("calibration: %s", note)
            return None, run.calibration, report

        self.loader.submit(("calibration", str(recording)), job)

    def set_calibration(self, calibration: Any, path: Path | None = None) -> None:
        """Use ``calibration`` for every stack from now on (None: estimate one from the sweeps again)."""
        self.calibration, self.calibration_path = calibration, path
        if calibration is not None:
            log.info("calibration %s active%s", calibration.id, f" ({path})" if path else "")
        self.calibration_changed.emit(self.active_calibration)

    def request_overlay(self) -> None:
        """Draw the source's newest events on its newest frame through the active calibration (loader thread)."""
        from app.gui.imaging import event_overlay

        cal = self.active_calibration
        source = self.replay if self.replay is not None else self.engine
        if cal is None or cal.spatial is None or source is None:
            self.error.emit("Calibration overlay", "Needs a calibration with a spatial part and a live or replayed "
                                                   "source with frames and events.")
            return
        window_us = int(self.feed.accumulation_us)

        def job():
            frame = source.latest_frame()
            if frame is None:
                raise ValueError("no frame yet")
            return event_overlay(frame.image, source.latest_events(window_us), cal.spatial.event_to_rgb)

        self.loader.submit(("overlay", ""), job)

    # -- replay -------------------------------------------------------------------------------------------
    def open_replay(self, path: str | Path) -> None:
        """Open a recording folder or event file on the loader thread; live capture stops when it opens."""
        self.loader.submit(("replay", str(path)), lambda: ReplaySession(path))

    def close_replay(self) -> None:
        """Close the replay and go back to the live rig (restarting the live view when connected)."""
        session, self.replay = self.replay, None
        self.feed.set_source(None)
        if session is not None:
            self.loader.submit(("close", session.name), session.close)
        self.replay_changed.emit(None)
        if self.rig is not None and self.engine is None:
            self._start_live()

    def _loader_done(self, tag: tuple, result: Any) -> None:
        if self._shut:
            if tag[0] == "replay":
                result.close()
            return
        if tag[0] == "calibration":
            path, calibration, *report = result
            self.set_calibration(calibration, path)
            if report:
                self.overlay_ready.emit(report[0])
        elif tag[0] == "overlay":
            self.overlay_ready.emit(result)
        elif tag[0] == "replay":
            old, self.replay = self.replay, result
            if old is not None:
                self.loader.submit(("close", old.name), old.close)
            self.stop_capture(immediate=True)
            self.feed.set_source(result, result.event_geometry)
            log.info("replaying %s (%s, %.3f s, %d sweeps)", result.path, result.recording.status,
                     result.duration_us / 1e6, result.n_sweeps)
            self.replay_changed.emit(result)
            named = result.recording.metadata.get("calibration_file")
            if self.calibration is None and named and Path(named).is_file():
                log.info("using the calibration %s was captured with: %s", result.name, named)
                self.load_calibration(named)

    def _loader_failed(self, tag: tuple, message: str) -> None:
        if tag[0] == "replay":
            self.error.emit("Cannot open the recording", f"{tag[1]}: {message}")
        elif tag[0] in ("calibration", "overlay"):
            self.error.emit("Calibration", message)
        else:
            log.warning("%s %s: %s", tag[0], tag[1], message)

    # -- shutdown -----------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop capture, release the devices (lens safe) and end every worker thread; blocks up to ``timeout_s``."""
        self._shut = True
        self._status_timer.stop()
        self._next_start = self._after_reopen = None
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.request_stop(immediate=True)
            engine.wait(timeout_s)
        if self._presweep is not None:  # an auto range's pre-sweep: stop it so the device thread can end
            self._presweep.request_stop(immediate=True)
        self.feed.stop()
        self._fusion_process.shutdown()  # first: it releases a fusion job waiting on the child
        for runner in (self.fusion, self.loader):
            runner.shutdown(timeout_s)
        if self.replay is not None:
            self.replay.close()
            self.replay = None
        self.devices.shutdown(timeout_s)
        for rig in (self.rig, self._releasing):  # close() is idempotent and never raises
            if rig is not None:
                rig.close()
        self.rig = self._releasing = None
