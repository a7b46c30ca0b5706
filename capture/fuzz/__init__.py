"""Fuzzing the readers: mutated event files and recording folders through what ``events info``, ``events convert``
and ``inspect`` run, each in a worker process with a time limit and a memory cap, tallied.

- :mod:`capture.fuzz.seeds`: small well-formed files of every format, written by focalrig's own writers;
- :mod:`capture.fuzz.mutate`: deterministic damage (bit flips, truncation, header edits, zeroed and duplicated
  blocks, time words; missing, empty and corrupt recording parts);
- :mod:`capture.fuzz.probe`: one input through the command-line code paths, classified as the CLI would show it;
- :mod:`capture.fuzz.worker` and :mod:`capture.fuzz.runner`: the worker processes and the tally.

It lives in ``capture`` beside the readers it exercises (no Qt, no typer), so the test suite runs it with a small
budget and ``focalrig bench fuzz`` with a large one.
"""
