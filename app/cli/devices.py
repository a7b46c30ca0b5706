"""``focalrig devices list|check``: what the configuration selects, and whether each device answers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from app.cli.common import console, friendly_errors, print_error

if TYPE_CHECKING:
    from app.config import FocalrigConfig
    from drivers.camera import EventCamera, FrameCamera

devices_app = typer.Typer(help="List the configured devices and check that they answer.", no_args_is_help=True)

#: How long `devices check` waits for a camera's first chunk or frame.
_FIRST_DATA_TIMEOUT_S = 3.0


def _configured(cfg: FocalrigConfig) -> list[tuple[str, str, str]]:
    """(role, backend, address) of every configured device."""
    ev, fr, sim = cfg.event_camera, cfg.frame_camera, cfg.sim
    sim_ev = "simulated rig, {}x{}".format(*sim.event_size)
    sim_fr = "simulated rig, {}x{}".format(*sim.rgb_size)
    ev_address = {"sim": sim_ev, "prophesee": ev.serial or "first camera found", "none": "—"}[ev.backend]
    fr_address = {"sim": sim_fr, "opencv": fr.source, "basler": fr.serial or "first camera found",
                  "none": "—"}[fr.backend]
    return [("lens", cfg.lens.backend, cfg.lens.port), ("event camera", ev.backend, ev_address),
            ("frame camera", fr.backend, fr_address)]


@devices_app.command("list")
@friendly_errors
def devices_list(ctx: typer.Context) -> None:
    """The devices the configuration selects (default configs/sim.toml: the simulated rig)."""
    table = Table("role", "backend", "address", title="configured devices", title_justify="left")
    for row in _configured(ctx.obj.config()):
        table.add_row(*row)
    console.print(table)


def _camera_table(role: str, cam: EventCamera | FrameCamera, rows: list[tuple[str, str]]) -> Table:
    ident = cam.identity
    table = Table(title=f"{role}: {ident.vendor} {ident.model}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("serial", ident.serial)
    if ident.firmware:
        table.add_row("firmware", ident.firmware)
    for key, value in ident.extra.items():
        table.add_row(key, value)
    table.add_row("geometry", "{} x {}".format(*cam.geometry))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _check_event_camera(cam: EventCamera) -> Table:
    """Stream until the first chunk and report its events and the rate over its stretch of time."""
    cam.start()
    try:
        t0 = time.monotonic()
        chunk = cam.read(_FIRST_DATA_TIMEOUT_S)
        waited = time.monotonic() - t0
    finally:
        cam.stop()
    if chunk is None:
        raise OSError(f"{cam.identity.model}: no events within {_FIRST_DATA_TIMEOUT_S:g} s of starting the stream")
    rows = [("raw format", cam.raw_format or "none")]
    rows.append(("first chunk", f"{chunk.cd.shape[0]:,} CD events, {chunk.triggers.shape[0]} trigger edges up to "
                                f"t = {chunk.t_end_us:,} µs (after {waited:.2f} s)"))
    return _camera_table("event camera", cam, rows)


def _check_frame_camera(cam: FrameCamera) -> Table:
    """Grab one frame in the camera's present configuration and report it."""
    cam.start()
    try:
        frame = cam.read(_FIRST_DATA_TIMEOUT_S)
    finally:
        cam.stop()
    if frame is None:
        raise OSError(f"{cam.identity.model}: no frame within {_FIRST_DATA_TIMEOUT_S:g} s of starting (an external "
                      "trigger that never comes?)")
    rate = getattr(cam, "frame_rate_hz", None)
    rows = [("frame rate", f"{rate:g} Hz" if rate else "not reported")]
    rows.append(("first frame", f"#{frame.index}, {'x'.join(map(str, frame.image.shape))} {frame.image.dtype}, "
                                f"exposure {frame.exposure_end_us - frame.exposure_start_us} µs ({frame.clock} clock)"))
    return _camera_table("frame camera", cam, rows)


@devices_app.command("check")
@friendly_errors
def devices_check(ctx: typer.Context) -> None:
    """Connect to every configured device, identify it, print its state, and release it safely.

    Each device is checked on its own, so one failure does not hide the others; exit status 2 if any failed.
    """
    from app.cli.lens import focus_table
    from drivers.registry import make_event_camera, make_focus_actuator, make_frame_camera

    cfg: FocalrigConfig = ctx.obj.config()
    failures = 0

    def report(role: str, exc: Exception) -> None:
        nonlocal failures
        failures += 1
        print_error(exc, role)

    try:
        with make_focus_actuator(cfg.lens) as lens:
            console.print(focus_table(lens, cfg.lens.port))
    except OSError as exc:
        report("lens", exc)
    sim = None
    if "sim" in (cfg.event_camera.backend, cfg.frame_camera.backend):
        from drivers.sim.rig import SimRig

        sim = SimRig.from_config(cfg.sim)
    for role, make, check, section in (
            ("event camera", make_event_camera, _check_event_camera, cfg.event_camera),
            ("frame camera", make_frame_camera, _check_frame_camera, cfg.frame_camera)):
        if section.backend == "none":
            console.print(f"{role}: none configured")
            continue
        try:
            cam = make(section, sim, cfg.sim)
            with cam:
                console.print(check(cam))
        except (OSError, ValueError) as exc:  # CameraError, or a setting the camera rejects (e.g. the ROI)
            report(role, exc)
    if failures:
        raise typer.Exit(2)
    console.print("[green]all configured devices answer[/]")
