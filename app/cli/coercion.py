"""Option values of the everyday kinds converted without pydantic; anything else exactly as typer does it.

typer (0.29) converts every option and argument value with a pydantic TypeAdapter, so the first value a command
parses imports pydantic — a tenth of a second of ``focalrig predict``'s start-up on a loaded 2-core machine, for
turning ``--input_dir stack/`` into a Path. Most values are plain: text, whole numbers, decimals, paths, flags,
lists of those. :func:`install` makes typer convert those directly when the value is valid and the option puts no
constraint on it that a direct conversion would skip; every other value — an invalid one above all — goes through
typer's own conversion, so results and error messages are typer's. ``tests/test_cli_coercion.py`` checks the
direct conversion against typer's on the same values.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, get_args, get_origin

try:  # typer >= 0.2x converts values through pydantic here; older ones use click's own types (nothing to do)
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - older typer
    _TyperParameter = None

_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
#: A value :func:`direct` does not convert (typer's conversion decides).
UNSURE = object()


def direct(annotation: Any, info: Any, value: Any) -> Any:
    """``value`` converted for an option annotated ``annotation`` with typer's parameter info ``info``, as typer's
    own conversion would give it, or :data:`UNSURE` where this does not know it would (typer then converts)."""
    if info.parser is not None:
        return UNSURE
    if get_origin(annotation) is list:
        (item_type,) = get_args(annotation) or (Any,)
        if not isinstance(value, (list, tuple)):
            return UNSURE
        items = [direct(item_type, info, item) for item in value]
        return UNSURE if any(item is UNSURE for item in items) else items
    if annotation is str:
        return value if isinstance(value, str) else UNSURE
    if annotation is bool:
        return value if isinstance(value, bool) else UNSURE
    if annotation is int:
        number = value if type(value) is int else int(value) if isinstance(value, str) and _INT.fullmatch(value) \
            else None
        return UNSURE if number is None or info.clamp or not _within(number, info) else number
    if annotation is float:
        number = float(value) if type(value) in (int, float) else float(value) if isinstance(value, str) and \
            _FLOAT.fullmatch(value) else None
        return UNSURE if number is None or info.clamp or not _within(number, info) else number
    if annotation is Path and _plain_path(info) and isinstance(value, str) and value:
        path = Path(value)
        if info.readable and os.path.exists(path) and not os.access(path, os.R_OK):
            return UNSURE  # typer refuses an unreadable path that exists
        return path
    return UNSURE


def _within(number: float, info: Any) -> bool:
    return (info.min is None or number >= info.min) and (info.max is None or number <= info.max)


def _plain_path(info: Any) -> bool:
    """A path option that asks of the path at most that it be readable if it exists (typer's default): no
    existence, kind, write permission, resolving or '-' checks."""
    return not (info.exists or info.resolve_path or info.allow_dash or info.path_type is not None or
                not info.file_okay or not info.dir_okay or info.writable)


class _DirectFirst:
    """A parameter's conversion: :func:`direct` where it knows the answer, else typer's own (built on first use)."""

    def __init__(self, parameter, typer_runtime) -> None:
        self._parameter = parameter
        self._typer_runtime = typer_runtime
        self._full = None

    def coerce(self, value: Any, param, ctx) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        descriptor = self._parameter.type_descriptor
        converted = UNSURE if multi and isinstance(value, str) else \
            direct(descriptor.annotation, descriptor.parameter_info, value)
        if converted is not UNSURE:
            return converted
        if self._full is None:
            self._full = self._typer_runtime(self._parameter)
        return self._full.coerce(value, param=param, ctx=ctx)


def install() -> None:
    """Make every typer parameter convert its value directly where it can (idempotent; nothing to do on a typer
    that does not convert through pydantic)."""
    typer_runtime = getattr(_TyperParameter, "get_runtime_param", None)
    if typer_runtime is None or getattr(typer_runtime, "direct_first", False):
        return

    def get_runtime_param(self):
        if getattr(self, "_direct_first", None) is None:
            self._direct_first = _DirectFirst(self, typer_runtime)
        return self._direct_first

    get_runtime_param.direct_first = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
