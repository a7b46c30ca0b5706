"""The layering rule of README's architecture section, checked on the source (lazy imports included).

drivers <- capture <- (calibration, fusion) <- app; calibration and fusion do not import each other;
only app imports Qt.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("drivers", "capture", "calibration", "fusion", "app")
ALLOWED = {
    "drivers": {"drivers"},
    "capture": {"drivers", "capture"},
    "calibration": {"drivers", "capture", "calibration"},
    "fusion": {"drivers", "capture", "fusion"},
    "app": set(PACKAGES),
}
QT_MODULES = {"PyQt6", "PyQt5", "PySide6", "PySide2", "pyqtgraph", "pytestqt"}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_the_layers(package):
    for path in modules_of(package):
        internal = imported_top_levels(path) & set(PACKAGES)
        forbidden = internal - ALLOWED[package]
        assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)} (layer rule: see README)"


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "app"])
def test_only_app_imports_qt(package):
    for path in modules_of(package):
        qt = imported_top_levels(path) & QT_MODULES
        assert not qt, f"{path.relative_to(ROOT)} imports {sorted(qt)}; only app/ may import Qt"


def test_the_check_sees_lazy_imports(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("def f():\n    from capture.formats import open_events\n    import PyQt6.QtCore\n")
    assert imported_top_levels(probe) == {"capture", "PyQt6"}
