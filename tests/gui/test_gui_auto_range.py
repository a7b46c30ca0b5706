"""The Sweep panel's Auto range button on the connected simulated rig: the live view pauses for one pre-sweep over
the lens's whole range (off the GUI thread), the panel is filled with a range covering the scene's layers, Apply
uses it with its record, and the live view streams again. Real widgets, real rig, offscreen."""


from drivers.config import SimConfig

STREAM_S = 60_000  # ms: generous waits for a loaded 2-core CI machine


def test_auto_range_fills_the_panel_and_apply_records_it(qtbot, window):
    panel, controller = window.sweep_panel, window.controller
    panel.auto_button.click()  # not connected: says what to do, touches nothing
    assert "Connect the rig first" in panel.message.text() and panel.auto_button.isEnabled()
    window.actions_by_key["connect"].trigger()
    qtbot.waitUntil(lambda: controller.state == "connected" and controller.engine is not None, timeout=STREAM_S)
    before = controller.plan
    panel.auto_button.click()
    assert not panel.auto_button.isEnabled()
    qtbot.waitUntil(lambda: panel.auto_button.isEnabled(), timeout=STREAM_S)
    assert panel.message.text().startswith("auto range:"), panel.message.text()
    depths = SimConfig().depths_dpt  # the small rig's scene
    low, high = panel.low.value(), panel.high.value()
    assert low <= min(depths) and high >= max(depths) and high - low <= 1.5 * (max(depths) - min(depths))
    assert controller.plan is before  # shown, not applied
    qtbot.waitUntil(lambda: controller.engine is not None, timeout=STREAM_S)  # the live view streams again
    assert panel.apply()
    record = controller.plan.auto_range
    assert record["chosen_dpt"] == [controller.plan.low_dpt, controller.plan.high_dpt] == [low, high]
    panel.frame_rate.setValue(50.0)  # another setting changed: the range is still the one chosen
    assert panel.apply() and controller.plan.auto_range == record
    panel.low.setValue(low - 0.1)  # the range edited by hand: no longer the auto range's
    assert panel.apply() and controller.plan.auto_range is None
