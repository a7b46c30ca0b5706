"""A stepped plan on a simulation not paced by the wall clock: each set point takes effect on the simulated clock
exactly when the plan says, so a sweep lasts n_planes × dwell_ms, not up to a frame period more per set point.

The stepped preset (6 × 100 ms at 30 fps) used to record ~730 ms sweeps: the control thread acted where both
cameras stood, and the frame camera stood up to a whole frame (33 ms) past the moment the set point was due.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from app.config import load_config
from capture.engine import CaptureEngine
from capture.plan import PLAN_DIR, SweepPlan
from capture.recording import Recording
from drivers.registry import open_rig
from drivers.sim.trajectory import ConstantTrajectory

_runs = itertools.count()
SMALL = ["sim.rgb_size=[48,36]", "sim.event_size=[48,36]", "sim.realtime=false"]


def stepped_capture(out, sim_processes: bool = False, **changes):
    """The stepped preset with ``changes``, captured from the default simulated rig following its simulated LD4;
    returns the status, the recording's sweeps and commanded set points, and the simulated lens path's segments."""
    port = f'lens.port="optosim://stepped-lockstep-{os.getpid()}-{next(_runs)}"'
    cfg = load_config(None, overrides=[*SMALL, port])
    plan = SweepPlan.load(PLAN_DIR / "stepped.toml", [("min_free_mib", 0), *changes.items()])
    with open_rig(cfg, sim_processes=sim_processes) as rig:
        status = CaptureEngine(rig, plan, out, keep_sweeps=False).run()
        segments = rig.sim.lens_path.segments
    assert status.exit_status == "success", status.reason
    with Recording.open(status.recording) as rec:
        sweeps = [(s.t_start_us, s.t_end_us) for s in rec.sweeps()]
        commanded = rec.lens_commanded
    return plan, sweeps, commanded, segments


@pytest.mark.parametrize("changes", [dict(sweeps=2), dict(sweeps=2, dwell_ms=20.0, frame_rate_hz=60.0),
                                     dict(sweeps=2, dwell_ms=10.0, n_planes=4),
                                     dict(sweeps=2, dwell_ms=25.0, n_planes=4)],
                         ids=["preset-100ms-30fps", "20ms-60fps", "10ms", "25ms-between-event-chunks"])
def test_each_set_point_takes_effect_on_the_simulated_clock_when_the_plan_says(tmp_path, changes):
    plan, sweeps, commanded, segments = stepped_capture(tmp_path, **changes)
    dwell_us, period_us = plan.dwell_ms * 1000.0, plan.period_s * 1e6
    n = plan.sweeps * plan.n_planes
    # commanded: set point k at k × dwell, the plan's powers in order
    assert commanded[:, 0].tolist() == [k * dwell_us for k in range(n)]
    assert commanded[:, 1].tolist() == list(plan.step_powers_dpt) * plan.sweeps
    # every sweep exactly n_planes × dwell_ms long, back to back
    assert sweeps == [(k * period_us, (k + 1) * period_us) for k in range(plan.sweeps)]
    # the simulated lens itself changed power at those very moments (a segment per set point after the first,
    # which was set before the cameras started)
    held = [(start, seg.dpt) for start, seg in segments if isinstance(seg, ConstantTrajectory) and start > 0]
    assert [t for t, _ in held[:n - 1]] == [k * dwell_us for k in range(1, n)]
    assert np.allclose([d for _, d in held[:n - 1]], commanded[1:, 1], atol=0.005)  # the LD4's 0.005 dpt grid


def test_set_points_keep_their_times_when_the_cameras_compute_in_child_processes(tmp_path):
    """The GUI's simulated cameras run in child processes; they say where their next item ends all the same."""
    _, sweeps, commanded, _ = stepped_capture(tmp_path, sim_processes=True, sweeps=1, dwell_ms=40.0,
                                                  n_planes=3, frame_rate_hz=30.0)
    assert commanded[:, 0].tolist() == [0.0, 40_000.0, 80_000.0]
    assert sweeps == [(0, 120_000)]


def test_a_reader_that_says_where_its_next_item_ends_is_held_before_crossing_the_horizon():
    import threading

    from capture.lockstep import Lockstep

    gate, stop = Lockstep(["frames"]), threading.Event()
    ends: list[int] = []

    def reader() -> None:
        end = 0
        while end < 100 and not stop.is_set():
            gate.wait_turn("frames", stop, next_end_us=end + 33)
            end += 33
            ends.append(end)
            gate.delivered("frames", end)
        gate.finish("frames")

    thread = threading.Thread(target=reader)
    thread.start()
    for horizon in (0, 50, 70):
        gate.advance(horizon)
        assert gate.wait_all_at(stop, 10.0)
        assert (ends[-1] if ends else 0) <= horizon < (ends[-1] if ends else 0) + 33  # stands short of it
    gate.advance(float("inf"))
    thread.join(10)
    assert ends == [33, 66, 99, 132]
