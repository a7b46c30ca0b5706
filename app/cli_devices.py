"""``focalrig devices list|check``: what the configuration selects, and whether each device answers."""

from __future__ import annotations

import typer
from rich.table import Table

from app.cli_common import console, err_console, friendly_errors
from app.cli_lens import focus_table
from app.config import FocalrigConfig
from drivers.registry import make_focus_actuator

devices_app = typer.Typer(help="List the configured devices and check that they answer.", no_args_is_help=True)


def _configured(cfg: FocalrigConfig) -> list[tuple[str, str, str]]:
    """(role, backend, address) of every configured device."""
    return [("lens", cfg.lens.backend, cfg.lens.port)]


@devices_app.command("list")
@friendly_errors
def devices_list(ctx: typer.Context) -> None:
    """The devices the configuration selects (default configs/sim.toml: the simulated rig)."""
    table = Table("role", "backend", "address", title="configured devices", title_justify="left")
    for row in _configured(ctx.obj.config()):
        table.add_row(*row)
    console.print(table)


@devices_app.command("check")
@friendly_errors
def devices_check(ctx: typer.Context) -> None:
    """Connect to every configured device, identify it, print its state, and release it safely."""
    cfg: FocalrigConfig = ctx.obj.config()
    failures = 0
    try:
        with make_focus_actuator(cfg.lens) as lens:
            console.print(focus_table(lens, cfg.lens.port))
    except OSError as exc:
        failures += 1
        err_console.print(f"[bold red]lens:[/] {exc}", highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(2)
    console.print("[green]all configured devices answer[/]")
