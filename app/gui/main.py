"""Start the window: ``focalrig gui`` and its scripted mode (capture-and-fuse, screenshot, timings, exit).

The scripted mode exists for tests, documentation and benchmarks: it connects the configured (simulated) rig,
lets it stream, presses Capture & fuse once (or turns continuous fusion on for a while and counts the fused sweeps
against the sweeps the rig completed), waits for the result, saves a screenshot of the main window, prints the
longest GUI event-loop stall and the live views' display rate measured meanwhile, and exits.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PyQt6.QtWidgets import QApplication

from app.config import ConfigError
from app.gui.controller import RigController
from app.gui.settings import GuiSettings, default_settings_path
from app.gui.window import MainWindow
from app.termination import StopSignal, exit_status, handling

log = logging.getLogger("focalrig.gui")
#: Seconds of streaming before the scripted run starts counting displayed pictures (the display-rate figure).
FPS_SETTLE_S = 1.0


@dataclass
class GuiOptions:
    config: Path | None = None
    plan: Path | None = None
    overrides: tuple[str, ...] = ()
    recording: Path | None = None
    capture_and_fuse: bool = False
    screenshot: Path | None = None
    exit_after: bool = False
    report_stalls: bool = False
    settings_path: Path | None = None
    timeout_s: float = 120.0
    #: Seconds of streaming before Capture & fuse is pressed (the stall/fps measurement covers this too).
    warmup_s: float = 2.0
    #: Seconds of continuous fusion after the warm-up (0: one capture-and-fuse instead).
    continuous_s: float = 0.0


class ScriptedRun(QObject):
    """Drives the window through one capture-and-fuse and reports; ``exit_code`` is what ``exec`` returns."""

    def __init__(self, window: MainWindow, options: GuiOptions, report=print) -> None:
        super().__init__(window)
        self.window = window
        self.options = options
        self.report = report
        self.controller = window.controller
        self.t_start = time.perf_counter()
        self.t_measure = 0.0
        self.paints0: tuple[tuple[int, float], tuple[int, float]] | None = None
        self.phase = "connect"
        self._done = False
        self.controller.connection_changed.connect(self._connection)
        self.controller.fused.connect(self._fused)
        self.controller.fusion_failed.connect(self._fusion_failed)
        self.controller.error.connect(lambda title, m: self._finish(1, f"{title}: {m}"))
        self.controller.replay_changed.connect(self._replay_opened)
        self.controller.engine_running.connect(self._engine_running)
        self.controller.sweep_done.connect(self._sweep_done)
        self.t_engine = 0.0
        self.continuous: list = []           # (start, sweeps completed, fused results) of continuous fusion
        self.failures: list[str] = []        # fusions that failed during continuous fusion
        self.sweeps_seen = 0
        QTimer.singleShot(int(options.timeout_s * 1000), lambda: self._finish(1, f"timed out after "
                                                                                f"{options.timeout_s:.0f} s"))

    def _engine_running(self, running: bool) -> None:
        if running and not self.t_engine:
            self.t_engine = time.perf_counter()

    def _start_measuring(self) -> None:
        """Stalls count from the first moment of streaming; the display rate from :data:`FPS_SETTLE_S` later, so
        the first pictures' arrival (the source starting up) is not averaged into the steady rate."""
        self.window.stall.reset()
        self.t_measure = time.perf_counter()
        self._start_counting_paints()
        QTimer.singleShot(int(FPS_SETTLE_S * 1000), self._start_counting_paints)

    def _start_counting_paints(self) -> None:
        self.paints0 = (self.window.rgb_view.item.paints.snapshot(), self.window.event_view.item.paints.snapshot())

    def _connection(self, state: str) -> None:
        if state == "connected" and self.phase == "connect":
            self.phase = "warmup"
            self._start_measuring()
            QTimer.singleShot(int(self.options.warmup_s * 1000), self._press)

    def _replay_opened(self, session) -> None:
        if session is not None and self.phase == "connect":
            self.phase = "warmup"
            panel = self.window.replay_panel  # play (looping) while measuring, as a user watching it would
            panel.loop.setChecked(True)
            panel.play_button.setChecked(True)
            self._start_measuring()
            QTimer.singleShot(int(self.options.warmup_s * 1000), self._press)

    def _press(self) -> None:
        if self.options.continuous_s > 0:
            self.phase = "continuous"
            self.continuous = [time.perf_counter(), self.sweeps_seen, []]
            self.controller.set_continuous(True)
            QTimer.singleShot(int(self.options.continuous_s * 1000), self._end_continuous)
        elif self.options.capture_and_fuse:
            self.phase = "fusing"
            self.controller.capture_and_fuse()
        else:
            self._finish(0, None)

    def _sweep_done(self, _sweep) -> None:
        self.sweeps_seen += 1

    def _fusion_failed(self, message: str) -> None:
        """A failed fusion ends a single capture-and-fuse; in continuous fusion it is counted (a sweep the rig
        delivered without frames, say) and the next sweep is fused."""
        if self.phase == "continuous":
            self.failures.append(message)
        else:
            self._finish(1, f"fusion failed: {message}")

    def _end_continuous(self) -> None:
        self.controller.set_continuous(False)
        t0, sweeps0, fused = self.continuous
        wall = time.perf_counter() - t0
        sweeps = self.sweeps_seen - sweeps0
        if fused:
            stack_ms = 1e3 * sum(f.stack_s for f in fused) / len(fused)
            fuse_ms = 1e3 * sum(f.fuse_s for f in fused) / len(fused)
            r = fused[-1].result
            self.report(f"continuous fusion: {len(fused) / wall:.2f} fused sweeps/s while the rig completed "
                        f"{sweeps / wall:.2f} sweeps/s ({len(fused)} of {sweeps} sweeps fused in {wall:.1f} s; "
                        f"{r.method} on {r.device}, stack {stack_ms:.0f} ms + fuse {fuse_ms:.0f} ms per sweep, "
                        f"{fused[-1].stack.n_planes} planes)")
            if self.failures:
                self.report(f"continuous fusion: {len(self.failures)} sweep(s) could not be fused, e.g. "
                            f"{self.failures[0]}")
        else:
            self.report(f"continuous fusion: no sweep fused in {wall:.1f} s ({sweeps} sweeps completed)")
        self.phase = "done"
        QTimer.singleShot(300, lambda: self._finish(0 if fused else 1, None if fused else "nothing fused"))

    def _fused(self, fused) -> None:
        if self.phase == "continuous":
            self.continuous[2].append(fused)
            return
        if self.phase == "fusing":
            self.phase = "done"
            r = fused.result
            self.report(f"capture-and-fuse: sweep {fused.sweep_index}, {fused.stack.n_planes} planes "
                        f"{fused.stack.shape[1]}x{fused.stack.shape[0]}, method {r.method} on {r.device}, "
                        f"stack {fused.stack_s * 1e3:.0f} ms, fuse {fused.fuse_s * 1e3:.0f} ms")
            QTimer.singleShot(300, lambda: self._finish(0, None))  # let the views paint the result

    def measurements(self) -> dict[str, float]:
        rgb0, ev0 = self.paints0 or ((0, 0.0), (0, 0.0))
        return {"seconds": time.perf_counter() - self.t_measure, "max_stall_ms": self.window.stall.max_stall_ms,
                "rgb_fps": self.window.rgb_view.item.paints.rate_since(rgb0),
                "events_fps": self.window.event_view.item.paints.rate_since(ev0)}

    def _finish(self, code: int, problem: str | None) -> None:
        if self._done:
            return
        self._done = True
        m = self.measurements() if self.t_measure else None
        if m is not None and (self.options.report_stalls or self.options.capture_and_fuse):
            size = self.window.event_view.data()
            geometry = f"{size.shape[1]}x{size.shape[0]}" if size is not None else "?"
            what = "streaming + capture-and-fuse" if self.options.capture_and_fuse else "streaming"
            self.report(f"GUI event loop: longest stall {m['max_stall_ms']:.1f} ms over {m['seconds']:.1f} s of "
                        f"{what}; live display {m['rgb_fps']:.1f} fps (RGB), {m['events_fps']:.1f} fps "
                        f"(events {geometry}; after the first {FPS_SETTLE_S:.0f} s); load average "
                        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            engine = self.controller.engine
            if engine is not None and self.t_engine:
                st, wall = engine.status(), time.perf_counter() - self.t_engine
                self.report(f"source: {st.frames_total / wall:.1f} frames/s and {st.events_total / wall / 1e6:.2f} "
                            f"Mev/s delivered; event clock at {st.t_event_us / 1e6 / wall:.2f}x real time "
                            "(the display cannot show frames faster than the rig delivers them)")
        if self.options.screenshot is not None:
            self.options.screenshot.parent.mkdir(parents=True, exist_ok=True)
            if not self.window.grab().save(str(self.options.screenshot)):
                problem, code = f"cannot write the screenshot {self.options.screenshot}", 2
            else:
                self.report(f"screenshot: {self.options.screenshot}")
        if problem:
            self.report(f"error: {problem}")
        if self.options.exit_after or code != 0:
            self.window.close()
            QApplication.instance().exit(code)


def _configure_logging() -> None:
    """Let INFO records reach the log panel without making the terminal chattier than -v asked for."""
    root = logging.getLogger()
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level)
    root.setLevel(min(root.level, logging.INFO))


def _load_settings(options: GuiOptions) -> tuple[GuiSettings, Path]:
    path = options.settings_path or default_settings_path()
    settings, warnings = GuiSettings.load(path)
    for warning in warnings:
        log.warning(warning)
    return settings, path


def build_window(options: GuiOptions) -> tuple[MainWindow, GuiSettings]:
    """The window and its controller for ``options`` (a QApplication must exist)."""
    settings, path = _load_settings(options)
    config = options.config
    if config is None and settings.last_config and Path(settings.last_config).is_file():
        config = Path(settings.last_config)
    try:
        controller = RigController(config, list(options.overrides), plan_path=options.plan)
    except ConfigError as exc:
        if options.config is not None:
            raise
        log.warning("last config %s is unusable (%s); using the default", config, exc)
        controller = RigController(None, list(options.overrides), plan_path=options.plan)
    window = MainWindow(controller, settings, path)
    return window, settings


def _watch_stop_signals(window: MainWindow, stop: StopSignal) -> QTimer:
    """Ctrl-C, SIGTERM and SIGHUP end the window as its Quit does: capture stopped (a recording finalised as
    ``aborted`` naming the signal), lens released, exit status 128 + the signal's number.

    The signal is recorded by :func:`app.termination.handling`'s watcher thread; this timer acts on it on the GUI
    thread, every 100 ms, where widgets may be touched.
    """
    timer = QTimer(window)

    def check() -> None:
        if not stop.received:
            return
        timer.stop()
        assert stop.signum is not None
        log.warning("%s: stopping capture, releasing the lens and closing", stop.name)
        engine = window.controller.engine
        if engine is not None:
            engine.request_stop(immediate=True, by=stop.name or "a signal")
        window.close()
        QApplication.instance().exit(exit_status(stop.signum))

    timer.timeout.connect(check)
    timer.start(100)
    return timer


def run_gui(options: GuiOptions) -> int:
    """Open the window (and run the scripted mode when asked); returns the process exit status."""
    headless = (sys.platform.startswith("linux") and "QT_QPA_PLATFORM" not in os.environ
                and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"))
    if headless and options.exit_after:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # scripted runs on a headless machine
    elif headless:  # Qt would abort() without a word
        raise ValueError("no display to open the window on (DISPLAY/WAYLAND_DISPLAY unset); run it on a desktop, "
                         "use ssh -X, or use the scripted mode (--exit) which renders offscreen")
    _configure_logging()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("focalrig")
    window, settings = build_window(options)
    window.show()
    if not settings.window_geometry:
        window.resize(1680, 1050)  # a first start (and scripted screenshots): room for every view
    if options.capture_and_fuse or options.exit_after or options.screenshot or options.report_stalls \
            or options.continuous_s:
        ScriptedRun(window, options)  # a child of the window, which keeps it alive
    if options.recording is not None:
        window.controller.open_replay(options.recording)
    else:
        window.controller.connect_rig()
    stop = StopSignal()
    with handling(stop):
        watcher = _watch_stop_signals(window, stop)
        code = app.exec()
        watcher.stop()
    window.close()  # idempotent: settings saved, capture stopped, devices released, workers ended
    # Destroy the widget tree now, while the QApplication exists: left to interpreter shutdown, Qt and Python
    # objects die in arbitrary order, which crashes PyQt now and then (exit status -11 after a clean run).
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    return code
