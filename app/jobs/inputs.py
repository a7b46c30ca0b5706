"""What a batch works on: PATHS (recording folders, event files, globs, folders of those) expanded into inputs,
each with the identity its outputs are keyed by.

A recording's identity is its uid (``metadata.json``), so a recording copied or moved keeps its outputs; an event
file, or a folder whose metadata cannot be read, is identified by a fingerprint of its content (size and the
first and last 64 KiB of each file: cheap on files of many GiB, and changed by any rewrite that matters).
Reading the identity never fails: a recording too damaged to have one still gets a fingerprint, and its job
then fails with the reader's own message.
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

#: A folder holding either of these is a recording (as capture.recording's reader decides).
RECORDING_MARKERS = ("metadata.json", "run.jsonl")
#: Event files a batch takes beside recordings (the formats capture.formats reads).
EVENT_SUFFIXES = (".raw", ".hdf5", ".h5", ".npz", ".csv")
_EDGE = 64 << 10


@dataclass(frozen=True)
class Source:
    """One input of a batch: its absolute path, its name, and the identity its outputs are keyed by."""

    path: Path
    name: str
    uid: str


def is_recording(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in RECORDING_MARKERS)


def is_event_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EVENT_SUFFIXES


def expand(paths: list[str], *, event_files: bool) -> tuple[list[Path], list[str]]:
    """(inputs, problems): every recording (and, with ``event_files``, event file) that ``paths`` name.

    A path may be a recording folder, an event file, a glob (quoted, so the shell leaves it), or a folder of
    those (its direct entries). Each is taken once, in the order given. A path that names nothing usable is a
    problem, in words, instead of an input: the caller shows it as that path's failed row.
    """
    found: list[Path] = []
    problems: list[str] = []
    for text in paths:
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            problems.append(f"{text}: the pattern matches nothing")
        for match in matches:
            path = Path(match).resolve()
            if is_recording(path) or (event_files and is_event_file(path)):
                found.append(path)
            elif path.is_dir():
                inside = [p for p in sorted(path.iterdir()) if is_recording(p) or (event_files and is_event_file(p))]
                found += inside
                if not inside:
                    what = "recordings or event files" if event_files else "recordings"
                    problems.append(f"{path}: neither a recording nor a folder of {what}")
            elif path.exists():
                problems.append(f"{path}: not a recording" + (" or an event file (.raw, .hdf5, .h5, .npz, .csv)"
                                                               if event_files else " folder"))
            else:
                problems.append(f"{path}: no such file or folder")
    unique = list(dict.fromkeys(found))
    return unique, problems


def fingerprint(path: Path) -> str:
    """``fp-`` + a hash of the names, sizes and first and last 64 KiB of the file (or the folder's files)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.relative_to(path) if f != path else f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(_EDGE))
            if size > _EDGE:
                fh.seek(max(_EDGE, size - _EDGE))
                digest.update(fh.read(_EDGE))
    return "fp-" + digest.hexdigest()[:24]


def read_metadata(path: Path) -> dict:
    """A recording folder's ``metadata.json`` as a dict; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def identify(path: Path) -> Source:
    """The input at ``path`` with its identity: the recording's uid, else a content fingerprint."""
    uid = read_metadata(path).get("uid") if path.is_dir() else None
    return Source(path, path.name, uid if isinstance(uid, str) and uid else fingerprint(path))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a (small) file's bytes: how a calibration file is named in keys and provenance."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def named_calibration(recording: Path, calib: Path | None) -> Path | None:
    """The calibration file a recording is sliced with: ``calib`` when given, else the file its metadata names
    (None when it names none; the path even when it is gone, so the job can say which file is missing)."""
    if calib is not None:
        return calib
    named = read_metadata(recording).get("calibration_file") if recording.is_dir() else None
    return Path(named) if isinstance(named, str) and named else None
