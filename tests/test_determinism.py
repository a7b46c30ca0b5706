"""Same seed, same recording: a simulation not paced by the wall clock records the same data whatever the load.

Each case simulates twice, once with a consumer slowed artificially (a recording writer that sleeps on every
write, which changes how far the camera threads run ahead of it and when the lens is polled in wall time), and
compares everything the two recordings hold as data: events, triggers, frames (pixels, indices, times, focal
power), sweeps, the commanded and the measured lens.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest

import capture.engine
from app.config import load_config
from capture.plan import SweepPlan
from capture.recording import RecordingWriter
from capture.recording.simulated import record_simulation, seeded_lens_simulator
from tests.recording_compare import differences, recorded_data

_runs = itertools.count()
SMALL = ["sim.rgb_size=[64,48]", "sim.event_size=[64,48]", "sim.realtime=false", "sim.seed=7"]


class SlowWriter(RecordingWriter):
    """A recording writer on a slow disk: every write of events or frames takes a few milliseconds longer."""

    def write_events(self, chunk) -> None:
        time.sleep(0.004)
        super().write_events(chunk)

    def write_frames(self, frames, sources) -> None:
        time.sleep(0.004)
        super().write_frames(frames, sources)


def simulate(out, plan: SweepPlan, monkeypatch=None) -> tuple:
    """One ``focalrig simulate`` recording (its own simulated LD4, as a separate process would have)."""
    port = f'lens.port="optosim://determinism-{os.getpid()}-{next(_runs)}"'
    cfg = load_config(None, overrides=[*SMALL, port])
    if monkeypatch is not None:
        monkeypatch.setattr(capture.engine, "RecordingWriter", SlowWriter)
    status = record_simulation(cfg, plan, out)
    if monkeypatch is not None:
        monkeypatch.undo()
    assert status.exit_status == "success", status.reason
    return status, recorded_data(status.recording)


@pytest.mark.parametrize("plan", [
    SweepPlan.load(None, [("sweeps", 2), ("min_free_mib", 0)]),  # the default 4 Hz sine, hard-synced
    SweepPlan.load(None, [("waveform", "stepped"), ("n_planes", 4), ("dwell_ms", 30.0), ("sweeps", 2),
                          ("high_dpt", 2.0), ("frame_rate_hz", 100.0), ("sync_channel", "none"),
                          ("min_free_mib", 0)]),
], ids=["sine", "stepped"])
def test_the_same_seed_records_the_same_data_under_a_slow_consumer(tmp_path, monkeypatch, plan):
    fast, a = simulate(tmp_path / "fast", plan)
    slow, b = simulate(tmp_path / "slow", plan, monkeypatch)
    assert a["n_frames"] > 10 and a["events"][0] > 1000 and len(a["sweeps"]) == 2
    assert differences(a, b) == [], (a, b)
    assert fast.events_total == slow.events_total and fast.t_event_us == slow.t_event_us


def test_recordings_in_one_process_start_from_the_same_lens_simulator(tmp_path):
    """The in-process LD4 simulator outlives a recording, like a real driver (its lens temperature walks on): a
    simulated recording still starts from one seeded by ``sim.seed``, so recording another plan in between, or the
    same one again, changes nothing (the product-path benchmark records many scenes in one process)."""
    port = f'lens.port="optosim://determinism-shared-{os.getpid()}"'
    cfg = load_config(None, overrides=[*SMALL, port])
    plan = SweepPlan.load(None, [("sweeps", 1), ("min_free_mib", 0)])
    other = SweepPlan.load(None, [("sweeps", 1), ("frequency_hz", 8.0), ("min_free_mib", 0)])
    first = record_simulation(cfg, plan, tmp_path / "first")
    record_simulation(cfg, other, tmp_path / "other")
    again = record_simulation(cfg, plan, tmp_path / "again")
    a, b = recorded_data(first.recording), recorded_data(again.recording)
    assert a["n_frames"] > 5 and a["events"][0] > 1000
    assert differences(a, b) == [], (a, b)


@pytest.mark.parametrize(("port", "expected"), [
    ("optosim://rig", "optosim://rig?seed=7"),
    ("optosim://rig?latency_ms=2", "optosim://rig?latency_ms=2&seed=7"),
    ("optosim://rig?seed=3", "optosim://rig?seed=3"),       # the user's own seed stands
    ("/dev/ttyACM0", "/dev/ttyACM0"),                         # a real driver is never touched
])
def test_a_simulated_recording_seeds_only_the_in_process_lens_simulator(port, expected):
    cfg = load_config(None, overrides=[*SMALL, f'lens.port="{port}"'])
    assert seeded_lens_simulator(cfg).lens.port == expected
    assert cfg.lens.port == port  # the configuration itself is left as it was
