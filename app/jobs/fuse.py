"""Fuse a recording's sweeps: calibration → aligned focal stack → all-in-focus image and depth map, one folder per
sweep. What ``focalrig fuse`` and ``focalrig batch fuse`` both run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.jobs.listener import Listener

if TYPE_CHECKING:
    from calibration.model import Calibration
    from capture.recording import Recording


@dataclass(frozen=True)
class FuseSettings:
    """The options of ``focalrig fuse`` (see its ``--help``); ``sweeps=None`` fuses every sweep."""

    calib: Path | None = None
    sweeps: tuple[int, ...] | None = (0,)
    planes: int | None = None
    span: str | None = None
    method: str = "auto"
    device: str = "auto"
    events: bool = True
    event_weight: float = 0.0
    single_frame: bool = False
    blend: str = "soft"
    exposure: bool = True


#: How the all-in-focus pixel is made from the planes (:mod:`fusion.blend`): the noise-aware mean of the planes as
#: sharp as the best one, or the best plane's pixel alone.
BLENDS = ("soft", "gather")


def method_options(method: str, event_weight: float = 0.0, blend: str = "soft", exposure: bool = True) -> dict:
    """The options ``fusion.engine.fuse`` gets for ``method`` (the resolved one, not "auto"): the event-activity
    weight (classical only), and the output and exposure normalisation where they differ from the defaults."""
    if blend not in BLENDS:
        raise ValueError(f"--blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    options: dict = {"event_weight": event_weight} if method == "classical" and event_weight > 0 else {}
    if blend != "soft":
        options["output"] = blend
    if not exposure:
        options["exposure"] = False
    return options


def recording_calibration(recording: Recording, calib: Path | None) -> Calibration:
    """The calibration to slice ``recording`` with: ``calib``, else the file the recording was captured with."""
    from calibration.model import Calibration, CalibrationError

    if calib is not None:
        return Calibration.load(calib)
    named = recording.metadata.get("calibration_file")
    if named and Path(named).is_file():
        return Calibration.load(named)
    where = f" (it names {named}, which is not there)" if named else ""
    raise CalibrationError(f"{recording.path}: no calibration to slice it with{where}; pass --calib calib.json "
                           "(make one with `focalrig calibrate`)")


def fuse_recording(rec: Path, out: Path, settings: FuseSettings, listener: Listener | None = None) -> dict[str, Any]:
    """Fuse the chosen sweeps of the recording ``rec`` into ``out/sweepNNNNN/`` (fusion.outputs' files, whose
    result.json names the recording's uid and the calibration's id). Returns what was done, for a summary."""
    from dataclasses import replace

    from app.jobs.stacking import ShortfallNote, stack_choice
    from calibration.stack import build_focal_stack
    from capture.recording import Recording, RecordingError
    from fusion.engine import fuse, resolve_method
    from fusion.outputs import write_outputs

    listener = listener or Listener()
    method = resolve_method(settings.method, settings.device)
    # Once, before any work: a wrong --blend fails here, not after the first sweep is stacked.
    options = method_options(method, settings.event_weight, settings.blend, settings.exposure)
    with Recording.open(rec) as recording:
        no_sweeps = recording.no_sweeps_reason()
        if no_sweeps is not None:  # every sweep of zero sweeps would otherwise end silently, writing nothing
            raise RecordingError(f"{no_sweeps}; there is no sweep to fuse")
        cal = recording_calibration(recording, settings.calib)
        n_planes, span = stack_choice(recording.plan, settings.planes, settings.span)
        note = ShortfallNote(recording.plan, n_planes, span, listener.note)
        wanted = range(len(recording)) if settings.sweeps is None else settings.sweeps
        for k in wanted:
            if not 0 <= k < len(recording):
                raise ValueError(f"{rec}: no sweep {k}; the recording has {len(recording)} sweep(s) (0–"
                                 f"{len(recording) - 1})")
        listener.started(len(wanted))
        fused = []
        for k in wanted:
            listener.working(f"sweep {k}")
            stack = build_focal_stack(recording.sweep(k), cal, n_planes=n_planes, span=span,
                                      with_events=settings.events, single_frame=settings.single_frame)
            note.check(stack.n_planes, k)
            stack = replace(stack, meta={**stack.meta, "recording": str(recording.path),
                                         "recording_uid": recording.uid})
            result = fuse(stack, method=method, device=settings.device, **options)
            write_outputs(result, stack, out / stack.name)
            fused.append({"sweep": k, "planes": stack.n_planes, "folder": stack.name})
            listener.done(f"sweep {k}: {stack.n_planes} planes {stack.shape[1]}x{stack.shape[0]} → "
                          f"{out / stack.name} ({result.method} on {result.device}, "
                          f"{result.timings_s['total']:.3f} s)")
    planes = sorted({f["planes"] for f in fused})
    return {"summary": f"{len(fused)} sweep(s), {'/'.join(map(str, planes))} planes, {method}",
            "method": method, "calibration_id": cal.id, "sweeps": fused}
