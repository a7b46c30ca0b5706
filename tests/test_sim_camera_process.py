"""Simulated cameras computed in child processes: the same bytes as in-process, and failures that name the camera."""

import numpy as np
import pytest

from app.config import load_config
from drivers.camera import CameraError, NotSupportedError
from drivers.focus import Waveform
from drivers.registry import open_rig
from drivers.sim import get_simulator
from drivers.sim.camera_process import ProcessEventCamera, ProcessFrameCamera

SMALL = ["sim.realtime=false", "sim.rgb_size=[64,48]", "sim.event_size=[56,40]"]


def config(name: str, *extra: str):
    return load_config(overrides=[*SMALL, f'lens.port="optosim://{name}"', *extra])


def stream(name: str, processes: bool) -> tuple[bytes, list[np.ndarray], list[float]]:
    """Events (raw EVT3), frames and frame powers of a run that re-commands the lens mid-stream."""
    with open_rig(config(name), sim_processes=processes) as rig:
        ev, fr = rig.event_camera, rig.frame_camera
        assert isinstance(ev, ProcessEventCamera) == processes and isinstance(fr, ProcessFrameCamera) == processes
        fr.configure(exposure_us=4000, frame_rate_hz=40)
        ev.enable_trigger_in(0)
        ev.enable_trigger_in(1)
        ev.start()
        fr.start()
        raw, frames, powers = [], [], []
        for i in range(14):
            if i == 6:  # a new sweep, commanded through the real driver code to the LD4 simulator of this process
                rig.lens.start_sweep(Waveform.SINE, 6.0, 0.5, 2.5)
            raw.append(ev.read(1.0).raw)
            if i % 2:
                frame = fr.read(1.0)
                frames.append(frame.image)
                powers.append(frame.focal_power_dpt)
        assert rig.sim.lens_path.latest.freq_hz == pytest.approx(6.0, rel=1e-3)
    return b"".join(raw), frames, powers


def test_process_cameras_deliver_exactly_what_the_in_process_cameras_deliver():
    raw_a, frames_a, powers_a = stream("proc-a", processes=False)
    raw_b, frames_b, powers_b = stream("proc-b", processes=True)
    assert len(raw_a) > 2_000  # the sweep produced events, and strobe/sync triggers are in the same bytes
    assert raw_a == raw_b
    assert powers_a == powers_b and len(set(np.round(powers_a, 3))) > 3
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))


def test_a_camera_process_that_dies_is_a_camera_error_naming_it_and_the_lens_ends_safe():
    with open_rig(config("proc-kill"), sim_processes=True) as rig:
        rig.lens.start_sweep(Waveform.SINE, 5.0, 1.0, 2.0)
        ev = rig.event_camera
        ev.start()
        assert ev.read(1.0) is not None
        ev._child._proc.kill()  # what the OOM killer or a crash would do
        with pytest.raises(CameraError, match=r"simulated event camera: its simulator process stopped \(killed"):
            ev.read(1.0)
        assert rig.frame_camera.geometry == (64, 48)  # the other camera is unaffected
    sim = get_simulator("proc-kill")
    assert sim.mode == 1 and sim.dc_raw == 0  # the rig's close still put the lens in its safe state


def test_errors_raised_in_the_child_reach_the_caller_with_their_type_and_message():
    with open_rig(config("proc-errors"), sim_processes=True) as rig:
        with pytest.raises(NotSupportedError, match="biases"):
            rig.event_camera.set_biases({"bias_diff_on": 5})
        with pytest.raises(CameraError, match="exceeds the frame period"):
            rig.frame_camera.configure(exposure_us=30_000, frame_rate_hz=60)
        assert rig.frame_camera.frame_rate_hz != 60  # a refused configure leaves the parent rig's timing alone


def test_a_camera_that_cannot_be_built_fails_open_rig_and_leaves_the_lens_safe():
    with pytest.raises(ValueError, match="ROI 100x10"):
        open_rig(config("proc-roi", "event_camera.roi=[0,0,100,10]"), sim_processes=True)
    sim = get_simulator("proc-roi")
    assert sim.mode == 1 and sim.dc_raw == 0
