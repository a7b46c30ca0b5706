"""The fuzz harness: a small fixed budget of mutated files and recordings passes (the large run is
``focalrig bench fuzz``), the runner counts hangs and crashes without dying, and its idea of a user error is the
command line's."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import typer

from app.cli.common import friendly_errors
from capture.formats.base import EventFileError
from capture.fuzz.mutate import BYTE_MUTATIONS, make_case, mutate_bytes
from capture.fuzz.probe import USER_ERRORS, probe
from capture.fuzz.runner import run_fuzz
from capture.fuzz.seeds import SEED_NAMES, write_seeds

#: Mutated cases per CI run: 40 per seed kind, about half a minute on two busy cores.
CI_BUDGET = 40 * len(SEED_NAMES)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("seeds"))


def crafted_files(folder):
    """The files of past failures, probed as they are: a 60-wrap EVT2 file, an HDF5 file whose string heap
    loops HDF5, one whose attribute iteration fails, and a recording without sync.h5."""
    from capture.fuzz.seeds import write_hdf5_seed, write_recording_seed
    from tests.test_bad_event_files import wrapping_evt2

    out = [wrapping_evt2(folder / "wraps.raw")[0]]
    data = bytearray(write_hdf5_seed(folder).path.read_bytes())
    heap = data.find(b"GCOL")
    looping = bytearray(data)
    looping[heap + 16:heap + 16 + 512] = bytes(512)
    (folder / "heap_loop.hdf5").write_bytes(bytes(looping))
    name = data.find(b"geometry\x00")
    data[name - 6:name - 4] = b"\xff\xff"
    (folder / "attr_iteration.hdf5").write_bytes(bytes(data))
    rec = write_recording_seed(folder).path
    (rec / "sync.h5").unlink()
    return [*out, folder / "heap_loop.hdf5", folder / "attr_iteration.hdf5", rec]


def test_a_small_fixed_budget_passes(tmp_path):
    files = crafted_files(tmp_path)
    tally = run_fuzz(CI_BUDGET, run_seed=2024, workers=2, timeout_s=90, extra_files=files, keep=tmp_path / "failed")
    print("\n".join(tally.lines()))
    failures = "\n".join(f"{f.category} case {f.index} {f.seed_kind} {f.mutations}: {f.message}"
                         for f in tally.findings)
    assert tally.passed(max_rss_mib=1024), failures
    assert tally.total == CI_BUDGET + len(files)
    assert set(tally.by_kind) >= set(SEED_NAMES)
    # The budget exercises both outcomes: files that still read, and one-line errors that name the file.
    assert tally.counts["ok"] > CI_BUDGET // 4 and tally.counts["clean"] > CI_BUDGET // 4


def test_cases_are_rebuilt_from_their_number(seeds, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for index in (0, 3, 4, 5):
        first, second = make_case(seeds, 7, index, a), make_case(seeds, 7, index, b)
        assert first.mutations == second.mutations
        if first.path.is_file():
            assert first.path.read_bytes() == second.path.read_bytes()
            assert first.path.read_bytes() != first.seed.path.read_bytes()


@pytest.mark.parametrize("mutation", BYTE_MUTATIONS)
def test_every_mutation_changes_the_file(seeds, mutation):
    seed = next(s for s in seeds if s.kind == "evt3")
    data = seed.path.read_bytes()
    changed = [mutate_bytes(data, seed.kind, np.random.default_rng(k), mutation)[0] != data for k in range(8)]
    assert sum(changed) >= 6


def _fake_worker(script: str) -> list[str]:
    """A stand-in worker: answers ``ok`` except for paths containing 'hang' (sleeps) or 'crash' (dies)."""
    return [sys.executable, "-c", textwrap.dedent(script)]


FAKE_WORKER = """
    import json, os, sys, time
    print("ready", flush=True)
    for line in sys.stdin:
        index, kind, path, _ = line.rstrip("\\n").split("\\t")
        if "hang" in path:
            time.sleep(3600)
        if "crash" in path:
            os._exit(-11 & 0xFF)
        print(json.dumps({"index": int(index), "outcome": "error" if "err" in path else "ok",
                          "message": "no file named here", "step": "info", "seconds": 0.0, "rss_mib": 10.0}),
              flush=True)
"""


def test_the_runner_counts_hangs_crashes_and_unnamed_errors_and_carries_on(tmp_path):
    files = []
    for name in ("a_hang.raw", "b_crash.raw", "c_err.raw", "d.raw", "e.raw"):
        files.append(tmp_path / name)
        files[-1].write_bytes(b"x")
    tally = run_fuzz(0, workers=1, timeout_s=3, extra_files=files, worker_command=_fake_worker(FAKE_WORKER))
    assert (tally.counts["hang"], tally.counts["crash"], tally.counts["unnamed"], tally.counts["ok"]) == (1, 1, 1, 2)
    assert not tally.passed(max_rss_mib=1024)
    assert [f.category for f in tally.findings] == ["hang", "crash", "unnamed"]


@pytest.mark.parametrize("error", [EventFileError("x.raw", "bad"), ValueError("bad"), OSError("bad")])
def test_the_harness_user_errors_are_the_command_lines(error):
    assert isinstance(error, USER_ERRORS)

    @friendly_errors
    def command():
        raise error

    with pytest.raises(typer.Exit) as exc:
        command()
    assert exc.value.exit_code == 2


def test_anything_else_is_a_traceback_for_both(tmp_path):
    @friendly_errors
    def command():
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        command()
    assert not isinstance(RuntimeError("bug"), USER_ERRORS)
    result = probe(tmp_path / "absent.raw", recording=False, work=tmp_path)
    assert result.outcome == "error" and result.names("absent.raw")
