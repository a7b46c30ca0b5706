"""The logging panel: every ``focalrig`` log record, from any thread, shown at 5 Hz.

Records are collected by a logging handler into a bounded deque (thread-safe, never blocks the emitting
thread) and drained by a GUI timer every 200 ms, as pymmcore-widgets' log panel tails its file. The same
records also go to a rotating log file when the window is given one.
"""

from __future__ import annotations

import logging
from collections import deque

from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

MAX_LINES = 5000


class DequeHandler(logging.Handler):
    """Keeps the newest formatted records; the panel pops them on the GUI thread."""

    def __init__(self, maxlen: int = MAX_LINES) -> None:
        super().__init__()
        self.records: deque[tuple[int, str]] = deque(maxlen=maxlen)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append((record.levelno, self.format(record)))
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


class LogPanel(QWidget):
    def __init__(self, logger: logging.Logger | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.logger = logger or logging.getLogger()
        self.handler = DequeHandler()
        self.logger.addHandler(self.handler)
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.logger.setLevel(logging.INFO)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setFont(QFont("monospace", 9))
        self.level = QComboBox()
        self.level.addItems(["DEBUG", "INFO", "WARNING", "ERROR"])
        self.level.setCurrentText("INFO")
        clear = QPushButton("Clear")
        clear.clicked.connect(self.text.clear)
        head = QHBoxLayout()
        head.addWidget(QLabel("Show"))
        head.addWidget(self.level)
        head.addStretch(1)
        head.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(head)
        layout.addWidget(self.text)
        self._timer = QTimer(self)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def drain(self) -> None:
        threshold = logging.getLevelName(self.level.currentText())
        lines = []
        while self.handler.records:
            level, line = self.handler.records.popleft()
            if level >= threshold:
                lines.append(line)
        if lines:
            self.text.appendPlainText("\n".join(lines))

    def detach(self) -> None:
        self._timer.stop()
        self.logger.removeHandler(self.handler)
