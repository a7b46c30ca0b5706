"""The architecture of README's architecture section, checked on the source (lazy imports included).

Packages: drivers <- capture <- (calibration, fusion) <- app; calibration and fusion do not import each other;
only app imports Qt. Rooms of app: cli (the commands), bench (the benchmarks), gui (the window, the only room
that imports Qt), jobs (the per-recording work the commands and ``focalrig batch`` share, and the Dask runner);
the window never imports a command or a benchmark, the benchmarks never a command or the window, the jobs
none of the other rooms, and the command line loads the window only when ``focalrig gui`` runs. Inside every
package the module import graph is acyclic.
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

#: app's rooms, and its hall: the modules directly in app/ (the version, configuration loading) that all rooms use.
ROOMS = ("app.cli", "app.bench", "app.gui", "app.jobs")
HALL = "app"
ROOM_FORBIDDEN = {
    "app.gui": {"app.cli", "app.bench"},
    "app.bench": {"app.cli", "app.gui"},
    "app.cli": set(),
    "app.jobs": {"app.cli", "app.bench", "app.gui"},
    HALL: set(ROOMS),
}


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


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _walk(node: ast.AST, lazy: bool):
    """``node``'s descendants; without ``lazy``, not those inside functions (imports run only when called)."""
    for child in ast.iter_child_nodes(node):
        if not lazy and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        yield child
        yield from _walk(child, lazy)


def imported_modules(path: Path, known: set[str], root: Path = ROOT, *, lazy: bool = True) -> set[str]:
    """Dotted names of the modules among ``known`` that the module at ``path`` imports: ``from P import m`` names the
    submodule P.m when it is one, else the module P (a package's ``__init__`` for the names it re-exports).
    Relative imports are resolved; with ``lazy`` false, imports inside functions are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in _walk(tree, lazy):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return (found & known) - {here}


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (lazy imports included)."""
    paths = sorted((root / package).rglob("*.py"))
    known = {module_name(p, root) for p in paths}
    return {module_name(p, root): imported_modules(p, known, root) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as [a, b, ..., a], or None when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def room_of(module: str) -> str:
    """The room of app that the module named ``module`` lives in (HALL for the modules directly in app/)."""
    return next((room for room in ROOMS if module == room or module.startswith(room + ".")), HALL)


def app_modules_by_room() -> dict[str, list[Path]]:
    rooms: dict[str, list[Path]] = {}
    for path in modules_of("app"):
        rooms.setdefault(room_of(module_name(path)), []).append(path)
    return rooms


def app_module_names() -> set[str]:
    return {module_name(p) for p in modules_of("app")}


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


def test_app_has_its_rooms():
    assert set(app_modules_by_room()) == {*ROOMS, HALL}
    for room in ROOMS:
        assert (ROOT / room.replace(".", "/") / "__init__.py").is_file(), f"{room} is not a package"


def test_a_module_in_the_hall_serves_several_rooms():
    """A helper with a single user lives in its user's room; only what several rooms share sits directly in app/."""
    known = app_module_names()
    users: dict[str, set[str]] = {}
    for path in modules_of("app"):
        for target in imported_modules(path, known):
            users.setdefault(target, set()).add(room_of(module_name(path)))
    for path in app_modules_by_room()[HALL]:
        name = module_name(path)
        if name != HALL:
            rooms = users.get(name, set()) - {HALL}
            assert len(rooms) >= 2, f"{path.relative_to(ROOT)} is used by {sorted(rooms) or 'no room'}: move it there"


@pytest.mark.parametrize("room", [*ROOMS, HALL])
def test_app_rooms_import_only_what_the_map_allows(room):
    known = app_module_names()
    for path in app_modules_by_room()[room]:
        forbidden = {room_of(m) for m in imported_modules(path, known)} & ROOM_FORBIDDEN[room]
        assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)} (room rule: see README)"


@pytest.mark.parametrize("room", [r for r in (*ROOMS, HALL) if r != "app.gui"])
def test_only_the_gui_room_imports_qt(room):
    for path in app_modules_by_room()[room]:
        qt = imported_top_levels(path) & QT_MODULES
        assert not qt, f"{path.relative_to(ROOT)} imports {sorted(qt)}; only app/gui/ may import Qt"


def test_the_command_line_loads_the_gui_only_when_focalrig_gui_runs():
    known = app_module_names()
    for path in app_modules_by_room()["app.cli"]:
        eager = {m for m in imported_modules(path, known, lazy=False) if room_of(m) == "app.gui"}
        assert not eager, f"{path.relative_to(ROOT)} imports {sorted(eager)} at module level (every command loads Qt)"


@pytest.mark.parametrize("package", PACKAGES)
def test_module_imports_form_no_cycle(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, f"import cycle in {package}/: {' -> '.join(cycle)} (lazy imports count too)"


def test_the_check_sees_lazy_imports(tmp_path):
    probe = tmp_path / "m.py"
    probe.write_text("def f():\n    from capture.formats import open_events\n    import PyQt6.QtCore\n")
    assert imported_top_levels(probe) == {"capture", "PyQt6"}


def test_the_cycle_check_sees_lazy_relative_and_package_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.b import thing\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import thing\n")  # lazy and relative: a -> pkg.sub
    (pkg / "sub" / "b.py").write_text("from pkg import a\nthing = 1\n")  # pkg.sub.b -> pkg.a
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.a"] == {"pkg.sub"} and graph["pkg.sub"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("thing = 1\n")
    assert find_cycle(import_graph("pkg", tmp_path)) is None
    eager = imported_modules(pkg / "a.py", {"pkg.sub"}, tmp_path, lazy=False)
    assert eager == set()
