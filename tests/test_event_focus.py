"""Event-timed focus and event-refocused planes, on event streams whose answer is known."""

import numpy as np
import pytest

from calibration.event_focus import event_focus
from calibration.refocus import estimate_threshold, time_at_power
from calibration.temporal import FocalModel
from capture.refocus_model import gap_fill, refocus, signed_counts
from capture.sweep import CommandedSweep, SweepData
from drivers.camera import Frame
from drivers.events.dtypes import EVENT_CD, EVENT_EXT_TRIGGER

PERIOD = 100_000.0
MODEL = FocalModel(CommandedSweep("triangle", 0.0, 4.0, 0.0, frequency_hz=1e6 / PERIOD), lag_us=1_000.0)


def _power_to_time(power: float, rising: bool) -> float:
    """Triangle 0..4 dpt over 100 ms with a 1 ms lag: where the lens is at ``power`` on either half."""
    frac = power / 4.0
    return 1_000.0 + (0.5 * frac if rising else 1.0 - 0.5 * frac) * PERIOD


def _cd(rows) -> np.ndarray:
    a = np.zeros(len(rows), EVENT_CD)
    for i, (x, y, p, t) in enumerate(rows):
        a[i] = (x, y, p, round(t))
    return a[np.argsort(a["t"], kind="stable")]


def _sweep(cd, frames=(), size=(4, 3)) -> SweepData:
    return SweepData(0, 0, int(PERIOD), cd, np.zeros(0, EVENT_EXT_TRIGGER), tuple(frames), MODEL.commanded, size,
                     size)


def _passage(x, y, focus_dpt, rising, before=3, after=3, step_dpt=0.05, approach=1):
    """A pixel's events as the lens passes its focus: ``before`` events of polarity ``approach`` at increasing
    power, silence around ``focus_dpt`` (± 0.1 dpt), then ``after`` events of the other polarity, mirrored."""
    rows = []
    for k in range(before):
        rows.append((x, y, approach, _power_to_time(focus_dpt - 0.1 - step_dpt * (before - 1 - k), rising)))
    for k in range(after):
        rows.append((x, y, 1 - approach, _power_to_time(focus_dpt + 0.1 + step_dpt * k, rising)))
    if not rising:  # the falling half meets the powers in the other order
        rows = [(x, y, 1 - p, t) for x, y, p, t in rows]
    return rows


def test_focus_is_the_power_midpoint_of_the_reversal_on_either_half():
    cd = _cd(_passage(0, 0, 1.3, True) + _passage(1, 0, 2.6, False) + _passage(2, 0, 0.7, True)
             + _passage(2, 0, 0.7, False))
    f = event_focus(_sweep(cd), MODEL)
    assert f.depth_dpt[0, 0] == pytest.approx(1.3, abs=1e-3)
    assert f.depth_dpt[0, 1] == pytest.approx(2.6, abs=1e-3)
    assert f.depth_dpt[0, 2] == pytest.approx(0.7, abs=1e-3) and f.weight[0, 2] == 6  # both halves, 3 + 3
    assert np.isnan(f.depth_dpt[1, 0]) and f.weight[1, 0] == 0                      # no events, no answer
    assert f.silence_dpt == pytest.approx(0.2, abs=1e-3)


def test_the_longest_passage_wins_and_a_noise_flip_scores_low():
    rows = _passage(0, 0, 2.0, True, before=4, after=4)
    rows += [(0, 0, 1, _power_to_time(0.5, True)), (0, 0, 0, _power_to_time(0.55, True))]  # a lone flip earlier
    f = event_focus(_sweep(_cd(rows)), MODEL)
    assert f.depth_dpt[0, 0] == pytest.approx(2.0, abs=1e-3) and f.weight[0, 0] == 4
    lone = event_focus(_sweep(_cd(rows[-2:])), MODEL, min_score=2)
    assert np.isnan(lone.depth_dpt[0, 0])


def test_the_turnaround_is_not_a_focus_passage():
    """At the top of the sweep the lens itself reverses: a pixel's events flip there without passing focus."""
    rows = [(0, 0, 1, _power_to_time(p, True)) for p in (3.6, 3.7, 3.8)]
    rows += [(0, 0, 0, _power_to_time(p, False)) for p in (3.8, 3.7, 3.6)]
    f = event_focus(_sweep(_cd(rows)), MODEL)
    assert np.isnan(f.depth_dpt[0, 0])


def test_signed_counts_and_refocusing_rebuild_a_known_log_change():
    """A frame re-timed by C·(ON − OFF) over the events between two moments shows the later brightness; going back
    in time undoes it; saturated pixels are kept."""
    w, h = 4, 3
    rows = [(1, 1, 1, 10_000), (1, 1, 1, 12_000), (2, 1, 0, 11_000), (3, 2, 1, 30_000)]
    counts = signed_counts(_cd(rows), 5_000, 20_000, w, h)
    assert counts[1, 1] == 2 and counts[1, 2] == -1 and counts[2, 3] == 0
    assert np.array_equal(signed_counts(_cd(rows), 20_000, 5_000, w, h), -counts)
    image = np.full((h, w, 3), 100, np.uint8)
    image[0, 0] = 255
    out = refocus(image, counts + np.where(np.arange(w) == 0, 1.0, 0.0)[None, :], 0.2)
    assert out[1, 1, 0] == round(100 * np.exp(0.4)) and out[1, 2, 0] == round(100 * np.exp(-0.2))
    assert np.array_equal(out[0, 0], [255, 255, 255])  # saturated: cannot be re-timed


def test_the_threshold_is_read_from_frames_and_events():
    """Frames whose log luma steps by C per event between them give C back."""
    rng = np.random.default_rng(0)
    w, h, c = 80, 64, 0.15
    base = rng.uniform(60, 120, (h, w)).astype(np.float32)
    n = rng.integers(-3, 4, (h, w))
    rows = []
    for y in range(h):
        for x in range(w):
            rows += [(x, y, 1 if n[y, x] > 0 else 0, 30_000 + 10 * k) for k in range(abs(n[y, x]))]
    frames = [Frame(np.repeat(np.round(base)[..., None], 3, 2).astype(np.uint8), 0, 19_000, 21_000, "event"),
              Frame(np.repeat(np.round(base * np.exp(c * n))[..., None], 3, 2).astype(np.uint8), 1, 59_000, 61_000,
                    "event")]
    grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    t = estimate_threshold(_sweep(_cd(rows), frames, (w, h)), (grid[0], grid[1]))
    assert t is not None and t.c == pytest.approx(c, rel=0.05)


def test_gap_fill_splits_the_widest_gaps_but_not_narrow_ones():
    added = gap_fill(np.array([0.0, 1.0, 1.2]), 5)
    assert added == pytest.approx([0.25, 0.5])  # widest first: 0..1 halves, then 0..0.5
    assert gap_fill(np.array([0.0, 1.0, 1.2]), 5, min_gap_dpt=0.6) == pytest.approx([0.5])


def test_time_at_power_stays_on_the_half():
    t_rise = time_at_power(MODEL, 2.0, _power_to_time(1.0, True))
    t_fall = time_at_power(MODEL, 2.0, _power_to_time(1.0, False))
    assert t_rise == pytest.approx(_power_to_time(2.0, True), abs=60)
    assert t_fall == pytest.approx(_power_to_time(2.0, False), abs=60)


@pytest.mark.parametrize("lag_us", [1_000.0, 1_234.56])
def test_the_half_of_sorted_event_times_is_what_rising_says(lag_us):
    """The per-boundary search gives every event the half ``rising`` gives it, boundaries themselves included (with
    an integer lag, events fall exactly on them), before the first period and over several."""
    model = FocalModel(CommandedSweep("sine", 0.0, 4.0, 250.0, frequency_hz=1e6 / PERIOD), lag_us=lag_us)
    rng = np.random.default_rng(2)
    edges = 250.0 + lag_us + 0.5 * PERIOD * np.arange(-2, 8)
    t = np.sort(np.concatenate([rng.integers(-150_000, 400_000, 5000), np.round(edges), np.round(edges) - 1]))
    np.testing.assert_array_equal(model.falling_sorted(t), (~model.rising(t)).astype(np.int8))
    assert model.falling_sorted(t[:0]).size == 0
