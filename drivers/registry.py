"""Backends by name: the one place that turns a device config into a device object.

Adding a backend means writing its module and adding one branch here (and its name to the config's
``Literal``); imports are lazy so an optional vendor SDK (OpenEB, pypylon) is only needed when its backend
is used.
"""

from __future__ import annotations

import functools
import urllib.parse
from typing import TYPE_CHECKING, Protocol

from drivers.camera import EventCamera, FrameCamera
from drivers.config import EventCameraConfig, FrameCameraConfig, LensConfig, SimConfig
from drivers.focus import FocusActuator
from drivers.rig import Rig

if TYPE_CHECKING:
    from drivers.sim.rig import SimRig


class RigConfig(Protocol):
    """What ``open_rig`` reads from a configuration (``app.config.FocalrigConfig`` has it)."""

    lens: LensConfig
    event_camera: EventCameraConfig
    frame_camera: FrameCameraConfig
    sim: SimConfig


def make_focus_actuator(cfg: LensConfig) -> FocusActuator:
    """An unconnected focus actuator for ``cfg``; use it as a context manager to connect and release it."""
    if cfg.backend == "optotune-ld4":
        from drivers.optotune import OptotuneLensDriver4

        return OptotuneLensDriver4(cfg.port, timeout_s=cfg.timeout_s)
    if cfg.backend == "pinefeat-cef168":
        from drivers.pinefeat import PinefeatCanonEF

        return PinefeatCanonEF(cfg.port, timeout_s=cfg.timeout_s)
    raise ValueError(f"unknown focus backend {cfg.backend!r}")


def make_event_camera(cfg: EventCameraConfig, sim: SimRig | None = None,
                      sim_cfg: SimConfig | None = None, *, sim_process: bool = False) -> EventCamera | None:
    """The event camera ``cfg`` selects, opened, with its configured biases and ROI applied (None for "none").

    The simulated camera needs the shared ``sim`` rig; ``sim_cfg`` gives its sensor model (default [sim]);
    ``sim_process`` computes it in a child process (:mod:`drivers.sim.camera_process`).
    Raises CameraError when the camera (or its SDK) is missing.
    """
    if cfg.backend == "none":
        return None
    if cfg.backend == "sim":
        if sim is None:
            raise ValueError("the simulated event camera needs the simulated rig (sim=SimRig)")
        s = sim_cfg or SimConfig()
        if sim_process:
            from drivers.sim.camera_process import ProcessEventCamera

            # The child builds the camera with this function, in-process there (biases and ROI included).
            return ProcessEventCamera(sim, functools.partial(make_event_camera, cfg, sim_cfg=s), s)
        from drivers.sim.event_camera import SimEventCamera

        camera: EventCamera = SimEventCamera(sim, chunk_us=cfg.chunk_us, realtime=s.realtime,
                                             threshold=s.event_threshold, sigma=s.event_threshold_sigma,
                                             refractory_us=s.refractory_us, noise_rate_hz=s.noise_rate_hz,
                                             n_hot=s.hot_pixels)
    elif cfg.backend == "prophesee":
        from drivers.prophesee import PropheseeCamera

        camera = PropheseeCamera(cfg.serial, chunk_us=cfg.chunk_us, raw_file=cfg.raw_file or None)
    else:
        raise ValueError(f"unknown event camera backend {cfg.backend!r}")
    try:
        if cfg.biases:
            camera.set_biases(dict(cfg.biases))
        if cfg.roi:
            camera.set_roi(*cfg.roi)
    except BaseException:
        camera.close()
        raise
    return camera


def make_frame_camera(cfg: FrameCameraConfig, sim: SimRig | None = None,
                      sim_cfg: SimConfig | None = None, *, sim_process: bool = False) -> FrameCamera | None:
    """The frame camera ``cfg`` selects, opened (None for "none"); raises CameraError when it is missing.

    ``sim_process``: the simulated camera renders in a child process (:mod:`drivers.sim.camera_process`).
    """
    if cfg.backend == "none":
        return None
    if cfg.backend == "sim":
        if sim is None:
            raise ValueError("the simulated frame camera needs the simulated rig (sim=SimRig)")
        s = sim_cfg or SimConfig()
        if sim_process:
            from drivers.sim.camera_process import ProcessFrameCamera

            return ProcessFrameCamera(sim, functools.partial(make_frame_camera, cfg, sim_cfg=s), s)
        from drivers.sim.frame_camera import SimFrameCamera

        return SimFrameCamera(sim, realtime=s.realtime, drop_every=s.frame_drop_every or None)
    if cfg.backend == "opencv":
        from drivers.opencv_camera import OpenCVCamera

        return OpenCVCamera(cfg.source, realtime=cfg.realtime)
    if cfg.backend == "basler":
        from drivers.basler import BaslerCamera

        return BaslerCamera(cfg.serial, pixel_format=cfg.pixel_format, trigger_line=cfg.trigger_line,
                            strobe_line=cfg.strobe_line)
    raise ValueError(f"unknown frame camera backend {cfg.backend!r}")


def optosim_name(port: str) -> str | None:
    """NAME of an ``optosim://NAME`` port (the in-process LD4 simulator), None for any other port."""
    parts = urllib.parse.urlsplit(port)
    return parts.netloc + parts.path if parts.scheme.lower() == "optosim" else None


def open_rig(cfg: RigConfig, *, sim_processes: bool = False) -> Rig:
    """Connect the lens and open both cameras as ``cfg`` says; use the result as a context manager.

    With a simulated camera the rig gets a :class:`~drivers.sim.rig.SimRig` built from ``cfg.sim``; when the lens
    is the in-process LD4 simulator (``optosim://NAME``) that rig follows what the lens is commanded, otherwise
    it runs the fixed ``[sim]`` sweep. ``sim_processes`` computes the simulated cameras in child processes, which
    keeps their GIL-heavy work away from the caller's threads (the GUI needs that; batch runs do not). Anything
    that fails closes what was already open (the lens into its safe state) before the error propagates:
    FocusError / CameraError with a message naming the device.
    """
    lens = make_focus_actuator(cfg.lens)
    lens.connect()
    rig = Rig(lens, config={"lens": cfg.lens.model_dump(mode="json"),
                            "event_camera": cfg.event_camera.model_dump(mode="json"),
                            "frame_camera": cfg.frame_camera.model_dump(mode="json")})
    try:
        if "sim" in (cfg.event_camera.backend, cfg.frame_camera.backend):
            rig.sim = _make_sim_rig(cfg)
            rig.config["sim"] = cfg.sim.model_dump(mode="json")
        rig.event_camera = make_event_camera(cfg.event_camera, rig.sim, cfg.sim, sim_process=sim_processes)
        rig.frame_camera = make_frame_camera(cfg.frame_camera, rig.sim, cfg.sim, sim_process=sim_processes)
        for camera in (rig.event_camera, rig.frame_camera):
            if camera is not None:
                camera.identity  # noqa: B018 - a camera simulated in a child process answers once it is built
    except BaseException:
        rig.close()
        raise
    return rig


def _make_sim_rig(cfg: RigConfig) -> SimRig:
    from drivers.sim import get_simulator
    from drivers.sim.rig import SimRig

    sim = SimRig.from_config(cfg.sim)
    name = optosim_name(cfg.lens.port) if cfg.lens.backend == "optotune-ld4" else None
    if name is not None:
        sim.follow_lens(get_simulator(name))
    return sim
