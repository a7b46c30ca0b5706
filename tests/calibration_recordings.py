"""Write simulated captures as real recording folders (capture.recording's writer), for the calibration CLI tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from capture.recording import RecordingWriter
from capture.sweep import SweepData
from drivers.camera import EventChunk, Frame
from drivers.events.dtypes import EVENT_EXT_TRIGGER


def write_recording(folder: Path, cd: np.ndarray, triggers: np.ndarray, frames: list[Frame],
                    event_size: tuple[int, int], frame_size: tuple[int, int],
                    sweeps: list[SweepData] = ()) -> Path:
    """A complete recording folder holding ``cd``/``triggers``/``frames`` and the sweep table of ``sweeps``."""
    folder.mkdir(parents=True)
    extra = {"event_geometry": list(event_size), "frame_geometry": list(frame_size)}
    if sweeps:
        c = sweeps[0].commanded
        extra["commanded"] = {k: v for k, v in dataclasses.asdict(c).items() if k not in ("t0_us", "soft_synced")}
    w = RecordingWriter(folder, uid=folder.name, plan={"name": "test"}, describe={}, event_geometry=event_size,
                        raw_format=None, raw_header=None, calibration_path=None, extra=extra)
    t_end = int(max(cd["t"].max() if len(cd) else 0, frames[-1].exposure_end_us if frames else 0)) + 1
    w.write_events(EventChunk(cd, triggers if len(triggers) else np.empty(0, EVENT_EXT_TRIGGER), t_end))
    w.write_frames(list(frames), ["strobe"] * len(frames))
    for s in sweeps:
        w.write_sweep({"index": s.index, "t_start_us": s.t_start_us, "t_end_us": s.t_end_us,
                       "t0_us": s.commanded.t0_us, "soft_synced": 0, "n_events": len(s.cd),
                       "n_triggers": len(s.triggers), "n_frames": len(s.frames)}, np.empty((0, 2)))
    w.close("success", None, {})
    return folder
