"""``focalrig events info|convert|render``: event files (.raw EVT2/2.1/3, .hdf5, .npz, .csv) read, converted, drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.common import BarListener, console, err_console, friendly_errors, state

events_app = typer.Typer(help="Inspect, convert and render event files (.raw EVT2/2.1/3, .hdf5, .npz, .csv).",
                         no_args_is_help=True)


WidthOpt = Annotated[int | None, typer.Option(help="Sensor width for files that carry no geometry (CSV, NPZ, "
                                                   "HDF5 with unreadable attributes).")]
HeightOpt = Annotated[int | None, typer.Option(help="Sensor height for files that carry no geometry (CSV, NPZ, "
                                                    "HDF5 with unreadable attributes).")]
ShiftOpt = Annotated[bool | None, typer.Option("--time-shift/--absolute",
                                               help="RAW: subtract OpenEB's time shift, or keep absolute µs "
                                                    "(default from config io.time_shift).", show_default=False)]


def _progress() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=err_console, transient=True)


def _open(path: Path, width: int | None, height: int | None, time_shift: bool | None):
    from capture.formats.registry import open_events

    cfg = state.config()
    shift = cfg.io.time_shift if time_shift is None else time_shift
    return open_events(path, time_shift=shift, width=width, height=height,
                       block_bytes=int(cfg.io.read_block_mib * (1 << 20)))


def convert_settings(evt: int | None, width: int | None, height: int | None, time_shift: bool | None,
                     suffix: str = ".hdf5"):
    """The conversion options with the configuration's ``io`` defaults filled in (``events convert``, ``batch
    convert``)."""
    from app.jobs.convert import ConvertSettings

    io = state.config().io
    return ConvertSettings(evt=evt or io.default_evt, width=width, height=height,
                           time_shift=io.time_shift if time_shift is None else time_shift,
                           block_bytes=int(io.read_block_mib * (1 << 20)), hdf5_generation=io.hdf5_generation,
                           suffix=suffix)


def _fmt_t(t: int | None) -> str:
    return "—" if t is None else f"{t:,} µs ({t / 1e6:.6f} s)"


@events_app.command("info")
@friendly_errors
def events_info(
    file: Annotated[Path, typer.Argument(help="Event file: .raw, .hdf5/.h5, .npz or .csv.")],
    width: WidthOpt = None,
    height: HeightOpt = None,
    time_shift: ShiftOpt = None,
    peak_window: Annotated[str, typer.Option(help="Window for the peak event rate, e.g. 1ms.")] = "1ms",
) -> None:
    """Format, geometry, event counts, time span, and mean/peak event rate of an event file."""
    from app.cli.units import parse_duration_us
    from capture.formats.stats import compute_stats

    window = parse_duration_us(peak_window)
    with _open(file, width, height, time_shift) as reader, _progress() as bar:
        task = bar.add_task(f"reading {file.name}", total=1.0, detail="")

        def tick(s):
            bar.update(task, completed=reader.progress() or 0.0, detail=f"{s.n_cd:,} events")

        stats = compute_stats(reader, peak_window_us=window, on_chunk=tick)
    info = reader.info
    table = Table(title=str(file), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("format", info.format)
    table.add_row("geometry", f"{info.width} x {info.height}")
    for note in info.inferred:
        table.add_row("inferred", note)
    if getattr(reader, "truncated", False):
        table.add_row("warning", f"[yellow]file is {reader.truncation}: cut short or damaged; every complete event "
                                 "before the cut was read[/]")
    table.add_row("CD events", f"{stats.n_cd:,}  (ON {stats.n_on:,} / OFF {stats.n_off:,})")
    edges = ", ".join(f"ch {ch} {'rising' if e else 'falling'}: {n:,}"
                      for (ch, e), n in sorted(stats.trigger_edges.items()))
    table.add_row("trigger events", f"{stats.n_triggers:,}" + (f"  ({edges})" if edges else ""))
    table.add_row("first event", _fmt_t(stats.t_first))
    table.add_row("last event", _fmt_t(stats.t_last))
    table.add_row("duration", f"{stats.duration_us / 1e6:.6f} s")
    table.add_row("mean rate", f"{stats.mean_rate / 1e6:.3f} Mev/s")
    table.add_row(f"peak rate ({window} µs)", f"{stats.peak_rate / 1e6:.3f} Mev/s")
    if stats.n_cd and (stats.x_max >= info.width or stats.y_max >= info.height):
        table.add_row("warning", f"[yellow]events outside the sensor: max x {stats.x_max}, max y {stats.y_max}[/]")
    console.print(table)


@events_app.command("convert")
@friendly_errors
def events_convert(
    src: Annotated[Path, typer.Argument(help="Input event file (.raw, .hdf5/.h5, .npz, .csv).")],
    dst: Annotated[Path, typer.Argument(help="Output file; its extension picks the format.")],
    evt: Annotated[int | None, typer.Option(help="RAW output encoding: 3 (EVT 3.0) or 2 (EVT 2.0); "
                                                 "default from config io.default_evt.")] = None,
    width: WidthOpt = None,
    height: HeightOpt = None,
    time_shift: ShiftOpt = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite DST if it exists.")] = False,
) -> None:
    """Convert between .raw (EVT3/EVT2), .hdf5 (Prophesee ECF, opens in Metavision tools), .npz and .csv.

    CSV follows metavision_file_to_csv: lines x,y,p,t, triggers in <name>_triggers.csv as p,id,t.
    """
    from app.jobs.convert import convert_file

    if dst.exists() and not force:
        raise ValueError(f"{dst} exists; pass --force to overwrite it")
    if dst.resolve() == src.resolve():
        raise ValueError("input and output are the same file")
    with _progress() as bar:
        task = bar.add_task(f"{src.name} → {dst.name}", total=1.0, detail="")
        n_cd, n_trig = convert_file(src, dst, convert_settings(evt, width, height, time_shift),
                                    BarListener(bar, task))
    console.print(f"wrote {n_cd:,} CD events and {n_trig:,} trigger events to {dst}")


@events_app.command("render")
@friendly_errors
def events_render(
    file: Annotated[Path, typer.Argument(help="Event file to render.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for PNG frames, or a video file (.mp4/.avi/.mkv).")],
    accumulation: Annotated[str, typer.Option(help="Events shown per frame, e.g. 10ms.")] = "10ms",
    fps: Annotated[float, typer.Option(help="Frames per second of recording time.", min=0.001)] = 30.0,
    width: WidthOpt = None,
    height: HeightOpt = None,
    time_shift: ShiftOpt = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
) -> None:
    """Render ON/OFF accumulation frames (ON light, OFF blue on dark grey) to PNGs or a video."""
    from app.cli.units import parse_duration_us
    from capture.render import FrameSink, accumulation_frames

    acc = parse_duration_us(accumulation)
    with _open(file, width, height, time_shift) as reader, _progress() as bar:
        sink = FrameSink(out, fps, reader.info.width, reader.info.height)
        task = bar.add_task(f"rendering {file.name}", total=1.0, detail="")
        try:
            for _, frame in accumulation_frames(reader, accumulation_us=acc, fps=fps):
                sink.add(frame)
                bar.update(task, completed=reader.progress() or 0.0, detail=f"{sink.count} frames")
                if max_frames is not None and sink.count >= max_frames:
                    break
        finally:
            sink.close()
    console.print(f"wrote {sink.count} frames to {out}")
