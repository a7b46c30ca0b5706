"""Fixtures of the GUI tests: offscreen Qt, a small fast simulated rig, windows that are always torn down."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading

import pytest

#: The default simulated rig, shrunk so a sweep simulates in a fraction of a second.
SMALL_SIM = """
[lens]
backend = "optotune-ld4"
port = "optosim://{name}"
[sim]
rgb_size = [96, 72]
event_size = [96, 72]
realtime = false
"""


@pytest.fixture
def settings_path(tmp_path, monkeypatch):
    path = tmp_path / "gui.json"
    monkeypatch.setenv("FOCALRIG_GUI_SETTINGS", str(path))
    return path


@pytest.fixture
def small_config(tmp_path, request):
    """A config file for a tiny simulated rig with its own lens simulator name."""
    name = f"gui-{request.node.name}".replace("[", "-").replace("]", "")
    path = tmp_path / "small.toml"
    path.write_text(SMALL_SIM.format(name=name))
    return path


@pytest.fixture
def no_leaks(qapp):
    """Fail when a test leaves a top-level window open or a GUI worker thread running."""
    before_threads = {t.ident for t in threading.enumerate()}
    yield
    from PyQt6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    qapp.processEvents()
    visible = [w for w in qapp.topLevelWidgets() if w.isVisible()]
    assert not visible, f"windows left open: {visible}"
    leaked = [t.name for t in threading.enumerate() if t.ident not in before_threads and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"
    import multiprocessing

    assert not multiprocessing.active_children(), "the fusion process was left running"


@pytest.fixture
def window(qtbot, small_config, settings_path, no_leaks):
    """The main window on the small simulated rig, shown, closed after the test."""
    from app.gui.main import GuiOptions, build_window

    win, _ = build_window(GuiOptions(config=small_config, settings_path=settings_path))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
