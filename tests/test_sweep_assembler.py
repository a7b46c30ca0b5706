"""SweepAssembler: sweeps cut on lens-sync edges — regular edges, glitches, a missing edge, a generator restart."""

import numpy as np

from capture.sweep import CommandedSweep
from capture.sync import SweepAssembler, SyncStats
from drivers.events.dtypes import EVENT_EXT_TRIGGER, make_cd

PERIOD = 100_000  # 10 Hz


def assembler() -> SweepAssembler:
    template = CommandedSweep("sine", 0.0, 2.0, 0.0, frequency_hz=1e6 / PERIOD)
    return SweepAssembler(template, (8, 8), (8, 8), SyncStats(), sync_channel=1, wait_for_frames=False)


def feed(asm: SweepAssembler, edges_us: list[int], t_end_us: int) -> list:
    """Events every 1 ms and rising sync edges at ``edges_us``, in 10 ms chunks; returns the sweeps handed out."""
    out = []
    for t0 in range(0, t_end_us, 10_000):
        t = np.arange(t0, t0 + 10_000, 1000)
        cd = make_cd(np.zeros(len(t)), np.zeros(len(t)), np.ones(len(t)), t)
        e = [x for x in edges_us if t0 <= x < t0 + 10_000]
        tr = np.zeros(len(e), EVENT_EXT_TRIGGER)
        tr["t"], tr["p"], tr["id"] = e, 1, 1
        asm.add_events(cd, tr, t0 + 10_000)
        out += [data for _, data in asm.pop_ready()]
    return out


def windows(sweeps) -> list[tuple[int, int]]:
    return [(s.t_start_us, s.t_end_us) for s in sweeps]


def test_sweeps_run_from_one_rising_edge_to_the_next():
    asm = assembler()
    sweeps = feed(asm, [5_000, 105_000, 205_000, 305_000], 320_000)
    assert windows(sweeps) == [(5_000, 105_000), (105_000, 205_000), (205_000, 305_000)]
    assert [s.commanded.t0_us for s in sweeps] == [5_000, 105_000, 205_000]
    assert all(len(s.cd) == 100 for s in sweeps)  # 1 event per ms, nothing lost or counted twice
    assert asm.stats.sync_restarts == 0 and asm.stats.sync_missed == 0


def test_a_glitch_edge_is_ignored_and_a_missing_edge_is_bridged():
    asm = assembler()
    sweeps = feed(asm, [0, 20_000, 100_000, 300_000], 330_000)  # 20 ms: a glitch; 200 ms: missing
    assert windows(sweeps)[:3] == [(0, 100_000), (100_000, 200_000), (200_000, 300_000)]
    assert asm.stats.sync_missed == 1 and asm.stats.sync_restarts == 0


def test_a_generator_restart_drops_the_cut_short_sweep():
    """An edge 0.7 periods after the first: the generator restarted its phase there (a command landing while it
    ran). The short stretch has the wrong commanded phase: it is no sweep, and sweep 0 starts at the restart."""
    asm = assembler()
    sweeps = feed(asm, [0, 70_000, 170_000, 270_000], 290_000)
    assert windows(sweeps) == [(70_000, 170_000), (170_000, 270_000)]
    assert [s.index for s in sweeps] == [0, 1] and asm.stats.sync_restarts == 1
