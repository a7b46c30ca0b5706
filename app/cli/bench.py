"""``focalrig bench …``: the benchmark commands and their options.

Each command parses its options and hands over to its module in :mod:`app.bench`, imported only when the
command runs. Figures are printed, never asserted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import console, friendly_errors, parse_size

bench_app = typer.Typer(help="Benchmarks that print throughput figures.", no_args_is_help=True)


@bench_app.command("fusion")
@friendly_errors
def bench_fusion(
    repeat: Annotated[int, typer.Option(help="Runs per measurement; the best is reported.", min=1)] = 5,
    size: Annotated[str, typer.Option(help="Frame size WIDTHxHEIGHT.")] = "640x480",
    planes: Annotated[list[int] | None, typer.Option(help="Stack sizes to time (repeatable).")] = None,
) -> None:
    """Time classical fusion (and enfuse when installed) on synthetic stacks; figures are printed, not asserted."""
    from app.bench.fusion import run_fusion_benchmarks

    run_fusion_benchmarks(console, size=parse_size(size), planes=planes or [16, 32], repeat=repeat)


@bench_app.command("capture")
@friendly_errors
def bench_capture(
    rate: Annotated[float, typer.Option(help="Synthetic event rate (Mev/s).", min=0.1)] = 20.0,
    fps: Annotated[float, typer.Option(help="Synthetic 640x480 RGB frame rate.", min=1.0)] = 100.0,
    seconds: Annotated[float, typer.Option(help="Seconds of live-paced capture.", min=0.5)] = 10.0,
    out: Annotated[Path | None, typer.Option(help="Keep the recording under this folder (default: a temporary "
                                             "folder, deleted).", show_default=False)] = None,
) -> None:
    """Sustained recording: event rate, 640x480 frame rate, drops, peak RSS and engine overhead per sweep."""
    from app.bench.capture import run_capture_benchmark

    run_capture_benchmark(console, rate_mev_s=rate, fps=fps, seconds=seconds, out=out)


@bench_app.command("slice")
@friendly_errors
def bench_slice(
    events: Annotated[int, typer.Option(help="Synthetic events.", min=1000)] = 20_000_000,
    planes: Annotated[int, typer.Option(help="Focal planes.", min=1)] = 16,
    repeat: Annotated[int, typer.Option(help="Runs; the best is reported.", min=1)] = 3,
) -> None:
    """Focal-index labelling and per-polarity counting throughput (Mev/s, one core)."""
    from app.bench.slice import run_slice_benchmark

    run_slice_benchmark(console, n_events=events, n_planes=planes, repeat=repeat)


@bench_app.command("net")
@friendly_errors
def bench_net(
    quality: Annotated[int, typer.Option(help="Held-out synthetic stacks to score (net, net without events, "
                                              "classical); 0 to skip.")] = 16,
    quality_size: Annotated[int, typer.Option(help="Side (px) of the held-out stacks.")] = 128,
    repeat: Annotated[int, typer.Option(help="Runs per timing; the best is reported.")] = 3,
    weights: Annotated[Path | None, typer.Option(help="Weights file (default: the shipped ones).")] = None,
    speed: Annotated[bool, typer.Option("--speed/--no-speed", help="Time data rendering and inference.")] = True,
    compile: Annotated[bool, typer.Option("--compile", help="Also time torch.compile'd inference (the first call "
                                          "of each shape compiles: about a minute on 2 CPU cores).")] = False,
) -> None:
    """Network figures: synthetic stacks/s, inference time at 640x480 (CPU, and CUDA when present), held-out quality
    against the classical method and the event ablation."""
    from app.bench.net import run_net_benchmarks

    run_net_benchmarks(console, quality=quality, quality_size=quality_size, repeat=repeat, weights=weights,
                       speed=speed, compile=compile)


@bench_app.command("io")
@friendly_errors
def bench_io(
    events: Annotated[int, typer.Option(help="Synthetic events per measurement.")] = 5_000_000,
    repeat: Annotated[int, typer.Option(help="Runs per measurement; the best is reported.")] = 3,
    stream_mib: Annotated[int, typer.Option(help="Also stream a RAW file of this size (MiB) from disk and report "
                                                 "peak memory; 0 to skip.")] = 256,
    openeb: Annotated[bool, typer.Option(help="Also time OpenEB's readers and tools on the same files, when OpenEB "
                                              "is installed.")] = True,
) -> None:
    """Decode/encode throughput (Mev/s) per format on synthetic data and on the shared real files, beside OpenEB's."""
    from app.bench.io import run_io_benchmarks

    run_io_benchmarks(console, n_events=events, repeat=repeat, stream_mib=stream_mib, openeb=openeb)


@bench_app.command("sim")
@friendly_errors
def bench_sim(
    frames: Annotated[int, typer.Option(help="Frames rendered along a 0..4 dpt sweep per resolution.", min=2)] = 100,
) -> None:
    """Simulated rig: defocus rendering (frames/s) and ESIM events (events/s) at 320x240 and 640x480."""
    from app.bench.sim import run_sim_benchmarks

    run_sim_benchmarks(console, frames=frames)


@bench_app.command("e2e")
@friendly_errors
def bench_e2e(
    regimes: Annotated[str, typer.Option(help="Comma-separated rig regimes: default, 8hz, 10hz, low-light, "
                                              "weak-texture, moving, splitter, sensitive, 10hz-sensitive "
                                              "(each is described when the run starts).")] = "all",
    seeds: Annotated[int, typer.Option(help="Scenes (simulator seeds 0..K-1) per regime.", min=1)] = 3,
    sweeps: Annotated[int, typer.Option(help="Sweeps recorded per scene; each is stacked and fused.", min=1)] = 2,
    methods: Annotated[str, typer.Option(help="Comma-separated fusion methods; options after a colon "
                                              "(e.g. 'classical:output=\"gather\"'), separated by semicolons "
                                              "between methods.")] = "classical;net",
    planes: Annotated[int, typer.Option(help="Most planes per stack (every frame of the sweep when fewer).",
                                        min=2)] = 16,
    keep: Annotated[Path | None, typer.Option(help="Keep the recordings and calibrations under this folder "
                                              "(default: a temporary folder, deleted).", show_default=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every row and the summary to this JSON "
                                                  "file.", show_default=False)] = None,
) -> None:
    """The product path — simulate → calibrate → stack → fuse — scored against the simulator's truth per rig regime:
    all-in-focus PSNR/SSIM, depth error, time per sweep, beside the best single-frame and near-best-average
    oracles."""
    from app.bench.e2e import DEFAULT_REGIMES, run_e2e_benchmark

    names = list(DEFAULT_REGIMES) if regimes == "all" else [r.strip() for r in regimes.split(",") if r.strip()]
    run_e2e_benchmark(console, regimes=names, seeds=seeds, sweeps=sweeps,
                      methods=[m.strip() for m in methods.split(";") if m.strip()], planes=planes, keep=keep,
                      json_path=json_out)


@bench_app.command("fuzz")
@friendly_errors
def bench_fuzz(
    files: Annotated[int, typer.Option(help="Mutated files and recordings to read (round-robin over the seed "
                                            "kinds).", min=1)] = 10_000,
    seed: Annotated[int, typer.Option(help="Run seed: the same seed and case number rebuild the same file.")] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds a file may take before it counts as a hang.",
                                           min=1.0)] = 60.0,
    mem_limit: Annotated[int, typer.Option(help="Memory a worker may use (MiB): its address-space cap above its "
                                                "start-up size, and the peak resident memory allowed.",
                                           min=64)] = 1024,
    kind: Annotated[list[str] | None, typer.Option(help="Only these seed kinds (repeatable): evt2, evt21-little, "
                                                        "evt21-legacy, evt3, hdf5, recording.")] = None,
    seed_file: Annotated[list[Path] | None, typer.Option(help="Also mutate this file or recording folder "
                                                              "(repeatable), e.g. a camera's own recording.")] = None,
    keep: Annotated[Path | None, typer.Option(help="Copy every failing case into this folder.",
                                              show_default=False)] = None,
) -> None:
    """Damaged event files and recordings through events info, events convert and inspect: counts files read,
    clean one-line errors, and every hang, crash, traceback, out-of-memory or error that does not name the file.
    Exits 1 when there is any of those."""
    from app.bench.fuzz import run_fuzz_benchmark

    tally = run_fuzz_benchmark(console, files=files, seed=seed, workers=workers, timeout_s=timeout,
                               mem_limit_mib=mem_limit, kinds=list(kind or []), seed_files=list(seed_file or []),
                               keep=keep)
    if not tally.passed(mem_limit):
        raise typer.Exit(1)


@bench_app.command("startup")
@friendly_errors
def bench_startup(
    repeat: Annotated[int, typer.Option(help="Runs per command after a warm-up; the best is reported.", min=1)] = 5,
    predict: Annotated[bool, typer.Option("--predict/--no-predict", help="Also time a whole `focalrig predict "
                                          "--method classical` of a 640x480, 16-plane stack.")] = True,
) -> None:
    """Whole-process time of `focalrig --help`, the light commands and a classical predict, each a fresh process
    (best wall and CPU seconds beside the target)."""
    from app.bench.startup import run_startup_benchmark

    run_startup_benchmark(console, repeat=repeat, predict=predict)


@bench_app.command("stack")
@friendly_errors
def bench_stack(
    sizes: Annotated[str, typer.Option(help="Comma-separated frame sizes WIDTHxHEIGHT.")] = "320x240,640x480",
    sweeps: Annotated[int, typer.Option(help="Sweeps recorded per size.", min=1)] = 3,
    repeat: Annotated[int, typer.Option(help="Runs per sweep; the best is kept.", min=1)] = 5,
    planes: Annotated[int, typer.Option(help="Most planes per stack.", min=2)] = 16,
) -> None:
    """Time to build one sweep's aligned focal stack (frames warped, events sliced) at each frame size."""
    from app.bench.stack import run_stack_benchmark

    run_stack_benchmark(console, sizes=[parse_size(s) for s in sizes.split(",") if s.strip()], sweeps=sweeps,
                        repeat=repeat, planes=planes)


@bench_app.command("batch")
@friendly_errors
def bench_batch(
    recordings: Annotated[int, typer.Option(help="Simulated recordings in the batch.", min=2)] = 8,
    sweeps: Annotated[int, typer.Option(help="Sweeps per recording (each is fused).", min=1)] = 4,
    size: Annotated[str, typer.Option(help="Frame and event size WIDTHxHEIGHT.")] = "320x240",
    repeat: Annotated[int, typer.Option(help="Runs per worker count, alternated; the best is reported.", min=1)] = 2,
    keep: Annotated[Path | None, typer.Option(help="Keep the recordings and outputs under this folder (default: a "
                                              "temporary folder, deleted).", show_default=False)] = None,
) -> None:
    """batch fuse --method classical on 1 and 2 workers of the local Dask cluster: speed-up, scheduler overhead and
    peak memory per worker; then a worker SIGKILLed mid-job (outputs exactly once, same bytes)."""
    from app.bench.batch import run_batch_benchmark

    run_batch_benchmark(console, recordings=recordings, size=parse_size(size), sweeps=sweeps, repeat=repeat,
                        keep=keep)


@bench_app.command("auto-range")
@friendly_errors
def bench_auto_range(
    seeds: Annotated[int, typer.Option(help="Simulated scenes (one per seed), each with 2-4 layers at random "
                                       "depths.", min=1)] = 12,
    first_seed: Annotated[int, typer.Option(help="Seed of the first scene.")] = 0,
    size: Annotated[str, typer.Option(help="Event (and frame) sensor size WIDTHxHEIGHT.")] = "160x120",
) -> None:
    """capture --auto-range on simulated scenes with random layer depths: per scene the true depth span, the range
    chosen, whether every layer is inside it, its width against the tightest covering range (target ≤ 1.5x) and the
    pre-sweep's cost in sweeps of the plan (target ≤ 1)."""
    from app.bench.auto_range import run_auto_range_benchmark

    run_auto_range_benchmark(console, seeds=seeds, first_seed=first_seed, size=parse_size(size))
