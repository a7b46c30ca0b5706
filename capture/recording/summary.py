"""What ``focalrig inspect`` reports about a recording: outcome, span, counts, rates, sync quality, completeness.

Computed from the files themselves (one streaming pass over the events), so an incomplete recording — whose
metadata never got its final counts — is summarised as fully as a complete one.
"""

from __future__ import annotations

import numpy as np

from capture.formats.stats import compute_stats
from capture.recording.reader import Recording

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
    truncated = False
    if rec.events_path is not None:
        with rec.events() as reader:
            stats = compute_stats(reader)
            truncated = bool(getattr(reader, "truncated", False))
        if stats.t_first is not None:
            rate_bin_us = rate_bin_for(stats.t_last - stats.t_first, rate_bin_us)
            counts = np.zeros((stats.t_last - stats.t_first) // rate_bin_us + 1, np.int64)
            with rec.events() as reader:
                for cd, _ in reader.read_chunks():
                    if len(cd):
                        counts += np.bincount((cd["t"] - stats.t_first) // rate_bin_us, minlength=len(counts))
            t = stats.t_first + rate_bin_us * np.arange(len(counts))
            rate = np.column_stack([t, counts * (1e6 / rate_bin_us)])
        out["events"] = {"count": stats.n_cd, "on": stats.n_on, "triggers": stats.n_triggers,
                         "trigger_edges": {f"ch{ch}_{'rise' if e else 'fall'}": n
                                           for (ch, e), n in sorted(stats.trigger_edges.items())},
                         "t_first_us": stats.t_first, "t_last_us": stats.t_last,
                         "mean_rate_hz": stats.mean_rate, "peak_rate_hz": stats.peak_rate, "truncated": truncated,
                         "rate_bin_us": rate_bin_us}
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
    table = rec.sweep_table
    out["sweeps"] = {"count": len(table)}
    if len(table):
        lengths = (table["t_end_us"] - table["t_start_us"]) / 1e3
        out["sweeps"].update(mean_ms=float(lengths.mean()), min_ms=float(lengths.min()), max_ms=float(lengths.max()),
                             frames_per_sweep=float(table["n_frames"].mean()),
                             events_per_sweep=float(table["n_events"].mean()))
    out["soft_synced"] = rec.soft_synced
    meta = rec.metadata
    for key in ("drops", "sync", "counts"):
        if key in meta:
            out[key] = meta[key]
    if not rec.complete:
        last = [d for d in rec.docs if d.get("doc") == "event"]
        out["last_flushed_sweep"] = last[-1]["index"] if last else None
    out["rate"] = rate
    return out
