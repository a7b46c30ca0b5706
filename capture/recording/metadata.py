"""Provenance: software versions (with git SHA), atomic JSON files and the JSON Lines run log.

app-notes.md §7: every recording says who made it with what (versions, devices, plan, calibration) and how it
ended (exit status, reason, counts, drops), in versioned documents so readers can migrate.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata as _im
from pathlib import Path
from typing import Any

_PACKAGES = ("focalrig", "numpy", "numba", "h5py", "pydantic", "pyserial", "torch")


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


def software_versions() -> dict[str, Any]:
    """Versions of Python, the packages a recording depends on, HDF5, and the git SHA/dirty flag of the source."""
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = _im.version(name)
        except _im.PackageNotFoundError:
            continue
    try:
        import h5py

        out["hdf5"] = h5py.version.hdf5_version
    except ImportError:  # pragma: no cover - h5py is a dependency
        pass
    out.update(git_state(Path(__file__).resolve().parents[2]))
    return out


def git_state(repo: Path) -> dict[str, Any]:
    """``git_sha`` and ``git_dirty`` of the source tree, or nothing when it is not a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5)
        return {"git_sha": sha.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a rename or a new file in it is on disk (POSIX; elsewhere nothing to do)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``name.tmp``, fsync, rename over ``name``, fsync the folder: a reader sees the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=_jsonable)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _jsonable(value: Any) -> Any:
    """numpy scalars and paths in documents become plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


class RunLog:
    """``run.jsonl``: one JSON document per line, each flushed as written; ``sync()`` fsyncs (once per sweep)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, doc: str, **fields: Any) -> None:
        self._file.write(json.dumps({"doc": doc, "time": utc_now(), **fields}, default=_jsonable) + "\n")
        self._file.flush()

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def read_run_log(path: Path) -> list[dict]:
    """Every complete document of a run log; a line cut by a crash (the last one) is ignored.

    So is any other line that is not a JSON object (a damaged disk block): the documents after it are
    still read, since the stop document at the end is what tells a finished recording from a crashed one.
    """
    docs = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return docs
    for line in data.splitlines():
        try:
            doc = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs
