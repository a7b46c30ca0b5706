"""Pieces every ``focalrig`` command module shares: consoles, the global options, the one-line error policy and
the parsers of size-like arguments."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from app.config import ConfigError, FocalrigConfig, load_config
from capture.formats.base import EventFileError

log = logging.getLogger("focalrig")
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


@dataclass
class GlobalOptions:
    """The global options of this invocation (``--config``, ``--set``; set by the root callback, which also makes
    this object the context's ``obj``)."""

    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)

    def config(self) -> FocalrigConfig:
        return load_config(self.config_path, overrides=self.overrides)


state = GlobalOptions()


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


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``--size 640x480``) as a (width, height) pair."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT, e.g. 640x480 (got {text!r})") from None
    return w, h
