"""Simulated frame camera: its frames are the rig's exposure windows, rendered deterministically, in order."""

import cv2
import numpy as np
import pytest

from drivers.camera import CameraError, NotSupportedError
from drivers.sim.exposure import SensorNoise
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.rig import SimRig
from drivers.sim.trajectory import trigger_events

SIZE = (160, 120)  # small images keep each render to a few ms; the timing logic does not depend on size


def small_rig(**kwargs) -> SimRig:
    return SimRig.default(SIZE, seed=kwargs.pop("seed", 7), **kwargs)


def read_n(cam: SimFrameCamera, n: int) -> list:
    frames = [cam.read(1.0) for _ in range(n)]
    assert all(f is not None for f in frames)
    return frames


def laplacian_variance(image: np.ndarray, mask: np.ndarray) -> float:
    y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.var(cv2.Laplacian(y, cv2.CV_32F)[mask]))


def test_identity_and_geometry_come_from_the_rig():
    cam = SimFrameCamera(small_rig(seed=42))
    assert cam.identity.vendor == "focalrig"
    assert cam.identity.model == "simulated frame camera"
    assert "42" in cam.identity.serial
    assert cam.geometry == SIZE


def test_frames_use_the_rigs_exposure_windows_and_strobe_edges():
    rig = small_rig()
    rig.frame_rate_hz, rig.exposure_us = 97.0, 3333.3  # non-integer period and exposure: rounding is exercised
    with SimFrameCamera(rig) as cam:
        cam.start()
        frames = read_n(cam, 6)
    schedule = rig.frames_starting(0.0, 6 * 1e6 / 97.0 - 1.0)
    assert schedule.starts_us.size == 6
    assert [f.exposure_start_us for f in frames] == np.round(schedule.starts_us).astype(int).tolist()
    assert [f.exposure_end_us for f in frames] == np.round(schedule.ends_us).astype(int).tolist()
    strobe = trigger_events(*schedule.strobe_edges(), rig.strobe_channel)
    assert strobe["t"][strobe["p"] == 1].tolist() == [f.exposure_start_us for f in frames]
    assert strobe["t"][strobe["p"] == 0].tolist() == [f.exposure_end_us for f in frames]
    assert all(f.clock == "event" for f in frames)
    assert [f.index for f in frames] == list(range(6))


def test_focal_power_is_the_trajectory_at_mid_exposure():
    rig = small_rig()
    cam = SimFrameCamera(rig)
    cam.start()
    frames = read_n(cam, 5)
    mid = rig.frames_starting(0.0, 5 * 1e6 / rig.frame_rate_hz - 1.0).mid_us
    expected = rig.trajectory.actual_dpt(mid)
    assert [f.focal_power_dpt for f in frames] == pytest.approx(expected.tolist(), abs=1e-12)
    assert np.ptp(expected) > 0.5  # the frames really sample different powers


def test_image_shape_and_dtype_follow_the_sensor():
    rig = small_rig()
    cam = SimFrameCamera(rig)
    cam.start()
    assert cam.read(1.0).image.shape == (SIZE[1], SIZE[0], 3)
    assert cam.read(1.0).image.dtype == np.uint8
    rig.noise = SensorNoise(bit_depth=12)
    image = cam.read(1.0).image
    assert image.dtype == np.uint16 and image.max() > 255


def test_drop_every_leaves_gaps_in_the_index_and_nowhere_else():
    cam = SimFrameCamera(small_rig(), drop_every=3)
    cam.start()
    indices = [f.index for f in read_n(cam, 6)]
    assert indices == [0, 1, 3, 4, 6, 7]


def test_drop_every_must_leave_frames():
    with pytest.raises(ValueError):
        SimFrameCamera(small_rig(), drop_every=1)


def test_frame_focused_on_a_layer_is_sharper_there_than_one_focused_elsewhere():
    rig = small_rig()
    cam = SimFrameCamera(rig)
    cam.configure(exposure_us=1000.0, frame_rate_hz=113.0)  # incommensurate with the 10 Hz sweep: many phases
    cam.start()
    frames = read_n(cam, 12)
    scene = rig.renderer.scene
    for depth in (0.5, 1.5, 3.0):
        region = np.isclose(scene.depth, depth)
        assert region.sum() > 500
        defocus = [abs(rig.renderer.optics.focus_dpt(f.focal_power_dpt) - depth) for f in frames]
        sharp, blurred = frames[int(np.argmin(defocus))], frames[int(np.argmax(defocus))]
        assert min(defocus) < 0.2 and max(defocus) > 1.0
        assert laplacian_variance(sharp.image, region) > 2 * laplacian_variance(blurred.image, region)


def test_images_depend_only_on_seed_and_index_not_on_read_order_or_timing():
    rig_a, rig_b, rig_c = small_rig(), small_rig(), small_rig()
    for rig in (rig_a, rig_b, rig_c):
        rig.frame_rate_hz, rig.exposure_us = 1000.0, 200.0  # realtime reads wait only a few ms in total
    plain = SimFrameCamera(rig_a)
    plain.start()
    by_index = {f.index: f for f in read_n(plain, 6)}
    realtime = SimFrameCamera(rig_b, realtime=True, drop_every=2)
    realtime.start()
    for f in read_n(realtime, 3):  # indices 0, 2, 4: a different order of renders and noise draws
        assert np.array_equal(f.image, by_index[f.index].image)
        assert f.exposure_start_us == by_index[f.index].exposure_start_us
    assert np.array_equal(plain.frame_at(5).image, by_index[5].image)  # after six renders
    assert np.array_equal(SimFrameCamera(rig_c).frame_at(4).image, by_index[4].image)  # as the first render
    assert not np.array_equal(by_index[0].image, by_index[1].image)
    other_seed = SimFrameCamera(small_rig(seed=8))
    assert not np.array_equal(other_seed.frame_at(0).image, by_index[0].image)


@pytest.mark.parametrize(("exposure_us", "frame_rate_hz"), [(0.0, 30.0), (-5.0, 30.0), (2000.0, 0.0),
                                                            (2000.0, -30.0), (40_000.0, 30.0), (float("nan"), 30.0)])
def test_configure_rejects_out_of_range_settings(exposure_us, frame_rate_hz):
    rig = small_rig()
    cam = SimFrameCamera(rig)
    with pytest.raises(CameraError):
        cam.configure(exposure_us=exposure_us, frame_rate_hz=frame_rate_hz)
    assert (rig.frame_rate_hz, rig.exposure_us) == (30.0, 2000.0)


def test_configure_refuses_external_trigger_and_reconfiguring_while_streaming():
    cam = SimFrameCamera(small_rig())
    with pytest.raises(NotSupportedError):
        cam.configure(exposure_us=1000.0, frame_rate_hz=30.0, trigger="external")
    cam.configure(exposure_us=33_333.0, frame_rate_hz=30.0)  # exposure equal to (just under) the period is fine
    cam.start()
    with pytest.raises(CameraError):
        cam.configure(exposure_us=1000.0, frame_rate_hz=60.0)


def test_changing_the_frame_rate_changes_the_spacing_on_the_shared_rig():
    rig = small_rig()
    cam = SimFrameCamera(rig)
    cam.configure(exposure_us=1000.0, frame_rate_hz=50.0)
    cam.start()
    starts_50 = [f.exposure_start_us for f in read_n(cam, 3)]
    cam.stop()
    cam.configure(exposure_us=1000.0, frame_rate_hz=200.0)
    assert (rig.frame_rate_hz, rig.exposure_us) == (200.0, 1000.0)
    cam.start()
    frames_200 = read_n(cam, 3)
    assert starts_50 == [0, 20_000, 40_000]
    assert [f.exposure_start_us for f in frames_200] == [0, 5_000, 10_000]
    assert [f.exposure_end_us - f.exposure_start_us for f in frames_200] == [1000] * 3
    assert rig.frames_starting(0.0, 15_000.0).starts_us.tolist() == [0.0, 5_000.0, 10_000.0]


def test_read_returns_none_after_stop_and_raises_after_close():
    cam = SimFrameCamera(small_rig())
    assert cam.read(0.0) is None  # never started
    cam.start()
    assert cam.read(1.0) is not None
    cam.stop()
    assert cam.read(1.0) is None
    cam.close()
    cam.close()  # idempotent, never raises
    with pytest.raises(CameraError):
        cam.read(0.0)


def test_realtime_read_times_out_with_none_and_keeps_the_frame():
    rig = small_rig()
    rig.frame_rate_hz, rig.exposure_us = 0.5, 1000.0  # frame 1 ends 2 s after start()
    cam = SimFrameCamera(rig, realtime=True)
    cam.start()
    assert cam.read(0.5).index == 0  # ends 1 ms after start
    assert cam.read(0.0) is None
    cam.stop()
    cam.start()
    assert cam.read(0.5).index == 0  # a restart begins again at frame 0
