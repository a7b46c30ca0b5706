"""The simulated rig's optional moving object: both cameras see it where it is, defocused at its own depth."""

import numpy as np
import pytest

from app.config import ConfigError, load_config
from drivers.events.dtypes import EVENT_CD, concat_events
from drivers.sim.event_camera import SimEventCamera
from drivers.sim.exposure import expose
from drivers.sim.frame_camera import SimFrameCamera
from drivers.sim.moving import MovingObject
from drivers.sim.optics import DefocusRenderer, EventGeometry, SweepOptics
from drivers.sim.rig import SimRig
from drivers.sim.scene import make_scene
from drivers.sim.trajectory import ConstantTrajectory

RGB, EV = (160, 120), (128, 96)


def rig(moving: MovingObject | None, power: float = 1.0) -> SimRig:
    scene = make_scene(*RGB, depths=(0.5, 1.0), seed=2)
    renderer = DefocusRenderer(scene, SweepOptics(blur_px_per_dpt=8.0), EventGeometry.beam_splitter(RGB, EV))
    return SimRig(renderer, ConstantTrajectory(power), frame_rate_hz=50.0, exposure_us=2000.0, seed=2,
                  moving=moving)


def disc(**kw) -> MovingObject:
    return MovingObject(**{"depth_dpt": 2.0, "radius_px": 10.0, "start_xy": (30.0, 40.0),
                           "velocity_px_s": (400.0, 100.0), "frame_size": RGB, **kw})


def events(r: SimRig, until_us: int) -> np.ndarray:
    cam = SimEventCamera(r, chunk_us=10_000)
    cam.start()
    parts, t_end = [], 0
    while t_end < until_us:
        chunk = cam.read(1.0)
        parts.append(chunk.cd)
        t_end = chunk.t_end_us
    return concat_events(parts, EVENT_CD)


def test_bounces_inside_the_image():
    m = disc()
    xy = np.array([m.centre(t) for t in np.linspace(0, 5e6, 2001)])
    assert xy[:, 0].min() >= 10 and xy[:, 0].max() <= RGB[0] - 11 and xy[:, 1].max() <= RGB[1] - 11
    assert xy[:, 0].max() - xy[:, 0].min() > 100  # it travels and comes back
    assert m.centre(0.0) == (30.0, 40.0) and m.centre(25_000.0) == pytest.approx((40.0, 42.5))


def test_with_the_lens_held_only_the_moving_object_fires_events_and_they_follow_it():
    static = events(rig(None), 100_000)
    moving_rig = rig(disc())
    cd = events(moving_rig, 100_000)
    assert len(cd) > 5 * max(len(static), 1)  # a held lens on a static scene: background noise only
    geometry = moving_rig.renderer.geometry
    for t0 in range(10_000, 100_000, 10_000):  # the disc crosses 30 event px (mirrored) in these 100 ms
        sel = cd[(cd["t"] >= t0) & (cd["t"] < t0 + 5_000)]
        centre = geometry.map_points([moving_rig.moving.centre(t0 + 2_500)])[0]
        seen = np.array([np.median(sel["x"]), np.median(sel["y"])])
        assert np.linalg.norm(seen - centre) < 4.0  # event px; the disc is 16 event px across


def test_exposures_show_the_object_at_mid_exposure_and_nothing_else_changes():
    moving, r = disc(), rig(None)
    for start in (10_000.0, 60_000.0):
        end = start + 2000.0
        a = expose(r.renderer, r.lens_path, start, end, moving=moving)
        b = expose(r.renderer, r.lens_path, start, end)
        diff = np.abs(a - b).sum(axis=2)
        cx, cy = moving.centre((start + end) / 2)
        yy, xx = np.mgrid[:RGB[1], :RGB[0]]
        far = np.hypot(xx - cx, yy - cy) > 10 + 4 + 2  # radius + blur radius (1 dpt · 8 px/dpt / 2) + motion
        assert diff[far].max() < 1e-6 and diff.max() > 0.05  # only the object's footprint differs
        assert np.hypot((diff * xx).sum() / diff.sum() - cx, (diff * yy).sum() / diff.sum() - cy) < 2.0
    frame = SimFrameCamera(rig(moving)).frame_at(2)
    assert frame.image.shape == (RGB[1], RGB[0], 3)  # the frame camera renders through the same path


def test_defocus_follows_the_objects_own_depth():
    sharp, blurred = disc(radius_px=4.0), disc(radius_px=4.0)
    _, a_sharp = sharp.layers(0.0, 2.0, SweepOptics(blur_px_per_dpt=8.0))   # lens at the object's depth
    _, a_blur = blurred.layers(0.0, 0.5, SweepOptics(blur_px_per_dpt=8.0))       # 1.5 dpt away: 12 px across
    assert a_sharp.max() == pytest.approx(1.0, abs=1e-3) and a_blur.max() < 0.95
    assert a_sharp.sum() == pytest.approx(a_blur.sum(), rel=0.02)  # blur spreads coverage, keeps its total


def test_config_rejects_an_object_behind_the_scene(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sim]\ndepths_dpt = [0.5, 1.5]\n[sim.moving_object]\ndepth_dpt = 1.0\n")
    with pytest.raises(ConfigError, match=r"moving_object\.depth_dpt"):
        load_config(cfg)
    cfg.write_text("[sim]\ndepths_dpt = [0.5, 1.5]\n[sim.moving_object]\ndepth_dpt = 2.0\n")
    assert load_config(cfg).sim.moving_object.depth_dpt == 2.0


def test_the_all_in_focus_image_of_a_moment_shows_the_object_where_it_was(tmp_path):
    """``all_in_focus_at`` composites the object, in focus, at its position at that moment over the static truth;
    everywhere else the static image stands code for code."""
    import cv2

    from capture.recording.ground_truth import all_in_focus_at, write_ground_truth
    from drivers.config import MovingObjectConfig, SimConfig

    cfg = SimConfig(rgb_size=(96, 72), event_size=(96, 72), depths_dpt=(0.5, 1.0),
                    moving_object=MovingObjectConfig(depth_dpt=2.0, radius_px=8.0, start_xy=(20.0, 30.0),
                                                     velocity_px_s=(400.0, 0.0)))
    sim = SimRig.from_config(cfg)
    folder = write_ground_truth(tmp_path, sim, 0.0, 100_000.0)
    static = cv2.imread(str(folder / "all_in_focus.png"))[..., ::-1]
    early, late = all_in_focus_at(folder, 0.0), all_in_focus_at(folder, 50_000.0)
    changed_early = np.any(early != static, axis=-1)
    changed_late = np.any(late != static, axis=-1)
    ys, xs = np.nonzero(changed_early)
    assert abs(xs.mean() - 20.0) < 1.5 and abs(ys.mean() - 30.0) < 1.5        # the disc at the start ...
    ys, xs = np.nonzero(changed_late)
    assert abs(xs.mean() - 40.0) < 1.5                                         # ... and 20 px on after 50 ms
    assert changed_early.sum() < np.pi * 9.5 ** 2 and not np.any(changed_early & changed_late)
