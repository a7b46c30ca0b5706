"""The root command builds only the command that runs, and its --help listing is every command's own help.

Start-up used to build all commands (every module imported, every signature read by typer) whichever one ran.
The root now lists commands from a table (app.cli.root.COMMANDS); these tests keep that table true to the
modules: every command they define is in it, under its own name, with the first paragraph of its own help.
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import typer
import typer.main
from typer.testing import CliRunner

import app.cli
from app.cli import app as cli_app
from app.cli.root import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def defined_commands() -> dict[str, str]:
    """Every top-level command the modules of app.cli define (name → module): their ``register`` functions'
    commands and their ``<name>_app`` groups."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(app.cli.__path__):
        if info.name in ("root", "lazy", "__main__"):  # the table itself; __main__ runs the CLI
            continue
        module = importlib.import_module(f"app.cli.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            holder = typer.Typer()
            register(holder)
            found.update({c.name: module.__name__ for c in holder.registered_commands})
        for attribute, value in vars(module).items():
            if attribute.endswith("_app") and isinstance(value, typer.Typer):
                found[attribute.removesuffix("_app").replace("_", "-")] = module.__name__
    return found


def test_every_command_the_modules_define_is_listed_with_its_own_help():
    listed = {spec.name: spec for spec in COMMANDS}
    defined = defined_commands()
    defined.update({"train": "app.cli.train", "gui": "app.cli.gui"})  # plain functions, named as their commands
    assert set(listed) == set(defined)
    assert {name: spec.module for name, spec in listed.items()} == defined
    root = typer.main.get_command(cli_app)
    for spec in COMMANDS:
        built = root.commands[spec.name]
        assert built.name == spec.name and not built.hidden and built.short_help is None
        assert " ".join(built.help.split("\n\n")[0].split()) == spec.summary, spec.name


def test_help_lists_every_command_in_order_with_its_one_line_help():
    help_text = runner.invoke(cli_app, ["--help"]).output
    listing = help_text[help_text.index("Commands:"):].splitlines()[1:]
    names = [line.split()[0] for line in listing if line.startswith("  ") and not line.startswith("   ")]
    assert names == [spec.name for spec in COMMANDS]
    assert "  predict           Fuse one focal stack: all-in-focus image, focal-index..." in help_text


def cli_modules_loaded(*args: str) -> tuple[str, set[str]]:
    """A fresh ``focalrig ARGS`` process's output and the app.cli modules it imported."""
    probe = (f"import sys; sys.argv = ['focalrig', *{list(args)!r}]\n"
             "from app.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('MODULES', sorted(m for m in sys.modules if m.startswith('app.cli.')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.stdout, set(ast.literal_eval(done.stderr.strip().splitlines()[-1].removeprefix("MODULES ")))


ROOT_MODULES = {"app.cli.coercion", "app.cli.common", "app.cli.lazy", "app.cli.root"}


def test_running_a_command_imports_and_builds_that_command_only():
    """``focalrig predict --help`` imports app.cli.fusion; no other command module."""
    output, modules = cli_modules_loaded("predict", "--help")
    assert "--input_dir" in output
    assert modules == ROOT_MODULES | {"app.cli.fusion"}


def test_the_command_listing_builds_no_command():
    output, modules = cli_modules_loaded("--help")
    assert "predict-datasets" in output and "Serve simulated devices on virtual serial ports." in output
    assert modules == ROOT_MODULES
