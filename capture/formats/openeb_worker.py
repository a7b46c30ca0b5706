"""Runs inside OpenEB's own Python (a separate interpreter): decode, slice or time a file with OpenEB's API.

Usage: ``$OPENEB_PY openeb_worker.py JOB.json``. The job names an operation and its arguments; results go
to the ``.npz`` (and, for timings, ``.json``) file the job names. This script imports nothing from
focalrig on purpose: it runs under whichever interpreter has OpenEB's bindings and an h5py that can load
the ECF plugin (see ``drivers/openeb.py``), which need not have focalrig's dependencies installed.

Operations:

- ``decode``: every CD and trigger event of a RAW or HDF5 file, in OpenEB's decode order;
- ``iterate``: ``metavision_core.event_io.EventsIterator`` slices (their sizes and events) and the
  iterator's ``current_time`` after each, plus every trigger event;
- ``h5``: the datasets and attributes of a Prophesee HDF5 file read through h5py and the ECF filter plugin;
- ``time``: best-of-N seconds for ``RawReader`` and ``EventsIterator`` to decode a whole file.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

N_BATCH = 1_000_000


def _iterator(path: str, *, time_shift: bool, **kwargs):
    from metavision_core.event_io import EventsIterator

    extra = {} if path.endswith(".hdf5") else {"do_time_shifting": time_shift}
    return EventsIterator(path, **kwargs, **extra)


def _triggers(reader, parts: list) -> None:
    """Move the RAW reader's accumulated trigger events into ``parts`` (OpenEB keeps them until cleared); call it
    after every slice, as the reader drops its trigger buffer once the iteration ends."""
    if not hasattr(reader, "clear_ext_trigger_events"):  # HDF5: see _hdf5_triggers
        return
    trig = reader.get_ext_trigger_events()
    if len(trig):
        parts.append(np.array(trig, copy=True))
    reader.clear_ext_trigger_events()


def _concat(parts: list, dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def decode(job: dict) -> dict:
    from metavision_sdk_base import EventCD, EventExtTrigger

    path = job["path"]
    it = _iterator(path, time_shift=job.get("time_shift", False), mode="n_events", n_events=N_BATCH)
    cd, trig = [], _hdf5_triggers(it)
    for events in it:
        cd.append(np.array(events, copy=True))
        _triggers(it.reader, trig)
    return {"cd": _concat(cd, EventCD), "triggers": _concat(trig, EventExtTrigger)}


def _hdf5_triggers(it) -> list:
    """All triggers of an HDF5 file, read before iterating: OpenEB's HDF5 reader has no per-slice triggers
    (it returns every trigger up to its current time and cannot clear them), and closes the file at the end."""
    reader = it.reader
    if not hasattr(reader, "events_EXT"):
        return []
    return [np.array(reader.events_EXT[:])] if reader.total_num_events_CD else []


def iterate(job: dict) -> dict:
    from metavision_sdk_base import EventCD, EventExtTrigger

    kwargs = {k: job[k] for k in ("mode", "delta_t", "n_events", "start_ts", "max_duration", "relative_timestamps")
              if job.get(k) is not None}
    it = _iterator(job["path"], time_shift=job.get("time_shift", False), **kwargs)
    sizes, times, cd, trig = [], [], [], _hdf5_triggers(it)
    for events in it:
        sizes.append(len(events))
        times.append(int(it.get_current_time()))
        cd.append(np.array(events, copy=True))
        _triggers(it.reader, trig)
    return {"sizes": np.array(sizes, np.int64), "current_time": np.array(times, np.int64),
            "cd": _concat(cd, EventCD), "triggers": _concat(trig, EventExtTrigger)}


def h5(job: dict) -> dict:
    import h5py

    out = {}
    with h5py.File(job["path"], "r") as f:
        for group in ("CD", "EXT_TRIGGER"):
            if group in f:
                out[f"{group}/events"] = f[group]["events"][:]
                out[f"{group}/indexes"] = f[group]["indexes"][:]
                offset = f[group]["indexes"].attrs.get("offset")
                out[f"{group}/indexes_offset"] = np.array(int(offset) if offset is not None else 0)
        out["attrs"] = np.array(json.dumps({k: str(v) for k, v in f.attrs.items()}))
    return out


def time_decoders(job: dict) -> dict:
    """Best of ``repeats`` wall seconds to decode the whole RAW file, per OpenEB reader (time shifting off)."""
    from metavision_core.event_io import EventsIterator, RawReader

    path, repeats = job["path"], int(job.get("repeats", 3))
    results: dict[str, list[float]] = {"RawReader": [], "EventsIterator": []}
    counts = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        reader = RawReader(path, do_time_shifting=False)
        n = 0
        while not reader.is_done():
            n += len(reader.load_n_events(N_BATCH))
        results["RawReader"].append(time.perf_counter() - t0)
        counts["RawReader"] = n
        del reader
        t0 = time.perf_counter()
        n = 0
        for events in EventsIterator(path, mode="n_events", n_events=N_BATCH, do_time_shifting=False):
            n += len(events)
        results["EventsIterator"].append(time.perf_counter() - t0)
        counts["EventsIterator"] = n
    return {"json": {name: {"seconds": min(ts), "events": counts[name]} for name, ts in results.items()}}


OPERATIONS = {"decode": decode, "iterate": iterate, "h5": h5, "time": time_decoders}


def main(argv: list[str]) -> int:
    job = json.loads(open(argv[1]).read())
    result = OPERATIONS[job["op"]](job)
    if "json" in result:
        with open(job["out"], "w") as f:
            json.dump(result.pop("json"), f)
    else:
        np.savez(job["out"], **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
