"""Whole calibration steps over captured data, so commands and the GUI stay thin.

- :func:`blink_views`: a blinking-target recording (frames + events) → per-blink target views;
- :func:`lag_from_sweeps` / :func:`breathing_from_sweeps`: sweeps of a static textured scene → timing, breathing;
- :func:`calibrate`: both, into one :class:`~calibration.model.Calibration` plus what the report shows;
- :func:`calibrate_recording`: the same from recording folders (what ``focalrig calibrate`` runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from calibration.breathing import estimate_breathing
from calibration.model import Calibration, CalibrationError
from calibration.spatial import Board, TargetView, calibrate_spatial, detect_corners, event_image
from calibration.temporal import FocalModel, LagFit, estimate_lag, frame_powers
from capture.formats.stats import window_counts
from capture.recording import Recording
from capture.recording.layout import FRAMES_FILE, METADATA
from capture.sweep import SweepData
from drivers.camera import Frame
from drivers.events.dtypes import EVENT_CD, concat_events


@dataclass
class BlinkView:
    """One blink: its events' accumulation image, the frame nearest in time, and the corners found in each."""

    frame: Frame
    event_image: np.ndarray
    view: TargetView
    t_us: tuple[int, int]


def blink_bursts(t_us: np.ndarray, *, bin_us: int = 1000, min_fraction: float = 0.02,
                 gap_us: int = 3000) -> list[tuple[int, int]]:
    """Time windows [t0, t1) of the blinks: runs of 1 ms bins holding ≥ ``min_fraction`` of the busiest bin.

    A blinking target makes nearly all pixels of the board fire within a few ms and little in between; runs
    closer than ``gap_us`` are merged.
    """
    if len(t_us) == 0:
        return []
    t = np.asarray(t_us, np.int64)
    t0 = int(t.min())
    # Only occupied bins: a dense histogram would be sized by the time span, which a corrupt file stretches.
    bins, hist = window_counts(t - t0, bin_us)
    idx = bins[hist >= max(1, min_fraction * hist.max())]
    runs: list[list[int]] = []
    for i in idx:
        if runs and (i - runs[-1][1]) * bin_us <= gap_us:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    return [(t0 + a * bin_us, t0 + (b + 1) * bin_us) for a, b in runs]


def blink_views(frames: Sequence[Frame], cd: np.ndarray, event_size: tuple[int, int], board: Board,
                bursts: list[tuple[int, int]] | None = None) -> list[BlinkView]:
    """Pair each blink's events with the frame exposed nearest to it and detect the board in both.

    Both states of a blinking chessboard have their inner corners in the same place, so any frame near the
    blink shows the same corners as the blink's events, as long as the board did not move in between.
    """
    if not frames:
        raise CalibrationError("the target recording has no frames; spatial calibration needs the RGB camera")
    mids = np.array([0.5 * (f.exposure_start_us + f.exposure_end_us) for f in frames])
    out = []
    for t0, t1 in (blink_bursts(cd["t"]) if bursts is None else bursts):
        a, b = np.searchsorted(cd["t"], [t0, t1])
        img = event_image(cd[a:b], *event_size)
        frame = frames[int(np.argmin(np.abs(mids - 0.5 * (t0 + t1))))]
        view = TargetView(detect_corners(frame.image, board), detect_corners(img, board), f"blink@{t0}us")
        out.append(BlinkView(frame, img, view, (t0, t1)))
    if not out:
        raise CalibrationError("no blinks found in the target recording's events; is the target blinking and in "
                               "view of the event camera?")
    return out


def _aligned_events(sweeps: Sequence[SweepData]) -> np.ndarray:
    """All sweeps' events, sweep k shifted so its sync edge lands k periods after the first one's.

    Every sweep then has the same phase origin, and the sweeps stay apart in time (not stacked on one window):
    the lag estimator follows each pixel through each sweep separately.
    """
    t_ref = sweeps[0].commanded.t0_us
    period = sweeps[0].commanded.period_us
    parts = []
    for k, s in enumerate(sweeps):
        cd = s.cd.copy()
        cd["t"] += round(t_ref + k * period - s.commanded.t0_us)
        parts.append(cd)
    return concat_events(parts, EVENT_CD)


def lag_from_sweeps(sweeps: Sequence[SweepData], **kwargs) -> LagFit:
    """Lens lag from one or more sweeps of a static textured scene (each timed from its own sync edge)."""
    if not sweeps:
        raise CalibrationError("no sweeps to estimate the lens lag from")
    periods = {round(s.commanded.period_us, 3) for s in sweeps}
    if len(periods) != 1:
        raise CalibrationError(f"sweeps of different periods {sorted(periods)} µs cannot be folded together")
    return estimate_lag(_aligned_events(sweeps), sweeps[0].commanded, sweeps[0].event_geometry, **kwargs)


def breathing_from_sweeps(sweeps: Sequence[SweepData], model_lag_us: float, ref_dpt: float, **kwargs):
    """Breathing from the frames of sweeps of a static planar textured scene (powers from the timing model)."""
    images, powers = [], []
    for s in sweeps:
        if s.frames:
            images += [f.image for f in s.frames]
            powers.append(frame_powers(s.frames, FocalModel(s.commanded, model_lag_us)))
    if not images:
        raise CalibrationError("the sweeps have no frames: focus breathing is measured on RGB frames")
    return estimate_breathing(images, np.concatenate(powers), ref_dpt=ref_dpt, **kwargs)


@dataclass
class CalibrationRun:
    """A calibration and what its report shows."""

    calibration: Calibration
    notes: list[str] = field(default_factory=list)
    views: list[BlinkView] = field(default_factory=list)
    lag: LagFit | None = None


def calibrate(*, views: list[BlinkView] | None = None, sweeps: Sequence[SweepData] = (), board: Board | None = None,
              rgb_size: tuple[int, int] | None = None, event_size: tuple[int, int] | None = None,
              min_views_intrinsics: int = 8, breathing: bool = True, meta: dict | None = None) -> CalibrationRun:
    """Spatial part from ``views`` (if any), temporal and breathing parts from ``sweeps`` (if any)."""
    if not views and not sweeps:
        raise CalibrationError("nothing to calibrate from: give target views (a blinking board) and/or sweeps")
    notes: list[str] = []
    spatial = temporal = breath = lag = None
    if views:
        if board is None or rgb_size is None or event_size is None:
            raise CalibrationError("spatial calibration needs the board and both image sizes")
        spatial, spatial_notes = calibrate_spatial([v.view for v in views], board, rgb_size, event_size,
                                                   min_views_intrinsics=min_views_intrinsics,
                                                   power_dpt=views[0].frame.focal_power_dpt)
        notes += spatial_notes
    if sweeps:
        lag = lag_from_sweeps(sweeps)
        temporal = lag.temporal()
        if breathing:
            c = sweeps[0].commanded
            ref = spatial.power_dpt if spatial is not None and spatial.power_dpt is not None else \
                0.5 * (c.low_dpt + c.high_dpt)
            breath = breathing_from_sweeps(sweeps, temporal.lag_us, ref)
    cal = Calibration(spatial, temporal, breath, meta=dict(meta or {}, notes=notes))
    return CalibrationRun(cal, notes, list(views or []), lag)



def _target_views(path: Path, board: Board) -> tuple[list[BlinkView], tuple[int, int], tuple[int, int]]:
    """Blink views of a blinking-target recording, with its (RGB, event) sizes."""
    with Recording.open(path) as rec:
        damaged = rec.part_error(FRAMES_FILE, "the target's frames, which spatial calibration needs")
        if damaged is not None:
            raise damaged
        store = rec.frames
        frames = [store[i] for i in np.flatnonzero(store.on_event_clock)]
        rgb_size, event_size = rec.frame_geometry, rec.event_geometry
        if not frames or rgb_size is None or event_size is None:
            raise CalibrationError(f"{path}: a target recording needs frames on the event clock and events "
                                   "(record with the frame strobe wired to the event camera)")
        with rec.events() as reader:
            cd = concat_events([c for c, _ in reader.read_chunks()], EVENT_CD)
    return blink_views(frames, cd, event_size, board), tuple(rgb_size), tuple(event_size)


def _is_target_recording(rec: Recording) -> bool:
    """True for a readable recording folder that is not a sweep capture (a blinking-target recording).

    Sweep captures record their commanded sweep in ``metadata.json``; without a readable metadata file it
    cannot be told, and the recording is not taken for a target.
    """
    return rec.folder is not None and METADATA not in rec.problems and not rec.metadata.get("commanded")


def calibrate_recording(path: str | Path, *, target: str | Path | None = None, board: Board | None = None,
                        n_sweeps: int = 5, min_views_intrinsics: int = 8, breathing: bool = True) -> CalibrationRun:
    """Calibrate from recordings: timing and breathing from the first ``n_sweeps`` sweeps of ``path`` (if it has
    sweeps), geometry from the blinking-target recording ``target`` — or from ``path`` itself when it has no sweeps.
    """
    path = Path(path)
    board = board or Board()
    with Recording.open(path) as rec:
        no_sweeps = rec.no_sweeps_reason()
        if no_sweeps is not None and (target is not None or not _is_target_recording(rec)):
            # Timing and breathing were asked for (a separate target, or a sweep recording): a calibration
            # silently missing them would only fail later, at slicing, far from the cause.
            raise CalibrationError(f"{no_sweeps}. Lens lag and focus breathing are measured on sweeps, so there is "
                                   "nothing to calibrate them from")
        sweeps = list(islice(rec.sweeps(), n_sweeps)) if no_sweeps is None else []
    target = Path(target) if target is not None else (None if sweeps else path)
    views, rgb_size, event_size = _target_views(target, board) if target is not None else ([], None, None)
    meta = {"recording": str(path), "target_recording": None if target is None else str(target),
            "board": list(board.corners), "sweeps_used": [s.index for s in sweeps]}
    return calibrate(views=views, sweeps=sweeps, board=board, rgb_size=rgb_size, event_size=event_size,
                     min_views_intrinsics=min_views_intrinsics, breathing=breathing, meta=meta)
