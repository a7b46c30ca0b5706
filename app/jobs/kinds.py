"""The kinds of work ``focalrig batch`` runs, and what keys their outputs.

An output is keyed by its input's identity and a hash of everything that decides its bytes: the kind, its
settings, and the content of every file the settings point to — the calibration a recording is sliced with
(given, or the one the recording names), a target recording (by uid). A file moved or renamed keeps its
outputs; a better calibration, or any changed option, makes new ones beside the old.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.jobs.calibrate import CalibrateSettings, calibrate_into
from app.jobs.convert import ConvertSettings, convert_into
from app.jobs.fuse import FuseSettings, fuse_recording
from app.jobs.inputs import Source, file_sha256, fingerprint, identify, is_recording, named_calibration
from app.jobs.inspect import inspect_into
from app.jobs.stack import StackSettings, stack_recording

#: Bumped when a kind's outputs change for the same settings, so old outputs are not taken for new ones.
KEY_VERSION = 1
#: Files up to this size are hashed whole when a setting points to them; larger ones are fingerprinted.
_HASH_WHOLE = 16 << 20


@dataclass(frozen=True)
class Kind:
    """One kind of batch work: the function that does it for one input (the single command's function), the
    inputs it takes, and whether a calibration decides its output."""

    name: str
    work: Callable[..., dict[str, Any]]
    settings_type: type | None
    event_files: bool
    calibrated: bool
    help: str
    #: Modules a worker imports when it starts, so that its first job is not also its start-up.
    preload: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("fuse", fuse_recording, FuseSettings, False, True,
         "Fuse every sweep of each recording (focalrig fuse --all): one folder per sweep.",
         ("capture.recording", "calibration.stack", "fusion.engine", "fusion.classical", "fusion.outputs")),
    Kind("stack", stack_recording, StackSettings, False, True,
         "Export each recording's sweeps as aligned focal stacks (focalrig stack).",
         ("capture.recording", "calibration.stack", "capture.stack_folders")),
    Kind("calibrate", calibrate_into, CalibrateSettings, False, False,
         "Calibrate from each recording (focalrig calibrate): calib.json and calib.png per recording.",
         ("capture.recording", "calibration.pipeline", "calibration.report")),
    Kind("convert", convert_into, ConvertSettings, True, False,
         "Convert each event file, or recording's events, to another format (focalrig events convert).",
         ("capture.formats.registry", "capture.formats.convert")),
    Kind("inspect", inspect_into, None, True, False,
         "Summarise each recording or event file (focalrig inspect): summary.json and rate.npy.",
         ("capture.recording.summary",)),
)}


def jsonable(value: Any) -> Any:
    """Settings as plain JSON: dataclasses as objects, paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    return value


def path_identity(path: Path) -> str | None:
    """What a setting that names a file stands for: a recording's uid, a small file's SHA-256, else a fingerprint;
    None for a path that is not there."""
    if is_recording(path):
        return identify(path).uid
    if path.is_file():
        return file_sha256(path) if path.stat().st_size <= _HASH_WHOLE else fingerprint(path)
    return None


def calibration_of(kind: str, settings: Any, source: Source) -> Path | None:
    """The calibration file the job slices ``source`` with (None for kinds that use none, or when there is none)."""
    if not KINDS[kind].calibrated:
        return None
    return named_calibration(source.path, settings.calib)


def identity(kind: str, settings: Any, source: Source) -> dict[str, Any]:
    """Everything that decides the output of ``kind`` on ``source``, as the plain dict its key hashes."""
    values = jsonable(settings) if settings is not None else {}
    if dataclasses.is_dataclass(settings):
        for f in dataclasses.fields(settings):
            value = getattr(settings, f.name)
            if not f.metadata.get("keyed", True):  # how it is read, not what comes out (a block size)
                values.pop(f.name)
            elif isinstance(value, Path):
                values[f.name] = path_identity(value)
    out: dict[str, Any] = {"kind": kind, "key_version": KEY_VERSION, "settings": values}
    if KINDS[kind].calibrated:
        cal = calibration_of(kind, settings, source)
        out["settings"].pop("calib", None)  # the file's content stands for it, below
        out["calibration"] = path_identity(cal) if cal is not None else None
    return out


def settings_hash(kind: str, settings: Any, source: Source) -> str:
    """The SHA-256 of :func:`identity` (canonical JSON)."""
    text = json.dumps(identity(kind, settings, source), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def output_key(source: Source, digest: str) -> str:
    """The output folder's name: the input's name, its uid's first 8 characters and the settings hash's first 12."""
    uid = source.uid.removeprefix("fp-")
    return f"{source.name}-{uid[:8]}-{digest[:12]}"


def wants_gpu(kind: str, settings: Any) -> bool:
    """Whether the job runs a GPU method (the network on a device that may be CUDA): it then asks the cluster for
    a ``GPU`` resource."""
    return kind == "fuse" and settings.method == "net" and settings.device != "cpu"
