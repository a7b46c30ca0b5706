"""CSV event files are written by a numba formatter, byte for byte what ``numpy.savetxt(fmt="%d")`` wrote (and what
OpenEB's ``metavision_file_to_csv`` writes: tests/test_openeb_files.py), without savetxt's 0.4 M events a second.
Speed itself is printed by ``focalrig bench io``, never asserted."""

from __future__ import annotations

import io

import numpy as np
import pytest

from capture.formats.csvfile import CsvEventReader, CsvEventWriter
from capture.formats.csvtext import csv_rows
from drivers.events.dtypes import make_cd, make_triggers
from drivers.events.synthetic import synthetic_events


def savetxt(rows: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savetxt(out, rows, fmt="%d", delimiter=",")
    return out.getvalue()


@pytest.mark.parametrize("rows", [
    np.array([[0, 0, 0, 0], [1279, 719, 1, 123_456_789_012], [7, 70, 0, 700], [10, 99, 1, 100]]),
    np.array([[-1, -10, -99, -100], [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -5]]),
    np.random.default_rng(0).integers(-10**15, 10**15, (2000, 3)),
    np.random.default_rng(1).integers(0, 10, (50, 1)),
    np.zeros((0, 4), np.int64),
], ids=["events", "extremes", "random-wide", "one-column", "empty"])
def test_rows_are_formatted_exactly_as_savetxt_formats_them(rows):
    assert bytes(csv_rows(rows)) == savetxt(rows)


def test_the_writer_formats_without_savetxt_and_its_file_reads_back(tmp_path, monkeypatch):
    cd, trig = synthetic_events(20_000, 1280, 720)
    cd = np.concatenate([cd, make_cd([1279, 0], [719, 0], [1, 0], [cd["t"][-1] + 1, cd["t"][-1] + 2])])
    trig = np.concatenate([trig, make_triggers([1], [int(cd["t"][-1])], [7])])
    expected = savetxt(np.stack([cd["x"], cd["y"], cd["p"], cd["t"]], axis=1).astype(np.int64))
    expected_trig = savetxt(np.stack([trig["p"], trig["id"], trig["t"]], axis=1).astype(np.int64))

    def slow(*_args, **_kwargs):
        raise AssertionError("numpy.savetxt formats ~0.4 M events a second: the CSV writer must not use it")

    monkeypatch.setattr(np, "savetxt", slow)
    path = tmp_path / "ev.csv"
    with CsvEventWriter(path) as writer:
        for i in range(0, len(cd), 6000):
            writer.write(cd[i:i + 6000], trig if i == 0 else None)
    monkeypatch.undo()
    assert path.read_bytes() == expected
    assert (tmp_path / "ev_triggers.csv").read_bytes() == expected_trig
    with CsvEventReader(path, width=1280, height=720) as reader:
        back = np.concatenate([c for c, _ in reader.read_chunks()])
    assert np.array_equal(back, cd)
