"""The ``net`` fusion method end to end through fusion.engine.fuse: weights, events, tiling, devices."""

import numpy as np
import pytest
import torch

from fusion.engine import FusionError, fuse
from fusion.guided import filter_volume
from fusion.net.data import stack_tensors
from fusion.net.method import SMOOTH_EPS, SMOOTH_RADIUS, load_weights, shipped_weights
from fusion.net.train import TrainConfig, Trainer
from fusion.synthetic import synthetic_stack


@pytest.fixture(scope="module")
def stack():
    return synthetic_stack(21, size=(45, 37), n_planes=5, event_substeps=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Untrained weights in the shipped format (the tests do not depend on what the shipped ones learned)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("w")
    return Trainer(TrainConfig(), folder, device="cpu").export_weights(folder / "w.pt")


def test_fuse_returns_a_consistent_result(stack, weights):
    r = fuse(stack, method="net", device="cpu", weights=weights)
    h, w = stack.shape
    assert r.method == "net" and r.device == "cpu"
    assert r.all_in_focus.shape == (h, w, 3) and r.all_in_focus.dtype == stack.frames.dtype
    assert r.focal_index.shape == r.depth_dpt.shape == r.confidence.shape == (h, w)
    assert r.focal_index.dtype == np.float32 and 0 <= r.focal_index.min() and r.focal_index.max() <= 4
    assert r.settings["output"] == "soft"
    # gathered without exposure correction, every output pixel is copied from the plane at the rounded index
    g = fuse(stack, method="net", device="cpu", weights=weights, output="gather", exposure=False)
    k = np.rint(g.focal_index).astype(int)
    assert np.array_equal(g.all_in_focus, np.take_along_axis(stack.frames, k[None, ..., None], 0)[0])
    assert np.allclose(r.depth_dpt, np.interp(r.focal_index, np.arange(5), stack.focal_powers_dpt), atol=1e-5)
    assert r.settings["events"] is True and "network" in r.timings_s and "total" in r.timings_s


def test_event_ablation_and_gray_stacks(stack, weights):
    with_events = fuse(stack, method="net", device="cpu", weights=weights)
    without = fuse(stack, method="net", device="cpu", weights=weights, use_events=False)
    assert without.settings["events"] is False
    assert not np.allclose(with_events.focal_index, without.focal_index)
    gray = type(stack)(stack.frames[..., 1], stack.focal_powers_dpt)
    r = fuse(gray, method="net", device="cpu", weights=weights)
    assert r.all_in_focus.shape == stack.shape and r.settings["events"] is False


def test_index_is_the_peak_of_the_guided_filtered_probability_volume(stack, weights):
    """The default index reads the volume after the shared guided filter; radius 0 reads the raw peak."""
    model, _ = load_weights(weights)
    t = stack_tensors(stack)
    with torch.no_grad():
        out = model(torch.from_numpy(t.luma)[None], torch.from_numpy(t.events)[None])
    volume = filter_volume(out["prob"][0].numpy().copy(), t.luma.mean(0), SMOOTH_RADIUS, SMOOTH_EPS, subsample=2)
    smoothed = fuse(stack, method="net", device="cpu", weights=weights, exposure=False)
    raw = fuse(stack, method="net", device="cpu", weights=weights, smooth_radius=0, exposure=False)
    assert smoothed.settings["smooth_radius"] == SMOOTH_RADIUS > 0 and raw.settings["smooth_radius"] == 0
    assert np.array_equal(np.rint(smoothed.focal_index), volume.argmax(0))
    # (the engine runs a channels-last copy: float rounding may flip a near-tie of these untrained weights)
    assert np.mean(np.abs(raw.focal_index - out["index"][0].numpy()) < 1e-4) > 0.98
    assert not np.array_equal(np.rint(raw.focal_index), np.rint(smoothed.focal_index))


def test_tiles_agree_with_the_whole_frame(weights):
    s = synthetic_stack(22, size=(150, 70), n_planes=4, with_events=False)
    whole = fuse(s, method="net", device="cpu", weights=weights)
    tiled = fuse(s, method="net", device="cpu", weights=weights, tile=64, overlap=16)
    assert tiled.settings["tiles"] > 1
    assert np.mean(np.abs(whole.focal_index - tiled.focal_index)) < 0.05


def test_bad_settings_and_files_fail_clearly(stack, tmp_path):
    with pytest.raises(FusionError, match="not found"):
        fuse(stack, method="net", device="cpu", weights=tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(FusionError, match="unreadable"):
        fuse(stack, method="net", device="cpu", weights=tmp_path / "junk.pt")
    with pytest.raises(FusionError, match="precision"):
        fuse(stack, method="net", device="cpu", precision="bf16")


@pytest.mark.skipif(not shipped_weights().is_file(), reason="no weights shipped in fusion/net/weights yet")
def test_shipped_weights_load_with_their_recipe():
    model, recipe = load_weights()
    assert model(torch.rand(1, 3, 16, 16))["index"].shape == (1, 16, 16)
    assert recipe["command"].startswith("focalrig train") and recipe["seed"] is not None
    assert "psnr" in recipe["validation"]
    assert shipped_weights().stat().st_size < 5_000_000


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_matches_cpu(stack, weights):
    cpu = fuse(stack, method="net", device="cpu", weights=weights)
    gpu = fuse(stack, method="net", device="cuda", weights=weights)
    assert gpu.device == "cuda" and gpu.settings["precision"] == "bf16"
    assert np.mean(np.abs(cpu.focal_index - gpu.focal_index)) < 0.1


def test_bench_quality_reports_methods_beside_the_oracles(weights):
    """The held-out table scores soft and gathered classical and the net beside oracles that read the same frames
    with the truth in hand: untrained weights fall well below them."""
    from app.bench.net import METHOD_ROWS, NEAR_BEST, TRUE_PLANE, held_out_quality

    q = held_out_quality(2, 48, weights)
    assert {f"{name} psnr" for name in (*METHOD_ROWS, TRUE_PLANE, NEAR_BEST)} <= set(q)
    assert q[f"{TRUE_PLANE} psnr"] > q["net psnr"] + 1.0
    assert q[f"{TRUE_PLANE} psnr"] > q["classical, gather psnr"]
    assert q[f"{NEAR_BEST} psnr"] > q[f"{TRUE_PLANE} psnr"]
