"""A batch's ``inspect``: :func:`capture.recording.summary.summarize` — what ``focalrig inspect`` shows — written
as ``summary.json`` (and the event-rate series as ``rate.npy``) per recording or event file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.jobs.listener import Listener


def inspect_into(src: Path, folder: Path, settings: None = None,
                 listener: Listener | None = None) -> dict[str, Any]:
    """Summarise ``src`` into ``folder``. A damaged recording is summarised, not failed: its status says so."""
    import numpy as np

    from capture.recording import Recording
    from capture.recording.metadata import write_json_atomic
    from capture.recording.summary import summarize

    with Recording.open(src) as rec:
        summary = summarize(rec)
    np.save(folder / "rate.npy", np.asarray(summary.pop("rate"), np.float64))
    write_json_atomic(folder / "summary.json", summary)
    sweeps = summary.get("sweeps", {}).get("count", 0)
    events = summary.get("events", {}).get("count")
    text = f"{summary['status']}, {sweeps} sweep(s)" + (f", {events:,} events" if events is not None else "")
    if summary.get("reason"):
        text += f" — {summary['reason']}"
    return {"summary": text, "status": summary["status"]}
