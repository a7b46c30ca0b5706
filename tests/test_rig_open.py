"""open_rig: the configured devices opened together, and the simulated rig following the simulated lens driver."""

import json
import math

import numpy as np
import pytest

from app.config import load_config
from drivers.events.dtypes import EVENT_EXT_TRIGGER, concat_events
from drivers.focus import Waveform
from drivers.registry import open_rig
from drivers.sim import get_simulator
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.trajectory import ConstantTrajectory, SweepTrajectory

SMALL = ["sim.realtime=false", "sim.rgb_size=[48,36]", "sim.event_size=[40,32]"]


def config(name: str, *extra: str):
    return load_config(overrides=[*SMALL, f'lens.port="optosim://{name}"', *extra])


def read_triggers(cam, n: int) -> np.ndarray:
    return concat_events([cam.read(1.0).triggers for _ in range(n)], EVENT_EXT_TRIGGER)


def test_default_config_opens_the_simulated_rig_and_close_leaves_the_lens_safe():
    with open_rig(config("rig-open")) as rig:
        assert isinstance(rig.event_camera, SimEventCamera) and isinstance(rig.frame_camera, SimFrameCamera)
        assert rig.event_camera.rig is rig.sim
        assert rig.event_camera.geometry == (40, 32) and rig.frame_camera.geometry == (48, 36)
        rig.lens.start_sweep(Waveform.SINE, 5.0, 1.0, 2.0)
        desc = json.loads(json.dumps(rig.describe()))  # JSON-serialisable as it is
        assert desc["lens"]["identity"]["vendor"] == "Optotune"
        assert desc["event_camera"]["raw_format"] == "EVT3" and desc["frame_camera"]["geometry"] == [48, 36]
        assert desc["config"]["lens"]["port"] == "optosim://rig-open"
        rig.event_camera.start()
        rig.event_camera.read(1.0)
        assert rig.describe()["sim"]["lens_path"][-1]["waveform"] == "sine"
    sim = get_simulator("rig-open")
    assert sim.mode == 1 and sim.dc_raw == 0  # DC at 0 mA: the LD4's safe state
    assert not sim._listeners  # the closed rig no longer follows the lens
    rig.close()  # a second close is harmless


def _fit_sine(t_us: np.ndarray, y: np.ndarray, freq_hz: float) -> tuple[float, float, float]:
    """Offset, amplitude and rms residual of the least-squares sine at ``freq_hz``."""
    w = 2 * math.pi * freq_hz * t_us * 1e-6
    basis = np.column_stack([np.ones_like(w), np.cos(w), np.sin(w)])
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(coef[0]), float(math.hypot(coef[1], coef[2])), float(np.std(y - basis @ coef))


def test_a_sweep_commanded_through_the_driver_is_what_both_cameras_see():
    # 1..2.5 dpt: the simulated EL-16-40-TC (-2..+3 dpt) guarantees only -1.8..2.8 dpt over the 10..50 °C limits.
    with open_rig(config("rig-sweep")) as rig:
        rig.lens.start_sweep(Waveform.SINE, 5.0, 1.0, 2.5)
        ev, fr = rig.event_camera, rig.frame_camera
        fr.configure(exposure_us=500, frame_rate_hz=50)
        ev.enable_trigger_in(rig.sim.sync_channel)
        ev.enable_trigger_in(rig.sim.strobe_channel)
        ev.start()
        fr.start()
        triggers = read_triggers(ev, 45)  # 0..450 ms
        frames = [fr.read(1.0) for _ in range(20)]
    sync = triggers[triggers["id"] == 1]
    rising = sync["t"][sync["p"] == 1]
    assert np.all(np.diff(sync["p"]) != 0)  # edges alternate ...
    np.testing.assert_allclose(np.diff(rising), 200_000, atol=1)  # ... and rise once per 5 Hz period
    np.testing.assert_allclose(np.diff(sync["t"]), 100_000, atol=1)
    mid = np.array([(f.exposure_start_us + f.exposure_end_us) / 2 for f in frames])
    power = np.array([f.focal_power_dpt for f in frames])
    offset, amplitude, residual = _fit_sine(mid, power, 5.0)
    assert offset == pytest.approx(1.75, abs=0.005)  # the driver's swing, through the simulator's current codes
    assert amplitude == pytest.approx(0.75, abs=0.01)  # 5 Hz is far below the lens resonance: gain ~1
    assert residual < 0.002  # a 5 Hz sine, nothing else
    strobes = triggers[(triggers["id"] == 0) & (triggers["p"] == 1)]["t"]
    assert set(f.exposure_start_us for f in frames) <= set(strobes.tolist())  # strobe wiring intact


def test_the_path_matches_the_ld4_simulators_own_drive_for_every_waveform_and_swapped_limits():
    """The rig's commanded power is the LD4 simulator's static drive, phase for phase (independent formula)."""
    for waveform, low, high in ((Waveform.SINE, -100.0, 150.0), (Waveform.TRIANGLE, 200.0, -50.0),
                                (Waveform.RECTANGLE, 120.0, 20.0)):
        name = f"rig-{waveform.value}"
        with open_rig(config(name, "event_camera.backend=\"none\"")) as rig:
            sim = get_simulator(name)
            # start_sweep wants low < high; the LD4 itself accepts any order, so write the limits raw.
            rig.lens.start_sweep(waveform, 7.0, min(low, high), max(low, high), unit="raw")
            if high < low:
                from drivers.optotune import protocol as p

                rig.lens._transact(p.generator_upper(p.current_to_raw(high, rig.lens._imax_ma)), "upper")
                rig.lens._transact(p.generator_lower(p.current_to_raw(low, rig.lens._imax_ma)), "lower")
            rig.sim.poll_lens()
            t_us = np.linspace(0, 400_000, 997)
            expected = [sim.lens.static_dpt(sim._drive_ma(sim.gen_t0 + t * 1e-6), sim.temperature_c) for t in t_us]
            np.testing.assert_allclose(rig.sim.lens_path.commanded_dpt(t_us), expected, atol=1e-9)
            assert isinstance(rig.sim.trajectory, SweepTrajectory)


def test_dc_mid_stream_holds_the_power_from_the_present_on_and_stops_the_sync():
    with open_rig(config("rig-dc")) as rig:
        rig.lens.start_sweep(Waveform.TRIANGLE, 10.0, 0.5, 2.0)
        ev = rig.event_camera
        ev.enable_trigger_in(1)
        ev.start()
        before = read_triggers(ev, 20)  # 0..200 ms: sweeping
        rig.lens.set_focal_power(1.25)
        after = read_triggers(ev, 20)  # 200..400 ms: held
        assert isinstance(rig.sim.trajectory, ConstantTrajectory)
        t_change = rig.sim.lens_path.segments[-1][0]
        frame = rig.frame_camera.frame_at(12)  # exposure 400..402 ms: after the change
        early = rig.frame_camera.frame_at(1)   # 33 ms: still the sweep, whatever was commanded since
    assert t_change == 200_000  # the event camera's present when the command arrived
    assert before.size == 4 and after.size == 0
    assert frame.focal_power_dpt == pytest.approx(1.25, abs=0.005)
    assert early.focal_power_dpt != pytest.approx(1.25, abs=0.05)


def test_other_lenses_leave_the_simulated_rig_on_its_configured_sweep():
    cfg = load_config(overrides=[*SMALL, 'lens.backend="pinefeat-cef168"', 'lens.port="cefsim://rig-cef"',
                                 "sim.sweep_hz=4", "sim.sweep_low_dpt=1", "sim.sweep_high_dpt=2",
                                 'sim.sweep_waveform="triangle"', 'sim.sync_channel="none"'])
    with open_rig(cfg) as rig:
        traj = rig.sim.trajectory
        assert (traj.freq_hz, traj.low_dpt, traj.high_dpt, traj.waveform) == (4.0, 1.0, 2.0, "triangle")
        assert rig.sim.sync_channel is None


def test_cameras_can_be_left_out():
    cfg = config("rig-none", 'event_camera.backend="none"', 'frame_camera.backend="none"')
    with open_rig(cfg) as rig:
        assert rig.event_camera is None and rig.frame_camera is None and rig.sim is None
        assert rig.describe()["event_camera"] is None


def test_the_real_rig_example_config_is_valid_and_selects_the_real_backends():
    from app.config import CONFIG_DIR

    cfg = load_config(CONFIG_DIR / "real-rig.example.toml")
    assert (cfg.lens.backend, cfg.lens.port) == ("optotune-ld4", "/dev/ttyACM0")
    assert cfg.event_camera.backend == "prophesee" and cfg.event_camera.biases == {"bias_diff_on": 0,
                                                                                   "bias_diff_off": 0}
    assert (cfg.frame_camera.backend, cfg.frame_camera.trigger_line, cfg.frame_camera.strobe_line) == \
        ("basler", "Line1", "Line2")
    assert cfg.sim.strobe_channel == 0 and cfg.sim.sync is None
