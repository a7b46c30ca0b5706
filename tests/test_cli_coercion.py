"""Option values converted without pydantic (app.cli.coercion) are exactly what typer's own conversion gives, and
every value it does not convert — an invalid one above all — still gets typer's result and message."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import click
import pytest
import typer
import typer.main
from typer.core import build_runtime_param
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.cli.coercion import UNSURE, direct

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

probe = typer.Typer()


@probe.command()
def options(text: str = "", count: int = 0, positive: Annotated[int, typer.Option(min=1)] = 1,
            clamped: Annotated[int, typer.Option(min=0, max=5, clamp=True)] = 0, ratio: float = 0.0,
            bounded: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5, path: Path = Path("."),
            existing: Annotated[Path, typer.Option(exists=True)] = Path("."),
            many: Annotated[list[str] | None, typer.Option()] = None,
            numbers: Annotated[list[int] | None, typer.Option()] = None, flag: bool = False) -> None:
    """Options of every kind the commands use."""


VALUES = ["abc", "", " 5", "5", "-3", "+7", "007", "0", "1_000", "5.0", "1.5", "-2", "1e3", "1E-3", "1.", ".5",
          "nan", "inf", "1,5", "0x10", "x", "a/b", ".", "~", "/no/such/path", 2, 2.5, True, ("a", "b"), ("1", "2"),
          ("1", "x")]


def typer_result(param, ctx, value):
    """What typer's own (pydantic) conversion makes of ``value``: ("ok", value) or ("error", message)."""
    try:
        return "ok", build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)
    except click.BadParameter as exc:
        return "error", exc.format_message()


@pytest.mark.parametrize("name", [p.name for p in typer.main.get_command(probe).params])
def test_direct_conversion_is_typers_wherever_it_converts(name):
    command = typer.main.get_command(probe)
    param = next(p for p in command.params if p.name == name)
    ctx = click.Context(command)
    desc = param.type_descriptor
    converted = 0
    for value in VALUES:
        if (param.multiple or param.nargs == -1) != isinstance(value, tuple):
            continue
        ours = direct(desc.annotation, desc.parameter_info, value)
        if ours is UNSURE:
            continue
        converted += 1
        status, theirs = typer_result(param, ctx, value)
        assert status == "ok", (name, value, theirs)
        assert type(ours) is type(theirs) and (ours == theirs or (isinstance(ours, float) and math.isnan(ours)
                                                                  and math.isnan(theirs))), (name, value)
    if name not in ("existing", "clamped"):
        assert converted, f"--{name}: no value converted directly"


def test_plain_values_are_converted_directly_and_bad_ones_left_to_typer():
    from typer.models import OptionInfo

    info = OptionInfo()
    assert direct(int, info, "12") == 12 and direct(float, info, "0.25") == 0.25
    assert direct(Path, info, "stack") == Path("stack") and direct(list[str], info, ("a=1",)) == ["a=1"]
    for annotation, value in ((int, "x"), (int, "1.5"), (float, "abc"), (Path, ""), (int, True)):
        assert direct(annotation, info, value) is UNSURE


def test_invalid_values_keep_typers_messages():
    result = runner.invoke(cli_app, ["simulate", "--sweeps", "x"])
    assert result.exit_code == 2
    assert "Invalid value for '--sweeps' / '-n': Input should be a valid integer, unable to parse string as an " \
           "integer" in result.output
    result = runner.invoke(cli_app, ["simulate", "--sweeps", "0"])
    assert "Invalid value for '--sweeps' / '-n': Input should be greater than or equal to 1" in result.output


def test_classical_predict_does_not_load_pydantic(tmp_path):
    """typer would import pydantic to turn --input_dir into a Path: a tenth of a second of start-up."""
    import cv2
    import numpy as np

    stack = tmp_path / "stack"
    stack.mkdir()
    for i in range(1, 4):
        cv2.imwrite(str(stack / f"{i}.png"), np.full((24, 32, 3), 40 * i, np.uint8))
    probe_code = ("import sys; sys.argv = ['focalrig', *sys.argv[1:]]\n"
                  "from app.cli import main\n"
                  "try:\n    main()\nexcept SystemExit:\n    pass\n"
                  "print('PYDANTIC', 'pydantic' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe_code, "predict", "--input_dir", str(stack), "--output_dir",
                           str(tmp_path / "out"), "--method", "classical", "--event-weight", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (tmp_path / "out" / "fused.png").is_file(), done.stderr
    assert done.stderr.strip().splitlines()[-1] == "PYDANTIC False"
