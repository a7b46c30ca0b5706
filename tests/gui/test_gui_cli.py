"""``focalrig gui`` as a user runs it: the scripted capture-and-fuse writes a screenshot and exits 0."""

import os
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]


def test_scripted_capture_and_fuse_writes_a_screenshot_and_exits_0(tmp_path, small_config):
    shot = tmp_path / "out.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FOCALRIG_GUI_SETTINGS": str(tmp_path / "gui.json")}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "gui", "--config", str(small_config), "--set", "plan.high_dpt=2.0",
         "--set", "plan.n_planes=4", "--capture-and-fuse", "--screenshot", str(shot), "--exit", "--warmup", "0.5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "capture-and-fuse: sweep" in proc.stdout and "longest stall" in proc.stdout
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[1] >= 1200 and image.std() > 10
    assert (tmp_path / "gui.json").is_file()  # the window saved its settings on the way out


def test_gui_reports_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[lens]\nbackend = 'no-such-lens'\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "FOCALRIG_GUI_SETTINGS": str(tmp_path / "gui.json")}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "gui", "--config", str(bad), "--exit"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad.toml: lens.backend" in proc.stderr and "Traceback" not in proc.stderr


def test_gui_without_a_display_says_so_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["FOCALRIG_GUI_SETTINGS"] = str(tmp_path / "gui.json")
    proc = subprocess.run([sys.executable, "-m", "app.cli", "gui"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "no display" in proc.stderr
