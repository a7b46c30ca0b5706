"""The sweep controls refuse a plan the lens cannot run, with the plan's message naming the limit, before the
live view's engine ever commands it (a refused sweep used to leave the capture engine hanging)."""

import pytest

from app.gui.main import GuiOptions, build_window


@pytest.fixture
def window(qtbot, small_config, settings_path, no_leaks):
    win, _ = build_window(GuiOptions(config=small_config, settings_path=settings_path))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_apply_refuses_a_range_beyond_the_lens_and_keeps_the_plan(window):
    panel, before = window.sweep_panel, window.controller.plan
    panel.low.setValue(0.0)
    panel.high.setValue(5.0)
    assert not panel.apply()
    assert "plan.high_dpt = 5 dpt is outside the focal-power range -1.8 … 2.8 dpt" in panel.message.text()
    assert window.controller.plan is before
    panel.high.setValue(2.5)
    assert panel.apply() and window.controller.plan.high_dpt == 2.5


def test_a_preset_beyond_the_lens_is_not_loaded(window, tmp_path):
    far = tmp_path / "far.toml"
    far.write_text("[plan]\nname = 'far'\nlow_dpt = 0.0\nhigh_dpt = 9.0\n")
    panel, before = window.sweep_panel, window.controller.plan
    panel.preset.addItem("far", str(far))
    panel.load_preset(panel.preset.count() - 1)
    assert "plan.high_dpt = 9 dpt is outside the focal-power range" in panel.message.text()
    assert window.controller.plan is before
