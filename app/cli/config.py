"""``focalrig config check``: a configuration file validated and printed fully resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import console, friendly_errors, state

config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)


@config_app.command("check")
@friendly_errors
def config_check(
    file: Annotated[Path | None, typer.Argument(help="Config file (default: --config or configs/sim.toml).")] = None,
) -> None:
    """Validate a configuration file and print it fully resolved (defaults and --set overrides applied)."""
    import tomli_w

    from app.config import load_config

    cfg = load_config(file or state.config_path, overrides=state.overrides)
    console.print(tomli_w.dumps(cfg.model_dump(exclude_none=True)), highlight=False, markup=False)
