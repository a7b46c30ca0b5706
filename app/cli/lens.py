"""``focalrig lens …`` (drive an Optotune Lens Driver 4) and ``focalrig sim lens`` (serve a simulated one).

A driver leaves the lens in its safe state (DC, zero current) whenever it lets go, so the commands that
set something hold the lens there until Ctrl-C (or ``--hold`` seconds) and then release it. SIGTERM and SIGHUP
(a service manager, a closed terminal, ``kill``) release it the same way, then exit with 128 + the signal's
number. Any port pyserial opens works, including ``optosim://`` for the in-process simulator.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from app.cli.common import console, err_console, friendly_errors
from app.termination import StopSignal, exit_status, handling
from drivers.focus import FocusActuator, FocusStatus, Waveform

if TYPE_CHECKING:  # the driver (pyserial, the simulators) is imported where used, to keep the CLI fast to load
    from drivers.optotune import OptotuneLensDriver4

lens_app = typer.Typer(help="Drive an Optotune Lens Driver 4 (any serial port or pyserial URL, e.g. optosim://).",
                       no_args_is_help=True)
sim_app = typer.Typer(help="Serve simulated devices on virtual serial ports.", no_args_is_help=True)

HoldOpt = Annotated[float | None, typer.Option(min=0.0, help="Hold for this many seconds instead of until Ctrl-C.",
                                               show_default=False)]
#: What the LD4's generator frequency command can encode: 1 mHz steps in an unsigned 32-bit word.
FREQ_RANGE_HZ = (0.001, 0xFFFFFFFF / 1000)
#: Commands whose one argument may be negative: "-50" is then that value, not an unknown option.
NEGATIVE_ARGS = {"ignore_unknown_options": True}
F = TypeVar("F", bound=Callable)


class _Lens:
    port: str | None = None
    timeout_s: float = 0.5
    #: The first SIGTERM/SIGHUP received while a command holds the lens (None: none yet).
    stop: StopSignal = StopSignal()


_lens = _Lens()


@lens_app.callback()
def lens_main(
    port: Annotated[str | None, typer.Option("--port", "-p", envvar="FOCALRIG_LENS_PORT", show_default=False,
                                             help="Serial port (/dev/ttyACM0, COM3) or pyserial URL (optosim://); "
                                                  "required by every command.")] = None,
    timeout: Annotated[float, typer.Option(min=0.0, help="Reply timeout in seconds.")] = 0.5,
) -> None:
    # Optional here so that `focalrig lens sweep --help` works without a port; _driver() insists on it.
    _lens.port, _lens.timeout_s = port, timeout


def _driver() -> OptotuneLensDriver4:
    from drivers.optotune import OptotuneLensDriver4

    if not _lens.port:
        raise ValueError("no lens port: give `focalrig lens --port PORT …` (e.g. /dev/ttyACM0, COM3, optosim://) "
                         "or set FOCALRIG_LENS_PORT")
    return OptotuneLensDriver4(_lens.port, timeout_s=_lens.timeout_s)


def releasing_on_signals(fn: F) -> F:
    """Run the command with SIGTERM and SIGHUP recorded instead of fatal; after the lens has been released (the
    command's ``with _driver()`` block ended), exit with 128 + the signal's number, as Ctrl-C exits with 130.

    Python would otherwise die on either signal without running a ``finally``, leaving the lens driven.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        stop = _lens.stop = StopSignal()
        with handling(stop, (signal.SIGTERM, signal.SIGHUP)):
            result = fn(*args, **kwargs)
        if stop.received:
            assert stop.signum is not None
            _say(f"{stop.name}: lens released (DC mode, 0 mA)")
            raise typer.Exit(exit_status(stop.signum))
        return result

    return wrapper  # type: ignore[return-value]


def _say(text: str) -> None:
    """One line on stderr, even when the terminal that would show it is gone (SIGHUP): nothing then."""
    try:
        err_console.print(text, highlight=False)
    except OSError:
        pass


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
    """Return after ``seconds`` (None: forever), on Ctrl-C (the normal end here, not an error), or at once when
    a SIGTERM/SIGHUP has come (the caller then releases the lens and exits with its status)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            if _lens.stop.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))):
                return
    except KeyboardInterrupt:
        pass


def _hold(lens: OptotuneLensDriver4, hold: float | None) -> None:
    """Keep the link (and so the lens state) until Ctrl-C, a stop signal or ``hold`` seconds."""
    if not _lens.stop.received:
        console.print(_status_line(lens.status()))
        console.print("holding; Ctrl-C to release" if hold is None else f"holding for {hold:g} s")
        _wait(hold)
    if not _lens.stop.received:
        console.print("released: lens in DC mode at 0 mA")


@lens_app.command("info")
@friendly_errors
@releasing_on_signals
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


@lens_app.command("set-diopter", context_settings=NEGATIVE_ARGS)
@friendly_errors
@releasing_on_signals
def lens_set_diopter(
    dpt: Annotated[float, typer.Argument(help="Focal power in dioptres (negative values as they are: -1.5).")],
    hold: HoldOpt = None,
) -> None:
    """Hold a focal power (temperature-compensated focal-power mode)."""
    with _driver() as lens:
        lens.set_focal_power(dpt)
        _hold(lens, hold)


@lens_app.command("set-current", context_settings=NEGATIVE_ARGS)
@friendly_errors
@releasing_on_signals
def lens_set_current(
    ma: Annotated[float, typer.Argument(help="DC current in mA (negative values as they are: -50).")],
    hold: HoldOpt = None,
) -> None:
    """Hold a DC current."""
    with _driver() as lens:
        lens.set_position(ma)
        _hold(lens, hold)


@lens_app.command("sweep")
@friendly_errors
@releasing_on_signals
def lens_sweep(
    freq: Annotated[float, typer.Option("--freq", help="Sweep frequency in Hz ({:g} … {:.3f}, resolution 1 mHz)."
                                        .format(*FREQ_RANGE_HZ))],
    low: Annotated[float, typer.Option("--low", help="Lower end of the sweep.")],
    high: Annotated[float, typer.Option("--high", help="Upper end of the sweep.")],
    waveform: Annotated[Waveform, typer.Option(help="Generator waveform.")] = Waveform.TRIANGLE,
    current: Annotated[bool, typer.Option("--current", help="LOW and HIGH are mA, not dioptres.")] = False,
    hold: HoldOpt = None,
) -> None:
    """Run the driver's internal generator (no sync output: its phase is known only to about a millisecond)."""
    lo, hi = FREQ_RANGE_HZ
    if not lo <= freq <= hi:  # checked here, before the lens is touched, naming both ends
        raise ValueError(f"--freq {freq:g} Hz is outside the LD4 generator's range {lo:g} … {hi:.3f} Hz")
    with _driver() as lens:
        lens.start_sweep(waveform, freq, low, high, unit="raw" if current else "dpt")
        _hold(lens, hold)


@lens_app.command("stop")
@friendly_errors
@releasing_on_signals
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
