"""The GUI's building blocks on real data: simulated-camera events, synthetic focal stacks fused for real."""

import json
import threading

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QWidget

from app.gui.imaging import event_counts_rgb, event_overlay, result_pictures
from app.gui.live import LiveFeed, decimate_trace, next_deadline
from app.gui.settings import GuiSettings
from app.gui.timing import Mailbox, RateMeter
from app.gui.views import ImageView, TracePlot, readout_label
from app.gui.workers import JobRunner
from capture.render import PALETTE_DARK
from drivers.events.dtypes import EVENT_CD, concat_events
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.rig import SimRig


class CameraSource:
    """The LiveSource view of two simulated cameras read directly (what the engine offers, minus the engine)."""

    def __init__(self, rig: SimRig, chunks: int) -> None:
        self.events = SimEventCamera(rig)
        self.frames = SimFrameCamera(rig)
        self.events.start()
        self.frames.start()
        self.cd = concat_events([self.events.read(1.0).cd for _ in range(chunks)], EVENT_CD)
        self.frame = self.frames.read(1.0)

    def latest_frame(self):
        return self.frame

    def latest_events(self, window_us):
        return self.cd[self.cd["t"] >= self.cd["t"][-1] - window_us]

    def lens_history(self):
        t = np.arange(0, 50_000, 1000.0)
        return np.column_stack([t, np.sin(t / 1e4)])

    def rate_history(self):
        return np.array([[10_000.0, 1e6], [20_000.0, 2e6]])


@pytest.fixture(scope="module")
def sim_source():
    rig = SimRig.default((64, 48), sweep_hz=20.0, sweep_dpt=(0.0, 3.0))
    return CameraSource(rig, chunks=3)


def test_event_view_shows_on_and_off_colours_where_events_fired(qtbot, sim_source):
    feed = LiveFeed(accumulation_us=20_000)
    feed.set_source(sim_source, sim_source.events.geometry)
    feed.poll_once()
    picture = feed.pictures.take()
    assert picture is not None and picture.n_events > 0
    view = ImageView("Events")
    qtbot.addWidget(view)
    view.set_image(picture.events_rgb, (0.0, 255.0))
    shown = view.item.image
    cd = sim_source.latest_events(20_000)
    # the newest event at a pixel decides its colour; pixels without events keep the background
    last = {}
    for x, y, p in zip(cd["x"].tolist(), cd["y"].tolist(), cd["p"].tolist(), strict=True):
        last[(y, x)] = p
    on = [k for k, p in last.items() if p == 1]
    off = [k for k, p in last.items() if p == 0]
    assert on and off, "the sweep should produce both polarities"
    ys, xs = zip(*on, strict=True)
    assert np.all(shown[list(ys), list(xs)] == PALETTE_DARK[1])
    ys, xs = zip(*off, strict=True)
    assert np.all(shown[list(ys), list(xs)] == PALETTE_DARK[2])
    quiet = np.ones(shown.shape[:2], bool)
    quiet[tuple(np.array(list(last)).T)] = False
    assert np.all(shown[quiet] == PALETTE_DARK[0])
    # and the view really draws it: the rendered widget contains the ON colour
    view.resize(200, 160)
    rendered = view.body.grab().toImage()
    colours = {rendered.pixelColor(x, y).getRgb()[:3] for x in range(0, rendered.width(), 3)
               for y in range(0, rendered.height(), 3)}
    assert PALETTE_DARK[1] in colours


def test_accumulation_time_controls_how_many_events_are_shown(sim_source):
    feed = LiveFeed(accumulation_us=1_000)
    feed.set_source(sim_source, sim_source.events.geometry)
    feed.poll_once()
    short = feed.pictures.take().n_events
    feed.accumulation_us = 25_000
    feed.poll_once()
    long = feed.pictures.take().n_events
    assert 0 < short < long


def test_frame_picture_keeps_camera_dtype_and_explicit_levels(sim_source):
    feed = LiveFeed()
    feed.set_source(sim_source, None)
    feed.poll_once()
    picture = feed.pictures.take()
    assert picture.frame is not None and picture.events_rgb is None
    assert picture.frame.dtype == sim_source.frame.image.dtype
    assert picture.frame_levels == (0.0, 255.0)
    feed.poll_once(with_traces=False)
    assert feed.pictures.take() is None, "an unchanged frame is not re-sent to the GUI"
    traces = feed.traces.take()
    assert traces.lens[-1, 0] == 0.0 and traces.lens[0, 0] < 0  # seconds before the newest sample


@pytest.fixture(scope="module")
def fused_stack():
    from fusion.engine import fuse
    from fusion.synthetic import synthetic_stack

    stack = synthetic_stack(3, size=(48, 40), n_planes=4)
    return stack, fuse(stack, "classical", "cpu")


def test_result_view_shows_depth_in_absolute_dioptres_and_browses_the_stack(qtbot, fused_stack):
    from app.gui.fusion_job import FusedSweep
    from app.gui.results import FusionResultView

    stack, result = fused_stack
    view = FusionResultView()
    qtbot.addWidget(view)
    view.show_result(FusedSweep(7, "test", stack, result, 0.01, 0.02, result_pictures(stack, result)))
    assert np.array_equal(view.aif.item.image, result.all_in_focus)
    assert np.array_equal(view.depth.item.image, result.depth_dpt)
    lo, hi = view.depth.bar.levels()
    assert (lo, hi) == pytest.approx((stack.focal_powers_dpt[0], stack.focal_powers_dpt[-1]))
    assert view.slider.maximum() == stack.n_planes - 1
    view.slider.setValue(2)
    assert np.array_equal(view.plane.item.image, stack.frames[2])
    assert np.array_equal(view.event_slice.item.image, event_counts_rgb(stack.events[2]))
    assert f"{stack.focal_powers_dpt[2]:.3f} dpt" in view.plane_label.text()
    assert "classical" in view.summary.text() and "sweep 7" in view.summary.text()
    # A frame-true stack names the frame each plane is and the sweep half it was exposed on.
    from dataclasses import replace

    planes = [{"kind": "frame", "frames": [40 + k], "half": "rising" if k % 2 else "falling"}
              for k in range(stack.n_planes)]
    framed = replace(stack, meta={**stack.meta, "planes": planes})
    view.show_result(FusedSweep(7, "test", framed, result, 0.01, 0.02, result_pictures(framed, result)))
    view.slider.setValue(3)
    assert view.plane_label.text().endswith("frame 43 ↑")
    view.slider.setValue(2)
    assert view.plane_label.text().endswith("frame 42 ↓")
    # Without event-timed focus the depth view shows the fused depth only; with it, the events' own depth on demand.
    assert not view.depth_source.isEnabled()
    timed = np.full(stack.shape, np.nan, np.float32)
    timed[:, :10] = 1.7
    with_focus = replace(stack, event_focus_dpt=timed, event_focus_weight=np.where(np.isfinite(timed), 2.0, 0.0))
    view.show_result(FusedSweep(7, "test", with_focus, result, 0.01, 0.02, result_pictures(with_focus, result)))
    assert view.depth_source.isEnabled() and np.array_equal(view.depth.item.image, result.depth_dpt)
    view.depth_source.setCurrentIndex(view.depth_source.findData("events"))
    shown = view.depth.item.image
    assert np.all(shown[:, :10] == 1.7) and np.isnan(shown[:, 10:]).all()


def test_event_counts_colour_by_majority_polarity():
    counts = np.zeros((2, 2, 3), np.uint16)
    counts[1, 0, 0] = 3           # ON only
    counts[0, 0, 1] = 2           # OFF only
    counts[:, 1, 2] = 1           # a tie shows as background
    img = event_counts_rgb(counts)
    assert tuple(img[0, 0]) == PALETTE_DARK[1] and tuple(img[0, 1]) == PALETTE_DARK[2]
    assert tuple(img[1, 2]) == PALETTE_DARK[0] and tuple(img[1, 0]) == PALETTE_DARK[0]


def test_overlay_draws_events_where_the_calibration_maps_them():
    frame = np.full((10, 12), 128, np.uint8)
    cd = np.zeros(2, EVENT_CD)
    cd["x"], cd["y"], cd["p"] = [1, 2], [3, 4], [1, 0]
    out = event_overlay(frame, cd, lambda xy: xy[:, ::-1] + 1)   # a made-up geometry: swap axes, shift
    assert tuple(out[2, 4]) == (60, 220, 255) and tuple(out[3, 5]) == (255, 80, 60)
    assert tuple(out[0, 0]) == (100, 100, 100)


def test_views_export_rendering_and_data(qtbot, tmp_path):
    view = ImageView("Depth", colormap="viridis")
    qtbot.addWidget(view)
    data = np.linspace(0, 2, 12, dtype=np.float32).reshape(3, 4)
    view.set_image(data, (0.0, 2.0))
    assert np.array_equal(np.load(view.save_data(tmp_path / "d.npy")), data)
    with pytest.raises(ValueError, match=r"npy or \.tiff"):
        view.save_data(tmp_path / "d.png")
    assert view.save_view(tmp_path / "v.png").stat().st_size > 0
    plot = TracePlot("Lens", "dpt", {"lens": "y", "commanded": "b"})
    qtbot.addWidget(plot)
    assert plot.data() is None
    plot.set_curve("commanded", np.array([0.0, 1.0]), np.array([5.0, 6.0]))
    plot.set_curve("lens", np.array([0.5]), np.array([7.0]))
    assert plot.data().tolist() == [[0, 0.5, 7.0], [1, 0.0, 5.0], [1, 1.0, 6.0]]
    assert np.array_equal(np.load(plot.save_data(tmp_path / "p.npy")), plot.data())


def test_settings_survive_corruption(tmp_path):
    path = tmp_path / "gui.json"
    path.write_bytes(b"\x00{not json")
    settings, warnings = GuiSettings.load(path)
    assert settings == GuiSettings() and "unreadable" in warnings[0]
    path.write_text(json.dumps(["a", "list"]))
    assert GuiSettings.load(path)[0] == GuiSettings()
    path.write_text(json.dumps({"display_fps": -3, "accumulation_ms": 25, "continuous": "maybe",
                                "window_state": "@@not base64@@", "from_the_future": 1}))
    settings, warnings = GuiSettings.load(path)
    assert settings.accumulation_ms == 25 and settings.display_fps == 30 and settings.continuous is False
    assert len(warnings) == 2
    settings.save(path)
    assert GuiSettings.load(path) == (settings, [])


def test_job_runner_keeps_only_the_newest_pending_job(qtbot):
    runner = JobRunner("test")
    gate = threading.Event()
    done = []
    runner.finished.connect(lambda tag, result: done.append((tag, result)))
    runner.submit("first", lambda: gate.wait(5) and "first")
    qtbot.waitUntil(lambda: runner._running)
    runner.submit("second", lambda: "second")
    runner.submit("third", lambda: "third")
    gate.set()
    qtbot.waitUntil(lambda: len(done) == 2 and not runner.busy)
    assert [t for t, _ in done] == ["first", "third"] and runner.skipped == 1
    with qtbot.waitSignal(runner.failed) as failed:
        runner.submit("boom", lambda: 1 / 0)
    assert failed.args[0] == "boom" and "division by zero" in failed.args[1]
    assert runner.shutdown()


def test_mailbox_hands_over_only_the_newest_value():
    box = Mailbox()
    assert box.take() is None
    box.put(1)
    box.put(2)
    assert box.take() == 2 and box.take() is None and box.overwritten == 1


def test_trace_decimation_keeps_the_span_its_peaks_and_time_order():
    t = np.linspace(-5.0, 0.0, 50_001)
    y = np.sin(2 * np.pi * 4 * t)
    y[40_000] = 7.0  # a one-sample spike at t = -1 s
    td, yd = decimate_trace(t, y, span_s=2.0, buckets=300)
    assert len(td) <= 600 and td.min() >= -2.0 and td.max() == 0.0
    assert np.all(np.diff(td) >= 0)
    assert yd.max() == 7.0 and yd.min() == pytest.approx(-1.0, abs=1e-3)  # peaks survive the decimation
    short_t, short_y = decimate_trace(t[-100:], y[-100:], span_s=2.0)
    assert np.array_equal(short_t, t[-100:]) and np.array_equal(short_y, y[-100:])  # short traces pass unchanged


@pytest.mark.parametrize("make, moves", [(readout_label, False), (QLabel, True)])
def test_readout_text_changes_do_not_relayout_their_neighbours(qtbot, make, moves):
    row = QWidget()
    layout = QHBoxLayout(row)
    readout, neighbour = make("1 fps"), QLabel("neighbour")
    layout.addWidget(readout)
    layout.addWidget(neighbour, 1)
    qtbot.addWidget(row)
    row.resize(600, 40)
    row.show()
    qtbot.waitExposed(row)
    before = neighbour.geometry()
    readout.setText("display 30 fps · longest GUI stall 12 ms · and more words")
    qtbot.wait(20)
    assert (neighbour.geometry() != before) == moves  # a plain QLabel shifts its neighbour: the control case


def test_a_readout_too_narrow_for_its_text_keeps_the_start_and_ends_in_an_ellipsis(qtbot):
    label = readout_label("12,345 events / 10 ms")
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    qtbot.addWidget(label)
    label.resize(label.fontMetrics().horizontalAdvance("12,345 ev"), 20)
    label.show()
    qtbot.waitExposed(label)
    shown = label.displayed_text()
    assert shown.startswith("12,3") and shown.endswith("…") and len(shown) < len(label.text())
    assert not label.grab().isNull()  # the eliding paint path runs
    label.resize(400, 20)
    assert label.displayed_text() == "12,345 events / 10 ms"
    label.setText("<b>bold</b> markup is left to QLabel")
    assert label.displayed_text() == label.text()


def test_feed_schedule_makes_up_late_polls_and_skips_a_long_stall():
    period = 1 / 30

    def polls_in_three_seconds(durations):
        t, deadline, count = 0.0, 0.0, 0
        for d in durations:
            start = max(t, deadline)  # wait for the slot, then poll
            if start >= 3.0 - period / 2:  # (float sums of 1/30 land just below 3.0)
                break
            t = start + d
            count += 1
            deadline = next_deadline(deadline, t, period)
        return count

    steady = polls_in_three_seconds([0.005] * 200)
    slow_now_and_then = polls_in_three_seconds(([0.005] * 15 + [0.05]) * 20)  # every 16th poll 1.5 periods long
    assert steady == slow_now_and_then == 90
    assert next_deadline(0.0, 5 * period, period) == 5 * period  # a stall of several periods: restart from now


def test_rate_since_a_snapshot_counts_intervals_and_starts_at_the_first_tick(monkeypatch):
    clock = iter([100.0, *(100.0 + np.arange(1, 50) * 0.1)])  # construction, then a tick every 100 ms
    monkeypatch.setattr("app.gui.timing.time.perf_counter", lambda: next(clock))
    meter = RateMeter()
    before_any = meter.snapshot()
    for _ in range(10):
        meter.tick()
    middle = meter.snapshot()
    for _ in range(20):
        meter.tick()
    assert meter.rate_since(middle) == pytest.approx(10.0)  # 20 intervals over 2.0 s, not 20 ticks over 2.05 s
    assert meter.rate_since(before_any) == pytest.approx(10.0)  # no tick by the snapshot: from the first tick
    assert RateMeter().rate_since((0, 0.0)) == 0.0
