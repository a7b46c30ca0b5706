"""Pieces every ``focalrig`` command module shares: consoles and the one-line error policy."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from app.config import ConfigError
from capture.formats.base import EventFileError

log = logging.getLogger("focalrig")
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def friendly_errors(fn: F) -> F:
    """Turn the library's expected failures into one red line and exit status 2, without a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (EventFileError, ConfigError, ValueError, OSError) as exc:
            log.debug("traceback of the error below (shown with -vv)", exc_info=True)
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def parse_board(text: str) -> tuple[int, int]:
    """``--board COLSxROWS``: a chessboard's inner corners, as calibration and the target simulator count them."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--board must be COLSxROWS of inner corners, e.g. 9x6 (got {text!r})") from None
    if cols < 3 or rows < 3:
        raise ValueError(f"--board needs at least 3x3 inner corners (got {text!r})")
    return cols, rows
