"""A disk that fills up mid-capture: one line, a recording finalised as failed (disk full), the lens released.

The disk is real: a tmpfs of a few MiB mounted for the test (root only; elsewhere the test skips and says why).
The capture's free-space pre-check is bypassed, as when another program fills the disk during the capture.
"""

from __future__ import annotations

import itertools
import os
import subprocess

import pytest
from typer.testing import CliRunner

import capture.engine
import capture.recording
from app.cli import app
from capture.recording import Recording
from capture.recording.diskfull import RESERVE_NAME
from capture.recording.layout import RUN_LOG
from capture.recording.metadata import read_run_log
from drivers.sim import get_simulator

_names = itertools.count()
RIG = ["--set", "sim.rgb_size=[160,120]", "--set", "sim.event_size=[160,120]", "--set", "sim.realtime=false",
       "--set", "plan.min_free_mib=0"]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB file system of its own."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def no_free_space_check(monkeypatch):
    """The pre-capture check passes whatever the plan needs (the disk fills up later, as another writer would)."""
    real = capture.recording.preflight

    def preflight(out_dir, expected_bytes, min_free_mib):
        return real(out_dir, 0, 0)

    monkeypatch.setattr(capture.recording, "preflight", preflight)
    monkeypatch.setattr(capture.engine, "preflight", preflight)


def test_a_full_disk_fails_the_capture_in_one_line_and_leaves_a_finalised_readable_recording(
        small_disk, no_free_space_check):
    name = f"diskfull-{os.getpid()}-{next(_names)}"
    result = CliRunner().invoke(app, ["capture", "--out", str(small_disk), "--sweeps", "1000", *RIG,
                                      "--set", f"lens.port=optosim://{name}"])
    assert result.exit_code == 2, result.output
    said = result.output
    assert said.count("disk full") == 1 and "Traceback" not in said and "errno" not in said, said
    last = said.strip().splitlines()[-1]
    assert "disk full after" in last and "is saved" in last and "lens released" in last, said
    sim = get_simulator(name)
    assert sim.mode == 1 and sim.dc_raw == 0  # DC, 0 mA
    folder = next(small_disk.iterdir())
    assert not (folder / RESERVE_NAME).exists()
    assert read_run_log(folder / RUN_LOG)[-1]["doc"] == "stop"
    with Recording.open(folder) as rec:
        assert rec.complete and rec.status == "failed" and rec.reason.startswith("disk full after")
        assert rec.metadata["exit_status"] == "failed"
        assert len(rec) >= 1 and len(rec.frames) > 0
        assert rec.frames[len(rec.frames) - 1].image.shape == (120, 160, 3)  # the last frame recorded is whole
        with rec.events() as reader:
            assert sum(len(cd) for cd, _ in reader.read_chunks()) > 0
    inspected = CliRunner().invoke(app, ["inspect", str(folder)])
    assert inspected.exit_code == 0 and "failed" in inspected.output and "killed" not in inspected.output
