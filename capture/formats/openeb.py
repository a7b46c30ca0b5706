"""OpenEB as an independent oracle for event files: its tools and its Python API, run beside focalrig.

Used by the tests (files both ways, ``EventsIterator`` parity) and by ``focalrig bench io`` (OpenEB's own
figures on the same files). The tools run as subprocesses with the install's environment; the Python API
runs in :attr:`drivers.openeb.OpenEB.python` through :mod:`capture.formats.openeb_worker`, because OpenEB
reads HDF5 through an h5py that must load the ECF plugin, which this process's PyPI h5py cannot do safely.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.events.dtypes import make_cd, make_triggers
from drivers.openeb import OpenEB, find_openeb, where_looked

WORKER = Path(__file__).with_name("openeb_worker.py")


class OpenEBError(RuntimeError):
    """An OpenEB tool or worker failed; the message carries its command and its own error output."""


@dataclass(frozen=True)
class IteratorRun:
    """What OpenEB's ``EventsIterator`` yielded: slice sizes, ``current_time`` after each, all events."""

    sizes: np.ndarray
    current_time: np.ndarray
    cd: np.ndarray
    triggers: np.ndarray

    def slices(self) -> list[np.ndarray]:
        """The CD events of each slice, in order."""
        return np.split(self.cd, np.cumsum(self.sizes)[:-1]) if self.sizes.size else []


class Oracle:
    """One OpenEB install, driven from this process."""

    def __init__(self, install: OpenEB | None = None, *, timeout_s: float = 300.0) -> None:
        install = install or find_openeb()
        if install is None:
            raise OpenEBError(f"OpenEB is not installed (looked in {where_looked()})")
        self.install = install
        self.timeout_s = timeout_s

    # -- command-line tools ---------------------------------------------------------------------------
    def run_tool(self, name: str, *args: str | Path, cwd: str | Path | None = None) -> str:
        """Run ``bin/<name> args``; its standard output, or OpenEBError with its error output."""
        cmd = [str(self.install.tool(name)), *map(str, args)]
        return self._run(cmd, cwd)

    def file_to_csv(self, src: str | Path, out: str | Path, *, absolute: bool = True) -> None:
        """``metavision_file_to_csv``; ``absolute`` (``-d``) keeps RAW times unshifted, as focalrig decodes them."""
        self.run_tool("metavision_file_to_csv", "-i", src, "-o", out, *(["-d"] if absolute else []))

    def file_to_hdf5(self, src: str | Path, out: str | Path) -> None:
        """``metavision_file_to_hdf5``: OpenEB's own ECF HDF5 (with OpenEB's default RAW time shift)."""
        self.run_tool("metavision_file_to_hdf5", "-i", src, "-o", out)

    def cut(self, src: str | Path, out: str | Path, start_s: float, end_s: float) -> None:
        """``metavision_file_cutter``: the part of ``src`` from ``start_s`` to ``end_s`` after its start."""
        times = ("-s", str(float(start_s)), "-e", str(float(end_s)))
        self.run_tool("metavision_file_cutter", "-i", src, "-o", out, *times)

    # -- Python API, in OpenEB's interpreter ---------------------------------------------------------------
    def decode(self, path: str | Path, *, time_shift: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every (CD, trigger) event of a RAW or HDF5 file as ``EventsIterator`` decodes it."""
        res = self._work({"op": "decode", "path": str(path), "time_shift": time_shift})
        return res["cd"], res["triggers"]

    def iterate(self, path: str | Path, *, time_shift: bool = False, **kwargs) -> IteratorRun:
        """Run ``EventsIterator(path, **kwargs)`` (mode, delta_t, n_events, start_ts, max_duration, ...)."""
        res = self._work({"op": "iterate", "path": str(path), "time_shift": time_shift, **kwargs})
        return IteratorRun(res["sizes"], res["current_time"], res["cd"], res["triggers"])

    def read_hdf5(self, path: str | Path) -> dict[str, np.ndarray | dict]:
        """A Prophesee HDF5 file's events and indexes through h5py and the real ECF filter, plus its attributes."""
        res = self._work({"op": "h5", "path": str(path)})
        out: dict[str, np.ndarray | dict] = {k: v for k, v in res.items() if k != "attrs"}
        out["attrs"] = json.loads(str(res["attrs"]))
        return out

    def time_decoders(self, path: str | Path, repeats: int = 3) -> dict[str, dict[str, float]]:
        """Best-of-``repeats`` seconds (and event counts) for ``RawReader`` and ``EventsIterator`` on a RAW file."""
        return self._work({"op": "time", "path": str(path), "repeats": repeats}, as_json=True)

    # -- internals ----------------------------------------------------------------------------------------
    def _work(self, job: dict, *, as_json: bool = False):
        with tempfile.TemporaryDirectory(prefix="focalrig-openeb-") as tmp:
            job = {**job, "out": str(Path(tmp) / ("out.json" if as_json else "out.npz"))}
            job_path = Path(tmp) / "job.json"
            job_path.write_text(json.dumps(job))
            # The worker runs in the temporary folder: opening a RAW file makes the HAL write an index beside
            # it when it can, and a read-only data folder only makes it say so.
            self._run([self.install.python, str(WORKER), str(job_path)], tmp)
            if as_json:
                return json.loads(Path(job["out"]).read_text())
            with np.load(job["out"]) as data:
                return {k: _metavision_dtype(data[k]) for k in data.files}

    def _run(self, cmd: list[str], cwd: str | Path | None) -> str:
        try:
            proc = subprocess.run(cmd, env=self.install.env(), cwd=cwd, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OpenEBError(f"{' '.join(cmd)}: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
            raise OpenEBError(f"{' '.join(cmd)} exited with {proc.returncode}: {tail}")
        return proc.stdout


def _metavision_dtype(arr: np.ndarray) -> np.ndarray:
    """Event arrays in focalrig's Metavision dtypes (padding and all): ``.npz`` files keep fields, not layouts."""
    names = arr.dtype.names or ()
    if set(names) >= {"x", "y", "p", "t"}:
        return make_cd(arr["x"], arr["y"], arr["p"], arr["t"])
    if set(names) >= {"p", "t", "id"}:
        return make_triggers(arr["p"], arr["t"], arr["id"])
    return arr
