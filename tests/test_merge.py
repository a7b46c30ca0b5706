"""TimeMerge releases items in time order whatever order their streams deliver them in; Lockstep holds readers."""

from __future__ import annotations

import random
import threading

import pytest

from capture.lockstep import Lockstep
from capture.merge import TimeMerge


def test_items_come_out_in_time_order_whatever_the_interleaving():
    events = [("events", t, f"e{t}") for t in range(10, 200, 10)]
    frames = [("frames", t, f"f{t}") for t in range(7, 200, 17)]
    expected = [item for _, _, item in sorted(events + frames, key=lambda x: (x[1], x[0] == "frames"))]
    for seed in range(20):
        rng = random.Random(seed)
        queues = {"events": list(events), "frames": list(frames)}
        merge, out = TimeMerge(["events", "frames"]), []
        while any(queues.values()):
            stream = rng.choice([s for s, q in queues.items() if q])
            _, key, item = queues[stream].pop(0)
            out += merge.put(stream, key, item)
            if not queues[stream]:
                out += merge.finish(stream)
        assert out == expected


def test_nothing_passes_an_open_stream_that_could_still_deliver_earlier():
    merge = TimeMerge(["control", "events"])
    assert merge.put("events", 100, "e100") == []          # the control stream might still act before 100
    assert merge.promise("control", 50) == []              # ... at 50 or later: still possibly before
    assert merge.promise("control", 150) == ["e100"]       # nothing before 150: the chunk may pass
    assert merge.put("control", 160, "c160") == []         # the events might still deliver up to 160
    assert merge.put("events", 160, "e160") == ["c160", "e160"]  # equal keys: the earlier-named stream first


def test_keys_may_not_go_back():
    merge = TimeMerge(["events"])
    merge.put("events", 10, "a")
    with pytest.raises(ValueError):
        merge.put("events", 10, "b")
    merge.finish("events")
    with pytest.raises(ValueError):
        merge.put("events", 20, "c")


def test_lockstep_holds_readers_at_the_horizon_until_the_control_thread_moves_it():
    gate, stop = Lockstep(["events", "frames"]), threading.Event()
    read: dict[str, list[int]] = {"events": [], "frames": []}

    def reader(stream: str, step: int) -> None:
        t = 0
        while t < 100 and not stop.is_set():
            gate.wait_turn(stream, stop)
            t += step
            read[stream].append(t)
            gate.delivered(stream, t)
        gate.finish(stream)

    threads = [threading.Thread(target=reader, args=("events", 10)),
               threading.Thread(target=reader, args=("frames", 17))]
    for t in threads:
        t.start()
    for horizon in (0, 25, 60):
        gate.advance(horizon)
        assert gate.wait_all_at(stop, 10.0)
        assert read["events"][-1] >= horizon and read["frames"][-1] >= horizon
        assert read["events"][-1] - 10 <= horizon and read["frames"][-1] - 17 <= horizon  # none read past it
    gate.advance(float("inf"))
    for t in threads:
        t.join(10)
    assert read["events"][-1] == 100 and read["frames"][-1] == 102
