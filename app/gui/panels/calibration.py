"""Calibration wizard: load a calibration file or compute one from a recording, then check it.

Computing runs ``calibration.pipeline.calibrate_recording`` (what ``focalrig calibrate`` runs) and shows its
report (detected corners, warped overlay, lag fit). The check is visual and numeric: *Check overlay* draws the
current events where the calibration maps them onto the current RGB frame (edges line up when the geometry is
right), and the panel lists each part's fit errors (corner transfer error in px, lens-lag residual in µs,
breathing residual). The active calibration is the one
capture-and-fuse builds its focal stacks with.
"""

from __future__ import annotations

from typing import Any

from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import RigController
from app.gui.views import ImageView


def describe_calibration(cal: Any) -> str:
    """HTML summary of a :class:`calibration.model.Calibration`: id, parts and their errors."""
    if cal is None:
        return ("<b>No calibration loaded.</b> Capture & fuse estimates the lens lag and focus breathing from the "
                "sweep it fuses; load a calibration file (or compute one from a recording) to use yours.")
    source = cal.meta.get("source", "")
    lines = [f"<b>Calibration</b> {cal.id[:8]} ({source or cal.created})"]
    s = cal.spatial
    if s is not None:
        err = s.error_px or {}
        stats = ", ".join(f"{k} {err[k]:.3f}" for k in ("mean", "rms", "max") if isinstance(err.get(k), int | float))
        origin = cal.meta.get("spatial_source") or f"{s.n_views} views"
        lines.append(f"spatial: event {s.event_size[0]}×{s.event_size[1]} → RGB {s.rgb_size[0]}×{s.rgb_size[1]}"
                     f"{', mirrored' if s.mirrored else ''} ({origin}); corner error (px): {stats or '—'}")
    else:
        lines.append("spatial: — (stacks are built without events)")
    t = cal.temporal
    lines.append(f"temporal: lens lag {t.lag_us / 1e3:.3f} ms ± {t.residual_us / 1e3:.3f} ms, gain {t.gain:.4f}, "
                 f"offset {t.offset_dpt:+.4f} dpt ({t.n_patches} patches)" if t is not None else "temporal: —")
    b = cal.breathing
    lines.append(f"breathing: {len(b.coeffs)} coefficients about {b.ref_dpt:.2f} dpt, residual {b.residual:.2e} "
                 f"({b.n_frames} frames)" if b is not None else "breathing: —")
    return "<br>".join(lines)


class CalibrationPanel(QWidget):
    def __init__(self, controller: RigController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        load = QPushButton("Load…")
        load.setToolTip("Load a calibration JSON (focalrig calibrate writes them)")
        load.clicked.connect(self._load_dialog)
        run = QPushButton("Compute…")
        run.setToolTip("Calibrate from a recording as `focalrig calibrate` does: lens lag and breathing from its "
                       "sweeps, event→RGB geometry from the blinking-board target (or the recording itself when "
                       "it has no sweeps)")
        run.clicked.connect(self._run_dialog)
        self.target = QLineEdit()
        self.target.setPlaceholderText("target recording (optional: blinking chessboard)")
        pick_target = QToolButton(text="…")
        pick_target.clicked.connect(self._target_dialog)
        self.board = QLineEdit("9x6")
        self.board.setToolTip("Chessboard inner corners, COLSxROWS")
        self.board.setMaximumWidth(60)
        target_row = QHBoxLayout()
        target_row.addWidget(self.target, 1)
        target_row.addWidget(pick_target)
        target_row.addWidget(QLabel("board"))
        target_row.addWidget(self.board)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self._save_dialog)
        self.overlay_button = QPushButton("Check overlay")
        self.overlay_button.setToolTip("Draw the current events on the current frame through the calibration")
        self.overlay_button.clicked.connect(controller.request_overlay)
        row = QHBoxLayout()
        for b in (load, run, self.save_button):
            row.addWidget(b)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.overlay = ImageView("Calibration overlay")
        self.overlay.setMinimumHeight(180)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(target_row)
        layout.addWidget(self.summary)
        layout.addWidget(self.overlay_button)
        layout.addWidget(self.overlay, 1)
        controller.calibration_changed.connect(self.show_calibration)
        controller.overlay_ready.connect(lambda img: self.overlay.set_image(img, (0.0, 255.0)))
        self.show_calibration(controller.active_calibration)

    def show_calibration(self, cal: Any) -> None:
        self.summary.setText(describe_calibration(cal))
        self.save_button.setEnabled(cal is not None)
        self.overlay_button.setEnabled(cal is not None and cal.spatial is not None)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load calibration", "", "Calibration (*.json);;All files (*)")
        if path:
            self.controller.load_calibration(path)

    def board_corners(self) -> tuple[int, int]:
        """The board field as (cols, rows); raises ValueError with what to type."""
        try:
            cols, rows = (int(v) for v in self.board.text().lower().split("x"))
        except ValueError:
            raise ValueError(f"board must be COLSxROWS of inner corners, e.g. 9x6 (got {self.board.text()!r})") \
                from None
        return cols, rows

    def run(self, recording: str) -> None:
        try:
            board = self.board_corners()
        except ValueError as exc:
            self.summary.setText(f"<span style='color:#b00020'>{exc}</span>")
            return
        self.summary.setText(f"calibrating from {recording}…")
        self.controller.run_calibration(recording, target=self.target.text() or None, board=board)

    def _run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Recording with sweeps (or a blinking-board target)")
        if path:
            self.run(path)

    def _target_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Blinking-chessboard target recording")
        if path:
            self.target.setText(path)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save calibration", "calibration.json", "Calibration (*.json)")
        if path and self.controller.calibration is not None:
            self.controller.calibration.save(path)
