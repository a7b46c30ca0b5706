"""The simulated cameras together: frames and the event camera's strobe edges describe the same exposures."""

import numpy as np
import pytest

from drivers.events.dtypes import EVENT_EXT_TRIGGER, concat_events
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.rig import SimRig


def test_frames_pair_with_strobe_edges_on_the_event_clock():
    rig = SimRig.default((64, 48), seed=4)
    frames_cam = SimFrameCamera(rig, drop_every=4)
    frames_cam.configure(exposure_us=3000, frame_rate_hz=100)  # shared rig: the event camera's strobes follow
    events_cam = SimEventCamera(rig, chunk_us=10_000)
    events_cam.enable_trigger_in(rig.strobe_channel)
    events_cam.start()
    chunks = [events_cam.read(1.0) for _ in range(6)]  # 0..60 ms
    triggers = concat_events([c.triggers for c in chunks], EVENT_EXT_TRIGGER)
    strobes = triggers[triggers["id"] == rig.strobe_channel]
    rising, falling = strobes["t"][strobes["p"] == 1], strobes["t"][strobes["p"] == 0]
    frames_cam.start()
    frames = [frames_cam.read(1.0) for _ in range(4)]
    assert [f.index for f in frames] == [0, 1, 2, 4]  # frame 3 dropped, its strobe pulse still present
    for f in frames:
        assert f.clock == "event"
        k = int(np.flatnonzero(rising == f.exposure_start_us)[0])  # each frame has its rising edge ...
        assert falling[k] == f.exposure_end_us                      # ... and the falling edge of the same pulse
        mid_us = (f.exposure_start_us + f.exposure_end_us) / 2  # rounded edges: within 1 µs of the true mid
        assert abs(f.focal_power_dpt - float(rig.trajectory.actual_dpt(mid_us))) < 1e-3
    assert rising.shape[0] == 6 and falling.shape[0] == 6  # 100 Hz over 60 ms, dropped frame included


def test_lens_path_switches_segments_at_their_starts_and_clips_sync_edges_to_them():
    from drivers.sim.trajectory import ConstantTrajectory, LensPath, SweepTrajectory

    sweep = SweepTrajectory(10.0, 1.0, 2.0)  # rising sync edges at 0, 100 ms, ...; falling at 50 ms, ...
    path = LensPath(ConstantTrajectory(0.5))
    path.set(120_000.0, sweep)
    path.set(260_000.0, ConstantTrajectory(1.5))
    t = np.array([0.0, 119_999.0, 150_000.0, 200_000.0, 259_999.0, 260_000.0, 1e6])
    expected = [0.5, 0.5, float(sweep.actual_dpt(150_000.0)), float(sweep.actual_dpt(200_000.0)),
                float(sweep.actual_dpt(259_999.0)), 1.5, 1.5]
    np.testing.assert_allclose(path.actual_dpt(t), expected)
    times, pol = path.sync_edges(0.0, 1e6)
    np.testing.assert_allclose(times, [150_000.0, 200_000.0, 250_000.0])  # only while the sweep is in force
    assert pol.tolist() == [0, 1, 0]
    assert path.power_range() == (0.5, sweep.power_range()[1])
    version = path.version
    path.set(200_000.0, ConstantTrajectory(0.8))  # re-commanding in the past replaces what came after
    assert path.version == version + 1 and [s for s, _ in path.segments] == [-np.inf, 120_000.0, 200_000.0]
    assert path.actual_dpt(1e6) == 0.8


def test_config_scene_options_user_image_and_slanted_background(tmp_path):
    import cv2

    from drivers.config import SimConfig

    picture = np.zeros((60, 80, 3), np.uint8)
    picture[:, :40] = (20, 200, 20)   # left half green, right half dark grey (BGR on disk)
    picture[:, 40:] = (40, 40, 40)
    path = tmp_path / "user.png"
    cv2.imwrite(str(path), picture)
    rig = SimRig.from_config(SimConfig(rgb_size=(80, 60), event_size=(80, 60), depths_dpt=(0.5,),
                                       background_image=str(path), slant_dpt=(0.2, 1.8)))
    radiance = rig.renderer.scene.layers[0].radiance
    assert radiance[:, :40, 1].mean() > 5 * radiance[:, 40:, 1].mean()  # the user's picture is the texture
    depth = rig.renderer.scene.depth
    assert depth[:, 0].mean() == pytest.approx(0.2, abs=0.05) and depth[:, -1].mean() == pytest.approx(1.8, abs=0.05)
    with pytest.raises(ValueError, match="cannot read"):
        SimRig.from_config(SimConfig(background_image=str(tmp_path / "missing.png")))


def test_config_light_texture_and_beam_splitter_keys_reach_the_simulator():
    """sim.white_e sets the photo-electrons (so the frame noise, not the brightness), sim.texture_contrast the
    scene's contrast about the same mean, and the splitter keys the event view's rotation, shift and perspective."""
    from drivers.config import SimConfig
    from drivers.sim.optics import EventGeometry

    base = SimConfig(rgb_size=(96, 72), event_size=(96, 72), depths_dpt=(0.5, 1.5), bit_depth=14)
    plain = SimRig.from_config(base)
    weak = SimRig.from_config(base.model_copy(update={"texture_contrast": 0.2}))
    for a, b in zip(plain.renderer.scene.layers, weak.renderer.scene.layers, strict=True):
        assert np.allclose(b.radiance.mean(axis=(0, 1)), a.radiance.mean(axis=(0, 1)), rtol=1e-4)
        assert np.allclose(b.radiance.std(axis=(0, 1)), 0.2 * a.radiance.std(axis=(0, 1)), rtol=1e-3)

    grey = np.full((200, 200, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    bright = plain.noise.apply(grey, rng).astype(np.float64)
    dim = SimRig.from_config(base.model_copy(update={"white_e": 250.0})).noise.apply(grey, rng).astype(np.float64)
    snr = lambda img: img.mean() / img.std()  # noqa: E731 - shot-noise-limited: SNR = sqrt(electrons)
    assert snr(bright) == pytest.approx(np.sqrt(2500), rel=0.1) and snr(dim) == pytest.approx(np.sqrt(125), rel=0.1)
    assert dim.mean() == pytest.approx(bright.mean(), rel=0.01)  # the camera's gain keeps white where it was

    turned = SimRig.from_config(base.model_copy(update={"event_size": (120, 90), "splitter_angle_deg": 3.0,
                                                        "splitter_shift_px": (5.0, -2.0),
                                                        "splitter_perspective": (1e-4, 0.0)}))
    expected = EventGeometry.beam_splitter((96, 72), (120, 90), angle_deg=3.0, shift_px=(5.0, -2.0),
                                           perspective=(1e-4, 0.0))
    assert np.allclose(turned.renderer.geometry.homography, expected.homography)
    assert not np.allclose(turned.renderer.geometry.homography,
                           EventGeometry.beam_splitter((96, 72), (120, 90)).homography)
