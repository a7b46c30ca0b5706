"""Device panel: the configured devices, connection state, identities, and live lens/camera readouts."""

from __future__ import annotations

from typing import Any

from PyQt6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import RigController
from app.gui.views import readout_label

STATE_STYLE = {
    "disconnected": ("Disconnected", "#b06000"),
    "connecting": ("Connecting…", "#806000"),
    "connected": ("Connected", "#2a7a2a"),
    "failed": ("⚠ Failed — devices released, lens safe", "#b00020"),
}


def _fmt(value: Any, unit: str = "", fmt: str = "{:.3f}") -> str:
    return "—" if value is None else f"{fmt.format(value)} {unit}".strip()


class DevicePanel(QWidget):
    """Connect/disconnect, what is connected (from ``rig.describe()``), and readouts refreshed by the window."""

    def __init__(self, controller: RigController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.state_label = QLabel()
        self.connect_button = QPushButton("Connect")
        self.disconnect_button = QPushButton("Disconnect")
        self.connect_button.clicked.connect(controller.connect_rig)
        self.disconnect_button.clicked.connect(controller.disconnect_rig)
        buttons = QHBoxLayout()
        buttons.addWidget(self.connect_button)
        buttons.addWidget(self.disconnect_button)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["device", "value"])
        self.tree.setMinimumHeight(140)
        self.readouts: dict[str, QLabel] = {}
        self._tree_stale = False  # an engine started: the devices' settings change once it runs
        form = QFormLayout()
        for key, label in (("temperature", "Lens temperature"), ("focal_power", "Focal power"),
                           ("lens_mode", "Lens mode"), ("event_rate", "Event rate"), ("frame_rate", "Frame rate"),
                           ("sweeps", "Sweeps"), ("sync", "Sync"), ("drops", "Drops")):
            self.readouts[key] = readout_label("—", min_chars=16)
            form.addRow(label, self.readouts[key])
        layout = QVBoxLayout(self)
        layout.addWidget(self.state_label)
        layout.addLayout(buttons)
        layout.addWidget(self.tree, 1)
        layout.addLayout(form)
        self._show_configured()
        controller.connection_changed.connect(self._state_changed)
        controller.engine_status.connect(self._engine_status)
        controller.lens_polled.connect(self._lens_polled)
        controller.engine_running.connect(self._engine_running)
        self._state_changed(controller.state)

    def _state_changed(self, state: str) -> None:
        text, colour = STATE_STYLE.get(state, (state, "black"))
        self.state_label.setText(f"<b style='color:{colour}'>{text}</b>")
        self.connect_button.setEnabled(state in ("disconnected", "failed"))
        self.disconnect_button.setEnabled(state == "connected")
        if state == "connected":
            self._fill_tree(self.controller.describe())
        elif state in ("disconnected", "failed"):
            self._show_configured()

    def _show_configured(self) -> None:
        """Before connecting: what the config selects (config sections that name a backend)."""
        cfg = self.controller.cfg.model_dump()
        configured = {name: section for name, section in cfg.items()
                      if isinstance(section, dict) and ("backend" in section or "port" in section)}
        source = str(self.controller.config_path or "configs/sim.toml (default)")
        self._fill_tree({"config": source, **configured})

    def _fill_tree(self, info: dict) -> None:
        self.tree.clear()

        def add(parent, key: str, value: Any) -> None:
            if isinstance(value, dict):
                node = QTreeWidgetItem([str(key), ""])
                for k, v in value.items():
                    add(node, k, v)
            else:
                node = QTreeWidgetItem([str(key), str(value)])
            (parent.addChild if isinstance(parent, QTreeWidgetItem) else parent.addTopLevelItem)(node)

        for key, value in info.items():
            add(self.tree, key, value)
        self.tree.expandToDepth(0)
        self.tree.resizeColumnToContents(0)

    def _engine_running(self, running: bool) -> None:
        """While capturing, the engine owns the lens: the readouts say what it is doing and when they were read."""
        self._tree_stale = running
        if running:
            plan = self.controller.plan
            self.readouts["lens_mode"].setText(f"{plan.waveform} sweep {plan.low_dpt:g}–{plan.high_dpt:g} dpt")
            text = self.readouts["temperature"].text()
            if text != "—" and "before" not in text:
                self.readouts["temperature"].setText(f"{text} (before capture)")

    def _lens_polled(self, lens: dict) -> None:
        self.readouts["temperature"].setText(_fmt(lens.get("temperature_c"), "°C", "{:.2f}"))
        if lens.get("focal_power_dpt") is not None:
            self.readouts["focal_power"].setText(_fmt(lens["focal_power_dpt"], "dpt"))
        self.readouts["lens_mode"].setText(str(lens.get("mode", "—")))

    def _engine_status(self, status: Any) -> None:
        if self._tree_stale and status.state == "running":
            # The engine set the cameras up from the plan (frame rate, exposure) before it ran: show what is in
            # force now, not what the devices had when they were connected.
            self._tree_stale = False
            if self.controller.state == "connected":
                self._fill_tree(self.controller.describe())
        self.readouts["event_rate"].setText(_fmt(status.event_rate_hz / 1e6, "Mev/s"))
        self.readouts["frame_rate"].setText(_fmt(status.frame_rate_hz, "fps", "{:.1f}"))
        total = "∞" if status.sweeps_total is None else status.sweeps_total
        self.readouts["sweeps"].setText(f"{status.sweeps_done} / {total} ({status.state})")
        self.readouts["sync"].setText("soft (host clock)" if status.soft_synced else "hardware triggers")
        drops = ", ".join(f"{k}: {v}" for k, v in (status.drops or {}).items()) or "none"
        self.readouts["drops"].setText(drops)

    def show_focal_power(self, dpt: float | None) -> None:
        """The newest focal power from the engine's lens history (the lens itself is busy while streaming)."""
        if dpt is not None:
            self.readouts["focal_power"].setText(_fmt(dpt, "dpt"))
