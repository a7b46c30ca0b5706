"""Open any supported event file by its extension: the one entry point the CLI and replay use."""

from __future__ import annotations

from pathlib import Path

from capture.formats.base import EventFileError, EventFileReader, EventFileWriter

READ_EXTENSIONS = (".raw", ".hdf5", ".h5", ".npz", ".csv")
WRITE_EXTENSIONS = READ_EXTENSIONS


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in READ_EXTENSIONS:
        raise EventFileError(
            path, f"unknown event file type '{path.suffix or '(none)'}'; use one of {', '.join(READ_EXTENSIONS)}"
        )
    return suffix


def open_events(
    path: str | Path,
    *,
    time_shift: bool = False,
    width: int | None = None,
    height: int | None = None,
    block_bytes: int | None = None,
) -> EventFileReader:
    """A reader for ``path``; ``width``/``height`` supply geometry to files without it (CSV, NPZ, damaged HDF5).

    ``time_shift`` applies OpenEB's RAW time shift (ignored for other formats, whose times are absolute);
    ``block_bytes`` sets the RAW decoding block size (memory while streaming).
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise EventFileError(path, "no such file")
    if suffix == ".raw":
        from capture.formats.raw import RawEventReader

        extra = {} if block_bytes is None else {"block_bytes": block_bytes}
        return RawEventReader(path, time_shift=time_shift, width=width, height=height, **extra)
    if suffix in (".hdf5", ".h5"):
        from capture.formats.hdf5 import Hdf5EventReader

        return Hdf5EventReader(path, width=width, height=height)
    if suffix == ".npz":
        from capture.formats.npz import read_npz

        return read_npz(path, width=width, height=height)
    from capture.formats.csvfile import CsvEventReader

    return CsvEventReader(path, width=width, height=height)


#: Header/attribute keys that describe the container itself and are rewritten by every writer;
#: ``plugin_name`` names the HAL plugin that decodes the original bytes, which OpenEB never copies.
CONTAINER_KEYS = frozenset({"date", "evt", "format", "geometry", "version", "endianness", "Date", "plugin_name"})


def _storable(key: str, value: str) -> bool:
    """Whether a metadata item fits every format's header: a printable ASCII token key, a one-line ASCII value.

    Metadata copied from a source file (a damaged one included) may hold anything; what no output format can
    store is left behind rather than failing the conversion of the events.
    """
    return (bool(key) and key.isascii() and key.isprintable() and not any(c.isspace() for c in key)
            and value.isascii() and value.isprintable())


def create_writer(
    path: str | Path,
    width: int,
    height: int,
    *,
    evt: int = 3,
    metadata: dict[str, str] | None = None,
) -> EventFileWriter:
    """A writer chosen by extension; ``evt`` (3 or 2) selects the RAW encoding.

    ``metadata`` (e.g. a source file's serial number and sensor generation) is stored where the
    format has room for it: RAW header lines or HDF5 root attributes; items no header can hold are left out.
    """
    path = Path(path)
    suffix = _suffix(path)
    meta = {k: str(v) for k, v in (metadata or {}).items() if k not in CONTAINER_KEYS and _storable(k, str(v))}
    if suffix == ".raw":
        from capture.formats.raw import RawEventWriter

        if evt not in (2, 3):
            raise EventFileError(path, f"RAW files are written as EVT 3 or EVT 2, not EVT {evt}")
        return RawEventWriter(path, width, height, fmt=f"EVT{evt}", header=meta)
    if suffix in (".hdf5", ".h5"):
        from capture.formats.hdf5 import Hdf5EventWriter

        return Hdf5EventWriter(path, width, height, metadata=meta)
    if suffix == ".npz":
        from capture.formats.npz import NpzEventWriter

        return NpzEventWriter(path, width, height)
    from capture.formats.csvfile import CsvEventWriter

    return CsvEventWriter(path)
