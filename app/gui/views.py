"""pyqtgraph views: images (row-major, explicit levels, optional colour bar) and time plots, each exportable.

Every view can save what it shows (a PNG of the rendered view) and the data behind it (``.npy`` keeps floats
and counts exactly, ``.png``/``.tiff`` through OpenCV), from its own menu or through the window's snapshot.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QPainter
from PyQt6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.imaging import Levels
from app.gui.timing import RateMeter

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


def spin_box(lo: float, hi: float, step: float, decimals: int, suffix: str, *, tracking: bool = False,
             tip: str = "") -> QDoubleSpinBox:
    """A numeric field with a unit; ``tracking`` False reports a typed value only when it is committed."""
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setSuffix(f" {suffix}")
    box.setKeyboardTracking(tracking)
    if tip:
        box.setToolTip(tip)
    return box


class ReadoutLabel(QLabel):
    """A label whose plain text, when wider than the label, is cut at the end with "…" rather than clipped:
    a right-aligned readout would otherwise lose its first characters (the number) in a narrow column."""

    def displayed_text(self) -> str:
        text = self.text()
        if self.textFormat() == Qt.TextFormat.RichText or text.lstrip().startswith("<"):  # markup: shown as is
            return text
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def paintEvent(self, event) -> None:
        shown = self.displayed_text()
        if shown == self.text():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        painter.drawText(self.contentsRect(), int(self.alignment().value), shown)


def readout_label(text: str = "", *, min_chars: int = 0) -> ReadoutLabel:
    """A label for a value that changes while streaming: its text never resizes the layout around it.

    A plain QLabel grows and shrinks with its text, and every change of width re-lays out the window, resizes
    every plot and repaints all of it (a 100 ms stall per readout update at 1680x1050). This one ignores its size
    hint horizontally and keeps ``min_chars`` average characters of room instead; text that does not fit ends
    in "…".
    """
    label = ReadoutLabel(text)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(label.fontMetrics().averageCharWidth() * min_chars)
    return label


class CountingImageItem(pg.ImageItem):
    """An ImageItem that counts the new images it has drawn: the honest display rate (distinct frames painted
    per second; repaints of an unchanged image and images replaced before being painted do not count)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.paints = RateMeter()
        self._generation = 0
        self._painted = 0

    def setImage(self, image=None, **kwargs) -> None:
        if image is not None:
            self._generation += 1
        super().setImage(image, **kwargs)

    def paint(self, p, *args) -> None:
        super().paint(p, *args)
        if self.image is not None and self._painted != self._generation:
            self._painted = self._generation
            self.paints.tick()


class _Exportable(QWidget):
    """A titled frame with a save menu; subclasses put their pyqtgraph widget in ``self.body``."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.setObjectName(title)
        head = QHBoxLayout()
        head.setContentsMargins(4, 0, 4, 0)
        self.caption = QLabel(f"<b>{title}</b>")
        self.info = readout_label()
        self.info.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        save = QToolButton(text="Save…")
        save.setToolTip(f"Save the {title} view as PNG, or its data as .npy/.png/.tiff")
        save.clicked.connect(self._save_dialog)
        head.addWidget(self.caption)
        head.addWidget(self.info, 1)
        head.addWidget(save)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self._layout.addLayout(head)

    def data(self) -> np.ndarray | None:
        """The array behind the view (None when empty)."""
        raise NotImplementedError

    def save_view(self, path: Path) -> Path:
        """A PNG of the view as rendered on screen."""
        if not self.grab().save(str(path)):
            raise OSError(f"{path}: cannot write the image there")
        return path

    def save_data(self, path: Path) -> Path:
        data = self.data()
        if data is None:
            raise ValueError(f"{self.title}: nothing to save yet")
        if path.suffix.lower() == ".npy":
            np.save(path, data)
            return path
        out = data
        if out.dtype not in (np.uint8, np.uint16) and path.suffix.lower() == ".png":
            raise ValueError(f"{self.title}: {out.dtype} data fits only .npy or .tiff, not PNG")
        if out.ndim == 3:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), out):
            raise OSError(f"{path}: OpenCV cannot write this format; use .npy, .png or .tiff")
        return path

    def _save_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, f"Save {self.title}", f"{self.title.lower().replace(' ', '_')}.png",
            "Rendered view (*.png);;Data (*.npy *.tiff *.png)")
        if path:
            (self.save_data if chosen.startswith("Data") else self.save_view)(Path(path))


class ImageView(_Exportable):
    """One image, aspect locked, y down, levels always explicit; ``colormap`` adds a LUT and a colour bar."""

    def __init__(self, title: str, *, colormap: str | None = None, bar_label: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.body = pg.GraphicsLayoutWidget()
        self._layout.addWidget(self.body, 1)
        self.plot = self.body.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        self.item = CountingImageItem(axisOrder="row-major")
        self.plot.addItem(self.item)
        self.bar: pg.ColorBarItem | None = None
        if colormap is not None:
            self.bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(colormap), label=bar_label,
                                       interactive=False, width=10)
            self.bar.setImageItem(self.item, insert_in=self.plot)
        self._data: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def set_image(self, image: np.ndarray, levels: Levels) -> None:
        """Show ``image`` (H, W) or (H, W, 3) with ``levels``; the view refits only when the size changes.

        uint8 data at its full range (0, 255) is drawn with levels cleared: pyqtgraph then wraps the array in a
        QImage without rescaling it (0.01 ms instead of ~1 ms at 640x480), which is the same picture.
        """
        self._data = image
        if self.bar is not None:
            self.bar.setLevels(levels)
            self.item.setImage(image, autoLevels=False)
        elif image.dtype == np.uint8 and tuple(levels) == (0.0, 255.0) and self.item.lut is None:
            self.item.setImage(image, autoLevels=False, levels=None)
            self.item.setLevels(None)
        else:
            self.item.setImage(image, autoLevels=False, levels=levels)
        if image.shape != self._shape:
            self._shape = image.shape
            self.plot.autoRange(padding=0)

    def set_colormap(self, name: str) -> None:
        if self.bar is not None:
            self.bar.setColorMap(pg.colormap.get(name))

    def clear(self) -> None:
        self._data = None
        self.item.clear()

    def data(self) -> np.ndarray | None:
        return self._data


class TracePlot(_Exportable):
    """Named curves over the last ``span_s`` seconds (time 0 = newest sample).

    Drawn for a live rate on the GUI thread: the time axis is fixed (newest sample at 0) so axis ticks are not
    regenerated on every repaint; pens are 1 px and there is no grid (a 1.5 px pen and pyqtgraph's grid each
    repaint the whole axis area and cost 6 ms of the 9 ms a repaint took); the data arrive already decimated
    to the plot's width (:func:`app.gui.live.decimate_trace`, on the feed thread), so nothing is downsampled here.
    """

    def __init__(self, title: str, y_label: str, curves: dict[str, str], parent: QWidget | None = None,
                 span_s: float = 2.0) -> None:
        super().__init__(title, parent)
        self.body = pg.PlotWidget()
        self.body.setXRange(-span_s, 0.0, padding=0.02)
        self.body.enableAutoRange(x=False, y=True)
        self._layout.addWidget(self.body, 1)
        self.body.setLabel("bottom", "time", units="s")
        self.body.setLabel("left", y_label)
        self.body.addLegend(offset=(5, 5))
        self.curves = {name: self.body.plot([], [], pen=pg.mkPen(colour, width=1), name=name)
                       for name, colour in curves.items()}
        self.region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 200, 80, 40))
        self.region.setVisible(False)
        self.body.addItem(self.region)

    def set_curve(self, name: str, t_s: np.ndarray, y: np.ndarray) -> None:
        self.curves[name].setData(t_s, y)

    def show_region(self, t0_s: float, t1_s: float) -> None:
        self.region.setRegion((t0_s, t1_s))
        self.region.setVisible(True)

    def data(self) -> np.ndarray | None:
        """Rows (curve number, t_s, y) of every curve, curves in legend order (None when all are empty)."""
        rows = []
        for k, curve in enumerate(self.curves.values()):
            t, y = curve.getData()
            if t is not None and len(t):
                rows.append(np.column_stack([np.full(len(t), k, np.float64), t, y]))
        return np.concatenate(rows) if rows else None
