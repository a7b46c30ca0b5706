"""The sweep controls refuse a plan the lens cannot run, with the plan's message naming the limit, before the
live view's engine ever commands it (a refused sweep used to leave the capture engine hanging)."""


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


def test_a_plan_whose_sweep_gives_too_few_frames_is_applied_with_a_note(window):
    """Every plane is a real frame: asking for more planes than a sweep has frames applies the plan and says which
    frame rate or sweep frequency would give them; the stack span is part of the plan."""
    panel = window.sweep_panel
    panel.waveform.setCurrentText("sine")
    panel.frequency.setValue(10.0)
    panel.frame_rate.setValue(60.0)
    panel.planes.setValue(12)
    panel.span.setCurrentIndex(panel.span.findData("half"))
    assert panel.apply()
    plan = window.controller.plan
    assert plan.stack_span == "half" and plan.n_planes == 12
    text = panel.message.text()
    assert "note:" in text and "3 frames per rising half" in text and ">= 240 fps" in text
    panel.planes.setValue(3)
    assert panel.apply() and "note:" not in panel.message.text()
