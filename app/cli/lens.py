"""``focalrig lens …`` (drive an Optotune Lens Driver 4) and ``focalrig sim lens`` (serve a simulated one).

A driver leaves the lens in its safe state (DC, zero current) whenever it lets go, so the commands that
set something hold the lens there until Ctrl-C (or ``--hold`` seconds) and then release it. Any port
pyserial opens works, including ``optosim://`` for the in-process simulator.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import console, friendly_errors
from drivers.focus import FocusActuator, FocusStatus, Waveform
from drivers.optotune import OptotuneLensDriver4

lens_app = typer.Typer(help="Drive an Optotune Lens Driver 4 (any serial port or pyserial URL, e.g. optosim://).",
                       no_args_is_help=True)
sim_app = typer.Typer(help="Serve simulated devices on virtual serial ports.", no_args_is_help=True)

HoldOpt = Annotated[float | None, typer.Option(help="Hold for this many seconds instead of until Ctrl-C.",
                                               show_default=False)]


class _Lens:
    port: str = ""
    timeout_s: float = 0.5


_lens = _Lens()


@lens_app.callback()
def lens_main(
    port: Annotated[str, typer.Option("--port", "-p", envvar="FOCALRIG_LENS_PORT",
                                      help="Serial port (/dev/ttyACM0, COM3) or pyserial URL (optosim://).")],
    timeout: Annotated[float, typer.Option(help="Reply timeout in seconds.")] = 0.5,
) -> None:
    _lens.port, _lens.timeout_s = port, timeout


def _driver() -> OptotuneLensDriver4:
    return OptotuneLensDriver4(_lens.port, timeout_s=_lens.timeout_s)


def _status_line(status: FocusStatus) -> str:
    parts = [f"mode [bold]{status.mode.value}[/]"]
    if status.position is not None:
        parts.append(f"current {status.position:.2f} mA")
    if status.focal_power_dpt is not None:
        parts.append(f"focal power {status.focal_power_dpt:+.3f} dpt")
    if status.temperature_c is not None:
        parts.append(f"{status.temperature_c:.2f} °C")
    return ", ".join(parts)


def _wait(seconds: float | None) -> None:
    """Return after ``seconds``, or on Ctrl-C when None (Ctrl-C is the normal end here, not an error)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass


def _hold(lens: OptotuneLensDriver4, hold: float | None) -> None:
    """Keep the link (and so the lens state) until Ctrl-C or ``hold`` seconds have passed."""
    console.print(_status_line(lens.status()))
    console.print("holding; Ctrl-C to release" if hold is None else f"holding for {hold:g} s")
    _wait(hold)
    console.print("released: lens in DC mode at 0 mA")


@lens_app.command("info")
@friendly_errors
def lens_info() -> None:
    """Identity, ranges and present state of the lens driver."""
    with _driver() as lens:
        console.print(focus_table(lens, _lens.port))


def focus_table(lens: FocusActuator, where: str) -> Table:
    """Identity, ranges and present state of a connected focus actuator, as a table."""
    ident, caps, status = lens.identity, lens.capabilities, lens.status()
    table = Table(title=f"{ident.vendor} {ident.model} on {where}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("serial", ident.serial)
    table.add_row("firmware", ident.firmware)
    lo, hi = caps.position_range
    table.add_row("position range", f"{lo:.2f} … {hi:.2f} {caps.position_unit}")
    if caps.focal_power_range_dpt is not None:
        table.add_row("focal power range", "{:+.3f} … {:+.3f} dpt".format(*caps.focal_power_range_dpt))
    table.add_row("waveforms", ", ".join(sorted(w.value for w in caps.waveforms)) or "none (host-timed sweeps)")
    table.add_row("sync output", "yes" if caps.has_sync_output else "no")
    table.add_row("state", _status_line(status))
    return table


@lens_app.command("set-diopter")
@friendly_errors
def lens_set_diopter(
    dpt: Annotated[float, typer.Argument(help="Focal power in dioptres (write negative values after --).")],
    hold: HoldOpt = None,
) -> None:
    """Hold a focal power (temperature-compensated focal-power mode)."""
    with _driver() as lens:
        lens.set_focal_power(dpt)
        _hold(lens, hold)


@lens_app.command("set-current")
@friendly_errors
def lens_set_current(
    ma: Annotated[float, typer.Argument(help="DC current in mA (write negative values after --).")],
    hold: HoldOpt = None,
) -> None:
    """Hold a DC current."""
    with _driver() as lens:
        lens.set_position(ma)
        _hold(lens, hold)


@lens_app.command("sweep")
@friendly_errors
def lens_sweep(
    freq: Annotated[float, typer.Option("--freq", help="Sweep frequency in Hz (resolution 1 mHz).")],
    low: Annotated[float, typer.Option("--low", help="Lower end of the sweep.")],
    high: Annotated[float, typer.Option("--high", help="Upper end of the sweep.")],
    waveform: Annotated[Waveform, typer.Option(help="Generator waveform.")] = Waveform.TRIANGLE,
    current: Annotated[bool, typer.Option("--current", help="LOW and HIGH are mA, not dioptres.")] = False,
    hold: HoldOpt = None,
) -> None:
    """Run the driver's internal generator (no sync output: its phase is known only to about a millisecond)."""
    with _driver() as lens:
        lens.start_sweep(waveform, freq, low, high, unit="raw" if current else "dpt")
        _hold(lens, hold)


@lens_app.command("stop")
@friendly_errors
def lens_stop() -> None:
    """Stop whatever the lens is doing: DC mode, zero current."""
    with _driver() as lens:
        lens.safe_state()
        console.print(_status_line(lens.status()))


@sim_app.command("lens")
@friendly_errors
def sim_lens(
    latency_ms: Annotated[float, typer.Option(help="One-way USB latency in ms.")] = 1.0,
    jitter_ms: Annotated[float, typer.Option(help="Extra random latency, uniform 0…J ms.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the latency and temperature random walk.")] = 0,
    duration: Annotated[float | None, typer.Option(help="Serve this many seconds instead of until Ctrl-C.",
                                                   show_default=False)] = None,
) -> None:
    """Serve a simulated Optotune Lens Driver 4 on a pty; point `focalrig lens --port` at the printed path."""
    from drivers.sim import LensDriver4Sim, MonotonicClock, serve_pty

    sim = LensDriver4Sim(clock=MonotonicClock(), latency_s=latency_ms / 1000, jitter_s=jitter_ms / 1000, seed=seed)
    with serve_pty(sim) as server:
        console.print(f"simulated Optotune Lens Driver 4 on [bold]{server.path}[/]", highlight=False)
        console.print("serving; Ctrl-C to stop" if duration is None else f"serving for {duration:g} s")
        _wait(duration)
    console.print("stopped")
