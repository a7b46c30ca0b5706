"""Sweep controls: dioptre range, waveform, frequency/dwell, planes and stack span, frame rate and exposure, presets.

Edits are applied as a whole with Apply (or Enter), validated by :class:`~capture.plan.SweepPlan` itself, so
an impossible combination is refused with the plan's own message and a dragged spin box never floods the
lens with commands (app-notes §3.2 item 4). A plan whose sweep gives fewer frames than the planes asked for is
applied with a note naming the frame rate or sweep frequency that would give them: every plane is a real frame.
**Auto range** sweeps the lens's whole range once on the connected rig (off the GUI thread) and fills in the range
and planes where the events show the scene in focus; Apply then uses them, with the record of how they were
chosen (the plan's ``auto_range``, kept while the range is the one it chose).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from PyQt6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.controller import RigController
from app.gui.views import spin_box
from capture.plan import PLAN_DIR, PlanError, SweepPlan
from drivers.focus_limits import FocusLimits, connected_limits, expected_limits


class SweepPanel(QWidget):
    """Edits the controller's plan; ``presets`` lists ``configs/plans/*.toml``."""

    def __init__(self, controller: RigController, parent: QWidget | None = None,
                 plan_dir: Path = PLAN_DIR) -> None:
        super().__init__(parent)
        self.controller = controller
        self.plan_dir = plan_dir
        self.preset = QComboBox()
        self.preset.addItem("(current)")
        for path in sorted(plan_dir.glob("*.toml")) if plan_dir.is_dir() else []:
            self.preset.addItem(path.stem, str(path))
        self.preset.activated.connect(self.load_preset)
        self.low = spin_box(-50, 50, 0.1, 3, "dpt")
        self.high = spin_box(-50, 50, 0.1, 3, "dpt")
        self.waveform = QComboBox()
        self.waveform.addItems(["sine", "triangle", "stepped"])
        self.frequency = spin_box(0.001, 1000, 1, 3, "Hz")
        self.dwell = spin_box(0.1, 10_000, 1, 1, "ms")
        self.planes = QSpinBox()
        self.planes.setRange(2, 1024)
        self.planes.setToolTip("Most planes per focal stack; each plane is a real frame at its own focal power")
        self.span = QComboBox()
        self.span.addItem("both halves (period)", "period")
        self.span.addItem("rising half", "half")
        self.span.setToolTip("Frames a focal stack takes from one sweep: both halves interleave their focal powers "
                             "(up to twice the depth sampling); the rising half takes half the time (scenes that "
                             "move)")
        self.frame_rate = spin_box(0.1, 10_000, 1, 1, "fps")
        self.exposure = spin_box(1, 1e7, 100, 0, "µs")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self.apply)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(lambda: self.show_plan(self.controller.plan))
        self.auto_button = QPushButton("Auto range")
        self.auto_button.setToolTip("Sweep the lens's whole range once and fill in the range (and planes) where the "
                                    "scene is in focus, with margins; Apply to use it")
        self.auto_button.clicked.connect(self.auto_range)
        self._auto_record: dict | None = None  # the pre-sweep's record for the values shown, until applied
        form = QFormLayout()
        form.addRow("Preset", self.preset)
        form.addRow("Low", self.low)
        form.addRow("High", self.high)
        form.addRow("Waveform", self.waveform)
        form.addRow("Frequency", self.frequency)
        form.addRow("Step dwell", self.dwell)
        form.addRow("Focal planes", self.planes)
        form.addRow("Stack frames", self.span)
        form.addRow("Frame rate", self.frame_rate)
        form.addRow("Exposure", self.exposure)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.auto_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addStretch(1)
        self.waveform.currentTextChanged.connect(self._waveform_changed)
        controller.plan_changed.connect(self.show_plan)
        controller.auto_range_done.connect(self._auto_range_done)
        controller.auto_range_failed.connect(self._auto_range_failed)
        self.show_plan(controller.plan)

    def show_plan(self, plan: SweepPlan) -> None:
        self._auto_record = None
        self.low.setValue(plan.low_dpt)
        self.high.setValue(plan.high_dpt)
        self.waveform.setCurrentText(plan.waveform)
        self.frequency.setValue(plan.frequency_hz)
        self.dwell.setValue(plan.dwell_ms)
        self.planes.setValue(plan.n_planes)
        self.span.setCurrentIndex(max(0, self.span.findData(plan.stack_span)))
        self.frame_rate.setValue(plan.frame_rate_hz)
        self.exposure.setValue(plan.exposure_us)
        self._waveform_changed(plan.waveform)

    def edited_plan(self) -> SweepPlan:
        """The controller's plan with this panel's values; raises PlanError naming the bad key."""
        data = self.controller.plan.model_dump()
        data.update(low_dpt=self.low.value(), high_dpt=self.high.value(), waveform=self.waveform.currentText(),
                    frequency_hz=self.frequency.value(), dwell_ms=self.dwell.value(), n_planes=self.planes.value(),
                    stack_span=self.span.currentData(), frame_rate_hz=self.frame_rate.value(),
                    exposure_us=self.exposure.value())
        record = self._auto_record or data.get("auto_range")  # kept while the range is the one it chose
        chosen = (record or {}).get("chosen_dpt") or (math.nan, math.nan)
        same = abs(chosen[0] - self.low.value()) < 5e-4 and abs(chosen[1] - self.high.value()) < 5e-4
        data["auto_range"] = record if same else None
        return SweepPlan.from_dict(data, source="sweep controls")

    def lens_limits(self) -> FocusLimits:
        """What the lens can do: as it reported once connected, else as known from the configuration."""
        lens_cfg, rig = self.controller.cfg.lens, self.controller.rig
        return connected_limits(lens_cfg, rig.lens.capabilities) if rig is not None else expected_limits(lens_cfg)

    def apply(self) -> bool:
        try:
            plan = self.edited_plan()
            plan.check_lens(self.lens_limits())  # a sweep the lens refuses never reaches the engine
        except PlanError as exc:
            self.message.setText(f"<span style='color:#b00020'>{exc}</span>")
            return False
        shortfall = plan.plane_shortfall()
        self.message.setText(f"applied: {plan.waveform} {plan.low_dpt:g}–{plan.high_dpt:g} dpt, "
                             f"{plan.period_s * 1e3:.0f} ms per sweep, {plan.n_planes} planes"
                             + (f"<br><span style='color:#a15c00'>note: {shortfall}</span>" if shortfall else ""))
        self.controller.set_plan(plan)
        return True

    def auto_range(self) -> None:
        """Run the pre-sweep on the connected rig (the controller does it off the GUI thread)."""
        self.auto_button.setEnabled(False)
        self.message.setText("auto range: sweeping the lens's whole range once…")
        self.controller.run_auto_range()

    def _auto_range_done(self, result) -> None:
        plan = result.plan
        self.low.setValue(plan.low_dpt)
        self.high.setValue(plan.high_dpt)
        self.planes.setValue(plan.n_planes)
        self._auto_record = plan.auto_range
        self.auto_button.setEnabled(True)
        self.message.setText(f"{result.summary()}<br>Apply to use it.")

    def _auto_range_failed(self, message: str) -> None:
        self.auto_button.setEnabled(True)
        self.message.setText(f"<span style='color:#b00020'>{html.escape(message)}</span>")

    def load_preset(self, index: int) -> None:
        """Apply the plan file listed at ``index`` (index 0 is the current plan)."""
        path = self.preset.itemData(index)
        if not path:
            return
        try:
            plan = SweepPlan.load(path)
            plan.check_lens(self.lens_limits())
        except PlanError as exc:
            self.message.setText(f"<span style='color:#b00020'>{exc}</span>")
            return
        self.message.setText(f"preset {Path(path).stem} loaded")
        self.controller.set_plan(plan)

    def _waveform_changed(self, waveform: str) -> None:
        self.frequency.setEnabled(waveform != "stepped")
        self.dwell.setEnabled(waveform == "stepped")
