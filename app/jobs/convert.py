"""Convert an event file (or a recording's events) between .raw (EVT 3.0 / 2.0), .hdf5, .npz and .csv. What
``focalrig events convert`` and ``focalrig batch convert`` both run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.jobs.listener import Listener

#: Output formats by the extension that picks them.
SUFFIXES = (".raw", ".hdf5", ".h5", ".npz", ".csv")


@dataclass(frozen=True)
class ConvertSettings:
    """How to read the source and write the output: the options of ``focalrig events convert`` with the
    configuration's ``io`` defaults already applied (a batch worker has no configuration of its own)."""

    evt: int = 3
    width: int | None = None
    height: int | None = None
    time_shift: bool = False
    block_bytes: int | None = field(default=None, metadata={"keyed": False})  # memory, not output
    hdf5_generation: str = "4.2"
    #: The output's extension (a batch names outputs after their input; a single command takes DST).
    suffix: str = ".hdf5"


def events_path(src: Path) -> Path:
    """The event file of ``src``: itself, or a recording folder's ``events.raw``."""
    return src / "events.raw" if src.is_dir() else src


def convert_file(src: Path, dst: Path, settings: ConvertSettings, listener: Listener | None = None) -> tuple[int, int]:
    """Stream the events of ``src`` into ``dst`` (its extension picks the format); returns (CD, trigger) counts.

    The source's header fields travel with the events; an HDF5 output whose source names no sensor generation
    gets ``settings.hdf5_generation``.
    """
    from capture.formats.convert import convert_events
    from capture.formats.registry import open_events

    listener = listener or Listener()
    with open_events(src, time_shift=settings.time_shift, width=settings.width, height=settings.height,
                     block_bytes=settings.block_bytes) as reader:
        meta = dict(reader.info.metadata)
        if dst.suffix.lower() in (".hdf5", ".h5"):
            meta.setdefault("generation", settings.hdf5_generation)
        listener.started(1.0)
        return convert_events(reader, dst, evt=settings.evt, metadata=meta,
                              on_chunk=lambda n, _: listener.working(f"{n:,} events", reader.progress() or 0.0))


def convert_into(src: Path, folder: Path, settings: ConvertSettings, listener: Listener | None = None) -> dict:
    """A batch's conversion of ``src``: ``<name><suffix>`` in ``folder`` (a recording's events named after it)."""
    stem = src.name if src.is_dir() else src.stem
    dst = folder / f"{stem}{settings.suffix}"
    n_cd, n_trig = convert_file(events_path(src), dst, settings, listener)
    return {"summary": f"{n_cd:,} CD and {n_trig:,} trigger events → {dst.name}", "cd_events": n_cd,
            "trigger_events": n_trig}
