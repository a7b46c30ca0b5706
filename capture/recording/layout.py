"""The recording folder: file names, unique folder creation and the pre-capture checks.

A recording is one folder::

    <stem>/
      events.raw     RAW EVT 3.0 exactly as the camera sent it (OpenEB header), append-only
      frames.h5      frames + exposure start/end (event clock) + focal power at mid-exposure; HDF5 SWMR
      sync.h5        trigger edges, the per-sweep commanded lens trajectory and measured lens samples; SWMR
      run.jsonl      start / descriptor / one event per sweep / stop documents; flushed per line
      metadata.json  provenance and outcome, replaced atomically (written at start, rewritten at the end)
      ground_truth/  simulated recordings only (focalrig simulate)

Crash safety: RAW and JSON Lines are append-only and flushed at least every ``flush_interval_s``; the HDF5
files are written in SWMR mode, which keeps them readable if the writer dies; a recording without a ``stop``
document is *incomplete*, not corrupt.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import uuid
from pathlib import Path

EVENTS_FILE = "events.raw"
FRAMES_FILE = "frames.h5"
SYNC_FILE = "sync.h5"
RUN_LOG = "run.jsonl"
METADATA = "metadata.json"
GROUND_TRUTH_DIR = "ground_truth"

FORMAT = "focalrig.recording"
VERSION = 1


class RecordingError(OSError):
    """A recording that cannot be written or read; the message names the path and what to do."""


def preflight(out_dir: str | Path, expected_bytes: float, min_free_mib: float) -> Path:
    """Check before any device starts that ``out_dir`` can be created, written, and has room; returns it resolved.

    Raises RecordingError naming the folder: not a folder, not writable, or less free space than the expected
    volume plus the safety margin.
    """
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RecordingError(f"{out}: exists and is not a folder; choose another --out") from None
    except OSError as exc:
        raise RecordingError(f"{out}: cannot create the output folder ({exc.strerror or exc}); choose another "
                             "--out or fix its permissions") from None
    if not out.is_dir():
        raise RecordingError(f"{out}: not a folder; choose another --out")
    probe = out / f".focalrig-write-test-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as f:
            f.write(b"x")
        probe.unlink()
    except OSError as exc:
        raise RecordingError(f"{out}: not writable ({exc.strerror or exc}); choose another --out or fix its "
                             "permissions") from None
    free = shutil.disk_usage(out).free
    need = expected_bytes + min_free_mib * (1 << 20)
    if free < need:
        raise RecordingError(f"{out}: only {free / (1 << 20):,.0f} MiB free, the plan needs about "
                             f"{need / (1 << 20):,.0f} MiB (expected data + plan.min_free_mib); free space, "
                             "record fewer sweeps, or choose another --out")
    return out.resolve()


def create_recording_dir(out_dir: Path, pattern: str, plan_name: str, uid: str,
                         when: _dt.datetime | None = None) -> Path:
    """Create the recording folder from ``pattern``; never reuses an existing one (``_001``, ``_002`` ... added)."""
    when = when or _dt.datetime.now()
    safe_plan = "".join(c if c.isalnum() or c in "-_." else "-" for c in plan_name) or "plan"
    stem = pattern.format(time=when, plan=safe_plan, uid8=uid[:8])
    if not stem or "/" in stem or os.sep in stem or stem in (".", ".."):
        raise RecordingError(f"name_pattern gives the folder name {stem!r}; it must be one plain name")
    for n in range(1000):
        path = out_dir / (stem if n == 0 else f"{stem}_{n:03d}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RecordingError(f"{out_dir}: 1000 recordings named {stem}* exist; change plan.name_pattern")
