"""The ``focalrig`` typer root: the global options (``--verbose``, ``--config``, ``--set``, ``--version``) and
every command and command group, listed here in the order ``focalrig --help`` shows them.

Only the command being run is imported and built (:mod:`app.cli.lazy`): ``focalrig predict`` does not pay for
reading the signatures of thirty other commands. A command module is still imported whole when one of its
commands runs, so none of them imports anything heavy at module level (numpy, pydantic, the codecs, torch, Qt):
each command imports what it uses when it runs. ``tests/test_startup.py`` holds them to that.
"""

from __future__ import annotations

import gc
import logging
import os
import typing
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperOption

from app import __version__
from app.cli import coercion
from app.cli.common import console, err_console, state
from app.cli.lazy import LazyCommand, LazyGroup


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
coercion.install()


def _commands(module: str, kind: str, *rows: tuple[str, str]) -> list[LazyCommand]:
    """``(name, summary)`` rows of one module's commands: its ``register`` function's (kind "registered"), its
    sub-apps named ``<name>_app`` ("group"), or its functions named as the commands ("function")."""
    def attribute(name: str) -> str:
        return "register" if kind == "registered" else f"{name.replace('-', '_')}_app" if kind == "group" else name

    return [LazyCommand(name, f"app.cli.{module}", attribute(name), kind, summary)  # type: ignore[arg-type]
            for name, summary in rows]


#: Every command in the order --help lists them, with the first paragraph of its help (what --help shows of it).
COMMANDS: tuple[LazyCommand, ...] = (
    *_commands("fusion", "registered",
               ("predict", "Fuse one focal stack: all-in-focus image, focal-index and depth maps, confidence, "
                           "result.json."),
               ("fuse", "Fuse sweeps of a recording: calibration → aligned focal stack → all-in-focus image and "
                        "depth map."),
               ("predict-datasets", "Fuse every stack of EventStackMFF (image_stack/ + event_stack/) or StackMFF-V2 "
                                    "(dof_stack/) datasets."),
               ("predict-pairs", "Fuse A/B pair datasets (StackMFF-V2 predict_pair_datasets layout: <dataset>/A, "
                                 "<dataset>/B; or x-A/x-B files)."),
               ("eval", "Quality and time per method: PSNR/SSIM vs ground truth where it exists, Qabf + sharpness "
                        "everywhere.")),
    *_commands("capture", "registered",
               ("capture", "Record synchronised events, frames and lens trajectory into a new recording folder (no "
                           "GUI)."),
               ("inspect", "Summarise a recording: outcome, duration, sweeps, counts, rates, sync quality, "
                           "completeness."),
               ("simulate", "A capture on the simulated rig plus ground truth (all-in-focus, depth, homography, lens "
                            "trajectory).")),
    *_commands("calibration", "registered",
               ("calibrate", "Calibrate a rig: event→RGB homography (+ intrinsics), lens lag, focus breathing; writes "
                             "JSON + PNG report."),
               ("stack", "Aligned RGB + event focal stacks of a recording's sweeps, one stack per sweep.")),
    *_commands("train", "function",
               ("train", "Train the focal-index network on synthetic stacks rendered on the fly; resumable; reports "
                         "validation PSNR.")),
    *_commands("gui", "function",
               ("gui", "Open the focalrig window on the configured rig (default: the simulated rig), or replay REC.")),
    *_commands("events", "group", ("events", "Inspect, convert and render event files (.raw EVT2/2.1/3, .hdf5, .npz, "
                                             ".csv).")),
    *_commands("config", "group", ("config", "Check configuration files.")),
    *_commands("bench", "group", ("bench", "Benchmarks that print throughput figures.")),
    *_commands("batch", "group",
               ("batch", "Run fuse, stack, calibrate, convert or inspect over many recordings, on a local Dask "
                         "cluster or an existing one. Outputs go to OUT/<recording>-<uid>-<settings hash>/ with their "
                         "provenance; a re-run skips what is done, so an interrupted batch resumes. Exit status 1 "
                         "when any recording failed.")),
    *_commands("devices", "group", ("devices", "List the configured devices and check that they answer.")),
    *_commands("lens", "group",
               ("lens", "Drive an Optotune Lens Driver 4 (any serial port or pyserial URL, e.g. optosim://)."),
               ("sim", "Serve simulated devices on virtual serial ports.")),
)


class FocalrigCommands(LazyGroup):
    """The root group: the commands of :data:`COMMANDS`, each built when it runs."""

    COMMANDS = COMMANDS
    pretty_exceptions_short = True


app = typer.Typer(
    name="focalrig",
    cls=FocalrigCommands,
    help="Acquisition, calibration and all-in-focus fusion for hybrid event/frame focal-sweep rigs.",
    no_args_is_help=True,
    # Plain click help: typer's rich panels cost ~0.15 s of imports on every --help (rich.markdown, pygments).
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
    pretty_exceptions_enable=False,
)


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
    """Run the command line, with two process-wide settings that only the whole-process time shows.

    - numpy's BLAS gets one thread unless the environment says otherwise: focalrig only multiplies images by
      3-vectors with it, and its idle threads spin (``sched_yield``) on every core, competing with the per-core image
      decoding and OpenCV work. Set before numpy is imported (no command module imports it at load), so it holds
      for the process and the workers it starts. Measured on 2 cores, a whole 640x480 classical ``predict``:
      median 0.69 s against 0.76 s with two BLAS threads.
    - Everything alive when the command returns is frozen out of the collector: the interpreter's final
      collection walks every object of typer, pydantic, rich and numpy (60-110 ms at exit) only to free memory the
      process is about to hand back anyway; frozen, the exit takes ~12 ms. Files, recordings and devices are closed
      by the commands themselves, never by garbage collection.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        app()
    finally:
        gc.freeze()
