"""A command group that builds a command only when it is run.

typer turns every command into a click command by reading its function's signature, and the root used to do that
for all thirty-odd commands (importing every command module) on each start, whichever one then ran: a third of a
second on a loaded 2-core machine before ``focalrig predict`` read its first image. :class:`LazyGroup` knows each
command by a :class:`LazyCommand` — where it lives and the first paragraph of its help — and imports and builds
a command the first time it is asked for. ``--help`` lists every command from those summaries without building
any (``tests/test_cli_lazy.py`` holds each summary to its command's own help, so the listing cannot drift).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

import click
import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import TyperInfo


@dataclass(frozen=True)
class LazyCommand:
    """One command of a :class:`LazyGroup`: its name, where it lives, and the first paragraph of its help.

    ``kind`` says what ``module.attribute`` is: ``"group"`` a ``typer.Typer`` of sub-commands, ``"registered"`` a
    ``register(app)`` function that adds the command (with its settings) to an app, ``"function"`` the command's
    own function.
    """

    name: str
    module: str
    attribute: str
    kind: Literal["group", "registered", "function"]
    summary: str

    def build(self, group: TyperGroup, pretty_exceptions_short: bool) -> click.Command:
        """Import the command's module and build the click command typer would have built for the root app."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        if self.kind == "group":
            return _typer_call(get_group_from_info, TyperInfo(target, name=self.name),
                               pretty_exceptions_short=pretty_exceptions_short,
                               rich_markup_mode=group.rich_markup_mode,
                               suggest_commands=getattr(group, "suggest_commands", True))
        holder = typer.Typer()
        if self.kind == "registered":
            target(holder)
        else:
            holder.command(self.name)(target)
        info = next((c for c in holder.registered_commands if c.name == self.name), None)
        if info is None:
            raise LookupError(f"{self.module}.{self.attribute} registers no command {self.name!r}")
        return _typer_call(get_command_from_info, info, pretty_exceptions_short=pretty_exceptions_short,
                           rich_markup_mode=group.rich_markup_mode)


def _typer_call(fn, *args, **options):
    """``fn(*args, **options)`` with only the options this typer's ``fn`` takes (``suggest_commands`` is newer than
    the oldest typer focalrig runs on)."""
    accepted = inspect.signature(fn).parameters
    return fn(*args, **{name: value for name, value in options.items() if name in accepted})


class _Commands(MutableMapping[str, click.Command]):
    """A group's commands by name, in the listed order, each built on first access; a name alone builds nothing
    (``in``, iteration and ``len`` look at the table only)."""

    def __init__(self, group: LazyGroup, specs: Sequence[LazyCommand]) -> None:
        self._group = group
        self._specs = {spec.name: spec for spec in specs}
        self._built: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            self._built[name] = self._specs[name].build(self._group, self._group.pretty_exceptions_short)
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._specs.pop(name, None)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._specs or name in self._built

    def __iter__(self) -> Iterator[str]:
        yield from self._specs
        yield from (name for name in self._built if name not in self._specs)

    def __len__(self) -> int:
        return len(self._specs.keys() | self._built.keys())

    def summary(self, name: str) -> click.Command:
        """The built command if it has been built, else a stand-in carrying only its name and listed help."""
        if name in self._built:
            return self._built[name]
        return click.Command(name, help=self._specs[name].summary)


class LazyGroup(TyperGroup):
    """A typer group whose commands (``COMMANDS``, set by a subclass) are built when first used."""

    COMMANDS: Sequence[LazyCommand] = ()
    #: typer's ``pretty_exceptions_short`` of the app the group stands for (it is not handed to a group class).
    pretty_exceptions_short: bool = True

    def __init__(self, **attrs) -> None:
        registered = attrs.pop("commands", None) or {}
        super().__init__(**attrs)
        self.commands = _Commands(self, self.COMMANDS)
        for name, command in dict(registered).items():
            self.commands[name] = command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The names in the listed order (typer's own reads every command, which would build them all)."""
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """typer's listing of the commands and their one-line help, from the summaries: it builds none of them."""
        commands = self.commands
        assert isinstance(commands, _Commands)
        rows = [(name, commands.summary(name)) for name in self.list_commands(ctx)]
        rows = [(name, cmd) for name, cmd in rows if not cmd.hidden]
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])
