"""Replay panel: open a recording or RAW/HDF5 file; play/pause, speed, scrub by time and by sweep; fuse a sweep.

The cursor lives in the :class:`~app.gui.replay.ReplaySession`; this panel moves it (a 30 Hz timer while
playing: ``speed`` × the wall time elapsed) and the live feed shows the data at the cursor.
"""

from __future__ import annotations

import time

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import RigController
from app.gui.replay import ReplaySession
from app.gui.views import readout_label

SPEEDS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
EVENT_FILE_FILTER = "Recordings and event files (*.raw *.hdf5 *.h5 *.npz *.csv metadata.json);;All files (*)"

#: Playback cursor period (ms) and how often the timeline widgets follow it (s).
CURSOR_PERIOD_MS = 5
WIDGET_PERIOD_S = 0.04


class ReplayPanel(QWidget):
    def __init__(self, controller: RigController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.session: ReplaySession | None = None
        self.start_dir = ""  # where the open dialogs start (the last recording's folder)
        open_file = QPushButton("Open file…")
        open_file.setToolTip("Open a RAW/HDF5 event file, or a recording's metadata.json (Ctrl+O)")
        open_file.clicked.connect(self.open_dialog)
        open_dir = QPushButton("Open folder…")
        open_dir.clicked.connect(self.open_folder_dialog)
        self.close_button = QPushButton("Back to live")
        self.close_button.clicked.connect(controller.close_replay)
        row = QHBoxLayout()
        row.addWidget(open_file)
        row.addWidget(open_dir)
        row.addWidget(self.close_button)
        self.source = QLabel("no recording open")
        self.source.setWordWrap(True)
        self.play_button = QPushButton("▶ Play")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._play_toggled)
        self.speed = QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.loop = QCheckBox("Loop")
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.timeline.valueChanged.connect(self._scrubbed)
        self.time_label = readout_label("—", min_chars=16)
        self.sweep = QSpinBox()
        self.sweep.setRange(0, 0)
        self.sweep.valueChanged.connect(self._sweep_chosen)
        self.fuse_button = QPushButton("Fuse this sweep")
        self.fuse_button.clicked.connect(self.fuse_current)
        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(QLabel("Speed"))
        controls.addWidget(self.speed)
        controls.addWidget(self.loop)
        sweep_row = QHBoxLayout()
        sweep_row.addWidget(self.sweep, 1)
        sweep_row.addWidget(self.fuse_button)
        form = QFormLayout()
        form.addRow("Time", self.time_label)
        form.addRow("Sweep", sweep_row)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.source)
        layout.addLayout(controls)
        layout.addWidget(self.timeline)
        layout.addLayout(form)
        layout.addStretch(1)
        # The cursor advances every few ms, so each live-view poll (30 Hz, on its own clock) finds a new time:
        # a 33 ms cursor beating against the 30 Hz feed made it show only ~22 distinct frames per second.
        # The timeline widgets follow at most every WIDGET_PERIOD_S.
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(CURSOR_PERIOD_MS)
        self._timer.timeout.connect(self._advance)
        self._last_tick = 0.0
        self._last_shown = 0.0
        controller.replay_changed.connect(self.set_session)
        self.set_session(None)

    # -- opening ------------------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open recording or event file", self.start_dir, EVENT_FILE_FILTER)
        if path:
            self.controller.open_replay(path[: -len("metadata.json")] if path.endswith("metadata.json") else path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open recording folder", self.start_dir)
        if path:
            self.controller.open_replay(path)

    def set_session(self, session: ReplaySession | None) -> None:
        self.session = session
        self.play_button.setChecked(False)
        enabled = session is not None
        for w in (self.play_button, self.speed, self.timeline, self.close_button):
            w.setEnabled(enabled)
        has_sweeps = enabled and session.n_sweeps > 0
        self.sweep.setEnabled(has_sweeps)
        self.fuse_button.setEnabled(has_sweeps)
        if session is None:
            self.source.setText("no recording open")
            self.time_label.setText("—")
            return
        rec = session.recording
        self.source.setText(f"<b>{session.name}</b> — {rec.status}, {session.duration_us / 1e6:.3f} s, "
                            f"{session.n_sweeps} sweeps, {len(rec.frames)} frames"
                            + ("" if has_sweeps else " (no sweep table: events only)"))
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, max(1, session.duration_us // 1000))
        self.timeline.setValue(0)
        self.timeline.blockSignals(False)
        self.sweep.blockSignals(True)
        self.sweep.setRange(0, max(0, session.n_sweeps - 1))
        self.sweep.setValue(0)
        self.sweep.blockSignals(False)
        self._show_time()

    # -- cursor ---------------------------------------------------------------------------------------------
    def seek(self, t_us: float) -> None:
        """Move the cursor (clamped to the recording) and the widgets that show it."""
        if self.session is None:
            return
        self.session.seek(t_us)
        self._show_cursor()

    def _show_cursor(self) -> None:
        """The timeline, sweep number and time label at the session's cursor."""
        self._last_shown = time.perf_counter()
        self.timeline.blockSignals(True)
        self.timeline.setValue((self.session.t_us - self.session.t_start_us) // 1000)
        self.timeline.blockSignals(False)
        row = self.session.sweep_at(self.session.t_us)
        if row is not None:
            self.sweep.blockSignals(True)
            self.sweep.setValue(row)
            self.sweep.blockSignals(False)
        self._show_time()

    def toggle_play(self) -> None:
        if self.session is not None:
            self.play_button.toggle()

    def step_sweep(self, delta: int) -> None:
        if self.session is not None and self.session.n_sweeps:
            self.sweep.setValue(min(max(self.sweep.value() + delta, 0), self.session.n_sweeps - 1))

    def fuse_current(self) -> None:
        if self.session is not None and self.session.n_sweeps:
            self.controller.fuse_replay_sweep(self.sweep.value())

    def _play_toggled(self, on: bool) -> None:
        self.play_button.setText("❚❚ Pause" if on else "▶ Play")
        if on:
            if self.session is not None and self.session.t_us >= self.session.t_end_us:
                self.seek(self.session.t_start_us)
            self._last_tick = time.perf_counter()
            self._timer.start()
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.session is None:
            return
        now = time.perf_counter()
        speed = float(self.speed.currentData())
        self.session.seek(self.session.t_us + (now - self._last_tick) * 1e6 * speed)
        self._last_tick = now
        if now - self._last_shown >= WIDGET_PERIOD_S or self.session.t_us >= self.session.t_end_us:
            self._show_cursor()
        if self.session.t_us >= self.session.t_end_us:
            if self.loop.isChecked():
                self.seek(self.session.t_start_us)
            else:
                self.play_button.setChecked(False)

    def set_speed(self, speed: float) -> None:
        """Choose the listed speed nearest to ``speed`` (× real time)."""
        self.speed.setCurrentIndex(min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - speed)))

    def _scrubbed(self, value_ms: int) -> None:
        if self.session is not None:
            self.seek(self.session.t_start_us + value_ms * 1000)

    def _sweep_chosen(self, row: int) -> None:
        if self.session is not None and self.session.n_sweeps:
            self.seek(self.session.sweep_window(row)[0])

    def _show_time(self) -> None:
        s = self.session
        rel = (s.t_us - s.t_start_us) / 1e6
        self.time_label.setText(f"{rel:.3f} / {s.duration_us / 1e6:.3f} s  (t = {s.t_us:,} µs)")
