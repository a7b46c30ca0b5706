"""What a job tells whoever runs it, while it runs: a single command shows it (a progress bar, a line per sweep, a
note), a batch worker keeps the notes for the recording's row and drops the rest.

The jobs take a listener instead of printing, so the same function runs in a terminal and in a Dask worker.
"""

from __future__ import annotations


class Listener:
    """Says nothing: the base class, and what a job gets when nobody listens. Override what you show."""

    def started(self, total: float) -> None:
        """The job knows how much work is ahead: ``total`` units (sweeps, stacks; 1.0 for a fraction done)."""

    def working(self, detail: str, completed: float | None = None) -> None:
        """What is under way (``"sweep 3"``), and how many units are done when the job counts in fractions."""

    def done(self, line: str = "") -> None:
        """One unit finished; ``line`` says what it made, in words ("" when there is nothing to say)."""

    def note(self, text: str) -> None:
        """Something the user should know that does not stop the job (fewer planes than asked, say)."""


class NoteKeeper(Listener):
    """Keeps the notes (a batch row shows them) and nothing else."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)
