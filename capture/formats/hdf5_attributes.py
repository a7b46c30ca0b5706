"""Reads the string attributes of a Prophesee HDF5 file in a child process that can be killed.

Why a child process: OpenEB stores every attribute (``geometry``, ``format``, the index tables' ``offset``)
as a variable-length string, whose bytes live in a *global heap collection*. HDF5 parses a whole collection
when any of its strings is read, and a collection damaged in a particular way (an object of size zero)
makes that parser loop forever inside C code, where no Python timeout or signal handler can reach it.
Checking the collection in Python first would need its address, which only HDF5's own decoding of the
attribute reveals; validating every object header ourselves would duplicate a large part of HDF5. A child
process bounds the time of *any* failure in this code (a loop, a crash, an allocation of a corrupt size)
and costs one interpreter start (~0.3 s) per file, cached per file version: cheap beside reading the events.

The child imports only h5py (this module does not import focalrig), so it starts fast and does not
depend on how focalrig was installed. It prints one JSON object: the root attributes, the ``offset``
attribute of each index table, and a list of problems met on the way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

#: Seconds the child may take; reading a healthy file's attributes takes milliseconds.
ATTRIBUTE_TIMEOUT_S = 10.0
INDEX_TABLES = ("CD/indexes", "EXT_TRIGGER/indexes")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if hasattr(value, "shape") and getattr(value, "shape", None) == ():
        return _text(value.item())  # type: ignore[union-attr]
    return str(value)


def read_in_this_process(path: str) -> dict:
    """The attributes as a JSON-ready dict; run only in the child (HDF5 may loop here on a corrupt heap)."""
    import h5py

    out: dict = {"root": {}, "offsets": {}, "problems": []}
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        out["problems"].append(f"cannot open: {exc}")
        return out
    with f:
        try:
            names = list(f.attrs)
        except Exception as exc:
            out["problems"].append(f"root attributes unreadable ({exc})")
            names = []
        for name in names:
            try:
                out["root"][name] = _text(f.attrs[name])
            except Exception as exc:
                out["problems"].append(f"attribute '{name}' unreadable ({exc})")
        for table in INDEX_TABLES:
            try:
                obj = f.get(table)
                if isinstance(obj, h5py.Dataset) and "offset" in obj.attrs:
                    out["offsets"][table] = _text(obj.attrs["offset"])
            except Exception as exc:
                out["problems"].append(f"/{table} 'offset' attribute unreadable ({exc})")
    return out


def _child_command(path: Path) -> list[str]:
    """Run this file as a script (by path, so the child imports h5py and nothing of focalrig)."""
    script = Path(__file__).resolve()
    return [sys.executable, "-c", f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", str(path)]


@lru_cache(maxsize=64)
def _read_cached(path: str, size: int, mtime_ns: int, timeout_s: float) -> str:
    try:
        done = subprocess.run(_child_command(Path(path)), capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return json.dumps({"root": {}, "offsets": {}, "problems": [
            f"HDF5 did not finish reading the attributes in {timeout_s:g} s (a corrupt attribute heap makes it "
            "loop); they are ignored"]})
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return json.dumps({"root": {}, "offsets": {}, "problems": [
            f"reading the attributes failed ({how}{': ' + tail[0] if tail[0] else ''}); they are ignored"]})
    return done.stdout.decode("utf-8", "replace")


def read_attributes(path: Path, timeout_s: float | None = None) -> dict:
    """``{"root": {name: text}, "offsets": {table: text}, "problems": [text]}`` of the file at ``path``.

    Never raises for the file's content: what cannot be read is left out and described in ``problems``.
    ``timeout_s`` defaults to :data:`ATTRIBUTE_TIMEOUT_S` (read when called).
    Results are cached per (path, size, modification time), so reopening a file costs nothing.
    """
    st = path.stat()
    timeout_s = ATTRIBUTE_TIMEOUT_S if timeout_s is None else timeout_s
    text = _read_cached(str(path.resolve()), st.st_size, st.st_mtime_ns, timeout_s)
    try:
        data = json.loads(text)
    except ValueError:
        return {"root": {}, "offsets": {}, "problems": ["the attribute reader returned no result; attributes ignored"]}
    return data


if __name__ == "__main__":
    print(json.dumps(read_in_this_process(sys.argv[1])))
