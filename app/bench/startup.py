"""``focalrig bench startup``: whole ``focalrig`` processes timed from the outside, as a user waits for them.

Each case runs the installed command in a fresh interpreter (the ``focalrig`` script beside this Python, else
``python -m app.cli``) ``repeat`` times after one warm-up run, which fills the OS file cache and, as a user's
first run does, the bytecode cache (``PYTHONDONTWRITEBYTECODE``, set on some CI machines, is lifted for it: without
cached bytecode every run recompiles focalrig's modules, ~0.05 s no user pays twice); the best wall time and
the best CPU time of the child (user + system, from :func:`os.wait4`) are printed beside the target. On a shared
machine the wall time grows with the load, the CPU time much less. ``predict --method classical`` fuses a 640x480,
16-plane PNG stack written once into a temporary folder; enfuse, when installed, fuses the same PNGs whole-process
for comparison. Figures are printed, never asserted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

#: (name, arguments after ``focalrig``, target seconds): --help and the light commands, then a whole fusion.
LIGHT_CASES: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("focalrig --help", ("--help",), 0.3),
    ("focalrig --version", ("--version",), 0.3),
    ("focalrig capture --help", ("capture", "--help"), 0.3),
    ("focalrig config check", ("config", "check"), 0.3),
    ("focalrig devices list", ("devices", "list"), 0.3),
)
PREDICT_TARGET_S = 0.6
#: The floors under those figures: the interpreter alone, and a one-option typer command (typer validates option
#: values with pydantic, so every command but a top-level --help pays for importing it).
FLOOR_CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("python -c pass (floor)", ("-c", "pass")),
    ("a bare typer command (floor)", ("-c", "import typer\napp = typer.Typer()\n@app.command()\n"
                                      "def main(n: int = 1) -> None:\n    pass\napp()\n", "--n", "2")),
)
#: enfuse as ``focalrig eval`` runs it (fusion.peers): contrast only, hard mask.
ENFUSE_PRESET = ("--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1", "--hard-mask")


@dataclass(frozen=True)
class Timing:
    """Best of several runs of one command: wall and CPU seconds (each minimised on its own)."""

    wall_s: float
    cpu_s: float


def focalrig_command() -> list[str]:
    """How a user starts focalrig from this environment: its console script, else ``python -m app.cli``."""
    script = shutil.which("focalrig", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "app.cli"]


def time_process(cmd: list[str], repeat: int, cwd: Path | None = None) -> Timing:
    """Best wall and CPU seconds of ``cmd`` over ``repeat`` runs after one warm-up; a failing run raises."""
    walls, cpus = [], []
    warm_up_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for i in range(repeat + 1):
        with tempfile.TemporaryFile() as stderr:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
                                    env=None if i else warm_up_env)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own CPU time, which Popen.wait does not give
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                stderr.seek(0)
                tail = stderr.read().decode(errors="replace").strip()[-500:]
                raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {tail}")
        if i:  # the first run only warms the caches
            walls.append(wall)
            cpus.append(usage.ru_utime + usage.ru_stime)
    return Timing(min(walls), min(cpus))


def write_stack(folder: Path, size: tuple[int, int] = (640, 480), n_planes: int = 16) -> Path:
    """A synthetic focal stack as numbered PNGs (1.png …), the layout ``focalrig predict --input_dir`` reads."""
    from capture.stack_folders import write_image
    from fusion.synthetic import synthetic_stack

    stack = synthetic_stack(0, size=size, n_planes=n_planes, with_events=False)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(stack.frames, 1):
        write_image(folder / f"{i}.png", frame)
    return folder


def run_startup_benchmark(console: Console, *, repeat: int = 5, predict: bool = True) -> list[dict]:
    """Time the light commands and (``predict``) a whole classical fusion; print the table, return its rows."""
    base = focalrig_command()
    rows = [{"case": name, "target_s": None, **vars(time_process([sys.executable, *args], repeat))}
            for name, args in FLOOR_CASES]
    for name, args, target in LIGHT_CASES:
        rows.append({"case": name, "target_s": target, **vars(time_process([*base, *args], repeat))})
    if predict:
        with tempfile.TemporaryDirectory(prefix="focalrig-bench-startup-") as tmp:
            stack = write_stack(Path(tmp) / "stack")
            out = Path(tmp) / "out"
            cmd = [*base, "predict", "--input_dir", str(stack), "--output_dir", str(out), "--method", "classical"]
            rows.append({"case": "focalrig predict --method classical (640x480, 16 planes)",
                         "target_s": PREDICT_TARGET_S, **vars(time_process(cmd, repeat))})
            enfuse = shutil.which("enfuse")
            if enfuse:
                frames = sorted(stack.glob("*.png"), key=lambda p: int(p.stem))
                cmd = [enfuse, *ENFUSE_PRESET, f"--output={Path(tmp) / 'enfuse.tif'}", *map(str, frames)]
                rows.append({"case": "enfuse, same stack (for comparison)", "target_s": None,
                             **vars(time_process(cmd, repeat))})
    table = Table(title=f"whole-process start-up, best of {repeat} after a warm-up ({os.cpu_count()} CPU cores; "
                        f"{' '.join(base)})", title_justify="left")
    for column in ("command", "wall s", "CPU s", "target s", ""):
        table.add_column(column, justify="left" if column == "command" else "right")
    for row in rows:
        target = row["target_s"]
        verdict = "" if target is None else ("[green]meets[/]" if row["wall_s"] <= target else "[red]over[/]")
        table.add_row(row["case"], f"{row['wall_s']:.3f}", f"{row['cpu_s']:.3f}",
                      "" if target is None else f"{target:.1f}", verdict)
    console.print(table)
    return rows
