"""``focalrig bench io``: event codec throughput on synthetic and real data, and streaming memory.

Figures are printed, never asserted: they depend on the machine. Each measurement runs ``repeat``
times after a warm-up (numba compiles on first use) and reports the best run. Where OpenEB is installed,
its readers and conversion tools are timed on the same files in the same run (:mod:`app.bench.openeb`),
so the comparison holds on whatever machine it runs.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

from rich.console import Console
from rich.table import Table

from app.bench.timing import Stopwatch, best_time
from capture.formats.csvfile import CsvEventWriter
from capture.formats.hdf5 import Hdf5EventReader, Hdf5EventWriter
from capture.formats.raw import RawEventReader, RawEventWriter, make_decoder, make_encoder, split_by_count
from capture.formats.rawheader import parse_raw_header
from drivers.events.synthetic import synthetic_events

SHARED_EVENTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "events"  # ../shared beside the repo
TARGETS_MEVS = {"EVT3 decode": 100, "EVT2 decode": 50, "EVT3 encode": 50, "HDF5/ECF read": 50}
PIECE_BYTES = 4 << 20


def _decode_all(fmt: str, payload: bytes, width: int, height: int, endianness: str | None = None) -> int:
    dec = make_decoder(fmt, width, height, endianness)
    n = 0
    for i in range(0, len(payload), PIECE_BYTES):
        cd, _ = dec.decode(payload[i : i + PIECE_BYTES])
        n += cd.shape[0]
    return n


def _encode_all(fmt: str, cd, trig, width: int, height: int) -> bytes:
    """Encode in 1 Mi-event calls, as a recorder appends chunks (each trigger with the piece it falls in)."""
    enc = make_encoder(fmt, width, height)
    return b"".join(enc.encode(part, ptrig) for part, ptrig in split_by_count(cd, trig, 1 << 20))


def run_io_benchmarks(console: Console, *, n_events: int, repeat: int, stream_mib: int, openeb: bool = True) -> None:
    width, height = 1280, 720
    rows: list[tuple[str, str, float, str]] = []

    def add(name: str, data: str, n: int, seconds: float, extra: str = "") -> None:
        rows.append((name, data, n / seconds / 1e6, extra))
        console.print(f"  {name:<15} {data:<42} {n / seconds / 1e6:8.1f} Mev/s {extra}", highlight=False)

    console.print(f"[bold]focalrig bench io[/]: {n_events:,} synthetic events, best of {repeat}")
    cd, trig = synthetic_events(n_events, width, height)
    label = f"synthetic {width}x{height}, {n_events / 1e6:.0f} M ev"
    for fmt in ("EVT3", "EVT2"):
        payload = _encode_all(fmt, cd, trig, width, height)
        encode_s = best_time(lambda f=fmt: _encode_all(f, cd, trig, width, height), repeat)
        add(f"{fmt} encode", label, cd.shape[0], encode_s, f"({len(payload) / cd.shape[0]:.2f} B/ev)")
        add(f"{fmt} decode", label, cd.shape[0], best_time(lambda f=fmt, b=payload: _decode_all(f, b, width, height),
                                                       repeat))

    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "bench.hdf5"

        def write_h5() -> None:
            with Hdf5EventWriter(h5, width, height) as w:
                for i in range(0, cd.shape[0], 1 << 20):
                    w.write(cd[i : i + (1 << 20)], None)

        def read_h5() -> int:
            with Hdf5EventReader(h5) as r:
                return sum(c.shape[0] for c, _ in r.read_chunks())

        add("HDF5/ECF write", label, cd.shape[0], best_time(write_h5, repeat),
            f"({h5.stat().st_size / cd.shape[0]:.2f} B/ev)")
        add("HDF5/ECF read", label, cd.shape[0], best_time(read_h5, repeat))

        csv = Path(tmp) / "bench.csv"

        def write_csv() -> None:  # OpenEB's CSV layout, as events convert writes it
            with CsvEventWriter(csv) as w:
                for i in range(0, cd.shape[0], 1 << 20):
                    w.write(cd[i : i + (1 << 20)], None)

        add("CSV write", label, cd.shape[0], best_time(write_csv, repeat),
            f"({csv.stat().st_size / cd.shape[0]:.1f} B/ev)")
        csv.unlink()

        for path in sorted(SHARED_EVENTS.glob("*.raw")):
            data = path.read_bytes()
            hdr = parse_raw_header(data[: 1 << 16])
            payload = data[hdr.payload_offset :]
            n = _decode_all(hdr.format, payload, hdr.width, hdr.height, hdr.endianness)
            reps = max(1, 2_000_000 // max(n, 1))  # small files: decode several times per run
            secs = best_time(lambda p=payload, h=hdr, k=reps: [_decode_all(h.format, p, h.width, h.height, h.endianness)
                                                          for _ in range(k)], repeat)
            add(f"{hdr.format} decode", f"real: {path.name[:40]}", n * reps, secs)
        for path in sorted(SHARED_EVENTS.glob("*.hdf5")):
            def read_real(p=path) -> int:
                with Hdf5EventReader(p) as r:
                    return sum(c.shape[0] for c, _ in r.read_chunks())
            n = read_real()
            add("HDF5/ECF read", f"real: {path.name[:40]}", n, best_time(read_real, repeat))

        if stream_mib > 0:
            _stream_benchmark(console, Path(tmp), cd, trig, width, height, stream_mib, add)
        if openeb:
            _openeb_benchmark(console, Path(tmp), cd, trig, n_events, repeat)

    table = Table(title="targets (brief)", title_justify="left")
    for col in ("measurement", "target Mev/s", "best measured Mev/s"):
        table.add_column(col)
    for name, target in TARGETS_MEVS.items():
        got = max((r[2] for r in rows if r[0] == name and r[1].startswith("synthetic")), default=float("nan"))
        style = "green" if got >= target else "red"
        table.add_row(name, str(target), f"[{style}]{got:.1f}[/]")
    console.print(table)


def _stream_benchmark(console: Console, tmp: Path, cd, trig, width: int, height: int, mib: int, add) -> None:
    """Stream RAW EVT3 files of ``mib / 4`` and ``mib`` MiB from disk; peak memory must not grow with size."""
    span = int(cd["t"][-1]) + 1
    for size_mib in (max(mib // 4, 1), mib):
        path = tmp / f"stream_{size_mib}.raw"
        n_written = 0
        with RawEventWriter(path, width, height) as w:
            k = 0
            while path.stat().st_size < size_mib << 20:
                part, tpart = cd.copy(), trig.copy()
                part["t"] += k * span
                tpart["t"] += k * span
                w.write(part, tpart)
                w.flush()
                n_written += part.shape[0]
                k += 1
        tracemalloc.start()
        with Stopwatch() as sw, RawEventReader(path) as r:
            n = sum(c.shape[0] for c, _ in r.read_chunks())
        secs = sw.wall_s
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        add("EVT3 stream", f"file {path.stat().st_size / 2**20:.0f} MiB from disk", n, secs,
            f"(peak traced memory {peak / 2**20:.0f} MiB, 4 MiB read blocks)")
        if n != n_written:
            console.print(f"[red]stream read {n} events, wrote {n_written}[/]")
        path.unlink()


#: focalrig's in-process decode against OpenEB's, on the dense random-position 1280x720 EVT3 file (brief).
OPENEB_TARGETS = {"RawReader": 3.0, "EventsIterator": 1.0}


def _openeb_benchmark(console: Console, tmp: Path, runs, run_trig, n_events: int, repeat: int) -> None:
    """The same RAW files decoded by focalrig and by OpenEB in this run; then file-to-file processes."""
    from app.bench.openeb import focalrig_decoders, openeb_decoders, whole_process
    from drivers.events.synthetic import random_events
    from drivers.openeb import find_openeb, where_looked

    install = find_openeb()
    if install is None:
        console.print(f"OpenEB: not installed (looked in {where_looked()}); its figures are left out")
        return
    width, height = 1280, 720
    files: list[tuple[str, Path]] = []

    def write(name: str, fmt: str, cd, trig=None) -> Path:
        path = tmp / f"openeb_{name}.raw"
        with RawEventWriter(path, width, height, fmt=fmt) as w:
            w.write(cd, trig)
        return path

    dense = random_events(n_events, width, height, rate=20e6, seed=1)
    files.append((f"EVT3 dense random positions, {n_events / 1e6:.0f} M ev", write("dense", "EVT3", dense)))
    files.append((f"EVT3 dense runs (vector-heavy), {n_events / 1e6:.0f} M ev", write("runs", "EVT3", runs, run_trig)))
    n_sparse = max(n_events // 5, 1)
    files.append((f"EVT3 sparse random, 0.2 Mev/s, {n_sparse / 1e6:.0f} M ev",
                  write("sparse", "EVT3", random_events(n_sparse, width, height, rate=2e5, seed=2))))
    files.append((f"EVT2 dense random positions, {n_events / 1e6:.0f} M ev", write("evt2", "EVT2", dense)))
    files += [(f"real: {p.name[:34]}", p) for p in sorted(SHARED_EVENTS.glob("*.raw"))]

    console.print(f"[bold]OpenEB {install.prefix}[/]: in-process decode of the same files to events, best of "
                  f"{repeat} (Mev/s; 1 M-event batches, absolute times): focalrig's RawEventReader and "
                  "EventsIterator, OpenEB's RawReader and EventsIterator, and focalrig's best over each",
                  soft_wrap=True)
    where, ratios = "", {}
    for label, path in files:
        ours = focalrig_decoders(path, repeat)
        theirs, where = openeb_decoders(path, repeat)
        n = ours["RawEventReader"].events
        best = max(t.mevs for t in ours.values())
        x_raw, x_it = best / theirs["RawReader"].mevs, best / theirs["EventsIterator"].mevs
        if path.name == "openeb_dense.raw":
            ratios = {"RawReader": x_raw, "EventsIterator": x_it}
        console.print(f"  {label:<46} {path.stat().st_size / max(n, 1):5.2f} B/ev | focalrig "
                      f"{ours['RawEventReader'].mevs:6.1f} {ours['EventsIterator'].mevs:6.1f} | OpenEB "
                      f"{theirs['RawReader'].mevs:6.1f} {theirs['EventsIterator'].mevs:6.1f} | "
                      f"×{x_raw:5.1f} ×{x_it:4.1f}", highlight=False, soft_wrap=True)
        mismatch = {k: t.events for k, t in theirs.items() if t.events != n}
        if mismatch:
            console.print(f"[red]{label}: OpenEB decoded {mismatch} CD events, focalrig {n}[/]")
    console.print(f"  (OpenEB ran {where}; the small real files are dominated by opening them)")
    for name, target in OPENEB_TARGETS.items():
        got = ratios.get(name, float("nan"))
        style = "green" if got >= target else "red"
        console.print(f"  target: focalrig ≥ {target:g}× OpenEB's {name} on dense random EVT3: "
                      f"[{style}]{got:.2f}×[/]", soft_wrap=True)

    console.print(f"[bold]File to file[/], whole processes (start-up included), best of {repeat}: "
                  f"{files[0][0]}", soft_wrap=True)
    for label, t in whole_process(install, files[0][1], tmp, n_events, repeat):
        console.print(f"  {label:<34} {t.seconds:7.2f} s  {t.mevs:7.1f} Mev/s", highlight=False, soft_wrap=True)
