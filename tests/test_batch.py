"""`focalrig batch`: the single commands' work over many recordings on a real Dask cluster of worker processes.

Recordings are the 48x36 simulated rig's (two sweeps each), so every batch is a few seconds, most of it the
cluster starting. Outputs are compared with the single command's byte for byte, apart from the fields that say
when and where a job ran (timings, worker, host).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from app.cli import app
from app.jobs.fuse import FuseSettings
from app.jobs.inputs import identify
from app.jobs.keyed import PARTIAL, Task, is_done, run_task
from app.jobs.kinds import output_key, settings_hash
from tests.batch_helpers import KillMidJob, output_files, record, snapshot, worker_state

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
FUSE = ("--planes", "4")


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def summary_rows(out: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads((out / "summary.json").read_text())["rows"]}


def keyed_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three good recordings, and a fourth whose frames.h5 is garbage, in one folder; and their calibration."""
    root = tmp_path_factory.mktemp("batch")
    recs, calib = record(root, 4)
    (recs[3] / "frames.h5").write_bytes(b"this is not HDF5" * 64)
    return recs[:3], recs[3], calib


@pytest.fixture(scope="module")
def batch(recordings, tmp_path_factory):
    """`focalrig batch fuse` over the recordings' folder (the corrupt one included) on the embedded cluster (2
    worker processes)."""
    good, _, _ = recordings
    out = tmp_path_factory.mktemp("batch-out")
    result = invoke("batch", "fuse", good[0].parent, "--out", out, *FUSE, "--workers", "2")
    return result, out


@pytest.fixture(scope="module")
def single(recordings, tmp_path_factory):
    """`focalrig fuse --all` of each good recording: what the batch must have written."""
    good, _, _ = recordings
    out = tmp_path_factory.mktemp("single-out")
    for rec in good:
        result = invoke("fuse", rec, "--all", "--out", out / rec.name, *FUSE)
        assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of two worker processes reached by address (--scheduler) (each batch reaches it by address)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c.scheduler_address


def test_the_batch_writes_what_the_single_command_writes(recordings, batch, single):
    good, _, _ = recordings
    _, out = batch
    rows = summary_rows(out)
    for rec in good:
        row = rows[rec.name]
        assert row["status"] == "done", row
        folder = Path(row["output"])
        assert folder.parent == out and folder.name.startswith(f"{rec.name}-{row['uid'][:8]}-")
        batch_files = {k: v for k, v in output_files(folder).items() if k != "provenance.json"}
        assert batch_files == output_files(single / rec.name)
        assert len([k for k in batch_files if k.endswith("fused.png")]) == 2  # both sweeps
        assert json.loads(batch_files["sweep00001/result.json"])["input"]["planes"] == 4  # the options reached it


def test_each_output_carries_its_provenance(recordings, batch):
    good, _, calib = recordings
    _, out = batch
    row = summary_rows(out)[good[0].name]
    doc = json.loads((Path(row["output"]) / "provenance.json").read_text())
    assert doc["input"]["uid"] == json.loads((good[0] / "metadata.json").read_text())["uid"]
    assert doc["calibration"]["path"] == str(calib)  # the one the recording names, since --calib was not given
    assert doc["calibration"]["id"] == json.loads(calib.read_text())["id"]
    assert doc["settings"]["method"] == "classical"  # auto, decided once for the batch: no GPU here
    assert doc["settings"]["events"] is True and doc["settings"]["planes"] == 4
    assert doc["versions"]["focalrig"] and doc["versions"]["distributed"]
    assert set(doc["files"]) >= {"sweep00000/fused.png", "sweep00001/result.json"}


def test_a_corrupt_recording_fails_alone_with_its_message(recordings, batch):
    good, corrupt, _ = recordings
    result, out = batch
    assert result.exit_code == 1, result.output
    rows = summary_rows(out)
    assert rows[corrupt.name]["status"] == "failed"
    assert "frames.h5" in rows[corrupt.name]["message"] and "Traceback" not in result.output
    assert [rows[r.name]["status"] for r in good] == ["done"] * 3
    assert f"failed: {corrupt.name}" in result.output
    # nothing of the failed one is left behind, not even a half-written folder
    assert len(keyed_folders(out)) == 3 and not list(out.glob(f"{PARTIAL}*"))


def test_a_rerun_does_nothing_and_an_interrupted_batch_resumes(recordings, batch, cluster):
    good, _, _ = recordings
    _, out = batch
    rows = summary_rows(out)
    before = snapshot(out)
    again = invoke("batch", "fuse", *good, "--out", out, *FUSE, "--workers", "2")
    assert again.exit_code == 0, again.output
    assert {r["status"] for r in summary_rows(out).values()} == {"skipped"}
    assert "cluster:" not in again.output  # nothing to do: no cluster was even started
    assert snapshot(out) == before
    # an interrupted batch: one output never renamed into place, its half-written folder left behind
    lost = Path(rows[good[1].name]["output"])
    expected = output_files(lost)
    half = out / f"{PARTIAL}{lost.name}.dead0000"
    lost.rename(half)
    (half / "sweep00001").mkdir(exist_ok=True)
    resumed = invoke("batch", "fuse", *good, "--out", out, *FUSE, "--scheduler", cluster)
    assert resumed.exit_code == 0, resumed.output
    statuses = {name: r["status"] for name, r in summary_rows(out).items()}
    assert statuses == {good[0].name: "skipped", good[1].name: "done", good[2].name: "skipped"}
    assert not half.exists() and output_files(lost) == expected


def test_a_killed_worker_is_survived(recordings, batch, cluster, tmp_path):
    """One worker process is SIGKILLed while its job is writing; the batch completes, every output exactly once
    and equal to the undisturbed run's."""
    good, _, _ = recordings
    _, undisturbed = batch
    out, marker = tmp_path / "out", tmp_path / "killed.pid"
    with Client(cluster) as client:
        client.register_plugin(KillMidJob(out, marker))
        try:
            result = invoke("batch", "fuse", *good, "--out", out, *FUSE, "--scheduler", cluster)
        finally:
            client.unregister_worker_plugin(KillMidJob.name)
    assert result.exit_code == 0, result.output
    killed = int(marker.read_text())  # a worker was killed, mid-write ...
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)
    assert {r["status"] for r in summary_rows(out).values()} == {"done"}
    assert killed not in {r["pid"] for r in summary_rows(out).values()}  # ... and its job finished elsewhere
    assert [p.name for p in keyed_folders(out)] == [p.name for p in keyed_folders(undisturbed)]
    assert not list(out.glob(f"{PARTIAL}*"))
    for folder in keyed_folders(out):
        assert output_files(folder) == output_files(undisturbed / folder.name)


def scheduler_address(info: Path, timeout_s: float = 60) -> str:
    """The address a starting `dask scheduler` writes to its scheduler file (read once the file is whole)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return json.loads(info.read_text())["address"]
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_separately_started_scheduler_by_its_address_and_its_gpu_worker(recordings, batch, tmp_path):
    """`dask scheduler` and two `dask worker` processes started on their own, one offering a GPU resource (as
    `dask cuda worker --resources GPU=1` does); the address comes from DASK_SCHEDULER_ADDRESS, as on a cluster
    whose set-up exports it. Classical jobs run anywhere; with GPUs on offer, `--method auto` is the network and
    its jobs go to the GPU worker only (the network runs there on its CPU: there is no CUDA here)."""
    good, _, _ = recordings
    _, undisturbed = batch
    info = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    quiet = {"cwd": ROOT, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([*dask, "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                              **quiet)]
    try:
        address = scheduler_address(info)
        for extra in (["--name", "cpu"], ["--name", "gpu", "--resources", "GPU=1"]):
            procs.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--no-dashboard", *extra],
                                          **quiet))
        with Client(address) as client:
            client.wait_for_workers(2, timeout=120)
            gpu_worker = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "gpu")
        env = {"DASK_SCHEDULER_ADDRESS": address}
        classical = invoke("batch", "fuse", *good[:2], "--out", tmp_path / "classical", *FUSE, "--method", "classical",
                           env=env)
        auto = invoke("batch", "fuse", *good, "--out", tmp_path / "auto", *FUSE, env=env)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
    assert classical.exit_code == 0, classical.output
    assert json.loads((tmp_path / "classical" / "summary.json").read_text())["cluster"]["scheduler"] == address
    assert len(keyed_folders(tmp_path / "classical")) == 2
    for folder in keyed_folders(tmp_path / "classical"):
        assert output_files(folder) == output_files(undisturbed / folder.name)
    assert auto.exit_code == 0, auto.output
    rows = summary_rows(tmp_path / "auto").values()
    assert len(rows) == 3 and all(r["worker"] == gpu_worker and r["message"].endswith(", net") for r in rows)


def test_batch_fuse_passes_the_single_commands_options_on(recordings, cluster, tmp_path):
    good, _, _ = recordings
    result = invoke("batch", "fuse", good[0], "--out", tmp_path / "batch", *FUSE, "--single-frame", "--sweep", "1",
                    "--scheduler", cluster)
    assert result.exit_code == 0, result.output
    single = invoke("fuse", good[0], "--sweep", "1", "--out", tmp_path / "single", *FUSE, "--single-frame")
    assert single.exit_code == 0, single.output
    folder = Path(summary_rows(tmp_path / "batch")[good[0].name]["output"])
    assert json.loads((folder / "provenance.json").read_text())["settings"]["single_frame"] is True
    assert {k: v for k, v in output_files(folder).items() if k != "provenance.json"} == output_files(
        tmp_path / "single")


def test_batch_stack_writes_what_stack_writes(recordings, cluster, tmp_path):
    good, _, calib = recordings
    result = invoke("batch", "stack", *good[:2], "--out", tmp_path / "batch", "--format", "npz", "--planes", "4",
                    "--scheduler", cluster)
    assert result.exit_code == 0, result.output
    for rec in good[:2]:
        single = invoke("stack", rec, "--calib", calib, "--out", tmp_path / "single" / rec.name, "--format", "npz",
                        "--planes", "4")
        assert single.exit_code == 0, single.output
        folder = Path(summary_rows(tmp_path / "batch")[rec.name]["output"])
        for npz in (tmp_path / "single" / rec.name).glob("*.npz"):
            with np.load(npz) as want, np.load(folder / npz.name) as got:
                assert want.files == got.files
                for name in want.files:
                    floats = want[name].dtype.kind == "f"
                    assert np.array_equal(want[name], got[name], equal_nan=floats), name


def test_batch_convert_writes_what_events_convert_writes(recordings, cluster, tmp_path):
    good, _, _ = recordings
    raw = tmp_path / "bare.raw"
    shutil.copy(good[0] / "events.raw", raw)
    result = invoke("batch", "convert", good[1], raw, "--out", tmp_path / "batch", "--to", "csv",
                    "--scheduler", cluster)
    assert result.exit_code == 0, result.output
    rows = summary_rows(tmp_path / "batch")
    for name, src, stem in ((good[1].name, good[1] / "events.raw", good[1].name), ("bare.raw", raw, "bare")):
        single = invoke("events", "convert", src, tmp_path / f"{stem}.csv")
        assert single.exit_code == 0, single.output
        folder = Path(rows[name]["output"])
        assert (folder / f"{stem}.csv").read_bytes() == (tmp_path / f"{stem}.csv").read_bytes()
        assert (folder / f"{stem}_triggers.csv").read_bytes() == (tmp_path / f"{stem}_triggers.csv").read_bytes()
    assert rows["bare.raw"]["uid"].startswith("fp-")  # a bare file has no uid: its content stands for it


def test_batch_inspect_summarises_each_recording_and_a_damaged_one_is_reported_not_failed(recordings, cluster,
                                                                                          tmp_path):
    from capture.recording import Recording
    from capture.recording.summary import summarize

    good, corrupt, _ = recordings
    result = invoke("batch", "inspect", good[0], corrupt, "--out", tmp_path, "--scheduler", cluster)
    assert result.exit_code == 0, result.output
    rows = summary_rows(tmp_path)
    with Recording.open(good[0]) as rec:
        want = summarize(rec)
    got = json.loads((Path(rows[good[0].name]["output"]) / "summary.json").read_text())
    assert got == json.loads(json.dumps({k: v for k, v in want.items() if k != "rate"}))
    assert np.array_equal(np.load(Path(rows[good[0].name]["output"]) / "rate.npy"), want["rate"])
    assert rows[corrupt.name]["status"] == "done" and "incomplete" in rows[corrupt.name]["message"]


def test_batch_calibrate_writes_a_calibration_per_recording(recordings, cluster, tmp_path):
    from calibration.model import Calibration

    good, _, _ = recordings
    result = invoke("batch", "calibrate", *good[:2], "--out", tmp_path, "--sweeps", "2", "--scheduler", cluster)
    assert result.exit_code == 0, result.output
    for rec in good[:2]:
        folder = Path(summary_rows(tmp_path)[rec.name]["output"])
        cal = Calibration.load(folder / "calib.json")
        assert cal.temporal is not None and cal.meta["recording"] == str(rec)
        assert (folder / "calib.png").is_file()


def test_the_key_follows_the_calibrations_content_not_its_path(recordings, tmp_path):
    good, _, calib = recordings
    source = identify(good[0])
    moved = tmp_path / "moved.json"
    shutil.copy(calib, moved)
    same = settings_hash("fuse", FuseSettings(calib=moved), source)
    assert same == settings_hash("fuse", FuseSettings(calib=calib), source)
    assert same == settings_hash("fuse", FuseSettings(calib=None), source)  # the file the recording names
    moved.write_text(calib.read_text().replace('"lag_us": ', '"lag_us": 1'))
    assert settings_hash("fuse", FuseSettings(calib=moved), source) != same
    assert settings_hash("fuse", FuseSettings(calib=calib, planes=5), source) != same
    assert output_key(source, same) == f"{good[0].name}-{source.uid[:8]}-{same[:12]}"


def test_a_job_whose_output_is_there_is_not_run_again(recordings, batch):
    """A worker checks again before it starts (another batch may have finished the same job meanwhile)."""
    good, _, _ = recordings
    _, out = batch
    source = identify(good[0])
    settings = FuseSettings(sweeps=None, planes=4, method="classical")
    digest = settings_hash("fuse", settings, source)
    task = Task("fuse", settings, source, out, output_key(source, digest), digest)
    assert is_done(task)
    before = snapshot(out)
    row = run_task(task)
    assert (row["status"], row["message"]) == ("skipped", "already done") and "seconds" not in row  # not even run
    assert snapshot(out) == before


def test_a_bare_files_identity_is_its_content(tmp_path):
    a, b = tmp_path / "a.raw", tmp_path / "b" / "a.raw"
    b.parent.mkdir()
    a.write_bytes(bytes(range(256)) * 1000)
    b.write_bytes(bytes(range(256)) * 1000)
    assert identify(a).uid == identify(b).uid  # the same content anywhere
    b.write_bytes(bytes(range(1, 257)[:-1]) + bytes([7]) + bytes(range(256)) * 999)  # same size, new bytes
    assert identify(a).uid != identify(b).uid


@pytest.mark.parametrize("args, message, status", [
    (["batch", "fuse", "{missing}", "--out", "{out}"], "no such file or folder", 1),
    (["batch", "fuse", "{rec}", "--out", "{out}", "--calib", "{missing}"], "no such calibration file", 2),
    (["batch", "fuse", "{rec}", "--out", "{out}", "--method", "magic"], "unknown fusion method 'magic'", 2),
    (["batch", "convert", "{rec}", "--out", "{out}", "--to", "mp4"], "--to must be one of", 2),
    (["batch", "stack", "{rec}", "--out", "{out}", "--format", "tiff"], "--format must be", 2),
])
def test_bad_input_is_one_clear_message_before_any_work(recordings, tmp_path, args, message, status):
    good, _, _ = recordings
    paths = {"missing": tmp_path / "missing", "out": tmp_path / "out", "rec": good[0]}
    result = invoke(*[a.format(**paths) for a in args])
    assert result.exit_code == status, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "cluster:" not in result.output


def test_an_unreachable_scheduler_says_what_to_do(recordings, tmp_path):
    import dask

    good, _, _ = recordings
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = invoke("batch", "inspect", good[0], "--out", tmp_path, "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output and "dask scheduler" in \
        result.output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_workers_get_their_share_of_threads_the_jobs_modules_and_a_settled_allocator():
    """A worker's nanny sets MALLOC_TRIM_THRESHOLD_, which makes glibc map every array over 128 KiB afresh (and
    fusion twice as slow); a prepared worker keeps a 1 MiB array on its heap, runs one maths thread per Dask
    thread and has loaded fusion before its first job."""
    from app.jobs.runner import Session

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        before = list(client.run(worker_state).values())
        session = Session(scheduler=cluster.scheduler_address)
        try:
            session.prepare("fuse")
            after = list(session.client().run(worker_state).values())
        finally:
            session.close()
    assert before[0]["1mib_mmapped"] and not before[0]["preloaded"]  # Dask's defaults
    assert after == [{"cv2_threads": 1, "numba_env": "1", "preloaded": True, "1mib_mmapped": False}]
