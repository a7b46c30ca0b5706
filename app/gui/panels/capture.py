"""Capture & fuse controls (one button, continuous mode, method, device, planes) and recording start/stop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import RigController
from app.gui.views import readout_label


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TiB"


class CapturePanel(QWidget):
    """The capture-and-fuse button and its options; the recording box below it."""

    def __init__(self, controller: RigController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        # -- capture & fuse --
        self.fuse_button = QPushButton("Capture && fuse")
        self.fuse_button.setMinimumHeight(36)
        self.fuse_button.setToolTip("Sweep once, build the aligned focal stack, fuse it (F5)")
        self.fuse_button.clicked.connect(controller.capture_and_fuse)
        self.continuous = QCheckBox("Continuous (fuse every sweep)")
        self.continuous.toggled.connect(controller.set_continuous)
        self.method = QComboBox()
        self.method.addItem("auto (net on a GPU, else classical)", "auto")
        for name in controller.fusion_methods():
            self.method.addItem(name, name)
        self.method.currentIndexChanged.connect(lambda _i: setattr(controller, "fusion_method",
                                                                   self.method.currentData()))
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.currentTextChanged.connect(lambda text: setattr(controller, "fusion_device", text))
        self.planes = QSpinBox()
        self.planes.setRange(0, 256)
        self.planes.setSpecialValueText("from plan")
        self.planes.valueChanged.connect(lambda v: setattr(controller, "n_planes", v or None))
        self.single_frame = QCheckBox("Single exposure (one frame + events)")
        self.single_frame.setToolTip("Fuse one frame refocused to every plane by the sweep's events instead of the "
                                     "sweep's frames: for scenes that move during a sweep. Colour stays as sharp as "
                                     "that one frame; needs a calibration with the event geometry.")
        self.single_frame.toggled.connect(lambda on: setattr(controller, "single_frame", bool(on)))
        self.fusion_state = readout_label("idle", min_chars=16)
        fuse_form = QFormLayout()
        fuse_form.addRow("Method", self.method)
        fuse_form.addRow("Device", self.device)
        fuse_form.addRow("Planes", self.planes)
        fuse_form.addRow("", self.single_frame)
        fuse_form.addRow("Fusion", self.fusion_state)
        fuse_box = QGroupBox("Capture && fuse")
        fuse_layout = QVBoxLayout(fuse_box)
        fuse_layout.addWidget(self.fuse_button)
        fuse_layout.addWidget(self.continuous)
        fuse_layout.addLayout(fuse_form)
        # -- recording --
        self.out_dir = QLineEdit(str(Path(controller.plan.out_dir)))
        browse = QToolButton(text="…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_dir, 1)
        out_row.addWidget(browse)
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Start/stop recording with the current plan (Ctrl+R); stops at a sweep's end")
        self.record_button.clicked.connect(self._record_clicked)
        self.rec_readouts: dict[str, QLabel] = {k: readout_label("—", min_chars=16)
                                                for k in ("name", "elapsed", "written", "rate", "drops")}
        rec_form = QFormLayout()
        rec_form.addRow("Folder", out_row)
        rec_form.addRow("Pattern", QLabel(controller.plan.name_pattern))
        for key, label in (("name", "Recording"), ("elapsed", "Elapsed"), ("written", "Written"),
                           ("rate", "Disk rate"), ("drops", "Drops")):
            rec_form.addRow(label, self.rec_readouts[key])
        rec_box = QGroupBox("Recording")
        rec_layout = QVBoxLayout(rec_box)
        rec_layout.addWidget(self.record_button)
        rec_layout.addLayout(rec_form)
        layout = QVBoxLayout(self)
        layout.addWidget(fuse_box)
        layout.addWidget(rec_box)
        layout.addStretch(1)
        self._rec_started = 0.0
        controller.fusion_busy.connect(self._busy)
        controller.fused.connect(lambda f: self.fusion_state.setText(
            f"done: sweep {f.sweep_index} in {(f.stack_s + f.fuse_s) * 1e3:.0f} ms"))
        controller.fusion_failed.connect(lambda m: self.fusion_state.setText(f"<span style='color:#b00020'>"
                                                                             f"failed: {m}</span>"))
        controller.recording_changed.connect(self._recording_changed)
        controller.engine_status.connect(self._engine_status)
        controller.connection_changed.connect(self._connection)
        controller.replay_changed.connect(lambda _session: self._connection(controller.state))
        self._connection(controller.state)

    def _connection(self, state: str) -> None:
        connected = state == "connected"
        self.fuse_button.setEnabled(connected or self.controller.replay is not None)  # replay: the sweep shown
        self.record_button.setEnabled(connected)

    def _busy(self, busy: bool) -> None:
        if busy:
            self.fusion_state.setText("building stack and fusing…")

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Recordings folder", self.out_dir.text())
        if path:
            self.out_dir.setText(path)

    def _record_clicked(self, checked: bool) -> None:
        if checked:
            self.controller.start_recording(Path(self.out_dir.text()))
        else:
            self.controller.stop_recording()

    def toggle_recording(self) -> None:
        self.record_button.click()

    def _recording_changed(self, path: Any) -> None:
        recording = self.controller.recording
        self.record_button.setChecked(recording)
        self.record_button.setText("■ Stop recording" if recording else "● Record")
        if recording and not self._rec_started:
            self._rec_started = time.monotonic()
        if not recording:
            self._rec_started = 0.0
        self.rec_readouts["name"].setText(Path(path).name if path else
                                          (f"last: {Path(self.controller.recording_path).name}"
                                           if self.controller.recording_path else "—"))

    def _engine_status(self, status: Any) -> None:
        if not self.controller.recording:
            return
        self.rec_readouts["elapsed"].setText(f"{time.monotonic() - self._rec_started:.0f} s")
        self.rec_readouts["written"].setText(_bytes(status.bytes_written))
        self.rec_readouts["rate"].setText(f"{_bytes(status.write_rate_bps)}/s")
        drops = sum((status.drops or {}).values())
        colour = "#b00020" if drops else "#2a7a2a"
        self.rec_readouts["drops"].setText(f"<span style='color:{colour}'>{drops}</span>")
