"""What the command line prints for people and for logs: whole lines when stdout is a pipe, live displays that end
their line, --help labels that read like the command line, every output file documented."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import typer.main
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from typer.testing import CliRunner

from app.cli import app
from app.cli.common import PIPE_WIDTH, FocalrigConsole
from app.cli.root import log_handler

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_output_to_a_pipe_keeps_long_paths_and_messages_on_one_line(tmp_path):
    out = tmp_path / ("a-rather-long-folder-name-for-recordings-" * 3) / "and-another-level-below-it"
    result = runner.invoke(app, ["capture", "--dry-run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = [line for line in result.output.splitlines() if line.startswith("# 10 sweeps")]
    assert len(summary) == 1 and summary[0].endswith(f"into {out}")


def test_a_terminal_keeps_rich_wrapping_and_columns_set_the_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert FocalrigConsole(file=io.StringIO()).width == PIPE_WIDTH
    assert FocalrigConsole(file=io.StringIO(), force_terminal=True, width=80).width == 80
    monkeypatch.setenv("COLUMNS", "100")
    assert FocalrigConsole(file=io.StringIO()).width == 100


def test_a_live_display_ends_its_line_before_the_next_message():
    buffer = io.StringIO()
    console = FocalrigConsole(file=buffer)
    with Live("state running  sweeps 3 / 3", console=console):
        pass
    with Progress(TextColumn("{task.description}"), BarColumn(), console=console) as progress:
        progress.add_task("converting", total=1, completed=1)
    console.print("capture finished")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "state running  sweeps 3 / 3"
    assert lines[1].startswith("converting") and lines[2] == "capture finished"


def test_a_transient_display_leaves_no_blank_line():
    buffer = io.StringIO()
    console = FocalrigConsole(file=buffer)
    with console.status("working"):
        pass
    with Progress(TextColumn("{task.description}"), console=console, transient=True) as progress:
        progress.add_task("reading", total=1)
    console.print("done")
    console.print()  # an empty line asked for is still printed
    assert buffer.getvalue() == "done\n\n"


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_page_labels_a_flag_with_a_value_type():
    root = typer.main.get_command(app)
    pages = 0
    for path, _ in _commands(root):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output and "<list[" not in result.output, (path, result.output)
        pages += 1
    assert pages > 30  # every group and command was looked at
    capture = runner.invoke(app, ["capture", "--help"]).output
    assert re.search(r"--dry-run\s+│?\s*Print the resolved plan", capture) or \
        re.search(r"--dry-run\s+Print", capture)
    assert "KEY=VALUE" in capture and "<int range>" in capture  # options that take values keep their label


def test_log_records_to_a_pipe_are_one_plain_line_each():
    handler = log_handler()
    stream = io.StringIO()
    handler.setStream(stream)
    record = logging.LogRecord("focalrig", logging.ERROR, __file__, 1, "capture failed: " + "x" * 150, None, None)
    handler.handle(record)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.rstrip().endswith("capture failed: " + "x" * 150)
    assert " ERROR " in text


def test_every_file_a_fusion_writes_is_documented_in_the_readme(tmp_path):
    from capture.focal_stack import FocalStack
    from fusion.engine import FusionResult
    from fusion.outputs import write_outputs

    stack = FocalStack(np.zeros((3, 8, 8, 3), np.uint8), np.array([0.5, 1.0, 1.5]))
    zeros = np.zeros((8, 8), np.float32)
    write_outputs(FusionResult(stack.frames[0], zeros, zeros + 0.5, zeros, "classical", "cpu"), stack, tmp_path)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "fused_gray.png" in written
    for name in written:
        documented = f"`{name}`" in readme or (name.endswith("_color.png") and "`_color.png`" in readme)
        assert documented, f"{name} is written by every fusion but README.md does not say what it is"
