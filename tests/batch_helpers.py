"""For the batch tests: tiny simulated recordings, a worker that is killed mid-job, and output comparisons."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
from distributed import WorkerPlugin

from app.bench.batch import output_bytes
from calibration.model import Calibration, SpatialCalibration, TemporalCalibration
from capture.engine import CaptureEngine
from tests.capture_rigs import SIZE, plan, sim_rig

#: Fields of the JSON files that record when, where and with which build a job ran, not what it computed.
RUN_FIELDS = {"result.json": ("timings_s",),
              "provenance.json": ("started", "finished", "seconds", "worker", "pid", "peak_rss_mib", "host",
                                  "versions")}


def record(folder: Path, n: int, sweeps: int = 2) -> tuple[list[Path], Path]:
    """``n`` recordings of the 48x36 simulated rig (``sweeps`` sweeps each), captured with a calibration (the
    simulator's true geometry and lens lag) that their metadata names; returns them and the calibration file."""
    recordings = []
    calib = None
    for _ in range(n):
        rig, _ = sim_rig()
        if calib is None:
            spatial = SpatialCalibration(SIZE, SIZE, np.linalg.inv(rig.sim.renderer.geometry.homography))
            calib = Calibration(spatial, TemporalCalibration(lag_us=rig.sim.trajectory.lag_us)).save(
                folder / "calib.json")
        with rig:
            status = CaptureEngine(rig, plan(sweeps=sweeps), folder / "recordings", calibration_path=calib).run()
        assert status.exit_status == "success"
        recordings.append(status.recording)
    return recordings, calib


def output_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → bytes), with the JSON files' run fields dropped."""
    return output_bytes(folder, run_fields=RUN_FIELDS, skip=())


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` but summary.json: relative path → (size, modification time in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and p.name != "summary.json"}


class KillMidJob(WorkerPlugin):
    """SIGKILLs the worker it runs on, once in the whole cluster, as soon as the batch job that worker is running
    has written part of its output (its ``.partial-`` folder holds a file): a worker lost mid-write.

    The first worker to get there creates ``marker`` (exclusively, so only one dies) holding its pid.
    """

    name = "test-kill-mid-job"

    def __init__(self, out: Path, marker: Path) -> None:
        self.out = str(out)
        self.marker = str(marker)

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and not os.path.exists(self.marker):
            job_key = str(key).split("-", 1)[1].rsplit("-", 1)[0]  # "<kind>-<output key>-<random>"
            threading.Thread(target=self._kill_when_written, args=(job_key,), daemon=True).start()

    def _kill_when_written(self, job_key: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not os.path.exists(self.marker):
            for partial in Path(self.out).glob(f".partial-{job_key}.*"):
                if any(p.is_file() for p in partial.rglob("*")):
                    try:
                        fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    except FileExistsError:
                        return
                    os.write(fd, str(os.getpid()).encode())
                    os.close(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.002)


def worker_state() -> dict:
    """What a batch worker was set up with: OpenCV's and numba's thread counts, whether the fusion modules are
    loaded, and whether a 1 MiB array is given its own mmap (it is not once glibc's thresholds are settled)."""
    import ctypes
    import sys

    import cv2

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                        "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2().hblks
    block = np.ones(1 << 20, np.uint8)
    mapped = libc.mallinfo2().hblks > before
    del block
    return {"cv2_threads": cv2.getNumThreads(), "numba_env": os.environ.get("NUMBA_NUM_THREADS"),
            "preloaded": "fusion.classical" in sys.modules, "1mib_mmapped": mapped}
