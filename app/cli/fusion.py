"""``focalrig predict | predict-datasets | predict-pairs | eval | fuse``: focal stacks and recordings fused, scored.

Option names follow the seed projects (``--input_dir``, ``--test_root``, ``--test_datasets A B …``), with the
dashed spellings accepted too, so their users' command lines work unchanged. The commands are thin: folders
are read by :mod:`capture.stack_folders`, fusion goes through :func:`fusion.engine.fuse`, files are written by
:mod:`fusion.outputs`, scoring lives in :mod:`fusion.evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from app.cli.common import BarListener, console, err_console, friendly_errors, parse_size, progress
from app.jobs.fuse import method_options as _method_options

MethodOpt = Annotated[str, typer.Option("--method", help="Fusion method: classical (CPU) or net (learned).")]
AutoMethodOpt = Annotated[str, typer.Option("--method", help="Fusion method: auto (the default, as in the GUI: net "
                                            "on a CUDA device, else classical), classical or net.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
AlignOpt = Annotated[bool, typer.Option("--align/--no-align", help="Register hand-held stacks before fusing "
                                        "(ECC affine, chained to the middle plane). Rig stacks are aligned already.")]
EventWeightOpt = Annotated[float, typer.Option("--event-weight", help="classical: weight of the event-activity term "
                                               "(0 = frames only; measured not to help on synthetic stacks).")]
BlendOpt = Annotated[str, typer.Option("--blend", help="soft: each pixel the noise-aware mean of the planes as "
                                       "sharp as the best one (less noise, the same detail); gather: the best "
                                       "plane's pixel alone.")]
ExposureOpt = Annotated[bool, typer.Option("--exposure/--no-exposure", help="Even out the planes' exposure "
                                           "(flicker, gain drift) before fusing; the gains go to result.json.")]
OutOpt = Annotated[Path, typer.Option("--output_dir", "--output-dir", help="Folder for the results.")]
RootOpt = Annotated[Path, typer.Option("--test_root", "--test-root", help="Folder holding the datasets.")]
DatasetsOpt = Annotated[list[str] | None, typer.Option("--test_datasets", "--test-datasets",
                                                       help="Dataset folder names under --test_root "
                                                            "(several may follow one flag: A B C).")]
_EXTRA = {"allow_extra_args": True}


def _datasets(ctx: typer.Context, given: list[str] | None) -> list[str]:
    """``--test_datasets A B C`` as in the seeds' argparse nargs='+': names after the first land in ctx.args."""
    extra = [a for a in ctx.args if not a.startswith("-")]
    if len(extra) != len(ctx.args):
        raise ValueError(f"unexpected arguments: {' '.join(a for a in ctx.args if a.startswith('-'))}")
    names = [*(given or []), *extra]
    if not names:
        raise ValueError("name at least one dataset with --test_datasets")
    return names


def _load_input(input_dir: Path, event_dir: Path | None):
    from capture.focal_stack import FocalStack
    from capture.stack_folders import read_stack_folder

    if input_dir.is_file() and input_dir.suffix == ".npz":
        stack = FocalStack.load_npz(input_dir)
        if event_dir is not None:
            raise ValueError("--event_dir applies to image folders; an .npz stack carries its own events")
        return stack
    return read_stack_folder(input_dir, event_dir)


def _fuse_and_write(stack, out_dir: Path, stem: str | None, method: str, device: str, align: bool, options: dict):
    from fusion.align import align_stack
    from fusion.engine import fuse
    from fusion.outputs import write_outputs

    if align:
        stack = align_stack(stack)
    result = fuse(stack, method=method, device=device, **options)
    write_outputs(result, stack, out_dir, stem=stem)
    return result


def predict(
    input_dir: Annotated[Path, typer.Option("--input_dir", "--input-dir", help="Folder of numbered images "
                                            "(1.png, 2.png … natural order), or a focalrig .npz focal stack.")],
    output_dir: OutOpt,
    event_dir: Annotated[Path | None, typer.Option(
        "--event_dir", "--event-dir",
        help="Event slices, one per image: EventStackMFF colour PNGs or .npy counts (2, H, W).")] = None,
    method: MethodOpt = "classical",
    device: DeviceOpt = "auto",
    align: AlignOpt = False,
    event_weight: EventWeightOpt = 0.0,
    blend: BlendOpt = "soft",
    exposure: ExposureOpt = True,
) -> None:
    """Fuse one focal stack: all-in-focus image, focal-index and depth maps, confidence, result.json."""
    options = _method_options(method, event_weight, blend, exposure)
    stack = _load_input(input_dir, event_dir)
    result = _fuse_and_write(stack, output_dir, None, method, device, align, options)
    h, w = stack.shape
    console.print(f"{stack.name}: {stack.n_planes} planes {w}x{h} {stack.frames.dtype} → {output_dir} "
                  f"({result.method} on {result.device}, {result.timings_s['total']:.3f} s)", highlight=False)


def _run_many(items: list, out: Path, describe, load, method: str, device: str, align: bool, options: dict) -> None:
    """Fuse every (dataset, name, …) item into ``out/<dataset>/`` (seed layout) and print per-dataset times."""
    times: dict[str, list[float]] = {}
    with progress() as bar:
        task = bar.add_task("fusing", total=len(items), detail="")
        for item in items:
            dataset, name = item[0], item[1]
            bar.update(task, detail=describe(item))
            result = _fuse_and_write(load(item), out / dataset, name, method, device, align, options)
            times.setdefault(dataset, []).append(result.timings_s["total"])
            bar.advance(task)
    table = Table(title=f"{method} → {out}", title_justify="left")
    for col in ("dataset", "stacks", "mean s/stack"):
        table.add_column(col, justify="right" if col != "dataset" else "left")
    for dataset, ts in times.items():
        table.add_row(dataset, str(len(ts)), f"{sum(ts) / len(ts):.3f}")
    console.print(table)


def predict_datasets(
    ctx: typer.Context,
    test_root: RootOpt,
    output_dir: OutOpt,
    test_datasets: DatasetsOpt = None,
    method: MethodOpt = "classical",
    device: DeviceOpt = "auto",
    align: AlignOpt = False,
    event_weight: EventWeightOpt = 0.0,
    no_events: Annotated[bool, typer.Option("--no-events", help="Ignore event_stack/ (frames only).")] = False,
    blend: BlendOpt = "soft",
    exposure: ExposureOpt = True,
) -> None:
    """Fuse every stack of EventStackMFF (image_stack/ + event_stack/) or StackMFF-V2 (dof_stack/) datasets."""
    from capture.stack_folders import discover_datasets

    options = _method_options(method, event_weight, blend, exposure)
    entries = discover_datasets(test_root, _datasets(ctx, test_datasets))
    _run_many([(e.dataset, e.scene, e) for e in entries], output_dir, lambda it: f"{it[0]}/{it[1]}",
              lambda it: it[2].load(with_events=not no_events), method, device, align, options)


def predict_pairs(
    ctx: typer.Context,
    test_root: RootOpt,
    output_dir: OutOpt,
    test_datasets: DatasetsOpt = None,
    method: MethodOpt = "classical",
    device: DeviceOpt = "auto",
    align: AlignOpt = False,
    blend: BlendOpt = "soft",
    exposure: ExposureOpt = True,
) -> None:
    """Fuse A/B pair datasets (StackMFF-V2 predict_pair_datasets layout: <dataset>/A, <dataset>/B; or x-A/x-B files)."""
    from capture.stack_folders import discover_pairs, read_pair

    options = _method_options(method, 0.0, blend, exposure)
    pairs = discover_pairs(test_root, _datasets(ctx, test_datasets))
    _run_many(pairs, output_dir, lambda it: f"{it[0]}/{it[1]}", lambda it: read_pair(it[2], it[3], it[1]),
              method, device, align, options)


def _split_datasets(ctx: typer.Context, stacks: list[str] | None,
                    pairs: list[str] | None) -> tuple[list[str], list[str]]:
    """Names after ``--test_datasets A`` or ``--pair_datasets A`` (argparse nargs='+' style) go to the one given."""
    extra = [a for a in ctx.args if not a.startswith("-")]
    if len(extra) != len(ctx.args):
        raise ValueError(f"unexpected arguments: {' '.join(a for a in ctx.args if a.startswith('-'))}")
    if extra and stacks and pairs:
        raise ValueError("with both --test_datasets and --pair_datasets, repeat the flag before every name")
    stacks, pairs = list(stacks or []), list(pairs or [])
    (pairs if pairs else stacks).extend(extra)
    return stacks, pairs


def _limit_per_group(sources: list, limit: int) -> list:
    kept, count = [], {}
    for src in sources:
        count[src[0]] = count.get(src[0], 0) + 1
        if count[src[0]] <= limit:
            kept.append(src)
    return kept


def eval_command(
    ctx: typer.Context,
    test_root: Annotated[Path | None, typer.Option("--test_root", "--test-root",
                                                   help="Folder holding --test_datasets / --pair_datasets.")] = None,
    test_datasets: DatasetsOpt = None,
    pair_datasets: Annotated[list[str] | None, typer.Option("--pair_datasets", "--pair-datasets",
                                                            help="Pair datasets under --test_root.")] = None,
    input_dir: Annotated[list[Path] | None, typer.Option("--input_dir", "--input-dir",
                                                         help="A single stack folder or .npz (repeatable).")] = None,
    synthetic: Annotated[int, typer.Option(help="Also score this many synthetic stacks with ground truth.")] = 0,
    planes: Annotated[int, typer.Option(help="Planes per synthetic stack.")] = 16,
    size: Annotated[str, typer.Option(help="Synthetic stack size WIDTHxHEIGHT.")] = "640x480",
    margin: Annotated[float, typer.Option(help="Synthetic sweep margin beyond the scene (dpt, each side).")] = 0.3,
    methods: Annotated[str, typer.Option(help="Comma-separated focalrig methods.")] = "classical",
    peers: Annotated[str, typer.Option(help="Comma-separated external tools (enfuse, enfuse-log, focus-stack), "
                                            "'auto' = those installed, 'none'.")] = "auto",
    align: AlignOpt = False,
    event_weight: EventWeightOpt = 0.0,
    limit: Annotated[int | None, typer.Option(help="At most this many stacks per dataset.")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output_dir", "--output-dir",
                                                    help="Write eval.json (every row and the summary) here.")] = None,
) -> None:
    """Quality and time per method: PSNR/SSIM vs ground truth where it exists, Qabf + sharpness everywhere."""
    from capture.stack_folders import discover_datasets, discover_pairs, read_pair
    from fusion.align import align_stack
    from fusion.evaluate import evaluate, summarise
    from fusion.peers import PEERS, available_peers

    sources: list = []
    names, pair_datasets = _split_datasets(ctx, test_datasets, pair_datasets)
    if (names or pair_datasets) and test_root is None:
        raise ValueError("--test_datasets/--pair_datasets need --test_root")
    if names:
        sources += [(e.dataset, e.scene, e.load) for e in discover_datasets(test_root, names)]
    if pair_datasets:
        for ds, name, a, b in discover_pairs(test_root, pair_datasets):
            sources.append((ds, name, lambda a=a, b=b, name=name: read_pair(a, b, name)))
    for path in input_dir or []:
        sources.append((path.name, path.name, lambda p=path: _load_input(p, None)))
    if synthetic:
        from fusion.synthetic import synthetic_stack

        w, h = parse_size(size)
        for seed in range(synthetic):
            sources.append((f"synth-{planes}", f"seed {seed}",
                            lambda s=seed: synthetic_stack(s, size=(w, h), n_planes=planes, sweep_margin_dpt=margin)))
    if limit is not None:
        sources = _limit_per_group(sources, limit)
    if not sources:
        raise ValueError("nothing to evaluate: give --test_datasets, --pair_datasets, --input_dir or --synthetic K")
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    if peers == "auto":
        peer_list = available_peers()
    elif peers == "none":
        peer_list = []
    else:
        peer_list = [p.strip() for p in peers.split(",") if p.strip()]
        unknown = set(peer_list) - set(PEERS)
        if unknown:
            raise ValueError(f"unknown peer(s) {sorted(unknown)}; known: {', '.join(PEERS)}")
    rows = []
    with progress() as bar:
        task = bar.add_task("evaluating", total=len(sources) * (len(method_list) + len(peer_list)), detail="")
        for row in evaluate(sources, method_list, peer_list, prepare=align_stack if align else None,
                            method_options={"classical": _method_options("classical", event_weight)}):
            rows.append(row)
            if row.error:
                err_console.print(f"[yellow]{row.method} on {row.stack}: {row.error}[/]", highlight=False)
            bar.update(task, advance=1, detail=f"{row.group}/{row.stack} {row.method}")
    summary = summarise(rows)
    _print_summary(summary)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "eval.json").write_text(json.dumps(
            {"summary": summary, "rows": [vars(r) for r in rows]}, indent=2))
        console.print(f"wrote {output_dir / 'eval.json'}")


_COLUMNS = [("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("index_within1", "idx±1", "{:.3f}"),
            ("qabf", "Qabf", "{:.4f}"), ("sf", "SF", "{:.4f}"), ("time_s", "time s", "{:.3f}")]


def _print_summary(summary: list[dict]) -> None:
    table = Table(title="fusion quality and time (means per dataset)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    table.add_column("dataset")
    table.add_column("method")
    table.add_column("n", justify="right")
    cols = [c for c in _COLUMNS if any(c[0] in s for s in summary)]
    for _, title, _ in cols:
        table.add_column(title, justify="right")
    for s in summary:
        table.add_row(s["group"], s["method"], str(s["stacks"]),
                      *[fmt.format(s[key]) if key in s else "—" for key, _, fmt in cols])
    console.print(table)


def fuse_recording(
    rec: Annotated[Path, typer.Argument(help="Recording folder (focalrig capture / simulate).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: one sub-folder per sweep.")],
    calib: Annotated[Path | None, typer.Option("--calib", help="Calibration JSON (default: the one the recording "
                                                "was captured with).")] = None,
    sweep: Annotated[list[int] | None, typer.Option("--sweep", help="Sweep index to fuse (repeatable; default 0).")]
    = None,
    all_sweeps: Annotated[bool, typer.Option("--all", help="Fuse every sweep of the recording.")] = False,
    planes: Annotated[int | None, typer.Option("--planes", help="Most planes per stack; each plane is a frame at "
                                               "its own focal power (default: the recording's plan).", min=2,
                                               show_default=False)] = None,
    span: Annotated[str | None, typer.Option("--span", help="Frames a stack takes from its sweep: period (both "
                                             "halves) or half (the rising half; default: the recording's plan).",
                                             show_default=False)] = None,
    method: AutoMethodOpt = "auto",
    device: DeviceOpt = "auto",
    events: Annotated[bool, typer.Option("--events/--no-events", help="Slice the sweep's events into the stack "
                                         "(needs the calibration's event→RGB geometry).")] = True,
    event_weight: EventWeightOpt = 0.0,
    single_frame: Annotated[bool, typer.Option("--single-frame", help="Single exposure: one frame of each sweep "
                                               "(the one nearest the middle of the range) refocused to every plane "
                                               "by the sweep's events, for scenes that move; colour stays as sharp "
                                               "as that frame.")] = False,
    blend: BlendOpt = "soft",
    exposure: ExposureOpt = True,
) -> None:
    """Fuse sweeps of a recording: calibration → aligned focal stack → all-in-focus image and depth map."""
    from app.jobs.fuse import FuseSettings
    from app.jobs.fuse import fuse_recording as fuse_sweeps

    if all_sweeps and sweep:
        raise ValueError("give --sweep K or --all, not both")
    settings = FuseSettings(calib=calib, sweeps=None if all_sweeps else tuple(sweep or [0]), planes=planes, span=span,
                            method=method, device=device, events=events, event_weight=event_weight,
                            single_frame=single_frame, blend=blend, exposure=exposure)
    with progress() as bar:
        fuse_sweeps(rec, out, settings, BarListener(bar, bar.add_task("fusing", total=None, detail="")))


def register(app: typer.Typer) -> None:
    """Add the fusion commands to the top-level app."""
    app.command("predict")(friendly_errors(predict))
    app.command("fuse")(friendly_errors(fuse_recording))
    app.command("predict-datasets", context_settings=_EXTRA)(friendly_errors(predict_datasets))
    app.command("predict-pairs", context_settings=_EXTRA)(friendly_errors(predict_pairs))
    app.command("eval", context_settings=_EXTRA)(friendly_errors(eval_command))
