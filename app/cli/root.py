"""The ``focalrig`` typer root: the global options (``--verbose``, ``--config``, ``--set``, ``--version``) and
every command group, registered here in the order ``focalrig --help`` lists them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from app import __version__
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

app = typer.Typer(
    name="focalrig",
    help="Acquisition, calibration and all-in-focus fusion for hybrid event/frame focal-sweep rigs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(events_app, name="events")
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
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


@app.callback()
def main_callback(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Configuration file (default configs/sim.toml).",
                                                show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one config key: --set io.default_evt=2.",
                                                   show_default=False)] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)],
                        force=True)
    state.config_path = config
    state.overrides = list(set_ or [])
    ctx.obj = state  # sub-command modules reach the configuration through the context


def main() -> None:
    app()
