"""What ``focalrig inspect`` reports about a recording: outcome, span, counts, rates, sync quality, completeness.

Computed from the files themselves (one streaming pass over the events), so an incomplete recording — whose
metadata never got its final counts — is summarised as fully as a complete one.
"""

from __future__ import annotations

import numpy as np

from capture.formats import EventFileError
from capture.formats.stats import compute_stats
from capture.recording import layout
from capture.recording.layout import RecordingError
from capture.recording.reader import Recording
from capture.recording.writer import SWEEP_DTYPE

#: Most bins of the event-rate series: 8 MiB of counts, 17 minutes at 1 ms (longer spans get wider bins).
MAX_RATE_BINS = 1 << 20


def rate_bin_for(span_us: int, bin_us: int) -> int:
    """``bin_us``, widened to a multiple of itself so that ``span_us`` needs at most :data:`MAX_RATE_BINS` bins.

    The rate series is sized by the time span, which a few events of a corrupt file can make hours or years
    long; widening the bins keeps its memory fixed whatever the span.
    """
    return bin_us * max(1, -(-(span_us // bin_us + 1) // MAX_RATE_BINS))


def summarize(rec: Recording, *, rate_bin_us: int = 1000) -> dict:
    """A plain dict: status, uid, plan, duration, counts, rates, sync quality; plus ``rate`` (t_us, events/s)."""
    out: dict = {"path": str(rec.path), "status": rec.status, "reason": rec.reason, "uid": rec.uid,
                 "complete": rec.complete}
    plan = rec.plan
    if plan is not None:
        out["plan"] = {"name": plan.name, "waveform": plan.waveform, "range_dpt": [plan.low_dpt, plan.high_dpt],
                       "frequency_hz": plan.frequency_hz if plan.waveform != "stepped" else None,
                       "frame_rate_hz": plan.frame_rate_hz}
    rate = np.empty((0, 2))
    problems = dict(rec.problems)
    if rec.events_path is not None:
        try:
            out["events"], rate = _events_summary(rec, rate_bin_us)
        except (EventFileError, RecordingError) as exc:
            if rec.folder is None:
                raise  # a bare event file: its events are all there is
            problems[layout.EVENTS_FILE] = f"unreadable ({exc})"
    frames = rec.frames
    duration_s = 0.0
    if "events" in out and out["events"]["t_first_us"] is not None:
        duration_s = (out["events"]["t_last_us"] - out["events"]["t_first_us"]) / 1e6
    elif len(frames) > 1:
        duration_s = float(frames.exposure_end_us[-1] - frames.exposure_start_us[0]) / 1e6
    out["duration_s"] = duration_s
    if len(frames):
        starts = frames.exposure_start_us
        span = (starts[-1] - starts[0]) / 1e6 if len(frames) > 1 else 0.0
        gaps = np.diff(frames.index)
        out["frames"] = {"count": len(frames), "rate_hz": (len(frames) - 1) / span if span else 0.0,
                         "index_gaps": int(np.sum(gaps[gaps > 1] - 1)) if len(gaps) else 0,
                         "on_event_clock": int(np.sum(frames.on_event_clock)),
                         "geometry": list(frames.geometry or ())}
    try:
        table = rec.sweep_table
        out["soft_synced"] = rec.soft_synced
    except RecordingError as exc:
        problems[layout.SYNC_FILE] = f"unreadable ({exc})"
        table, out["soft_synced"] = _no_sweeps(), None
    out["sweeps"] = {"count": len(table)}
    if len(table):
        lengths = (table["t_end_us"] - table["t_start_us"]) / 1e3
        out["sweeps"].update(mean_ms=float(lengths.mean()), min_ms=float(lengths.min()), max_ms=float(lengths.max()),
                             frames_per_sweep=float(table["n_frames"].mean()),
                             events_per_sweep=float(table["n_events"].mean()))
    meta = rec.metadata
    for key in ("drops", "sync", "counts"):
        value = meta.get(key)
        if isinstance(value, dict) and all(isinstance(v, int | float) for v in value.values()):
            out[key] = value
    if not rec.complete:
        last = [d for d in rec.docs if d.get("doc") == "event"]
        out["last_flushed_sweep"] = last[-1].get("index") if last else None
    if "events" in out and rec.folder is not None:
        out["events"]["truncation"] = _truncation(out["events"], rec)
    out["problems"] = problems
    if problems:  # parts found damaged only now, while reading them, join those found at opening
        out["status"] = "incomplete"
        found_now = [f"{name} {problem}" for name, problem in problems.items() if name not in rec.problems]
        out["reason"] = "; ".join(filter(None, [rec.reason, *found_now]))
    out["rate"] = rate
    return out


def _events_summary(rec: Recording, rate_bin_us: int) -> tuple[dict, np.ndarray]:
    """Counts, span, rates and the truncation flag of the event file, and the event-rate series."""
    rate = np.empty((0, 2))
    with rec.events() as reader:
        stats = compute_stats(reader)
        truncated = bool(getattr(reader, "truncated", False))
        truncation = getattr(reader, "truncation", None)
    if stats.t_first is not None:
        rate_bin_us = rate_bin_for(stats.t_last - stats.t_first, rate_bin_us)
        counts = np.zeros((stats.t_last - stats.t_first) // rate_bin_us + 1, np.int64)
        with rec.events() as reader:
            for cd, _ in reader.read_chunks():
                if len(cd):
                    counts += np.bincount((cd["t"] - stats.t_first) // rate_bin_us, minlength=len(counts))
        t = stats.t_first + rate_bin_us * np.arange(len(counts))
        rate = np.column_stack([t, counts * (1e6 / rate_bin_us)])
    return {"count": stats.n_cd, "on": stats.n_on, "triggers": stats.n_triggers,
            "trigger_edges": {f"ch{ch}_{'rise' if e else 'fall'}": n
                              for (ch, e), n in sorted(stats.trigger_edges.items())},
            "t_first_us": stats.t_first, "t_last_us": stats.t_last,
            "mean_rate_hz": stats.mean_rate, "peak_rate_hz": stats.peak_rate, "truncated": truncated,
            "truncation": truncation, "rate_bin_us": rate_bin_us}, rate


def _truncation(events: dict, rec: Recording) -> str | None:
    """How the event file of a recording folder ends, in words, when it ends short; None when it is whole.

    A capture flushes whole words, so a crash leaves a file that ends on a word boundary (an *incomplete*
    recording, whose end is simply the last flush). A file that ends inside a word was cut after the
    capture (a copy cut short, a full disk); one that ends on a word boundary but holds fewer events than a
    complete recording logged was cut there, not stopped there.
    """
    name = layout.EVENTS_FILE
    if events.get("truncation"):
        return (f"{name} is {events['truncation']}, which no flush leaves: the file was cut short or damaged "
                "after the capture; every complete event before the cut is read")
    logged = rec.metadata.get("n_events")
    if rec.complete and isinstance(logged, int) and events["count"] < logged:
        return (f"{name} holds {events['count']:,} of the {logged:,} events the capture wrote: cut short at a "
                "word boundary after the capture; every event before the cut is read")
    return None  # whole, or a crash's file that ends at its last flush (status 'incomplete' says so)


def _no_sweeps() -> np.ndarray:
    return np.zeros(0, SWEEP_DTYPE)
