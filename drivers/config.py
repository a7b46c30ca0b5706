"""Validated configuration of the devices: which backend drives each device, and how to reach it.

These pydantic models sit in the lowest layer so that the capture engine can build devices from a
validated configuration without knowing where it was read from (``app`` loads the TOML files).
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

#: Sides of a simulated image (px). Below 16 the optics and the calibration have nothing to work with; above 8192
#: one frame no longer fits a sensible amount of memory (every real sensor of the rig is far smaller).
SIZE_RANGE_PX = (16, 8192)
#: Depths a simulated scene may have (dpt = 1/m): 0 is infinity, 20 is 5 cm. Farther than infinity is not a
#: place, and nearer ones blur by so many pixels that one frame takes minutes to render.
DEPTH_RANGE_DPT = (0.0, 20.0)


def read_toml(path: Path, error: type[Exception], missing: str) -> dict:
    """The TOML document at ``path`` — the one reader of every focalrig config, plan and training file.

    Failures raise ``error`` naming the file: ``missing`` (what to do) when it is not there, else why it cannot be
    read or parsed.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{path}: {missing}") from exc
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc


def describe_validation_error(exc: ValidationError, model: type[BaseModel], source: str,
                               overrides: Mapping[str, str] | None = None) -> str:
    """One line per problem in ``exc``: where the bad value came from, the key, what is wrong.

    A value set on the command line is blamed on its option (``overrides`` maps a dotted key to how the user wrote
    it, ``--set io.default_evt=three``), any other on ``source`` (the file): the user fixes what the message names.
    A problem of the whole model (two keys that disagree) names the file and every option. An unknown key lists the
    known ones of its section, nearest match first.
    """
    overrides = dict(overrides or {})
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        blamed = [text for key, text in overrides.items()
                  if _within(tuple(key.split(".")), loc) or _within(loc, tuple(key.split(".")))]
        origin = " ".join(blamed) if blamed else source
        if not blamed and not loc and overrides:  # the options may be what made the keys disagree
            origin += " with " + " ".join(overrides.values())
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_key(model, loc)
        elif err["type"] != "missing" and not isinstance(err["input"], dict) and "(got " not in msg:
            msg += f" (got {err['input']!r})"
        where = f"{'.'.join(loc)}: " if loc else ""
        lines.append(f"{origin}: {where}{msg}")
    return "\n".join(lines)


def _within(prefix: tuple[str, ...], loc: tuple[str, ...]) -> bool:
    return bool(prefix) and loc[:len(prefix)] == prefix


def _unknown_key(model: type[BaseModel], loc: tuple[str, ...]) -> str:
    """"unknown key; ..." with the keys its section does have (and the closest one)."""
    section = _section(model, loc[:-1])
    if section is None:
        return "unknown key"
    known = sorted(section.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    where = f"[{'.'.join(loc[:-1])}]" if loc[:-1] else "the top level"
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown key; {hint}known keys in {where}: {', '.join(known)}"


def _section(model: type[BaseModel], path: tuple[str, ...]) -> type[BaseModel] | None:
    """The model class of the table at ``path`` below ``model`` (None where it is not a table)."""
    for part in path:
        info = model.model_fields.get(part)
        if info is None:
            return None
        ann = info.annotation
        args = typing.get_args(ann) if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union \
            else (ann,)
        tables = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not tables:
            return None
        model = tables[0]
    return model


class StrictModel(BaseModel):
    """Base of all config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class LensConfig(StrictModel):
    """The focus actuator."""

    backend: Literal["optotune-ld4", "pinefeat-cef168"] = Field(
        "optotune-ld4",
        description="focus backend: optotune-ld4 (Optotune Lens Driver 4 over USB serial) or pinefeat-cef168 "
        "(Canon EF lens through a Pinefeat cef168 serial adapter)",
    )
    port: str = Field(
        "optosim://sim-lens",
        description="serial port (/dev/ttyACM0, COM3) or pyserial URL; optosim://NAME and cefsim://NAME are the "
        "built-in simulators of the two backends",
    )
    timeout_s: float = Field(0.5, gt=0, le=10, description="reply timeout; a silent device fails after this")


class EventCameraConfig(StrictModel):
    """The event camera: the rig's master clock."""

    backend: Literal["sim", "prophesee", "none"] = Field(
        "sim",
        description="sim (ESIM camera of the simulated rig, [sim] section), prophesee (a live camera through OpenEB / "
        "the Metavision SDK, e.g. an EVK4), or none (no event camera)",
    )
    serial: str = Field(
        "",
        description="prophesee: serial number of the camera to open (as `metavision_platform_info` prints it); empty "
        "= the first camera found",
    )
    raw_file: str = Field(
        "",
        description="prophesee: a RAW recording to open as the device instead of a camera (OpenEB's HAL streams it "
        "through the same events stream and decoders, as fast as it reads; it has no biases, ROI or trigger-in); "
        "empty = a camera",
    )
    biases: dict[str, int] = Field(
        default_factory=dict,
        description="prophesee: sensor biases by name (bias_diff_on, bias_diff_off, bias_fo, bias_hpf, bias_refr), "
        "in the units I_LL_Biases uses (offsets from the factory default on IMX636); empty = camera defaults",
    )
    roi: tuple[int, ...] = Field(
        (),
        description="region of interest [x, y, width, height] in sensor pixels; empty = the whole sensor",
    )
    chunk_us: int = Field(10_000, ge=1_000, le=1_000_000,
                          description="stream time per delivered chunk (µs), 1 ms … 1 s; the simulator computes one "
                          "chunk per read (shorter chunks cost more in per-read overhead than they carry)")

    @field_validator("roi")
    @classmethod
    def _roi_shape(cls, roi: tuple[int, ...]) -> tuple[int, ...]:
        if roi and (len(roi) != 4 or roi[0] < 0 or roi[1] < 0 or roi[2] <= 0 or roi[3] <= 0):
            raise ValueError(f"roi must be [] or [x >= 0, y >= 0, width > 0, height > 0], got {list(roi)}")
        return roi

    @model_validator(mode="after")
    def _one_source(self) -> EventCameraConfig:
        if self.raw_file and self.serial:
            raise ValueError("give either event_camera.serial (a camera) or event_camera.raw_file (a recording), "
                             "not both")
        if self.raw_file and self.backend != "prophesee":
            raise ValueError(f"event_camera.raw_file is a prophesee option; this camera is {self.backend!r} "
                             "(replay a recording with `focalrig capture --replay` instead)")
        return self


class FrameCameraConfig(StrictModel):
    """The RGB (or mono) frame camera."""

    backend: Literal["sim", "opencv", "basler", "none"] = Field(
        "sim",
        description="sim (simulated camera of the rig, [sim] section), opencv (a UVC/V4L2 camera or a video file "
        "through cv2.VideoCapture), basler (pypylon), or none (no frame camera)",
    )
    source: str = Field(
        "0",
        description="opencv: a camera index (0, 1, ...) or the path of a video file (a file is replayed; "
        "times on the host clock)",
    )
    serial: str = Field("", description="basler: serial number of the camera; empty = the first camera found")
    pixel_format: str = Field(
        "",
        description="basler: GenICam PixelFormat (Mono8, BayerRG8, RGB8, ...); empty = keep the camera's setting",
    )
    realtime: bool = Field(
        True,
        description="opencv video files: deliver frames at the file's frame rate (true) or as fast as they decode",
    )
    trigger_line: str = Field(
        "Line1", description="basler: input line of the external frame trigger (TriggerSource for FrameStart)"
    )
    strobe_line: str = Field(
        "",
        description="basler: output line to drive with ExposureActive (the strobe into the event camera's trigger "
        "in), e.g. Line2; empty = leave the lines as they are",
    )


class MovingObjectConfig(StrictModel):
    """``[sim.moving_object]``: a textured disc moving in front of the scene (omit the table for a static scene)."""

    depth_dpt: float = Field(2.3, ge=DEPTH_RANGE_DPT[0], le=DEPTH_RANGE_DPT[1],
                             description="its depth in dioptres; nearer (larger) than every scene layer")
    radius_px: float = Field(18.0, gt=1, description="disc radius in RGB pixels")
    start_xy: tuple[float, float] = Field((60.0, 60.0), description="centre at t = 0 (RGB px)")
    velocity_px_s: tuple[float, float] = Field((120.0, 45.0), description="velocity (RGB px/s); it bounces off "
                                               "the image borders")


class SimConfig(StrictModel):
    """The simulated world shared by the simulated cameras (used when either camera backend is sim)."""

    rgb_size: tuple[int, int] = Field((320, 240), description="frame camera resolution [width, height]")
    event_size: tuple[int, int] = Field(
        (320, 240), description="event sensor resolution [width, height] (the view is mirrored by the beam splitter)"
    )
    depths_dpt: tuple[float, ...] = Field(
        (0.4, 1.2, 2.1), min_length=1,
        description="depths of the scene's layers in dioptres (1/m), far to near in any order; keep them inside "
        "the plan's sweep range or they are never in focus",
    )
    seed: int = Field(0, ge=0, description="seed of the scene texture and of every noise source")
    realtime: bool = Field(
        True,
        description="deliver events and frames at the pace of the wall clock (true, like live cameras) or as fast as "
        "they simulate (false: batch runs and tests)",
    )
    strobe_channel: int = Field(0, ge=0, le=31,
                                description="event-camera trigger-in channel wired to the frame camera's strobe")
    sync_channel: int | Literal["none"] = Field(
        1, description="event-camera trigger-in channel wired to the lens driver's sync output, or \"none\""
    )
    sweep_hz: float = Field(
        4.0, gt=0, le=1000,
        description="focal sweep used when the lens is not the rig's built-in LD4 simulator (optosim://); with it, "
        "the simulated rig follows whatever the lens is commanded instead",
    )
    sweep_low_dpt: float = Field(0.0, description="low end of that sweep (dpt)")
    sweep_high_dpt: float = Field(2.5, description="high end of that sweep (dpt)")
    sweep_waveform: Literal["sine", "triangle", "rectangle"] = Field("sine", description="waveform of that sweep")
    event_threshold: float = Field(0.22, gt=0, le=2,
                                   description="ESIM contrast threshold in ln units (0.22 ≈ the IMX636's 25 %)")
    event_threshold_sigma: float = Field(0.03, ge=0, le=1, description="pixel-to-pixel spread of the threshold")
    refractory_us: float = Field(100.0, ge=0, description="event pixel refractory period (µs)")
    noise_rate_hz: float = Field(0.1, ge=0, le=1000,
                                 description="background (shot-noise) events per pixel per second (real sensors: "
                                 "well below 10)")
    hot_pixels: int = Field(0, ge=0, description="number of hot pixels firing at 100 Hz (at most every event pixel)")
    white_e: float = Field(5_000.0, gt=0, description="photo-electrons a white surface gives one frame pixel in one "
                           "exposure: the light level (a few hundred for low light); the camera's gain keeps white "
                           "at the same code, so less light means more noise, not a darker image")
    read_noise_e: float = Field(3.0, ge=0, description="frame camera read noise (electrons RMS)")
    full_well_e: float = Field(10_000.0, gt=0, description="frame camera full-well capacity (electrons)")
    bit_depth: int = Field(8, ge=1, le=16, description="frame camera ADC bits (8: uint8 images, more: uint16)")
    gaussian_shot_noise_above_e: float = Field(
        100.0, ge=0, description="pixels expecting at least this many photo-electrons draw shot noise from its "
                                 "Gaussian limit (4x faster frames); below it, from Poisson. inf: Poisson everywhere")
    frame_drop_every: int = Field(0, ge=0,
                                  description="drop every n-th frame (n >= 2) to exercise drop handling; 0: never")
    background_image: str = Field("", description="an image file (any format OpenCV reads) to use as the "
                                  "background layer's texture instead of dead leaves; resized to rgb_size")
    slant_dpt: tuple[float, float] | None = Field(None, description="[left, right] depths (dpt): make the "
                                                  "background a plane slanted across the image (a depth ramp)")
    texture_contrast: float = Field(1.0, gt=0, le=1, description="contrast of the scene's textures about their mean "
                                    "(1: the full dead-leaves range; 0.1: weak texture)")
    splitter_angle_deg: float = Field(0.0, ge=-15, le=15, description="rotation of the event view against the RGB "
                                      "view (degrees)")
    splitter_shift_px: tuple[float, float] = Field((0.0, 0.0), description="offset of the event view's centre "
                                                   "(event px)")
    splitter_perspective: tuple[float, float] = Field((0.0, 0.0), description="perspective terms of the event view "
                                                      "(per RGB px from the centre; 1e-4 is already visible)")
    moving_object: MovingObjectConfig | None = Field(None, description="an object moving in front of the scene "
                                                     "(a [sim.moving_object] table); none by default")

    @field_validator("rgb_size", "event_size")
    @classmethod
    def _size_range(cls, size: tuple[int, int]) -> tuple[int, int]:
        lo, hi = SIZE_RANGE_PX
        if not all(lo <= side <= hi for side in size):
            raise ValueError(f"[width, height] must each be {lo}..{hi} pixels, e.g. [320, 240] (got {list(size)})")
        return size

    @field_validator("depths_dpt", "slant_dpt")
    @classmethod
    def _depth_range(cls, depths: tuple[float, ...] | None) -> tuple[float, ...] | None:
        lo, hi = DEPTH_RANGE_DPT
        if depths is not None and not all(lo <= d <= hi for d in depths):
            raise ValueError(f"depths must be {lo:g}..{hi:g} dpt (0 = infinity, {hi:g} = {100 / hi:g} cm) "
                             f"(got {list(depths)})")
        return depths

    @field_validator("sync_channel", mode="before")
    @classmethod
    def _sync_range(cls, value: object) -> object:
        if value != "none" and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 31):
            raise ValueError(f"sync_channel must be a channel 0..31 or \"none\" (not wired), got {value!r}")
        return value

    @field_validator("sweep_high_dpt")
    @classmethod
    def _sweep_order(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("sweep_low_dpt")
        if low is not None and high <= low:
            raise ValueError(f"sweep_high_dpt ({high}) must be above sweep_low_dpt ({low})")
        return high

    @field_validator("frame_drop_every")
    @classmethod
    def _drop(cls, value: int) -> int:
        if value == 1:
            raise ValueError("frame_drop_every = 1 would drop every frame; use 0 (never) or >= 2")
        return value

    @model_validator(mode="after")
    def _object_in_front(self) -> SimConfig:
        """The moving object is composited over the scene, which is only right if it is nearer than every layer."""
        m = self.moving_object
        nearest = max((*self.depths_dpt, *(self.slant_dpt or ())))
        if m is not None and m.depth_dpt <= nearest:
            raise ValueError(f"moving_object.depth_dpt ({m.depth_dpt:g}) must be nearer (larger) than every scene "
                             f"layer (depths_dpt and slant_dpt up to {nearest:g})")
        if m is not None and 2 * m.radius_px + 2 > min(self.rgb_size):
            raise ValueError(f"moving_object.radius_px ({m.radius_px:g}) does not fit in the {self.rgb_size} image")
        return self

    @model_validator(mode="after")
    def _hot_pixels_fit(self) -> SimConfig:
        """Hot pixels are drawn without replacement from the sensor's pixels."""
        if self.hot_pixels > self.event_size[0] * self.event_size[1]:
            raise ValueError(f"hot_pixels ({self.hot_pixels}) exceeds the {self.event_size[0]}x{self.event_size[1]} "
                             "event sensor's pixels")
        return self

    @property
    def sync(self) -> int | None:
        """``sync_channel`` as a channel number, None when not wired."""
        return None if self.sync_channel == "none" else int(self.sync_channel)
