"""A focal-sweep plan: what the lens does, how long, what the cameras do and where the recording goes.

The plan is data, validated before any device is touched (a typo or an impossible combination fails at load
time with the file and key named), so a headless capture of hours never dies at minute one on a bad setting.
Plans live in ``configs/plans/*.toml`` (keys at the top level or under ``[plan]``); ``--set plan.KEY=VALUE``
overrides a key with a TOML value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from drivers.config import StrictModel, describe_validation_error, read_toml
from drivers.focus import within_range

if TYPE_CHECKING:
    from drivers.focus_limits import FocusLimits

PLAN_DIR = Path(__file__).resolve().parents[1] / "configs" / "plans"
DEFAULT_PLAN = PLAN_DIR / "default.toml"

#: EVT3 bytes per CD event for a typical scene (vectorised rows compress better; isolated events cost 4 B).
EVT3_BYTES_PER_EVENT = 2.5


#: Fraction of a stepped plan's dwell left to the lens to settle (frames exposed then are not planes).
STEP_SETTLING = 0.05


class PlanError(ValueError):
    """A plan file or override that cannot be used; the message names the file, the key and the problem."""


class SweepPlan(StrictModel):
    """One capture: the lens waveform, its extent, the cameras' timing, the trigger wiring and the output."""

    name: str = Field("default", description="plan name, used in the recording's folder name")
    waveform: Literal["sine", "triangle", "stepped"] = Field(
        "sine", description="sine/triangle: the lens driver's own generator; stepped: host-timed set points")
    low_dpt: float = Field(0.0, description="low end of the sweep (dioptres)")
    high_dpt: float = Field(2.5, description="high end of the sweep (dioptres)")
    frequency_hz: float = Field(10.0, gt=0, le=1000, description="sweep frequency of sine/triangle (one sweep = "
                                "one full period, up then down)")
    n_planes: int = Field(16, ge=1, le=1024, description="focal planes per sweep: the most frames a focal stack takes "
                          "(stepped: the number of set points; 1 holds low_dpt, e.g. for a calibration-target "
                          "recording)")
    stack_span: Literal["period", "half"] = Field(
        "period", description="frames a focal stack takes from one sweep: period = both halves, whose focal powers "
                              "interleave (up to twice the depth sampling); half = the rising half only (half the "
                              "time: scenes that move)")
    dwell_ms: float = Field(20.0, gt=0, description="stepped: time each set point is held")
    sweeps: int | None = Field(None, ge=1, description="number of sweeps to record (or give duration_s)")
    duration_s: float | None = Field(None, gt=0, description="seconds to record (or give sweeps)")
    frame_rate_hz: float = Field(60.0, gt=0, description="frame camera rate")
    exposure_us: float = Field(2000.0, gt=0, description="frame camera exposure")
    strobe_channel: int | None = Field(None, ge=0, le=15, description="event camera trigger-in channel wired to "
                                       "the frame camera's strobe; omit (or 'none') if not wired: frames keep "
                                       "their own clock")
    sync_channel: int | None = Field(None, ge=0, le=15, description="trigger-in channel wired to the lens sync; "
                                     "omit (or 'none') if not wired: phase from the host clock, recording marked "
                                     "soft-synced")
    out_dir: str = Field("recordings", description="parent folder of recordings (--out overrides)")
    name_pattern: str = Field("{time:%y%m%d_%H%M%S}_{plan}_{uid8}", description="recording folder name; fields "
                              "time, plan, uid8; an existing folder is never reused (a counter is appended)")
    expected_event_rate_mev_s: float = Field(2.0, ge=0, description="event rate assumed by --dry-run and the "
                                             "free-disk check")
    min_free_mib: float = Field(200.0, ge=0, description="free disk space kept on top of the expected volume")
    auto_range: dict[str, Any] | None = Field(None, description="how an automatic range chose low_dpt, high_dpt and "
                                              "n_planes (filled by capture --auto-range and the GUI's Auto range, "
                                              "recorded with the plan; not a setting)")

    @field_validator("strobe_channel", "sync_channel", "sweeps", "duration_s", mode="before")
    @classmethod
    def _none_word(cls, value: object) -> object:
        """TOML has no null: ``--set plan.sync_channel=none`` unsets a key."""
        return None if isinstance(value, str) and value.strip().lower() in ("none", "") else value

    @model_validator(mode="after")
    def _consistent(self) -> SweepPlan:
        holding = self.waveform == "stepped" and self.n_planes == 1
        if self.n_planes < 2 and not holding:
            raise ValueError("n_planes must be at least 2 (only a stepped plan may hold one set point)")
        if not (self.high_dpt > self.low_dpt or holding):
            raise ValueError(f"high_dpt ({self.high_dpt}) must be above low_dpt ({self.low_dpt})")
        if self.sweeps is not None and self.duration_s is not None:
            raise ValueError("give either sweeps or duration_s, not both")
        if self.exposure_us > 1e6 / self.frame_rate_hz:
            raise ValueError(f"exposure_us {self.exposure_us:g} exceeds the frame period at {self.frame_rate_hz:g} Hz")
        if self.strobe_channel is not None and self.strobe_channel == self.sync_channel:
            raise ValueError("strobe_channel and sync_channel must be different trigger inputs")
        if "{" in self.name_pattern.replace("{time", "").replace("{plan}", "").replace("{uid8}", ""):
            raise ValueError("name_pattern may only use the fields {time:...}, {plan} and {uid8}")
        return self

    # -- derived -----------------------------------------------------------------------------------------
    @property
    def period_s(self) -> float:
        """Length of one sweep."""
        if self.waveform == "stepped":
            return self.n_planes * self.dwell_ms / 1000.0
        return 1.0 / self.frequency_hz

    @property
    def step_powers_dpt(self) -> tuple[float, ...]:
        """Stepped: the set points, evenly spaced in dioptres (equal Δdpt per plane), ascending."""
        if self.n_planes == 1:
            return (self.low_dpt,)
        step = (self.high_dpt - self.low_dpt) / (self.n_planes - 1)
        return tuple(self.low_dpt + i * step for i in range(self.n_planes))

    def frames_per_stack(self) -> float:
        """Frames the frame camera delivers over one stack's span (stepped: settled frames per set point)."""
        if self.waveform == "stepped":
            return self.frame_rate_hz * self.dwell_ms / 1000.0 * (1.0 - STEP_SETTLING)
        return self.frame_rate_hz * self.period_s * (0.5 if self.stack_span == "half" else 1.0)

    def plane_shortfall(self, n_planes: int | None = None) -> str | None:
        """One line saying that a stack cannot have ``n_planes`` (default: the plan's) planes and what would give
        them, or None. Every plane of a focal stack is a real frame, so the frames per sweep bound the planes."""
        n = self.n_planes if n_planes is None else n_planes
        frames = self.frames_per_stack()
        if self.waveform == "stepped":
            if frames >= 1.0:
                return None
            need_ms = 1000.0 / (self.frame_rate_hz * (1.0 - STEP_SETTLING))
            return (f"a {self.dwell_ms:g} ms dwell at {self.frame_rate_hz:g} fps leaves some set points without a "
                    f"settled frame: use dwell_ms >= {need_ms:.1f} or a higher frame rate")
        if math.floor(frames + 1e-9) >= n:
            return None
        span = "period" if self.stack_span == "period" else "rising half"
        share = 1.0 if self.stack_span == "period" else 0.5
        fps = n / (self.period_s * share)
        hz = self.frame_rate_hz * share / n
        return (f"a {self.frequency_hz:g} Hz sweep at {self.frame_rate_hz:g} fps gives {math.floor(frames + 1e-9)} "
                f"frames per {span}, so its stacks have that many planes, not {n}: for {n} planes record at "
                f">= {fps:.0f} fps or sweep at <= {hz:.2f} Hz")

    @property
    def sweeps_total(self) -> int | None:
        """Sweeps to record; None means until stopped (neither sweeps nor duration_s given)."""
        if self.sweeps is not None:
            return self.sweeps
        if self.duration_s is not None:
            return max(1, math.ceil(self.duration_s / self.period_s - 1e-9))
        return None

    def expected_volume(self, frame_size: tuple[int, int, int] = (640, 480, 3), *,
                        event_rate_hz: float | None = None) -> dict[str, float]:
        """Bytes the recording will take: events (EVT3), frames (uncompressed), and the total, plus duration.

        ``frame_size`` is (width, height, channels); ``event_rate_hz`` defaults to the plan's assumed rate.
        Unbounded plans are estimated for one minute.
        """
        n = self.sweeps_total
        duration = (n * self.period_s) if n is not None else 60.0
        rate = self.expected_event_rate_mev_s * 1e6 if event_rate_hz is None else event_rate_hz
        events = rate * duration * EVT3_BYTES_PER_EVENT
        w, h, c = frame_size
        n_frames = math.ceil(duration * self.frame_rate_hz)
        frames = float(n_frames * w * h * c)
        return {"duration_s": duration, "events_bytes": events, "frames": float(n_frames), "frames_bytes": frames,
                "total_bytes": events + frames}

    # -- loading -----------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None,
             overrides: dict[str, object] | list[tuple[str, object]] | None = None) -> SweepPlan:
        """Load ``path`` (default ``configs/plans/default.toml``) with ``KEY -> value`` overrides applied.

        Overrides are already-parsed values (the CLI parses ``--set plan.KEY=VALUE`` with app.config's TOML
        rules); a leading ``plan.`` is accepted. Errors name the file and the key.
        """
        path = Path(path) if path is not None else DEFAULT_PLAN
        data = read_toml(path, PlanError, f"no such plan file (examples in {PLAN_DIR})")
        if isinstance(data.get("plan"), dict):
            if set(data) != {"plan"}:
                raise PlanError(f"{path}: keys outside [plan]: {sorted(set(data) - {'plan'})}")
            data = data["plan"]
        items = overrides.items() if isinstance(overrides, dict) else (overrides or [])
        given: dict[str, str] = {}
        for key, value in items:
            key = key.removeprefix("plan.")
            if key not in cls.model_fields:
                raise PlanError(f"--set plan.{key}: unknown plan key; known: {', '.join(sorted(cls.model_fields))}")
            data[key] = value
            given[key] = f"--set plan.{key}={_toml_value(value)}"
        return cls.from_dict(data, source=str(path), overrides=given)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "plan", overrides: dict[str, str] | None = None) -> SweepPlan:
        """Validate a plan dict (a recording's metadata holds one); errors name ``source`` and the key, or the
        option that set the key (``overrides``: key -> how the user wrote it)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PlanError(describe_validation_error(exc, cls, source, overrides)) from None

    # -- the lens ----------------------------------------------------------------------------------------
    def check_lens(self, limits: FocusLimits) -> None:
        """Raise PlanError naming the first limit of the lens this plan exceeds.

        Called before anything moves (``capture --dry-run``, then again once the lens is connected and has told its
        own range): a capture must never start a sweep the lens driver will refuse half-way through starting.
        """
        if limits.no_focal_power:
            raise PlanError(f"{limits.device}: {limits.no_focal_power}")
        if self.waveform != "stepped":
            names = sorted(w.value for w in limits.sweep_waveforms)
            if self.waveform not in names:
                raise PlanError(f"plan.waveform = {self.waveform!r}: {limits.device} cannot sweep that way; it runs "
                                f"{', '.join([*names, 'stepped'])} (set plan.waveform)")
            fr = limits.frequency_range_hz
            if fr is not None and not fr[0] <= self.frequency_hz <= fr[1]:
                side, bound = ("below the lowest", fr[0]) if self.frequency_hz < fr[0] else ("above the highest", fr[1])
                raise PlanError(f"plan.frequency_hz = {self.frequency_hz:g} Hz is {side} sweep frequency of "
                                f"{limits.device}, {bound:g} Hz (set plan.frequency_hz)")
        rng = limits.focal_power_range_dpt
        if rng is None:
            return
        used = ("low_dpt",) if self.waveform == "stepped" and self.n_planes == 1 else ("low_dpt", "high_dpt")
        for key in used:
            value = getattr(self, key)
            if not within_range(value, rng):
                raise PlanError(f"plan.{key} = {value:g} dpt is outside the focal-power range {rng[0]:g} … "
                                f"{rng[1]:g} dpt of {limits.device} (set plan.low_dpt and plan.high_dpt inside it)")

    def to_toml(self) -> str:
        """The fully resolved plan as TOML (for --dry-run and for copying into a plan file)."""
        import tomli_w

        return tomli_w.dumps({"plan": self.model_dump(exclude_none=True)})


def _toml_value(value: object) -> str:
    """An override's value as it could have been typed after ``--set plan.KEY=``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
