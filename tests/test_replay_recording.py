"""A recording replayed through the engine as fast as it decodes is recorded again exactly, and ends with its data.

The source is a simulated recording; the replay writes a new recording, which must hold the same events,
triggers, frames (pixels, indices, times, focal power), sweeps and commanded lens — also when the writer is
slow. A replay whose plan asks for more than the recording holds, or of a recording missing its metadata or cut
short, ends at the end of its data with a final line that says so.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time

import pytest
from typer.testing import CliRunner

import capture.engine
from app.cli import app
from app.config import load_config
from capture.engine import CaptureEngine
from capture.plan import SweepPlan
from capture.recording import Recording, RecordingWriter
from capture.recording.layout import EVENTS_FILE, METADATA
from capture.recording.simulated import record_simulation
from capture.replay import ReplayRig
from tests.recording_compare import differences, recorded_data

_runs = itertools.count()


class SlowWriter(RecordingWriter):
    """A writer on a slow disk (a few ms more for every write)."""

    def write_events(self, chunk) -> None:
        time.sleep(0.003)
        super().write_events(chunk)

    def write_frames(self, frames, sources) -> None:
        time.sleep(0.003)
        super().write_frames(frames, sources)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Four hard-synced sweeps of a small simulated rig (60 fps frames, 4 Hz sine)."""
    cfg = load_config(None, overrides=["sim.rgb_size=[64,48]", "sim.event_size=[64,48]", "sim.realtime=false",
                                       f'lens.port="optosim://replay-rec-{os.getpid()}-{next(_runs)}"'])
    status = record_simulation(cfg, SweepPlan.load(None, [("sweeps", 4), ("min_free_mib", 0)]),
                               tmp_path_factory.mktemp("source"))
    assert status.exit_status == "success"
    return status.recording


def replay(source, out, plan: SweepPlan | None = None, timeout_s: float = 120.0):
    """Replay ``source`` as fast as possible into a new recording under ``out`` (a hang fails, never blocks)."""
    with ReplayRig(source, realtime=False) as rig:
        engine = CaptureEngine(rig, plan or rig.recording.plan, out, keep_sweeps=False)
        engine.start()
        status = engine.wait(timeout_s)
        if status.state != "finished":
            engine.request_stop(immediate=True)
            engine.wait(30)
            raise AssertionError(f"the replay did not end within {timeout_s} s: {status}")
    return status


@pytest.mark.parametrize("slow", [False, True], ids=["fast-writer", "slow-writer"])
def test_fast_replay_records_the_recording_again_exactly(recording, tmp_path, monkeypatch, slow):
    if slow:
        monkeypatch.setattr(capture.engine, "RecordingWriter", SlowWriter)
    status = replay(recording, tmp_path)
    assert status.exit_status == "success" and status.sweeps_done == 4
    assert status.sync["late_frames"] == 0 and status.sync["frames_unpaired"] == 0
    original, again = recorded_data(recording, lens=False), recorded_data(status.recording, lens=False)
    assert original["n_frames"] > 40 and len(original["sweeps"]) == 4
    assert differences(original, again) == []
    with Recording.open(status.recording) as rec:
        assert rec.metadata["replay_of"] == str(recording)


def test_a_plan_longer_than_the_recording_ends_with_its_data(recording, tmp_path):
    with Recording.open(recording) as rec:
        plan = rec.plan.model_copy(update={"sweeps": 10})
    status = replay(recording, tmp_path, plan)
    assert status.exit_status == "success" and status.sweeps_done == 4
    assert "end of the replayed recording" in status.reason and "4 of the plan's 10 sweeps" in status.reason


def test_a_recording_without_metadata_replays_to_its_end(recording, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(recording, copy)
    (copy / METADATA).unlink()
    status = replay(copy, tmp_path / "out", SweepPlan.load(None, [("sweeps", None), ("min_free_mib", 0)]))
    assert status.exit_status == "success" and "end of the replayed recording" in status.reason
    assert status.sweeps_done >= 3


def test_a_recording_cut_short_replays_to_the_end_of_its_events(recording, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(recording, copy)
    raw = copy / EVENTS_FILE
    os.truncate(raw, raw.stat().st_size // 2)
    status = replay(copy, tmp_path / "out")
    assert status.exit_status == "success" and "end of the replayed recording" in status.reason
    assert 1 <= status.sweeps_done < 4 and "of the plan's 4 sweeps" in status.reason
    with Recording.open(status.recording) as rec:
        assert int(rec.frames.exposure_end_us.max()) <= status.t_event_us  # frames past the events stay out
    assert status.losses["frames_after_events"] > 0


def test_the_cli_says_where_the_replay_ended(recording, tmp_path):
    result = CliRunner().invoke(app, ["capture", "--replay", str(recording), "--out", str(tmp_path),
                                      "--sweeps", "10"])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert "end of the replayed recording: 4 of the plan's 10 sweeps" in last and str(tmp_path) in last
