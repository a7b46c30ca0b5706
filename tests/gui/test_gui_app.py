"""The whole window on the simulated rig: connect, stream, change the plan, capture-and-fuse, record, replay,
device faults and settings. Everything real: the capture engine, calibration, fusion, recordings, Qt widgets."""

import json

import numpy as np
import pytest
from PyQt6.QtCore import Qt

from app.gui.main import GuiOptions, build_window
from drivers.optotune import protocol as p
from drivers.sim import get_simulator

STREAM_S = 60_000  # ms: generous waits for a loaded 2-core CI machine; typical runs take a second or two


@pytest.fixture
def window(qtbot, small_config, settings_path, no_leaks):
    win, _ = build_window(GuiOptions(config=small_config, settings_path=settings_path))
    qtbot.addWidget(win)
    win.show()
    # a plan the small simulated lens can follow (its range is about -1.8 .. 2.8 dpt), 4 planes for speed
    panel = win.sweep_panel
    panel.low.setValue(0.0)
    panel.high.setValue(2.0)
    panel.planes.setValue(4)
    panel.frequency.setValue(10.0)
    assert panel.apply()
    yield win
    win.close()


def connect(qtbot, win):
    win.actions_by_key["connect"].trigger()
    qtbot.waitUntil(lambda: win.controller.state == "connected", timeout=STREAM_S)
    qtbot.waitUntil(lambda: win.rgb_view.data() is not None and win.event_view.data() is not None,
                    timeout=STREAM_S)


def lens_is_safe(name: str) -> bool:
    sim = get_simulator(name)
    return sim.mode == p.MODE_CURRENT and sim.dc_raw == 0 and sim.drive_current_ma() == 0.0


def test_connect_streams_frames_and_events_into_the_live_views(qtbot, window):
    connect(qtbot, window)
    frame = window.rgb_view.data()
    assert frame.shape[:2] == (72, 96) and frame.std() > 0
    events = window.event_view.data()
    assert events.shape == (72, 96, 3)
    qtbot.waitUntil(lambda: window.controller.engine.status().sweeps_done >= 1, timeout=STREAM_S)
    qtbot.waitUntil(lambda: window.device_panel.readouts["event_rate"].text() not in ("—", "0.000 Mev/s"),
                    timeout=STREAM_S)
    tree = [window.device_panel.tree.topLevelItem(i).text(0) for i in
            range(window.device_panel.tree.topLevelItemCount())]
    assert {"lens", "event_camera", "frame_camera"} <= set(tree)
    assert "°C" in window.device_panel.readouts["temperature"].text()  # read once at connect
    assert "sweep" in window.device_panel.readouts["lens_mode"].text()
    qtbot.waitUntil(lambda: window.focal_plot.data() is not None and window.rate_plot.data() is not None,
                    timeout=STREAM_S)
    rig = window.controller.rig  # simulated cameras compute in their own processes, away from the GUI's GIL
    children = [rig.event_camera._child._proc, rig.frame_camera._child._proc]
    assert all(proc.is_alive() for proc in children)
    name = window.controller.cfg.lens.port.split("://")[1]
    window.actions_by_key["disconnect"].trigger()
    qtbot.waitUntil(lambda: window.controller.state == "disconnected", timeout=STREAM_S)
    assert lens_is_safe(name) and window.controller.engine is None
    qtbot.waitUntil(lambda: not any(proc.is_alive() for proc in children), timeout=STREAM_S)  # none is leaked


def test_the_status_bar_readout_lies_inside_the_window(qtbot, window):
    window.resize(1200, 800)
    qtbot.waitUntil(lambda: window.status_perf.text().startswith("display"), timeout=STREAM_S)
    bar, perf = window.statusBar(), window.status_perf
    assert perf.isVisible() and perf.width() >= perf.fontMetrics().horizontalAdvance("display 30 fps")
    assert 0 <= perf.x() and perf.geometry().right() < bar.width()


def test_sweep_controls_restart_the_engine_on_the_new_plan(qtbot, window):
    connect(qtbot, window)
    first = window.controller.engine
    window.sweep_panel.high.setValue(1.5)
    window.sweep_panel.waveform.setCurrentText("triangle")
    assert window.sweep_panel.apply()
    qtbot.waitUntil(lambda: window.controller.engine is not None and window.controller.engine is not first,
                    timeout=STREAM_S)
    plan = window.controller.engine.plan
    assert (plan.high_dpt, plan.waveform) == (1.5, "triangle")
    stepped = window.sweep_panel.preset.findText("stepped")  # presets come from configs/plans/
    assert stepped > 0
    window.sweep_panel.load_preset(stepped)
    assert window.controller.plan.waveform == "stepped" and window.sweep_panel.waveform.currentText() == "stepped"
    assert not window.sweep_panel.frequency.isEnabled() and window.sweep_panel.dwell.isEnabled()
    window.sweep_panel.low.setValue(window.sweep_panel.high.value() + 0.5)  # above high: the plan refuses it
    assert not window.sweep_panel.apply()
    assert "high_dpt" in window.sweep_panel.message.text()
    assert window.controller.plan.low_dpt == 0.5


def test_capture_and_fuse_shows_the_fused_sweep(qtbot, window, tmp_path):
    connect(qtbot, window)
    window.activateWindow()
    with qtbot.waitSignal(window.controller.fused, timeout=STREAM_S) as fused:
        qtbot.keyClick(window, Qt.Key.Key_F5)  # the shortcut, as a user presses it
    result = fused.args[0]
    assert result.source == "live" and result.stack.n_planes == 4
    assert result.stack.has_events  # simulated rig: spatial part from the simulator's ground truth
    assert np.array_equal(window.results.aif.data(), result.result.all_in_focus)
    lo, hi = window.results.depth.bar.levels()
    assert (lo, hi) == pytest.approx((result.stack.focal_powers_dpt[0], result.stack.focal_powers_dpt[-1]))
    assert window.results.slider.maximum() == 3
    assert "calibration" in window.calibration_panel.summary.text().lower()
    assert window.controller.auto_calibration is not None
    window.actions_by_key["continuous"].trigger()  # Shift+F5: every sweep from now on
    assert window.capture_panel.continuous.isChecked() and window.controller.continuous
    with qtbot.waitSignal(window.controller.fused, timeout=STREAM_S) as again:
        pass
    assert again.args[0].sweep_index > result.sweep_index
    window.actions_by_key["continuous"].trigger()
    assert not window.controller.continuous
    # the estimated calibration, saved and loaded back, becomes the active one
    saved = window.controller.auto_calibration.save(tmp_path / "cal.json")
    with qtbot.waitSignal(window.controller.calibration_changed, timeout=STREAM_S) as changed:
        window.controller.load_calibration(saved)
    assert changed.args[0].id == window.controller.auto_calibration.id == window.controller.calibration.id
    with qtbot.waitSignal(window.controller.overlay_ready, timeout=STREAM_S) as overlay:
        window.calibration_panel.overlay_button.click()  # events drawn through the calibration onto the frame
    assert overlay.args[0].shape == (72, 96, 3)
    assert np.array_equal(window.calibration_panel.overlay.data(), overlay.args[0])
    out = window.snapshot(tmp_path)  # Ctrl+K: every view as PNG, image data as .npy
    assert (out / "window.png").is_file() and (out / "focal_power.png").is_file()
    assert np.array_equal(np.load(out / "depth_dpt.npy"), window.results.fused.result.depth_dpt)


def test_record_then_replay_scrub_and_fuse_a_sweep(qtbot, window, tmp_path):
    connect(qtbot, window)
    window.capture_panel.out_dir.setText(str(tmp_path / "recs"))
    window.capture_panel.record_button.click()  # the panel's button; the toolbar action follows it
    qtbot.waitUntil(lambda: window.controller.recording and window.controller.recording_path is not None,
                    timeout=STREAM_S)
    qtbot.waitUntil(lambda: window.controller.engine.status().sweeps_done >= 2, timeout=STREAM_S)
    assert window.actions_by_key["record"].isChecked() and window.controller.recording
    window.actions_by_key["record"].trigger()  # Ctrl+R stops it
    qtbot.waitUntil(lambda: not window.controller.recording and window.controller.engine is not None,
                    timeout=STREAM_S)
    folder = window.controller.recording_path
    assert (folder / "metadata.json").is_file()
    with qtbot.waitSignal(window.controller.replay_changed, timeout=STREAM_S):
        window.controller.open_replay(folder)
    session = window.controller.replay
    assert session.n_sweeps >= 2
    qtbot.waitUntil(lambda: window.controller.engine is None, timeout=STREAM_S)
    # scrub to the middle of sweep 1: the event view shows what was recorded there
    t0, t1 = session.sweep_window(1)
    window.replay_panel.seek((t0 + t1) // 2)
    assert window.replay_panel.sweep.value() == 1
    window.controller.feed.poll_once()
    window.refresh()
    shown = window.event_view.data()
    expected = session.latest_events(window.controller.feed.accumulation_us)
    assert expected.size and (shown != shown[0, 0]).any(axis=2).sum() > 0
    with qtbot.waitSignal(window.controller.fused, timeout=STREAM_S) as fused:
        window.replay_panel.fuse_button.click()
    assert fused.args[0].source == folder.name and fused.args[0].sweep_index == 1
    # the calibration wizard computes lag and breathing from the recording's sweeps and shows its report
    with qtbot.waitSignal(window.controller.calibration_changed, timeout=STREAM_S) as changed:
        window.calibration_panel.run(str(folder))
    assert changed.args[0].temporal is not None and changed.args[0] is window.controller.calibration
    qtbot.waitUntil(lambda: window.calibration_panel.overlay.data() is not None, timeout=STREAM_S)
    assert "lens lag" in window.calibration_panel.summary.text()
    # a bare event file replays too (no sweeps: nothing to fuse)
    with qtbot.waitSignal(window.controller.replay_changed, timeout=STREAM_S):
        window.controller.open_replay(folder / "events.raw")
    assert window.controller.replay.n_sweeps == 0 and not window.replay_panel.fuse_button.isEnabled()
    window.controller.close_replay()
    qtbot.waitUntil(lambda: window.controller.engine is not None, timeout=STREAM_S)
    window.controller.open_replay(tmp_path / "no-such-recording")
    qtbot.waitUntil(lambda: bool(window.error_boxes), timeout=STREAM_S)
    assert "no-such-recording" in window.error_boxes[-1].text()


def test_device_fault_shows_a_dialog_and_leaves_the_lens_safe(qtbot, window, small_config):
    connect(qtbot, window)
    name = json.loads(json.dumps(window.controller.cfg.lens.port)).split("://")[1]
    get_simulator(name).faults.bad_crc = True
    qtbot.waitUntil(lambda: bool(window.error_boxes), timeout=STREAM_S)
    box = window.error_boxes[0]
    assert box.isVisible() and "CRC" in box.text()
    window.log_panel.drain()
    assert "CRC" in window.log_panel.text.toPlainText()
    qtbot.waitUntil(lambda: window.controller.rig is None and window.controller.state == "failed",
                    timeout=STREAM_S)
    get_simulator(name).faults.bad_crc = False
    qtbot.waitUntil(lambda: lens_is_safe(name), timeout=5_000)
    assert window.actions_by_key["connect"].isEnabled()


def test_corrupt_settings_never_block_start_up(qtbot, small_config, settings_path, no_leaks):
    settings_path.write_text(json.dumps({"window_geometry": "not base64 at all!", "window_state": "AAAA",
                                         "display_fps": "fast", "accumulation_ms": 5.0,
                                         "last_config": "/nonexistent.toml"}))
    win, settings = build_window(GuiOptions(settings_path=settings_path))
    qtbot.addWidget(win)
    win.show()
    assert settings.accumulation_ms == 5.0 and settings.display_fps == 30.0
    assert win.controller.feed.accumulation_us == 5000
    win.close()
    saved = json.loads(settings_path.read_text())  # closing rewrote a valid file
    assert saved["display_fps"] == 30.0 and saved["window_geometry"] != "not base64 at all!"


def test_view_options_and_layout_persist_between_runs(qtbot, small_config, settings_path, no_leaks):
    win, _ = build_window(GuiOptions(config=small_config, settings_path=settings_path))
    qtbot.addWidget(win)
    win.show()
    win.accumulation.setValue(33.0)
    win.display_fps.setValue(20)
    win.set_depth_colormap("turbo")
    win.docks["log"].hide()
    win.close()
    again, settings = build_window(GuiOptions(settings_path=settings_path))  # no --config: the last one is used
    qtbot.addWidget(again)
    again.show()
    assert again.controller.config_path == small_config.resolve()
    assert (settings.accumulation_ms, settings.display_fps, settings.depth_colormap) == (33.0, 20.0, "turbo")
    assert again.controller.feed.accumulation_us == 33_000 and again.display_fps.value() == 20
    assert not again.docks["log"].isVisible()
    again.close()
