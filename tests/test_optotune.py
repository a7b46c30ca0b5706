"""Optotune Lens Driver 4: protocol vectors, the simulator at the byte level, the driver against it, the CLI."""

import itertools
import struct
import time

import numpy as np
import pytest
import serial
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from app.cli.lens import lens_app, sim_app
from drivers.focus import FocusError, FocusMode, Waveform
from drivers.optotune import OptotuneLensDriver4
from drivers.optotune import protocol as p
from drivers.sim import (
    LensDriver4Sim,
    MonotonicClock,
    forget_simulators,
    get_simulator,
    register_simulator,
    serve_pty,
)

IMAX = 292.84
_names = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_registry():
    yield
    forget_simulators()


@pytest.fixture
def sim_url():
    """A fresh deterministic simulator (no temperature walk) and the URL that reaches it."""
    name = f"lens{next(_names)}"
    sim = register_simulator(name, LensDriver4Sim(temp_walk_c=0.0, seed=1))
    return sim, f"optosim://{name}"


def settle(sim: LensDriver4Sim, dt: float = 0.02) -> None:
    """Let in-flight bytes reach the simulated device (virtual time)."""
    sim.clock.advance(dt)
    sim.drive_current_ma()


def assert_safe(sim: LensDriver4Sim) -> None:
    settle(sim)
    assert sim.mode == p.MODE_CURRENT
    assert sim.dc_raw == 0
    assert sim.drive_current_ma() == 0.0


# -- protocol ------------------------------------------------------------------------------------
VECTORS = [
    (b"H", 0x3600, "48 00 36"),
    (b"X", 0xFA01, "58 01 fa"),
    (b"TCA", 0xD0B0, "54 43 41 b0 d0"),
    (b"MMA", 0x7765, "4d 4d 41 65 77"),
    (b"MwDA", 0x4654, "4d 77 44 41 54 46"),
    (b"MwCA", 0x7656, "4d 77 43 41 56 76"),
    (b"MwSA", 0xB65B, "4d 77 53 41 5b b6"),
    (b"MwTA", 0x8659, "4d 77 54 41 59 86"),
    (b"MwQA", 0xD65A, "4d 77 51 41 5a d6"),
    (b"Ar\x00\x00", 0x27B4, "41 72 00 00 b4 27"),
    (b"CrMA\x00\x00", 0x8071, "43 72 4d 41 00 00 71 80"),
    (b"PrDA\x00\x00\x00\x00", 0x7064, "50 72 44 41 00 00 00 00 64 70"),
    (b"PwFA\x00\x00\x03\xe8", 0x2C30, "50 77 46 41 00 00 03 e8 30 2c"),
]


def test_crc16_arc_check_value():
    assert p.crc16_arc(b"123456789") == 0xBB3D
    assert p.crc16_arc(b"") == 0


@pytest.mark.parametrize(("command", "crc", "framed"), VECTORS)
def test_documented_vectors(command, crc, framed):
    assert p.crc16_arc(command) == crc
    assert p.frame(command) == bytes.fromhex(framed)
    assert p.frame_ok(bytes.fromhex(framed))


def test_encoders_produce_documented_frames():
    framed = {bytes.fromhex(f) for _, _, f in VECTORS}
    for request in (p.firmware_type(), p.lens_serial(), p.temperature(), p.read_mode(), p.get_current(),
                    p.max_current(), p.get_focal_power(), p.generator_frequency(1000),
                    *(p.set_mode(m) for m in p.MODE_LETTERS)):
        assert request.data in framed


@given(st.binary(min_size=1, max_size=40))
def test_crc_over_message_and_crc_is_zero(data):
    assert p.crc16_arc(p.frame(data)) == 0


def test_focal_power_encoding_depends_on_firmware_type():
    assert p.encode_focal_power(0.0, b"A") == 1000      # type A: (D + 5)·200
    assert p.encode_focal_power(-1.5, b"A") == 700
    assert p.encode_focal_power(1.5, b"B") == 300       # others: D·200
    assert p.decode_focal_power(700, b"A") == -1.5
    assert p.decode_focal_power(-300, b"F") == -1.5
    assert p.set_focal_power(1.0, b"A").data[:8] == b"PwDA\x04\xb0\x00\x00"


def test_current_codes_clamp_to_full_scale():
    assert p.current_to_raw(IMAX, IMAX) == 4095
    assert p.current_to_raw(-2 * IMAX, IMAX) == -4095
    assert p.current_to_raw(100.0, IMAX) == round(100 / IMAX * 4095)


def test_parse_reply_reads_by_length_and_checks_everything():
    payload = b"A\x0d\x0a"                               # a current code that looks like a line end
    raw = p.reply_frame(payload)
    assert p.parse_reply(raw, 3, b"A") == payload
    with pytest.raises(p.ProtocolError, match="CRC"):
        p.parse_reply(raw[:3] + bytes([raw[3] ^ 1]) + raw[4:], 3, b"A")
    with pytest.raises(p.ProtocolError, match="N"):
        p.parse_reply(p.NACK, 3, b"A")
    with pytest.raises(p.ProtocolError, match="7-byte"):
        p.parse_reply(raw[:-1], 3, b"A")
    with pytest.raises(p.ProtocolError, match="start with"):
        p.parse_reply(raw, 3, b"T")
    with pytest.raises(ValueError, match="16-bit"):
        p.set_current(40000)


# -- the simulator at the byte level ------------------------------------------------------------
def exchange(sim: LensDriver4Sim, data: bytes) -> bytes:
    sim.feed(data)
    sim.clock.advance(0.01)
    return sim.take_ready()


def reply_of(sim: LensDriver4Sim, request: p.Request) -> bytes:
    raw = exchange(sim, request.data)
    if not request.reply_len:
        assert raw == b""
        return b""
    return p.parse_reply(raw, request.reply_len, request.echo)


def test_every_command_round_trips_through_the_simulator():
    sim = LensDriver4Sim(temp_walk_c=0.0)
    assert exchange(sim, p.HANDSHAKE) == p.HANDSHAKE_REPLY
    assert reply_of(sim, p.firmware_type()) == b"HA"
    assert reply_of(sim, p.firmware_branch())[:1] == b"F"
    assert reply_of(sim, p.lens_serial()) == b"XLF123456"
    assert p.decode_firmware_version(reply_of(sim, p.firmware_version())) == "1.9.3021.0"
    assert p.decode_i16(reply_of(sim, p.max_current()), 3) == 29284
    assert p.decode_i16(reply_of(sim, p.upper_current_limit()), 3) == 4095
    assert p.decode_i16(reply_of(sim, p.lower_current_limit()), 3) == -4095
    assert p.decode_temperature(reply_of(sim, p.temperature())) == 30.0
    status, fp_min, fp_max = p.decode_fp_range(reply_of(sim, p.temperature_limits(45, 15)), b"A")
    assert status == 0 and fp_min < 0 < fp_max
    for mode in p.MODE_LETTERS:
        reply_of(sim, p.set_mode(mode))
        assert reply_of(sim, p.read_mode())[3] == mode == sim.mode
    reply_of(sim, p.set_mode(p.MODE_CURRENT))
    reply_of(sim, p.set_current(-1234))
    assert sim.dc_raw == -1234
    assert p.decode_i16(reply_of(sim, p.get_current()), 1) == -1234
    reply_of(sim, p.generator_upper(2000))
    reply_of(sim, p.generator_lower(-1000))
    reply_of(sim, p.generator_frequency(2500))
    assert (sim.gen_upper_raw, sim.gen_lower_raw, sim.gen_mhz) == (2000, -1000, 2500)
    reply_of(sim, p.set_focal_power(-1.25, b"A"))
    assert sim.focal_power_setpoint_dpt == -1.25
    assert p.decode_focal_power(p.decode_i16(reply_of(sim, p.get_focal_power()), 2), b"A") == -1.25
    assert sim.nacks_sent == 0


def test_simulator_accepts_both_version_request_forms_and_split_writes():
    sim = LensDriver4Sim()
    assert exchange(sim, p.frame(b"V\x00"))[:1] == b"V"
    framed = p.temperature().data
    for byte in framed[:-1]:
        assert exchange(sim, bytes([byte])) == b""
    assert p.parse_reply(exchange(sim, framed[-1:]), 5, b"TCA")


def test_simulator_answers_bad_crc_with_n_and_resyncs():
    sim = LensDriver4Sim()
    bad = p.set_current(100).data[:-1] + b"\x00"
    assert exchange(sim, bad) == p.NACK
    assert sim.dc_raw == 0
    assert p.parse_reply(exchange(sim, p.read_mode().data), 4, b"MMA")


def test_simulator_unknown_command_is_configurable():
    assert exchange(LensDriver4Sim(), p.frame(b"Q?")) == b""
    assert exchange(LensDriver4Sim(unknown="nack"), p.frame(b"Q?")) == p.NACK


def test_focal_power_mode_is_refused_before_temperature_limits():
    sim = LensDriver4Sim()
    payload = reply_of(sim, p.set_mode(p.MODE_FOCAL_POWER))
    assert payload[3] & 0x20 and sim.mode == p.MODE_CURRENT


def test_url_options_select_faults_and_reject_unknown_ones():
    port = serial.serial_for_url("optosim://opts?fault=bad_crc,silence&latency_ms=3&seed=2", timeout=0.1)
    sim = get_simulator("opts")
    assert sim.faults.bad_crc and sim.faults.silence and sim.latency_s == 0.003
    port.close()
    with pytest.raises(serial.SerialException, match="unknown fault"):
        serial.serial_for_url("optosim://opts?fault=melt")


# -- the driver against optosim:// --------------------------------------------------------------
def test_identity_and_capabilities(sim_url):
    sim, url = sim_url
    with OptotuneLensDriver4(url) as lens:
        assert lens.identity.serial == "LF123456"
        assert lens.identity.vendor == "Optotune" and "1.9.3021.0" in lens.identity.firmware
        caps = lens.capabilities
        assert caps.position_unit == "mA" and caps.position_range == pytest.approx((-IMAX, IMAX))
        lo, hi = caps.focal_power_range_dpt
        assert lo == pytest.approx(-1.8, abs=0.01) and hi == pytest.approx(2.8, abs=0.01)
        assert caps.waveforms == {Waveform.SINE, Waveform.TRIANGLE, Waveform.RECTANGLE}
        assert not caps.has_sync_output
    assert sim.commands()[0] == b"Start"
    assert sim.temp_limits_c == (50.0, 10.0)


def test_set_current_then_status(sim_url):
    sim, url = sim_url
    with OptotuneLensDriver4(url) as lens:
        lens.set_position(100.0)
        status = lens.status()
        assert status.mode is FocusMode.CURRENT
        assert status.position == pytest.approx(100.0, abs=IMAX / 4095)
        assert status.focal_power_dpt is None and status.temperature_c == 30.0
        assert sim.dc_raw == round(100 / IMAX * 4095)
        with pytest.raises(ValueError, match="outside"):
            lens.set_position(400.0)
    assert_safe(sim)


def test_set_focal_power_then_status(sim_url):
    sim, url = sim_url
    with OptotuneLensDriver4(url) as lens:
        lens.set_focal_power(1.5)
        status = lens.status()
        assert status.mode is FocusMode.FOCAL_POWER and status.focal_power_dpt == 1.5
        sent = [c for c in sim.commands() if c.startswith(b"PwDA")][-1]
        assert struct.unpack(">h", sent[4:6])[0] == (1.5 + 5) * 200      # firmware type A encoding
        assert status.position == pytest.approx(sim.lens.current_for(1.5, 30.0), abs=0.1)
        settle(sim, 0.05)
        assert sim.focal_power_dpt() == pytest.approx(1.5, abs=0.005)
        with pytest.raises(ValueError, match="outside"):
            lens.set_focal_power(10.0)
    assert_safe(sim)


@pytest.mark.parametrize(("waveform", "mode"), [(Waveform.SINE, b"MwSA"), (Waveform.TRIANGLE, b"MwTA"),
                                                (Waveform.RECTANGLE, b"MwQA")])
def test_sweep_in_current_sends_generator_parameters(sim_url, waveform, mode):
    sim, url = sim_url
    with OptotuneLensDriver4(url) as lens:
        lens.start_sweep(waveform, 2.5, -50.0, 120.0, unit="raw")
        settle(sim)
        cmds = sim.commands()
        i = cmds.index(mode)
        assert cmds[i + 1:i + 4] == [b"PwUA" + struct.pack(">h", round(120 / IMAX * 4095)) + b"\x00\x00",
                                     b"PwLA" + struct.pack(">h", round(-50 / IMAX * 4095)) + b"\x00\x00",
                                     b"PwFA" + struct.pack(">I", 2500)]
        assert lens.status().mode.value == waveform.value
        lens.stop_sweep()
        assert_safe(sim)
        assert lens.status().mode is FocusMode.CURRENT


def test_sweep_in_dioptres_uses_the_firmware_current_for_each_limit(sim_url):
    sim, url = sim_url
    with OptotuneLensDriver4(url) as lens:
        lens.start_sweep(Waveform.TRIANGLE, 1.0, -1.0, 2.0)
        settle(sim)
        expect = [round(sim.lens.current_for(d, 30.0) / IMAX * 4095) for d in (2.0, -1.0)]
        assert [sim.gen_upper_raw, sim.gen_lower_raw] == expect
        assert sim.gen_mhz == 1000 and sim.mode == p.MODE_TRIANGLE
        # the optical swing over a slow period covers the requested range (a fast one loses its corners)
        sim.clock.advance(0.5)
        samples = []
        for _ in range(2000):
            sim.clock.advance(0.5e-3)
            samples.append(sim.focal_power_dpt())
        assert min(samples) == pytest.approx(-1.0, abs=0.03) and max(samples) == pytest.approx(2.0, abs=0.03)
        with pytest.raises(ValueError, match="below"):
            lens.start_sweep(Waveform.SINE, 1.0, 2.0, 1.0)


def test_temperature(sim_url):
    sim, url = sim_url
    with OptotuneLensDriver4(url) as lens:
        sim.temperature_c = sim.ambient_c = 41.3
        assert lens.temperature_c() == round(41.3 * 16) / 16


def test_close_always_leaves_the_safe_state_and_is_idempotent(sim_url):
    sim, url = sim_url
    lens = OptotuneLensDriver4(url)
    lens.connect()
    lens.start_sweep(Waveform.SINE, 1.0, 0.0, 1.0)
    lens.close()
    assert_safe(sim)
    lens.close()
    with pytest.raises(FocusError, match="not connected"):
        lens.status()


def test_unopenable_port_names_the_port():
    with pytest.raises(FocusError, match="/dev/nonexistent-lens"):
        OptotuneLensDriver4("/dev/nonexistent-lens").connect()


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "message"), [("bad_crc", "CRC mismatch"), ("silence", "no reply"),
                                                ("garble_rx", "answered N")])
def test_fault_gives_one_focus_error_and_the_safe_state(sim_url, fault, message):
    sim, url = sim_url
    lens = OptotuneLensDriver4(url, timeout_s=0.2)
    lens.connect()
    lens.start_sweep(Waveform.TRIANGLE, 5.0, -100.0, 100.0, unit="raw")
    setattr(sim.faults, fault, True)
    t_before = sim.clock.now()
    with pytest.raises(FocusError, match=message) as info:
        lens.status()
    assert url in str(info.value)
    assert sim.clock.now() - t_before < 0.5                 # device time: one timeout, not a hang
    if fault == "garble_rx":                                 # frames to the lens were garbled too:
        assert sim.mode == p.MODE_TRIANGLE                   # the link did not work, the lens kept sweeping
        sim.faults.garble_rx = False
        lens.close()
    assert_safe(sim)
    lens.close()


def test_disconnect_gives_one_focus_error_and_close_does_not_raise(sim_url):
    sim, url = sim_url
    lens = OptotuneLensDriver4(url)
    lens.connect()
    sim.faults.disconnect = True
    with pytest.raises(FocusError, match="link failed") as info:
        lens.set_position(10.0)
    assert url in str(info.value) and "replug" in str(info.value)
    lens.close()


def test_connect_to_a_silent_device_fails_quickly(sim_url):
    sim, url = sim_url
    sim.faults.silence = True
    with pytest.raises(FocusError, match="handshake"):
        OptotuneLensDriver4(url, timeout_s=0.3).connect()
    assert sim.clock.now() < 1.0


# -- the lens model -------------------------------------------------------------------------------
def trace(sim: LensDriver4Sim, seconds: float, dt: float = 50e-6) -> tuple[np.ndarray, np.ndarray]:
    t, d = [], []
    for _ in range(round(seconds / dt)):
        sim.clock.advance(dt)
        t.append(sim.clock.now())
        d.append(sim.focal_power_dpt())
    return np.array(t), np.array(d)


def model_sim() -> LensDriver4Sim:
    sim = LensDriver4Sim(latency_s=0.0, jitter_s=0.0, temp_walk_c=0.0)
    exchange(sim, p.set_mode(p.MODE_CURRENT).data)
    return sim


def test_step_response_has_the_documented_rise_settling_and_ringing():
    sim = model_sim()
    sim.feed(p.set_current(2800).data)
    t0 = sim.clock.now()
    t, d = trace(sim, 0.04)
    d0, d1 = sim.lens.static_dpt(0.0, 30.0), sim.lens.static_dpt(2800 * IMAX / 4095, 30.0)
    f = (d - d0) / (d1 - d0)
    rise = t[np.argmax(f > 0.9)] - t[np.argmax(f > 0.1)]
    settled = t[np.nonzero(np.abs(f - 1) > 0.02)[0][-1]] - t0
    assert 2.0e-3 <= rise <= 5e-3                     # §2.6 datasheet ≈2.5 ms, §9.2 2.5–5 ms
    assert settled <= 15e-3                           # §2.6: 15 ms transient response
    assert f.max() > 1.05                             # underdamped: it overshoots
    assert f[-1] == pytest.approx(1.0, abs=1e-3)


def triangle(sim: LensDriver4Sim, hz: float) -> None:
    for request in (p.set_mode(p.MODE_TRIANGLE), p.generator_upper(3000), p.generator_lower(-3000),
                    p.generator_frequency(round(hz * 1000))):
        exchange(sim, request.data)


def test_triangle_lag_matches_the_model_time_constant():
    sim = model_sim()
    triangle(sim, 5.0)
    period = 0.2
    sim.clock.advance(0.3)
    t, d = trace(sim, period)
    level = sim.lens.static_dpt(0.0, 30.0) + 0.3
    above = d > level
    up = np.nonzero(~above[:-1] & above[1:])[0]
    down = np.nonzero(above[:-1] & ~above[1:])[0]
    assert len(up) == 1 and len(down) == 1

    def crossing(i):
        return t[i] + (level - d[i]) / (d[i + 1] - d[i]) * (t[i + 1] - t[i])

    rel = [(crossing(i[0]) - sim.gen_t0) % period for i in (up, down)]
    lag = (rel[0] + rel[1] - period) / 2               # §1.6: level-independent for a symmetric sweep
    assert lag == pytest.approx(sim.lens.ramp_lag_s, rel=0.05)


def test_ringing_after_a_turnaround():
    sim = model_sim()
    triangle(sim, 5.0)
    sim.clock.advance(0.3)
    t, d = trace(sim, 0.3)
    ideal_phase = ((t - sim.lens.ramp_lag_s - sim.gen_t0) * 5.0) % 1.0
    shape = np.where(ideal_phase < 0.5, 2 * ideal_phase, 2 - 2 * ideal_phase)
    lo, hi = (sim.lens.static_dpt(c * IMAX / 4095, 30.0) for c in (-3000, 3000))
    error = d - (lo + (hi - lo) * shape)               # against the ideal sweep delayed by the ramp lag
    ms = round(1e-3 / 50e-6)
    turns = np.nonzero((ideal_phase[:-1] < 0.5) & (ideal_phase[1:] >= 0.5))[0]
    turn = turns[(turns > 20 * ms) & (turns < len(t) - 60 * ms)][0]
    late = error[turn + 40 * ms:turn + 60 * ms]
    assert np.ptp(late) < 1e-3                               # settled to steady tracking of the down-ramp
    window = error[turn:turn + 20 * ms] - np.median(late)
    big = window[np.abs(window) > 0.05 * np.abs(window).max()]
    assert np.abs(window).max() > 0.01                       # the turnaround disturbs focus noticeably
    # it rings about the lagged ramp: over- then undershoot (a first-order lag alone never crosses)
    assert np.count_nonzero(np.diff(np.sign(big))) >= 2


def test_temperature_drift_at_constant_current_and_its_compensation():
    sim = model_sim()
    exchange(sim, p.set_current(1000).data)
    sim.clock.advance(0.1)
    cold = sim.focal_power_dpt()
    sim.temperature_c = sim.ambient_c = 40.0
    sim.clock.advance(0.1)
    assert sim.focal_power_dpt() - cold == pytest.approx(10 * sim.lens.temp_coeff_dpt_per_c, rel=1e-3)
    exchange(sim, p.temperature_limits(50, 10).data)
    exchange(sim, p.set_mode(p.MODE_FOCAL_POWER).data)
    exchange(sim, p.set_focal_power(1.0, b"A").data)
    sim.clock.advance(0.1)
    warm_current = sim.drive_current_ma()
    assert sim.focal_power_dpt() == pytest.approx(1.0, abs=1e-3)
    sim.temperature_c = sim.ambient_c = 20.0
    sim.clock.advance(0.1)
    assert sim.focal_power_dpt() == pytest.approx(1.0, abs=1e-3)
    assert sim.drive_current_ma() != pytest.approx(warm_current, abs=1.0)


# -- pty ------------------------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_pty_with_a_plain_pyserial_port_passes_binary_bytes_unchanged():
    with serve_pty() as server, serial.Serial(server.path, timeout=1.0) as port:
        port.write(p.HANDSHAKE)
        assert port.read(7) == p.HANDSHAKE_REPLY
        port.write(p.set_current(0x0D0A).data)           # a payload that looks like a line end
        port.write(p.get_current().data)
        raw = port.read(7)
        assert p.parse_reply(raw, 3, b"A") == b"A\x0d\x0a"


def test_driver_over_pty_and_disconnect():
    sim = LensDriver4Sim(clock=MonotonicClock(), temp_walk_c=0.0)
    with serve_pty(sim) as server:
        with OptotuneLensDriver4(server.path, timeout_s=1.0) as lens:
            assert lens.identity.serial == "LF123456"
            lens.set_position(50.0)
            assert lens.status().position == pytest.approx(50.0, abs=0.1)
        assert wait_for(lambda: sim.drive_current_ma() == 0.0 and sim.mode == p.MODE_CURRENT)
        lens = OptotuneLensDriver4(server.path, timeout_s=1.0)
        lens.connect()
        sim.faults.disconnect = True
        with pytest.raises(FocusError, match=server.path):
            for _ in range(100):                          # the server notices within its 50 ms poll
                lens.status()
                time.sleep(0.01)
        lens.close()


# -- CLI ------------------------------------------------------------------------------------------
cli = typer.Typer()
cli.add_typer(lens_app, name="lens")
cli.add_typer(sim_app, name="sim")
runner = CliRunner()


def test_cli_info_and_setters(sim_url):
    sim, url = sim_url
    result = runner.invoke(cli, ["lens", "--port", url, "info"])
    assert result.exit_code == 0, result.output
    assert "LF123456" in result.output and "dpt" in result.output
    result = runner.invoke(cli, ["lens", "--port", url, "set-current", "100", "--hold", "0"])
    assert result.exit_code == 0, result.output
    assert b"Aw" + struct.pack(">h", round(100 / IMAX * 4095)) in sim.commands()
    result = runner.invoke(cli, ["lens", "--port", url, "set-diopter", "--hold", "0", "--", "-1.5"])
    assert result.exit_code == 0, result.output
    assert "-1.500 dpt" in result.output
    result = runner.invoke(cli, ["lens", "--port", url, "sweep", "--waveform", "triangle", "--freq", "2.5",
                                 "--low", "-1", "--high", "2", "--hold", "0"])
    assert result.exit_code == 0, result.output
    assert b"PwFA" + struct.pack(">I", 2500) in sim.commands() and b"MwTA" in sim.commands()
    result = runner.invoke(cli, ["lens", "--port", url, "stop"])
    assert result.exit_code == 0 and "mode current" in result.output
    assert_safe(sim)


def test_cli_default_simulator_url():
    result = runner.invoke(cli, ["lens", "--port", "optosim://", "info"])
    assert result.exit_code == 0, result.output


def test_cli_errors_are_one_red_line_with_exit_code_2(sim_url):
    sim, url = sim_url
    sim.faults.silence = True
    result = runner.invoke(cli, ["lens", "--port", url, "info"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and url in result.output
    sim.faults.silence = False
    result = runner.invoke(cli, ["lens", "--port", url, "set-current", "500", "--hold", "0"])
    assert result.exit_code == 2 and "outside" in result.output


def test_cli_sim_lens_prints_its_pty():
    result = runner.invoke(cli, ["sim", "lens", "--duration", "0.1"])
    assert result.exit_code == 0, result.output
    assert "/dev/" in result.output


def test_cli_takes_negative_values_as_values_and_checks_hold_and_frequency(sim_url):
    sim, url = sim_url
    result = runner.invoke(cli, ["lens", "--port", url, "set-current", "-50", "--hold", "0"])
    assert result.exit_code == 0, result.output
    assert b"Aw" + struct.pack(">h", round(-50 / IMAX * 4095)) in sim.commands()
    result = runner.invoke(cli, ["lens", "--port", url, "set-diopter", "-1.5", "--hold", "0"])
    assert result.exit_code == 0 and "-1.500 dpt" in result.output, result.output
    sent = len(sim.commands())
    result = runner.invoke(cli, ["lens", "--port", url, "set-current", "10", "--hold", "-1"])
    assert result.exit_code == 2 and "--hold" in result.output
    result = runner.invoke(cli, ["lens", "--port", url, "sweep", "--freq", "1e9", "--low", "0", "--high", "1"])
    assert result.exit_code == 2 and "0.001" in result.output and "4294967.295" in result.output, result.output
    assert len(sim.commands()) == sent  # refused before the lens was touched


def test_cli_help_of_a_lens_command_needs_no_port():
    result = runner.invoke(cli, ["lens", "sweep", "--help"], env={"FOCALRIG_LENS_PORT": ""})
    assert result.exit_code == 0 and "--freq" in result.output, result.output
    result = runner.invoke(cli, ["lens", "info"], env={"FOCALRIG_LENS_PORT": ""})
    assert result.exit_code == 2 and "--port" in result.output


@pytest.mark.parametrize("dc", [False, True])
def test_temperature_drift_alone_publishes_no_new_drive(dc):
    """A simulated rig follows the published drive from its present: a publication that only temperature drift
    caused (whose moment depends on how often the host polled) would change its lens path at a moment that thread
    timing decides. Only commands publish."""
    name = f"drift{next(_names)}"
    sim = register_simulator(name, LensDriver4Sim(temp_walk_c=0.2, seed=4))
    published = []
    sim.add_listener(published.append)
    with OptotuneLensDriver4(f"optosim://{name}") as lens:
        if dc:
            lens.set_position(40.0)
        else:
            lens.start_sweep(Waveform.SINE, 4.0, 0.0, 2.0)
        sim.deliver_pending()
        before = len(published)
        temps = {lens.status().temperature_c for _ in range(300)}  # each poll advances the device clock
        assert len(temps) > 5  # the temperature did walk
        assert len(published) == before
        lens.set_position(10.0)  # a command still publishes
        sim.deliver_pending()
        assert len(published) > before and published[-1].waveform == "dc"
