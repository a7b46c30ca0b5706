"""Pinefeat cef168 + Canon EF: the simulator at the byte level, and the driver against it over cefsim:// and a pty.

Time is the simulator's virtual clock throughout (the driver gets it as ``clock_ns``/``sleep``), so
timing assertions are about modelled device time, never wall time.
"""

import itertools
import time

import pytest
import serial

from drivers.focus import FocusError, FocusMode, Waveform
from drivers.pinefeat import PinefeatCanonEF
from drivers.sim.cef168_sim import (
    Cef168Sim,
    EFLens,
    MonotonicClock,
    forget_cef_simulators,
    get_cef_simulator,
    register_cef_simulator,
    serve_cef_pty,
)

_names = itertools.count()
TOTAL = EFLens().total_steps


@pytest.fixture(autouse=True)
def _fresh_registry():
    yield
    forget_cef_simulators()


def new_sim(**kwargs) -> tuple[Cef168Sim, str]:
    name = f"cef{next(_names)}"
    sim = register_cef_simulator(name, Cef168Sim(seed=1, **kwargs))
    return sim, f"cefsim://{name}"


def driver(sim: Cef168Sim, url: str, **kwargs) -> PinefeatCanonEF:
    """A driver whose polling and sweep timing run on the simulator's virtual clock."""
    return PinefeatCanonEF(url, clock_ns=lambda: round(sim.clock.now() * 1e9), sleep=sim.clock.advance, **kwargs)


def ask(port: serial.SerialBase, command: bytes) -> bytes:
    """Write one command and return every reply line that arrives before the port's timeout."""
    port.write(command)
    out = b""
    while chunk := port.read_until(b"\r\n", 200):
        out += chunk
    return out


@pytest.fixture
def port():
    sim, url = new_sim()
    with serial.serial_for_url(url, timeout=0.05) as p:
        yield sim, p


# -- the simulator on the wire ------------------------------------------------------------------------
def test_every_command_round_trips_through_the_simulator(port):
    sim, p = port
    assert ask(p, b"v\r\n") == b"1.0\r\n"
    assert ask(p, b"n\r\n") == b"PINEFEAT CEF1680000011\r\n"
    info = ask(p, b"h\r\n").split(b"\r\n")
    assert info[0] == b"Lens ID: 0x94" and info[4].startswith(b"Focus distance: ") and len(info) == 6
    assert ask(p, b"f\r\n") == b"er\r\n"                       # not calibrated yet
    assert ask(p, b"f500\r\n") == b"er\r\n"
    assert ask(p, b"c\r\n") == b"ok\r\n"
    assert ask(p, b"e\r\n") == b"y\r\n"
    sim.clock.advance(2.0)
    assert ask(p, b"e\r\n") == b"n\r\n"
    assert ask(p, b"f\r\n") == f"{TOTAL}\r\n".encode()        # calibration ends at infinity
    assert ask(p, b"f500\r\n") == b"ok\r\n"
    sim.clock.advance(1.0)
    assert ask(p, b"p\r\n") == b"500\r\n"
    assert ask(p, b"f+100\r\n") == b"ok\r\n"
    sim.clock.advance(1.0)
    assert ask(p, b"m-50\r\n") == b"ok\r\n"
    sim.clock.advance(1.0)
    assert ask(p, b"F\r\n") == b"550\r\n"                     # case-insensitive
    assert ask(p, b"m700\r") == b"ok\r\n"                     # CR alone ends a command …
    sim.clock.advance(1.0)
    assert ask(p, b"f\n") == b"700\r\n"                       # … and so does LF alone
    assert ask(p, b"m\r\n") == b"ok\r\n"
    sim.clock.advance(1.0)
    assert ask(p, b"f\r\n") == b"0\r\n"
    assert ask(p, b"i\r\n") == b"ok\r\n"
    sim.clock.advance(1.0)
    assert ask(p, b"f\r\n") == f"{TOTAL}\r\n".encode()
    assert int(ask(p, b"t\r\n")) > 0
    for speed in b"1234":
        assert ask(p, b"s" + bytes([speed]) + b"\r\n") == b"ok\r\n"
    assert sim.speed == 4
    assert ask(p, b"s5\r\n") == b"er\r\n"
    assert ask(p, b"a\r\n") == b"2.8-32.0\r\n"
    assert ask(p, b"a5.6\r\n") == b"ok\r\n"
    assert ask(p, b"a+2\r\n") == b"ok\r\n" and sim.aperture_f == pytest.approx(2.8)
    assert ask(p, b"a99\r\n") == b"er\r\n"
    assert ask(p, b"l\r\n") == b"100\r\n"
    assert ask(p, b"d\r\n") == b"0.31-0.31\r\n"
    assert ask(p, b"p500\r\n") == b"er\r\n"                   # p only reads
    assert ask(p, b"fabc\r\n") == b"er\r\n"
    assert ask(p, b"z\r\n") == b"er\r\n"
    for byte in b"f250":                                      # a command split over many writes
        assert ask(p, bytes([byte])) == b""
    assert ask(p, b"\r\n") == b"ok\r\n"


def test_moves_take_the_modelled_time_for_each_speed(port):
    sim, p = port
    sim.calibrated = True
    lens = sim.lens
    for speed in (1, 4):
        ask(p, f"s{speed}\r\nm\r\n".encode())
        sim.clock.advance(2.0)
        ask(p, b"i\r\n")
        t_start = sim.received[-1].t
        expected = lens.overhead_s + lens.traverse_s[speed]
        assert sim.busy(t_start + expected - 1e-4)
        assert not sim.busy(t_start + expected + 1e-4)
        assert sim.motor_steps(t_start + lens.overhead_s / 2 + lens.traverse_s[speed] / 2) == pytest.approx(TOTAL / 2)
        sim.clock.sleep_until(t_start + expected + 0.01)
        assert int(ask(p, b"t\r\n")) == round(expected * 1000)
    assert lens.traverse_s[1] > lens.traverse_s[4] >= 0.05   # tens to hundreds of ms, s4 fastest


def test_backlash_delays_the_focus_group_after_a_reversal(port):
    sim, p = port
    sim.calibrated = True
    for command in (b"f300\r\n", b"f400\r\n"):             # end on a rising move
        ask(p, command)
        sim.clock.advance(1.0)
    group_up = sim.focus_group_steps()
    assert group_up == pytest.approx(400 - sim.lens.backlash_steps / 2)
    ask(p, b"f397\r\n")                                       # reverse by less than the slack
    sim.clock.advance(1.0)
    assert sim.motor_steps() == 397 and sim.focus_group_steps() == pytest.approx(group_up)
    ask(p, b"f300\r\n")
    sim.clock.advance(1.0)
    assert sim.focus_group_steps() == pytest.approx(300 + sim.lens.backlash_steps / 2)


def test_no_lens_answers_nc_but_the_board_still_answers(port):
    sim, p = port
    sim.lens_attached = False
    assert ask(p, b"v\r\n") == b"1.0\r\n"
    for command in (b"h", b"f", b"f100", b"e", b"c", b"i"):
        assert ask(p, command + b"\r\n") == b"nc\r\n"


def test_url_options_select_state_and_faults_and_reject_unknown_ones():
    with serial.serial_for_url("cefsim://opts?fault=silence,garbage&calibrated=1&lens=0&latency_ms=3", timeout=0.1):
        sim = get_cef_simulator("opts")
        assert sim.faults.silence and sim.faults.garbage and sim.calibrated and not sim.lens_attached
        assert sim.latency_s == 0.003
    with pytest.raises(serial.SerialException, match="unknown fault"):
        serial.serial_for_url("cefsim://opts?fault=melt")
    with pytest.raises(serial.SerialException, match="unknown option"):
        serial.serial_for_url("cefsim://opts?colour=red")


# -- the driver ---------------------------------------------------------------------------------------
def test_connect_calibrates_an_uncalibrated_lens_and_learns_the_range():
    sim, url = new_sim()
    with driver(sim, url) as lens:
        assert sim.commands()[:5] == ["v", "n", "h", "f", "c"]
        moves = [c for c in sim.commands() if c in ("m", "i") or c[1:].isdigit()]
        assert moves == ["m", "i", f"f{TOTAL}"]                # calibration ends at infinity: back there
        assert lens.identity.vendor == "Pinefeat" and lens.identity.serial == "CEF1680000011"
        assert lens.identity.firmware == "1.0" and "0x94" in lens.identity.model
        assert lens.lens_info["Focal length"] == "100-100 mm"
        caps = lens.capabilities
        assert caps.position_unit == "steps" and caps.position_range == (0.0, float(TOTAL))
        assert caps.waveforms == frozenset() and not caps.has_sync_output and caps.focal_power_range_dpt is None
        assert lens.status().position == TOTAL
        assert lens.temperature_c() is None


@pytest.mark.parametrize(("calibrate", "calibrated", "runs_c"), [(None, True, False), (True, True, True)])
def test_calibration_policy(calibrate, calibrated, runs_c):
    sim, url = new_sim(calibrated=calibrated)
    with driver(sim, url, calibrate=calibrate) as lens:
        assert ("c" in sim.commands()) is runs_c
        assert lens.status().position == (TOTAL if runs_c else TOTAL // 2)   # put back where it was


def test_calibrate_false_on_an_uncalibrated_lens_says_what_to_do():
    sim, url = new_sim()
    with pytest.raises(FocusError, match=r"not calibrated.*calibrate=True") as info:
        driver(sim, url, calibrate=False).connect()
    assert url in str(info.value) and "c" not in sim.commands()


def test_speed_is_sent_on_connect():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url, speed=1):
        assert "s1" in sim.commands() and sim.speed == 1
    with pytest.raises(ValueError, match="speed"):
        PinefeatCanonEF(url, speed=7)


def test_set_position_polls_busy_until_the_modelled_move_ends():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url) as lens:
        lens.set_position(0)
        n_before = len(sim.received)
        t0 = sim.clock.now()
        lens.set_position(1200.4)
        assert not sim.busy() and sim.motor_steps() == 1200
        lines = [c.line for c in sim.received[n_before:]]
        assert lines[0] == "f1200" and lines.count("e") >= 3 and lines[-2:] == ["e", "f"]
        modelled = sim.lens.overhead_s + 1200 / TOTAL * sim.lens.traverse_s[sim.speed]
        assert sim.clock.now() - t0 >= modelled              # it did not return before the motor stopped
        assert sim.clock.now() - t0 < modelled + 0.03        # and noticed within a few polls
        status = lens.status()
        assert (status.mode, status.position, status.focal_power_dpt) == (FocusMode.CURRENT, 1200.0, None)
        with pytest.raises(ValueError, match="outside the range"):
            lens.set_position(TOTAL + 1)


def test_a_move_that_never_ends_times_out_with_one_focus_error():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url, move_timeout_s=2.0) as lens:
        sim.lens.traverse_s[sim.speed] = 1000.0              # a jammed focus ring
        t0 = sim.clock.now()
        with pytest.raises(FocusError, match=r"still running.*AF/MF") as info:
            lens.set_position(1000)
        assert url in str(info.value)
        assert sim.clock.now() - t0 < 2.1
        sim.lens.traverse_s[sim.speed] = 0.08
        sim.clock.advance(1000.0)


def test_focal_power_needs_a_calibration_table():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url) as lens:
        with pytest.raises(FocusError, match="dioptre calibration") as info:
            lens.set_focal_power(1.0)
        assert url in str(info.value)
        with pytest.raises(FocusError, match="dioptre calibration"):
            lens.start_sweep(Waveform.TRIANGLE, 1.0, 0.0, 1.0)


def test_focal_power_through_the_table():
    sim, url = new_sim(calibrated=True)
    table = [(0, 10.0), (1000, 2.0), (1500, 0.0)]           # near focus = more dioptres
    with driver(sim, url, focal_power_table=table) as lens:
        assert lens.capabilities.focal_power_range_dpt == (0.0, 10.0)
        lens.set_focal_power(6.0)
        assert sim.motor_steps() == 500
        status = lens.status()
        assert (status.mode, status.focal_power_dpt, status.position) == (FocusMode.FOCAL_POWER, 6.0, 500.0)
        with pytest.raises(ValueError, match="outside the range"):
            lens.set_focal_power(11.0)
    with pytest.raises(ValueError, match="monotone"):
        PinefeatCanonEF(url, focal_power_table=[(0, 1.0), (1, 2.0), (2, 1.5)])


def halves(samples):
    out: dict[int, list] = {}
    for s in samples:
        out.setdefault(s.half, []).append(s)
    return [out[k] for k in sorted(out)]


def test_sweep_trajectory_is_monotone_per_half_between_low_and_high():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url) as lens:
        lens.set_position(1400)
        lens.start_sweep(Waveform.TRIANGLE, 2.0, 200, 1000, unit="raw", steps_per_half=4, cycles=2)
        assert lens.wait_sweep(10.0)
        samples = lens.trajectory
        parts = halves(samples)
        assert [len(h) for h in parts] == [5, 4, 4, 4]
        assert [s.commanded for s in parts[0]] == [200, 400, 600, 800, 1000]
        assert [s.commanded for s in parts[1]] == [800, 600, 400, 200]
        for part in parts:
            readback = [s.readback for s in part]
            assert readback == sorted(readback, reverse=part[0].direction < 0)
            assert all(200 <= r <= 1000 for r in readback)
        assert all(s.readback == s.commanded for s in samples)
        t = [s.t_command_ns for s in samples]
        assert t == sorted(t)
        for s in samples:
            assert s.t_command_ns >= s.t_scheduled_ns and s.t_settled_ns - s.t_command_ns >= s.move_ms * 1e6 - 1e6
        step_ns = 1e9 / (2 * 2.0 * 4)
        assert samples[-1].t_scheduled_ns - samples[0].t_scheduled_ns == pytest.approx(16 * step_ns, abs=20)
        assert samples[1].move_ms == round((sim.lens.overhead_s + 200 / TOTAL * sim.lens.traverse_s[4]) * 1000)
        assert lens.status().mode is FocusMode.CURRENT
        lens.stop_sweep()
        assert not sim.busy()


def test_sweep_in_dioptres_takes_equal_dioptre_steps():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url, focal_power_table=[(0, 10.0), (1000, 2.0), (1500, 0.0)]) as lens:
        lens.start_sweep(Waveform.TRIANGLE, 1.0, 1.0, 6.0, steps_per_half=5, cycles=1)
        assert lens.wait_sweep(10.0)
        assert [s.commanded for s in halves(lens.trajectory)[0]] == [1250, 1000, 875, 750, 625, 500]


def test_sweep_arguments_are_checked():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url) as lens:
        with pytest.raises(ValueError, match="triangle"):
            lens.start_sweep(Waveform.SINE, 1.0, 0, 100, unit="raw")
        with pytest.raises(ValueError, match="below"):
            lens.start_sweep(Waveform.TRIANGLE, 1.0, 100, 0, unit="raw")
        with pytest.raises(ValueError, match="outside"):
            lens.start_sweep(Waveform.TRIANGLE, 1.0, 0, TOTAL + 10, unit="raw")


def wait_for(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def test_close_during_a_sweep_stops_it_and_never_raises():
    sim, url = new_sim(calibrated=True)
    lens = driver(sim, url)
    lens.connect()
    lens.start_sweep(Waveform.TRIANGLE, 5.0, 100, 1400, unit="raw", steps_per_half=3)
    assert wait_for(lambda: len(lens.trajectory) >= 6)
    assert lens.status().mode is FocusMode.TRIANGLE          # status interleaves with the sweep thread
    with pytest.raises(RuntimeError, match="stop_sweep"):
        lens.set_position(10)
    lens.close()
    n = len(sim.received)
    assert not sim.busy()
    assert len(sim.received) == n                            # nothing talks to the board any more
    lens.close()
    with pytest.raises(FocusError, match="not connected"):
        lens.status()


@pytest.mark.parametrize(("fault", "message"), [("error", "refused .* \\(er\\)"), ("silence", "no answer"),
                                                ("garbage", "garbled reply")])
def test_fault_gives_one_focus_error_naming_the_port(fault, message):
    sim, url = new_sim(calibrated=True)
    lens = driver(sim, url, timeout_s=0.2)
    lens.connect()
    setattr(sim.faults, fault, True)
    t0 = sim.clock.now()
    with pytest.raises(FocusError, match=message) as info:
        lens.set_position(700)
    assert url in str(info.value)
    # device time: a move's ok is awaited up to move_timeout_s (3 s; the board may answer only when done)
    assert sim.clock.now() - t0 < 3.5
    with pytest.raises(FocusError, match=message):
        lens.status()
    lens.close()                                             # the link is broken: close still returns


@pytest.mark.parametrize("fault", ["error", "silence", "garbage"])
def test_connect_to_a_faulty_board_fails_quickly(fault):
    sim, url = new_sim()
    setattr(sim.faults, fault, True)
    with pytest.raises(FocusError, match=url):
        driver(sim, url, timeout_s=0.3).connect()
    assert sim.clock.now() < 1.0


def test_no_lens_and_unopenable_port():
    sim, url = new_sim(lens_attached=False)
    with pytest.raises(FocusError, match=r"no lens attached.*mount a Canon EF lens") as info:
        driver(sim, url).connect()
    assert url in str(info.value)
    with pytest.raises(FocusError, match="/dev/nonexistent-cef168"):
        PinefeatCanonEF("/dev/nonexistent-cef168").connect()


def test_a_fault_during_a_sweep_ends_it_and_stop_sweep_reports_it():
    sim, url = new_sim(calibrated=True)
    with driver(sim, url, timeout_s=0.2) as lens:
        lens.start_sweep(Waveform.TRIANGLE, 5.0, 100, 1400, unit="raw", steps_per_half=3)
        assert wait_for(lambda: len(lens.trajectory) >= 2)
        sim.faults.silence = True
        assert lens.wait_sweep(10.0)
        with pytest.raises(FocusError, match="no answer") as info:
            lens.stop_sweep()
        assert url in str(info.value)
        sim.faults.silence = False


def test_disconnect_gives_one_focus_error_and_close_does_not_raise():
    sim, url = new_sim(calibrated=True)
    lens = driver(sim, url)
    lens.connect()
    sim.faults.disconnect = True
    with pytest.raises(FocusError, match=r"link failed.*replug") as info:
        lens.set_position(10)
    assert url in str(info.value)
    lens.close()


def test_driver_over_a_pty_in_real_time():
    lens_model = EFLens(traverse_s={1: 0.04, 2: 0.03, 3: 0.02, 4: 0.01}, overhead_s=0.002)
    sim = Cef168Sim(clock=MonotonicClock(), lens=lens_model, calibrated=True)
    with serve_cef_pty(sim) as server, PinefeatCanonEF(server.path, timeout_s=1.0) as lens:
        assert lens.identity.serial == "CEF1680000011"
        lens.set_position(321)
        assert lens.status().position == 321.0 and not sim.busy()
        lens.start_sweep(Waveform.TRIANGLE, 10.0, 100, 400, unit="raw", steps_per_half=2, cycles=1)
        assert lens.wait_sweep(5.0)
        assert [s.commanded for s in lens.trajectory] == [100, 250, 400, 250, 100]
