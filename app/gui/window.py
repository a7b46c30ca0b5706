"""The main window: live views, fusion views, dockable panels, actions with shortcuts, persisted layout.

The display timer (the user's display rate, 30 Hz by default) takes the newest :class:`~app.gui.live.
LivePicture` and traces from the feed's mailboxes and hands them to pyqtgraph; nothing else runs per tick.
Errors from the controller open a non-blocking dialog (the devices have already been released by then).
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QByteArray, Qt, QTimer
from PyQt6.QtGui import QAction, QActionGroup, QKeySequence
from PyQt6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import RigController
from app.gui.fusion_job import FusedSweep
from app.gui.panels.calibration import CalibrationPanel
from app.gui.panels.capture import CapturePanel
from app.gui.panels.devices import DevicePanel
from app.gui.panels.log import LogPanel
from app.gui.panels.replay import ReplayPanel
from app.gui.panels.sweep import SweepPanel
from app.gui.results import FusionResultView
from app.gui.settings import GuiSettings
from app.gui.timing import StallMeter
from app.gui.views import ImageView, TracePlot, readout_label, spin_box
from capture.sweep import SweepData

log = logging.getLogger("focalrig.gui")


DEPTH_COLORMAPS = ("viridis", "turbo", "plasma", "inferno", "magma", "cividis")


@dataclass(frozen=True)
class ActionSpec:
    """One entry of the action registry: menu text, shortcut, and what it does."""

    key: str
    text: str
    shortcut: str
    menu: str
    tip: str = ""
    checkable: bool = False


ACTIONS = (
    ActionSpec("connect", "&Connect rig", "Ctrl+D", "Devices", "Open every configured device"),
    ActionSpec("disconnect", "&Disconnect rig", "Ctrl+Shift+D", "Devices", "Stop capture, release devices, lens safe"),
    ActionSpec("live", "&Live view", "Ctrl+L", "Capture", "Stream without recording (toggle)", checkable=True),
    ActionSpec("fuse", "Capture && &fuse", "F5", "Capture", "Sweep once and fuse it (replay: fuse the sweep shown)"),
    ActionSpec("continuous", "C&ontinuous fusion", "Shift+F5", "Capture", "Fuse every sweep", checkable=True),
    ActionSpec("record", "&Record", "Ctrl+R", "Capture", "Start/stop recording", checkable=True),
    ActionSpec("open", "&Open recording…", "Ctrl+O", "File", "Replay a recording folder or a RAW/HDF5 file"),
    ActionSpec("snapshot", "&Snapshot all views", "Ctrl+K", "File", "Save every view as PNG into the export folder"),
    ActionSpec("export_dir", "Snapshot &folder…", "", "File", "Choose where snapshots are saved"),
    ActionSpec("play", "&Play/pause replay", "Space", "Replay"),
    ActionSpec("prev_sweep", "Previous sweep", "[", "Replay"),
    ActionSpec("next_sweep", "Next sweep", "]", "Replay"),
    ActionSpec("fullscreen", "&Full screen", "F11", "View", checkable=True),
    ActionSpec("quit", "&Quit", "Ctrl+Q", "File"),
)


class MainWindow(QMainWindow):
    def __init__(self, controller: RigController, settings: GuiSettings | None = None,
                 settings_path: Path | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings or GuiSettings()
        self.settings_path = settings_path
        self.setWindowTitle("focalrig")
        self.resize(1680, 1050)
        self.last_sweep: SweepData | None = None
        self.error_boxes: list[QMessageBox] = []
        self._closed = False
        # -- central views --
        self.rgb_view = ImageView("RGB frame")
        self.event_view = ImageView("Events")
        span = controller.feed.trace_span_s
        self.focal_plot = TracePlot("Focal power", "dpt", {"lens": "#e0a030", "commanded sweep": "#40a0ff"},
                                    span_s=span)
        self.rate_plot = TracePlot("Event rate", "Mev/s", {"rate": "#60d060"}, span_s=span)
        plots = QWidget()
        plots_layout = QVBoxLayout(plots)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.addWidget(self.focal_plot)
        plots_layout.addWidget(self.rate_plot)
        live_row = QSplitter(Qt.Orientation.Horizontal)
        for w in (self.rgb_view, self.event_view, plots):
            live_row.addWidget(w)
        self.results = FusionResultView(self.settings.depth_colormap)
        central = QSplitter(Qt.Orientation.Vertical)
        central.addWidget(live_row)
        central.addWidget(self.results)
        central.setSizes([500, 500])
        self.setCentralWidget(central)
        # -- panels --
        self.device_panel = DevicePanel(controller)
        self.sweep_panel = SweepPanel(controller)
        self.capture_panel = CapturePanel(controller)
        self.replay_panel = ReplayPanel(controller)
        self.calibration_panel = CalibrationPanel(controller)
        self.log_panel = LogPanel()
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        # Panels sharing a dock sit in a QTabWidget of their own (QMainWindow's tabified docks leave stale tab
        # bars behind on some platforms, the offscreen one included).
        self.rig_tabs = self._tabs({"Devices": self.device_panel, "Sweep": self.sweep_panel})
        self.replay_tabs = self._tabs({"Replay": self.replay_panel, "Calibration": self.calibration_panel})
        self.docks = {
            "rig": self._dock("Rig", self.rig_tabs, left),
            "capture": self._dock("Capture && record", self.capture_panel, right),
            "replay": self._dock("Replay && calibration", self.replay_tabs, right),
            "log": self._dock("Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self.resizeDocks([self.docks["rig"], self.docks["capture"]], [270, 300], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["log"]], [110], Qt.Orientation.Vertical)
        # -- actions, toolbar, status --
        self.actions_by_key = self._build_actions()
        self._build_toolbar()
        self.status_state = QLabel()
        self.status_perf = readout_label(min_chars=44)
        # The status bar lays out a permanent widget from its size policy, and a readout's "Ignored" one left it
        # half outside the window: a fixed width gives it its room and, like the readout, never re-lays out.
        self.status_perf.setFixedWidth(self.status_perf.minimumWidth())
        self.status_perf.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.statusBar().addWidget(self.status_state, 1)
        self.statusBar().addPermanentWidget(self.status_perf)
        # -- timers --
        self.stall = StallMeter(10, self)
        self.stall.start()
        self._display_timer = QTimer(self)
        self._display_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._display_timer.timeout.connect(self.refresh)
        self.set_display_fps(self.settings.display_fps)
        self.set_accumulation_ms(self.settings.accumulation_ms)
        self._display_timer.start()
        self._lens_timer = QTimer(self)
        self._lens_timer.setInterval(1000)
        self._lens_timer.timeout.connect(controller.poll_lens)
        self._lens_timer.start()
        self._perf_timer = QTimer(self)
        self._perf_timer.setInterval(1000)
        self._perf_timer.timeout.connect(self._show_perf)
        self._perf_timer.start()
        # -- controller signals --
        controller.error.connect(self.show_error)
        controller.fused.connect(self.show_fused)
        controller.sweep_done.connect(self._sweep_done)
        controller.connection_changed.connect(self._connection_changed)
        controller.engine_running.connect(self._engine_running)
        controller.recording_changed.connect(lambda _p: self.actions_by_key["record"].setChecked(controller.recording))
        controller.replay_changed.connect(self._replay_changed)
        controller.fusion_method = self.settings.fusion_method
        controller.fusion_device = self.settings.fusion_device
        self.capture_panel.continuous.setChecked(self.settings.continuous)
        self.capture_panel.planes.setValue(self.settings.n_planes or 0)
        self.replay_panel.set_speed(self.settings.replay_speed)
        if self.settings.last_recording:
            self.replay_panel.start_dir = str(Path(self.settings.last_recording).parent)
        self._restore_layout()
        self._connection_changed(controller.state)

    # -- construction helpers -----------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        """A dock titled ``title``, written as Qt shows text: ``&&`` for a literal ``&`` (a single ``&`` marks a
        mnemonic, which the dock's title bar hides, character and all: "Capture & record" read "Capture  record")."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    @staticmethod
    def _tabs(pages: dict[str, QWidget]) -> QTabWidget:
        tabs = QTabWidget()
        for title, page in pages.items():
            tabs.addTab(page, title)
        return tabs

    def _build_actions(self) -> dict[str, QAction]:
        handlers = {
            "connect": self.controller.connect_rig,
            "disconnect": self.controller.disconnect_rig,
            "live": self._toggle_live,
            "fuse": self.controller.capture_and_fuse,
            "continuous": self.capture_panel.continuous.setChecked,
            "record": lambda _checked: self.capture_panel.toggle_recording(),
            "open": self.replay_panel.open_dialog,
            "snapshot": lambda: self.snapshot(),
            "export_dir": self.choose_export_dir,
            "play": self.replay_panel.toggle_play,
            "prev_sweep": lambda: self.replay_panel.step_sweep(-1),
            "next_sweep": lambda: self.replay_panel.step_sweep(+1),
            "fullscreen": lambda on: self.showFullScreen() if on else self.showNormal(),
            "quit": self.close,
        }
        menus: dict[str, Any] = {}
        actions = {}
        for spec in ACTIONS:
            action = QAction(spec.text, self)
            action.setObjectName(f"action-{spec.key}")
            action.setShortcut(QKeySequence(spec.shortcut))
            action.setToolTip(" ".join(filter(None, (spec.tip, f"({spec.shortcut})" if spec.shortcut else ""))))
            action.setCheckable(spec.checkable)
            handler = handlers[spec.key]
            # ``triggered`` fires on user activation only, so a checkable action synced from code (setChecked)
            # never calls its handler back.
            action.triggered.connect(handler if spec.checkable else (lambda _=False, h=handler: h()))
            if spec.menu not in menus:
                menus[spec.menu] = self.menuBar().addMenu(spec.menu)
            menus[spec.menu].addAction(action)
            self.addAction(action)
            actions[spec.key] = action
        self.capture_panel.continuous.toggled.connect(actions["continuous"].setChecked)
        view_menu = menus["View"]
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        colours = view_menu.addMenu("Depth colour map")
        group = QActionGroup(self)
        for name in DEPTH_COLORMAPS:
            action = colours.addAction(name)
            action.setCheckable(True)
            action.setChecked(name == self.settings.depth_colormap)
            action.triggered.connect(lambda _=False, n=name: self.set_depth_colormap(n))
            group.addAction(action)
        return actions

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("toolbar-main")
        for key in ("connect", "disconnect", "live", "fuse", "continuous", "record", "open", "snapshot"):
            bar.addAction(self.actions_by_key[key])
        bar.addSeparator()
        self.accumulation = spin_box(0.1, 10_000, 1, 1, "ms", tracking=True,
                                     tip="Event accumulation time of the live event view")
        self.accumulation.valueChanged.connect(self.set_accumulation_ms)
        self.display_fps = spin_box(1, 120, 1, 0, "fps", tracking=True,
                                    tip="Display rate of the live views (independent of the accumulation time)")
        self.display_fps.valueChanged.connect(self.set_display_fps)
        bar.addWidget(QLabel(" Accumulation "))
        bar.addWidget(self.accumulation)
        bar.addWidget(QLabel(" Display "))
        bar.addWidget(self.display_fps)

    # -- view options ---------------------------------------------------------------------------------------
    def set_accumulation_ms(self, ms: float) -> None:
        self.settings.accumulation_ms = float(ms)
        self.controller.feed.accumulation_us = int(ms * 1000)
        if self.accumulation.value() != ms:
            self.accumulation.setValue(ms)

    def set_display_fps(self, fps: float) -> None:
        self.settings.display_fps = float(fps)
        self.controller.feed.fps = float(fps)
        # The feed produces pictures at ``fps``; the GUI looks for a new one twice per period, so the two clocks
        # never alias into skipped pictures.
        self._display_timer.setInterval(max(1, round(500 / fps)))
        if self.display_fps.value() != fps:
            self.display_fps.setValue(fps)

    def set_depth_colormap(self, name: str) -> None:
        self.settings.depth_colormap = name
        self.results.set_colormap(name)

    # -- per tick -------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the newest picture and traces, if any (GUI thread, twice per display period; usually nothing new)."""
        feed = self.controller.feed
        pic = feed.pictures.take()
        if pic is not None:
            if pic.frame is not None:
                self.rgb_view.set_image(pic.frame, pic.frame_levels)
                power = "" if pic.focal_power_dpt is None else f" · {pic.focal_power_dpt:.2f} dpt"
                self.rgb_view.info.setText(f"frame {pic.frame_index}{power}")
            if pic.events_rgb is not None:
                self.event_view.set_image(pic.events_rgb, (0.0, 255.0))
                self.event_view.info.setText(f"{pic.n_events:,} events / {feed.accumulation_us / 1000:g} ms")
        traces = feed.traces.take()
        if traces is not None:
            self.focal_plot.set_curve("lens", traces.lens[:, 0], traces.lens[:, 1])
            self.rate_plot.set_curve("rate", traces.rate[:, 0], traces.rate[:, 1])
            if len(traces.lens):
                self.device_panel.show_focal_power(float(traces.lens[-1, 1]))
            self._show_sweep(traces.t_ref_us)
        message = feed.errors.take()
        if message:
            log.warning(message)

    def _show_sweep(self, t_ref_us: float) -> None:
        sweep = self.last_sweep
        if sweep is None:
            return
        t = np.linspace(sweep.t_start_us, sweep.t_end_us, 400)
        self.focal_plot.set_curve("commanded sweep", (t - t_ref_us) * 1e-6, sweep.commanded.commanded_dpt(t))
        self.focal_plot.show_region((sweep.t_start_us - t_ref_us) * 1e-6, (sweep.t_end_us - t_ref_us) * 1e-6)

    def _show_perf(self) -> None:
        fps = max(self.rgb_view.item.paints.rate, self.event_view.item.paints.rate)
        self.status_perf.setText(f"display {fps:.0f} fps · longest GUI stall {self.stall.max_stall_ms:.0f} ms")

    # -- controller events -------------------------------------------------------------------------------------
    def _sweep_done(self, sweep: SweepData) -> None:
        self.last_sweep = sweep

    def show_fused(self, fused: FusedSweep) -> None:
        self.results.show_result(fused)

    def show_error(self, title: str, message: str) -> None:
        """A non-blocking dialog (acquisition and the event loop go on); also logged."""
        log.error("%s: %s", title, message)
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error-dialog")
        box.setModal(False)
        box.finished.connect(lambda _r, b=box: self.error_boxes.remove(b) if b in self.error_boxes else None)
        self.error_boxes.append(box)
        box.show()

    def _connection_changed(self, state: str) -> None:
        connected = state == "connected"
        self.actions_by_key["connect"].setEnabled(state in ("disconnected", "failed"))
        self.actions_by_key["disconnect"].setEnabled(connected)
        for key in ("live", "record"):
            self.actions_by_key[key].setEnabled(connected)
        self.actions_by_key["fuse"].setEnabled(connected or self.controller.replay is not None)
        cfg = self.controller.config_path or "configs/sim.toml"
        self.status_state.setText(f"{state} · config {cfg}")

    def _engine_running(self, running: bool) -> None:
        self.actions_by_key["live"].setChecked(running)

    def _toggle_live(self, on: bool) -> None:
        if on:
            self.controller.start_live()
        else:
            self.controller.stop_capture(immediate=True)

    def _replay_changed(self, session: Any) -> None:
        if session is not None:
            self.replay_tabs.setCurrentWidget(self.replay_panel)
            self.settings.last_recording = str(session.path)
            self.setWindowTitle(f"focalrig — replay {session.name}")
        else:
            self.setWindowTitle("focalrig")
        self._connection_changed(self.controller.state)

    # -- export ---------------------------------------------------------------------------------------------
    def all_views(self) -> dict[str, Any]:
        return {"rgb": self.rgb_view, "events": self.event_view, "focal_power": self.focal_plot,
                "event_rate": self.rate_plot, **self.results.views()}

    def snapshot(self, folder: Path | None = None) -> Path:
        """Every view as a rendered PNG, plus the data of image views as .npy, into a new timestamped folder."""
        base = Path(folder or self.settings.export_dir or Path.cwd() / "snapshots")
        out = base / time.strftime("snapshot_%y%m%d_%H%M%S")
        n = 1
        while out.exists():
            out = base / f"{time.strftime('snapshot_%y%m%d_%H%M%S')}_{n:03d}"
            n += 1
        out.mkdir(parents=True)
        for name, view in self.all_views().items():
            view.save_view(out / f"{name}.png")
            if isinstance(view, ImageView) and view.data() is not None:
                view.save_data(out / f"{name}.npy")
        self.grab().save(str(out / "window.png"))
        log.info("snapshot saved to %s", out)
        self.statusBar().showMessage(f"snapshot saved to {out}", 5000)
        return out

    def choose_export_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export folder", self.settings.export_dir or "")
        if path:
            self.settings.export_dir = path

    # -- settings -------------------------------------------------------------------------------------------
    def _restore_layout(self) -> None:
        for value, restore in ((self.settings.window_geometry, self.restoreGeometry),
                               (self.settings.window_state, self.restoreState)):
            if not value:
                continue
            try:
                ok = restore(QByteArray(base64.b64decode(value, validate=True)))
            except ValueError:
                ok = False
            if not ok:
                log.warning("ignored an unreadable saved window layout")

    def save_settings(self) -> None:
        s = self.settings
        s.window_geometry = base64.b64encode(bytes(self.saveGeometry())).decode()
        s.window_state = base64.b64encode(bytes(self.saveState())).decode()
        s.continuous = self.capture_panel.continuous.isChecked()
        s.replay_speed = float(self.replay_panel.speed.currentData())
        s.n_planes = self.controller.n_planes
        s.fusion_method = self.controller.fusion_method
        s.fusion_device = self.controller.fusion_device
        if self.controller.config_path is not None:
            s.last_config = str(self.controller.config_path.resolve())
        if self.settings_path is not None:
            s.save(self.settings_path)

    def closeEvent(self, event) -> None:
        if self._closed:  # closing twice (the window, then run_gui's teardown) does the work once
            super().closeEvent(event)
            return
        self._closed = True
        self.save_settings()
        self._display_timer.stop()
        self.stall.stop()
        for box in list(self.error_boxes):
            box.close()
        self.controller.shutdown()
        self.log_panel.detach()
        super().closeEvent(event)
