"""Pieces every ``focalrig`` command module shares: consoles, the global options, the one-line error policy and
the parsers of size-like arguments.

Every command module imports this one, so it imports nothing heavy: ``focalrig --help`` and the light commands
start in a fraction of a second only if no module loads numpy, pydantic or the codecs before a command runs.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from app.jobs.listener import Listener

if TYPE_CHECKING:
    from rich.live import Live
    from rich.progress import Progress, TaskID

    from app.config import FocalrigConfig

log = logging.getLogger("focalrig")

#: Width of output that is not a terminal (a pipe, a log file, CI): wide enough that no message or path is
#: wrapped, so every line can be grepped and every path copied whole.
PIPE_WIDTH = 1000


class FocalrigConsole(Console):
    """rich's Console, fixed for output that is not a terminal.

    rich wraps such output at 80 columns (cutting paths in the middle) and leaves the last line of a live display
    (the capture status) without its newline, so the next message ran into it; a progress bar does end its line,
    with an empty line of its own after it. Here every live display ends its line as it stops and nothing else:
    the empty line a progress bar prints next is dropped. Terminals are left as rich handles them; ``COLUMNS``
    still sets the width everywhere.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._top_live: Live | None = None
        self._live_ended = False

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def set_live(self, live: Live) -> bool:
        top = super().set_live(live)
        if top:
            self._top_live = live
        return top

    def pop_render_hook(self) -> None:
        """A live display ends by popping its hook after its final render: end that render's line here."""
        super().pop_render_hook()
        live, self._top_live = self._top_live, None
        if live is not None and not self.is_terminal:
            if not live.transient:  # a transient display printed nothing
                self.line()
            self._live_ended = True

    def print(self, *objects, **kwargs) -> None:
        ended, self._live_ended = self._live_ended, False
        if ended and not objects:  # the empty line a progress bar prints once stopped
            return
        super().print(*objects, **kwargs)


console = FocalrigConsole()
err_console = FocalrigConsole(stderr=True)

F = TypeVar("F", bound=Callable)

#: Exceptions that are expected failures besides ValueError and OSError: (module, class name).
_EXPECTED = (("app.config", "ConfigError"), ("capture.formats.base", "EventFileError"))


@dataclass
class GlobalOptions:
    """The global options of this invocation (``--config``, ``--set``; set by the root callback, which also makes
    this object the context's ``obj``)."""

    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)

    def config(self) -> FocalrigConfig:
        from app.config import load_config

        return load_config(self.config_path, overrides=self.overrides)


state = GlobalOptions()


def is_expected_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the library's expected failures (bad input, a missing device, a bad file).

    The library's own error classes are looked up only in modules already loaded: an error class that was never
    imported cannot have been raised, and importing it here would make every command pay for its module.
    """
    if isinstance(exc, (ValueError, OSError)):
        return True
    for module, name in _EXPECTED:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def print_error(message: object, label: str = "error") -> None:
    """One red ``label:`` line on stderr; the message is printed as written (square brackets included)."""
    err_console.print(f"[bold red]{label}:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def friendly_errors(fn: F) -> F:
    """Turn the library's expected failures into one red line and exit status 2, without a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as exc:
            if not is_expected_error(exc):
                raise
            log.debug("traceback of the error below (shown with -vv)", exc_info=True)
            print_error(exc)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def progress() -> Progress:
    """The bar of commands that work through items (stacks, sweeps, files): count, a detail field, elapsed time;
    on stderr, gone when done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=err_console, transient=True)


class BarListener(Listener):
    """A job's progress shown by a command: its bar (total, detail, units done), a printed line per unit it made,
    its notes on stderr."""

    def __init__(self, bar: Progress, task: TaskID) -> None:
        self.bar = bar
        self.task = task

    def started(self, total: float) -> None:
        self.bar.update(self.task, total=total)

    def working(self, detail: str, completed: float | None = None) -> None:
        self.bar.update(self.task, detail=detail, **({} if completed is None else {"completed": completed}))

    def done(self, line: str = "") -> None:
        if line:
            console.print(line, highlight=False)
        self.bar.advance(self.task)

    def note(self, text: str) -> None:
        err_console.print(f"note: {text}", highlight=False, markup=False)


def parse_board(text: str) -> tuple[int, int]:
    """``--board COLSxROWS``: a chessboard's inner corners, as calibration and the target simulator count them."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--board must be COLSxROWS of inner corners, e.g. 9x6 (got {text!r})") from None
    if cols < 3 or rows < 3:
        raise ValueError(f"--board needs at least 3x3 inner corners (got {text!r})")
    return cols, rows


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``--size 640x480``) as a (width, height) pair."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT, e.g. 640x480 (got {text!r})") from None
    return w, h
