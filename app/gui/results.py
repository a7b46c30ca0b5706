"""The fusion views: all-in-focus image, depth map with a dioptre colour bar, confidence, and a focal-stack browser.

The depth colour bar spans the sweep's focal-power range (absolute dioptres, never the image's own min/max),
so two results are comparable by colour. The slider browses the stack's planes and event slices side by side; each
plane is named by its focal power and the frame it is (frame number, ↑ rising or ↓ falling half of the sweep), as
planes of a frame-true stack are unevenly spaced.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from app.gui.fusion_job import FusedSweep
from app.gui.views import ImageView, readout_label


class FusionResultView(QWidget):
    def __init__(self, colormap: str = "viridis", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.aif = ImageView("All-in-focus")
        self.depth = ImageView("Depth (dpt)", colormap=colormap)
        self.confidence = ImageView("Confidence", colormap="inferno")
        self.confidence.setToolTip("How clearly the chosen depth beats any other (fusion.confidence): bright = one "
                                   "focus fits and stands out; dark = no texture to judge by (the image is fine "
                                   "there, its depth is a guess) or two depths fit about equally (occlusion edges)")
        self.plane = ImageView("Focal plane")
        self.event_slice = ImageView("Event slice")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self.show_plane)
        self.depth_source = QComboBox()
        self.depth_source.addItem("Depth: fused", "fused")
        self.depth_source.addItem("Depth: events only", "events")
        self.depth_source.setToolTip("fused: the method's depth refined by the events' timing (what result files "
                                     "hold); events only: each pixel's event-timed focus, blank where its events "
                                     "cannot tell")
        self.depth_source.setEnabled(False)
        self.depth_source.currentIndexChanged.connect(lambda _i: self._show_depth())
        self.plane_label = readout_label("plane —", min_chars=26)
        self.summary = readout_label("No result yet: press Capture & fuse (F5).")
        self.summary.setWordWrap(True)
        self.summary.setFixedHeight(2 * self.summary.fontMetrics().lineSpacing() + 4)  # a new result: no relayout
        stack = QVBoxLayout()
        stack.setSpacing(2)
        stack.addWidget(self.plane)
        stack.addWidget(self.event_slice)
        grid = QGridLayout()
        grid.addWidget(self.aif, 0, 0)
        grid.addWidget(self.depth, 0, 1)
        grid.addWidget(self.confidence, 0, 2)
        grid.addLayout(stack, 0, 3)
        for column in range(4):
            grid.setColumnStretch(column, 1)
        browse = QHBoxLayout()
        browse.addWidget(self.summary, 3)
        browse.addWidget(self.depth_source)
        browse.addWidget(QLabel("Stack:"))
        browse.addWidget(self.slider, 2)
        browse.addWidget(self.plane_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid, 1)
        layout.addLayout(browse)
        self.fused: FusedSweep | None = None

    def views(self) -> dict[str, ImageView]:
        """The views by export name."""
        return {"all_in_focus": self.aif, "depth_dpt": self.depth, "confidence": self.confidence,
                "focal_plane": self.plane, "event_slice": self.event_slice}

    def show_result(self, fused: FusedSweep) -> None:
        self.fused = fused
        pics = fused.pictures
        self.aif.set_image(pics.all_in_focus, pics.aif_levels)
        self.depth_source.setEnabled(pics.event_depth_dpt is not None)
        if pics.event_depth_dpt is None:
            self.depth_source.setCurrentIndex(0)
        self._show_depth()
        self.confidence.set_image(pics.confidence, (0.0, 1.0))
        n = pics.planes.shape[0]
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.setValue(min(self.slider.value(), n - 1))
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        self.event_slice.setVisible(pics.event_slices is not None)
        self.show_plane(self.slider.value())
        r = fused.result
        total = fused.stack_s + fused.fuse_s
        self.summary.setText(
            f"<b>{fused.source}</b> sweep {fused.sweep_index}: {n} planes "
            f"{pics.focal_powers_dpt[0]:.2f}–{pics.focal_powers_dpt[-1]:.2f} dpt, "
            f"{fused.stack.shape[1]}×{fused.stack.shape[0]} · fused by <b>{r.method}</b> on {r.device} · "
            f"stack {fused.stack_s * 1e3:.0f} ms + fuse {fused.fuse_s * 1e3:.0f} ms = {total * 1e3:.0f} ms")

    def _show_depth(self) -> None:
        if self.fused is None:
            return
        pics = self.fused.pictures
        events = self.depth_source.currentData() == "events" and pics.event_depth_dpt is not None
        self.depth.set_image(pics.event_depth_dpt if events else pics.depth_dpt, pics.depth_levels)

    def show_plane(self, k: int) -> None:
        if self.fused is None:
            return
        pics = self.fused.pictures
        self.plane.set_image(pics.planes[k], pics.plane_levels)
        if pics.event_slices is not None:
            self.event_slice.set_image(pics.event_slices[k], (0.0, 255.0))
        self.plane_label.setText(f"plane {k + 1}/{pics.planes.shape[0]}: {pics.focal_powers_dpt[k]:.3f} dpt"
                                 + _plane_source(self.fused.stack, k))

    def set_colormap(self, name: str) -> None:
        self.depth.set_colormap(name)


_HALF_MARK = {"rising": "↑", "falling": "↓", "both": "↕", "step": ""}


def _plane_source(stack, k: int) -> str:
    """Which frame(s) a plane is, and the sweep half they were exposed on (frame-true stacks record it)."""
    records = stack.meta.get("planes")
    if not records or k >= len(records):
        return ""
    frames = records[k].get("frames", [])
    which = f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}–{frames[-1]}" if frames else ""
    return f", {which} {_HALF_MARK.get(records[k].get('half', ''), '')}".rstrip()
