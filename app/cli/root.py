"""The ``focalrig`` typer root: the global options (``--verbose``, ``--config``, ``--set``, ``--version``) and
every command group, registered here in the order ``focalrig --help`` lists them.

Every command module is imported to build the command tree, so none of them imports anything heavy at module
level (numpy, pydantic, the codecs, torch, Qt): each command imports what it uses when it runs.
``tests/test_startup.py`` holds them to that.
"""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperOption

from app import __version__
from app.cli.batch import batch_app
from app.cli.bench import bench_app
from app.cli.calibration import register as register_calibration
from app.cli.capture import register as register_capture
from app.cli.common import console, err_console, state
from app.cli.config import config_app
from app.cli.devices import devices_app
from app.cli.events import events_app
from app.cli.fusion import register as register_fusion
from app.cli.gui import gui
from app.cli.lens import lens_app, sim_app
from app.cli.train import train


def _option_types_as_typed() -> None:
    """Make --help label option values the way they are typed, in every command.

    typer labels a flag ``<bool>`` (a counted ``-v`` ``<int>``), as if it took a value, and a repeatable option
    ``<list[str]>``. Flags take no value, so they get no label; a repeatable option gets its element's type and
    ``…`` (it is given once per value), ``--set`` ``KEY=VALUE``; so does an argument that takes several values
    (``PATHS <str> …``). typer has no setting for this, so its labelling methods are wrapped.
    """
    typer_label = TyperOption.display_type_rich
    if getattr(typer_label, "as_typed", False):
        return

    def element(param) -> str:
        args = typing.get_args(param.type_descriptor.annotation)
        return f"<{getattr(args[0], '__name__', 'value').lower() if args else 'value'}> …"

    def display_type_rich(self: TyperOption, ctx) -> str | None:
        if self.metavar is None and (self.is_flag or self.count):
            return None
        if self.metavar is None and "--set" in self.opts:
            return "KEY=VALUE"
        if self.metavar is None and self.multiple:
            return element(self)
        return typer_label(self, ctx)

    def argument_type_rich(self: TyperArgument, ctx) -> str | None:
        return element(self) if self.nargs != 1 else typer_label(self, ctx)  # PATHS… takes several values

    display_type_rich.as_typed = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    TyperArgument.display_type_rich = argument_type_rich  # type: ignore[method-assign]


_option_types_as_typed()

app = typer.Typer(
    name="focalrig",
    help="Acquisition, calibration and all-in-focus fusion for hybrid event/frame focal-sweep rigs.",
    no_args_is_help=True,
    # Plain click help: typer's rich panels cost ~0.15 s of imports on every --help (rich.markdown, pygments).
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
    pretty_exceptions_enable=False,
)
app.add_typer(events_app, name="events")
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
app.add_typer(batch_app, name="batch")
app.add_typer(devices_app, name="devices")
app.add_typer(lens_app, name="lens")
app.add_typer(sim_app, name="sim")
register_fusion(app)
register_capture(app)
register_calibration(app)
app.command("train")(train)
app.command("gui")(gui)


def _version(value: bool) -> None:
    if value:
        console.print(f"focalrig {__version__}")
        raise typer.Exit()


def log_handler() -> logging.Handler:
    """rich's log lines on a terminal; plain one-line records (time, level, message) anywhere else, where rich
    would wrap each record at 80 columns and pad it with spaces."""
    if err_console.is_terminal:
        from rich.logging import RichHandler

        return RichHandler(console=err_console, show_path=False)
    handler = logging.StreamHandler(err_console.file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    return handler


@app.callback()
def main_callback(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False,
                                         help="More log output (-vv for debug).")] = 0,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Configuration file (default configs/sim.toml).",
                                                show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Override one config key "
                                                   "(repeatable), TOML value: --set io.default_evt=2.",
                                                   show_default=False)] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[log_handler()], force=True)
    state.config_path = config
    state.overrides = list(set_ or [])
    ctx.obj = state  # sub-command modules reach the configuration through the context


def main() -> None:
    app()
