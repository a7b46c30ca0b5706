"""Export a recording's sweeps as aligned RGB + event focal stacks, one per sweep. What ``focalrig stack`` and
``focalrig batch stack`` both run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.jobs.listener import Listener

FORMATS = ("eventstackmff", "npz")


@dataclass(frozen=True)
class StackSettings:
    """The options of ``focalrig stack`` (see its ``--help``); ``calib=None`` takes the file the recording names,
    ``sweeps=None`` every sweep."""

    calib: Path | None = None
    fmt: str = "eventstackmff"
    planes: int | None = None
    span: str | None = None
    sweeps: tuple[int, ...] | None = None
    guard: float = 0.05


def stack_recording(rec: Path, out: Path, settings: StackSettings, listener: Listener | None = None) -> dict[str, Any]:
    """Write the focal stacks of the chosen sweeps of ``rec`` into ``out`` (the seed projects' PNG folders, or one
    lossless ``.npz`` per sweep). Returns what was written, for a summary."""
    from app.jobs.fuse import recording_calibration
    from app.jobs.stacking import ShortfallNote, stack_choice
    from calibration.model import Calibration, CalibrationError
    from calibration.stack import build_focal_stack
    from capture.recording import Recording
    from capture.stack_folders import write_eventstackmff

    listener = listener or Listener()
    if settings.fmt not in FORMATS:
        raise CalibrationError(f"--format must be eventstackmff or npz, got {settings.fmt!r}")
    cal = Calibration.load(settings.calib) if settings.calib is not None else None
    out.mkdir(parents=True, exist_ok=True)
    n, counts, wanted = 0, set(), settings.sweeps
    with Recording.open(rec) as recording:
        cal = cal or recording_calibration(recording, None)
        n_planes, span = stack_choice(recording.plan, settings.planes, settings.span)
        note = ShortfallNote(recording.plan, n_planes, span, listener.note)
        listener.started(len(recording) if not wanted else len(set(wanted)))
        for data in recording.sweeps():
            if wanted and data.index not in wanted:
                continue
            listener.working(f"sweep {data.index}")
            st = build_focal_stack(data, cal, n_planes=n_planes, span=span, guard_fraction=settings.guard)
            note.check(st.n_planes, data.index)
            if settings.fmt == "npz":
                st.save_npz(out / f"{st.name}.npz")
            else:
                write_eventstackmff(st, out, scene=st.name)
            n += 1
            counts.add(st.n_planes)
            listener.done()
    if n == 0:
        raise CalibrationError(f"{rec}: no sweeps to export" + (f" (asked for {list(wanted)})" if wanted else ""))
    planes = "/".join(str(c) for c in sorted(counts))
    return {"summary": f"{n} focal stack(s) of {planes} planes ({span}, {settings.fmt})", "stacks": n,
            "planes": sorted(counts), "span": span, "calibration_id": cal.id}
