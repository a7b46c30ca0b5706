"""What the window says, checked on real Qt widgets (offscreen): dock titles as written, the event-rate plot in
the unit of every event-rate readout, and the device tree showing the settings in force once an engine runs."""

import numpy as np
import pytest
from PyQt6.QtGui import QKeySequence

STREAM_S = 60_000  # ms: generous waits for a loaded 2-core machine


class RateSource:
    """A LiveSource with no pictures and an event rate of 1.5 then 0.5 Mev/s (in events/s, as engines give it)."""

    def latest_frame(self):
        return None

    def latest_events(self, window_us):
        return np.empty(0)

    def lens_history(self):
        return np.array([[0.0, 1.0], [100_000.0, 1.5]])

    def rate_history(self):
        return np.array([[0.0, 1.5e6], [50_000.0, 1.5e6], [100_000.0, 5e5]])


def test_dock_titles_show_their_ampersand_and_hide_no_character(window):
    titles = {key: dock.windowTitle() for key, dock in window.docks.items()}
    # Qt marks a mnemonic with "&" and hides it in a dock's title bar; "&&" is a literal "&"
    assert all(QKeySequence.mnemonic(title).isEmpty() for title in titles.values()), titles
    shown = {key: title.replace("&&", "&") for key, title in titles.items()}
    assert shown == {"rig": "Rig", "capture": "Capture & record", "replay": "Replay & calibration", "log": "Log"}
    menu_texts = {dock.toggleViewAction().text().replace("&&", "&") for dock in window.docks.values()}
    assert {"Capture & record", "Replay & calibration"} <= menu_texts


def test_the_event_rate_plot_is_in_mev_per_second_like_every_readout(qtbot, window):
    feed = window.controller.feed
    feed.set_source(RateSource(), None)
    feed.poll_once()
    traces = feed.traces.take()
    assert traces.rate[:, 1].max() == pytest.approx(1.5) and traces.rate[:, 1].min() == pytest.approx(0.5)
    feed.traces.put(traces)
    window.refresh()
    data = window.rate_plot.data()
    assert data is not None and data[:, 2].max() == pytest.approx(1.5)
    axis = window.rate_plot.body.getAxis("left")
    assert axis.labelText == "Mev/s"
    low, high = window.rate_plot.body.viewRange()[1]
    ticks = [s for spacing, values in axis.tickValues(low, high, 200) for s in axis.tickStrings(values, 1.0, spacing)]
    assert ticks and not any("e+" in t or "e-" in t for t in ticks), ticks


def _tree_values(tree) -> dict[str, str]:
    out = {}

    def walk(item, path):
        key = f"{path}.{item.text(0)}" if path else item.text(0)
        out[key] = item.text(1)
        for i in range(item.childCount()):
            walk(item.child(i), key)

    for i in range(tree.topLevelItemCount()):
        walk(tree.topLevelItem(i), "")
    return out


def test_the_device_tree_shows_the_frame_rate_in_force_once_the_engine_runs(qtbot, window):
    plan = window.controller.plan
    assert plan.frame_rate_hz != 30.0  # the simulated camera's own rate at connect: the two must differ
    window.actions_by_key["connect"].trigger()
    qtbot.waitUntil(lambda: window.controller.state == "connected", timeout=STREAM_S)
    qtbot.waitUntil(lambda: window.controller.engine is not None
                    and window.controller.engine.status().state == "running", timeout=STREAM_S)
    qtbot.waitUntil(lambda: _tree_values(window.device_panel.tree).get("sim.frame_rate_hz")
                    == str(plan.frame_rate_hz), timeout=STREAM_S)
    assert _tree_values(window.device_panel.tree)["sim.exposure_us"] == str(plan.exposure_us)
    window.actions_by_key["disconnect"].trigger()
    qtbot.waitUntil(lambda: window.controller.state == "disconnected", timeout=STREAM_S)
