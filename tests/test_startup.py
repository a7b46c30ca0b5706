"""Start-up stays fast: the command line loads none of the heavy libraries (numba kernels, torch, h5py, Qt, numpy,
pydantic, OpenCV) before a command needs them. Checked on which modules a fresh interpreter has loaded, not on
time (``focalrig bench startup`` prints the times)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numba", "llvmlite", "h5py", "PyQt6", "pyqtgraph", "numpy", "pydantic", "cv2", "scipy", "serial")

#: Runs focalrig's main with the given arguments and reports, on the last line of stderr, the heavy modules loaded.
_PROBE = """
import sys
heavy = sys.argv[1].split(",")
sys.argv = ["focalrig", *sys.argv[2:]]
from app.cli import main
try:
    main()
except SystemExit:
    pass
print("LOADED " + ",".join(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def loaded_by(*args: str) -> set[str]:
    """The heavy modules a fresh ``focalrig ARGS`` process has imported when it ends."""
    done = subprocess.run([sys.executable, "-c", _PROBE, ",".join(HEAVY), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("LOADED"), done.stderr
    return {m for m in last.removeprefix("LOADED").strip().split(",") if m}


def test_importing_the_cli_loads_no_heavy_library():
    code = ("import sys, typer.main; import app.cli; typer.main.get_command(app.cli.app); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_loads_no_heavy_library():
    assert loaded_by("--help") == set()


@pytest.mark.parametrize("args", [("capture", "--help"), ("events", "info", "--help"), ("config", "check"),
                                  ("devices", "list"), ("batch", "fuse", "--help"), ("--version",)])
def test_light_commands_load_at_most_pydantic(args):
    """typer itself validates option values with pydantic, and the configuration is pydantic models."""
    assert loaded_by(*args) <= {"pydantic"}


def test_classical_predict_loads_neither_torch_nor_numba_nor_h5py_nor_qt(tmp_path):
    import cv2

    stack = tmp_path / "stack"
    stack.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 5):
        cv2.imwrite(str(stack / f"{i}.png"), (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    loaded = loaded_by("predict", "--input_dir", str(stack), "--output_dir", str(tmp_path / "out"),
                       "--method", "classical")
    assert (tmp_path / "out" / "fused.png").is_file()  # it did fuse
    assert loaded <= {"numpy", "cv2", "pydantic"}


_SETTINGS_PROBE = """
import gc, os, sys
sys.argv = ["focalrig", "--version"]
from app.cli import main
try:
    main()
except SystemExit:
    pass
print("SETTINGS", os.environ.get("OPENBLAS_NUM_THREADS"), gc.get_freeze_count() > 0, file=sys.stderr)
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("3", "3")])
def test_main_gives_blas_one_thread_unless_told_and_freezes_the_heap_at_exit(given, expected):
    """numpy's BLAS threads spin against focalrig's own per-core work: one unless the user set a number; and the
    objects alive at the end are frozen out of the final collection, which only slows the exit."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | {"PYTHONPATH": str(ROOT)}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    done = subprocess.run([sys.executable, "-c", _SETTINGS_PROBE], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.stderr.strip().splitlines()[-1] == f"SETTINGS {expected} True", done.stderr
