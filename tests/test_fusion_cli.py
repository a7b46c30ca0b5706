"""``focalrig predict / predict-datasets / predict-pairs / eval`` end to end on tiny stacks, and the outputs."""

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from app.cli import app
from capture.focal_stack import FocalStack
from capture.stack_folders import write_eventstackmff, write_stackmff
from tests.fusion_stacks import interior, region_stack

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _folder(tmp_path, dtype=np.uint8):
    stack, truth, sharp = region_stack([0, 2, 1], 4, size=(40, 60), dtype=dtype)
    folder = tmp_path / "stack"
    folder.mkdir()
    for k in range(stack.n_planes):
        cv2.imwrite(str(folder / f"{k + 1}.png"), stack.frames[k][..., ::-1])
    ev = tmp_path / "events"
    ev.mkdir()
    for k in range(stack.n_planes):
        png = np.full((40, 60, 3), 255, np.uint8)
        png[:, :5] = (0, 0, 255)  # red in BGR: positive events
        cv2.imwrite(str(ev / f"{k + 1}.png"), png)
    return folder, ev, truth, sharp


def test_predict_writes_every_output(tmp_path):
    folder, ev, truth, sharp = _folder(tmp_path)
    out = tmp_path / "out"
    r = run("predict", "--input_dir", folder, "--event_dir", ev, "--output_dir", out)
    assert r.exit_code == 0, r.output
    fused = cv2.imread(str(out / "fused.png"))[..., ::-1]
    core = interior(truth, 6)
    assert np.mean(fused[core] == sharp[core]) > 0.99
    index = cv2.imread(str(out / "focal_index.png"), cv2.IMREAD_UNCHANGED)
    assert index.dtype == np.uint16
    assert np.mean(np.rint(index[core] / (65535 / 3)) == truth[core]) > 0.99   # absolute planes of the sweep
    np.testing.assert_allclose(np.load(out / "focal_index.npy")[core], truth[core], atol=0.5)
    assert cv2.imread(str(out / "depth.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    colour = cv2.imread(str(out / "focal_index_color.png"))
    assert colour.shape[0] == 40 and colour.shape[1] > 60                        # colour bar appended
    assert cv2.imread(str(out / "confidence.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    info = json.loads((out / "result.json").read_text())
    assert info["method"] == "classical" and info["input"]["events"] is True and info["input"]["planes"] == 4
    assert info["timings_s"]["total"] > 0


def test_predict_16_bit_stays_16_bit(tmp_path):
    folder, _, truth, sharp = _folder(tmp_path, np.uint16)
    out = tmp_path / "out"
    assert run("predict", "--input-dir", folder, "--output-dir", out).exit_code == 0
    fused = cv2.imread(str(out / "fused.png"), cv2.IMREAD_UNCHANGED)
    assert fused.dtype == np.uint16
    core = interior(truth, 6)
    assert np.mean(fused[..., ::-1][core] == sharp[core]) > 0.99


def test_predict_bad_input_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("predict", "--input_dir", tmp_path / "empty", "--output_dir", tmp_path / "out")
    assert r.exit_code == 2
    assert "no images" in r.output and "Traceback" not in r.output
    folder, _, _, _ = _folder(tmp_path)
    r = run("predict", "--input_dir", folder, "--output_dir", tmp_path / "o", "--device", "cuda")
    assert r.exit_code == 2 and "CPU only" in r.output


def test_predict_datasets_several_datasets_seed_layout(tmp_path):
    stack, _, _ = region_stack([0, 2], 3, size=(32, 40))
    events = np.zeros((3, 2, 32, 40), np.uint16)
    write_eventstackmff(FocalStack(stack.frames, stack.focal_powers_dpt, events, name="a"), tmp_path / "A")
    write_stackmff(FocalStack(stack.frames, stack.focal_powers_dpt, name="b"), tmp_path / "B")
    out = tmp_path / "out"
    r = run("predict-datasets", "--test_root", tmp_path, "--test_datasets", "A", "B", "--output_dir", out)
    assert r.exit_code == 0, r.output
    assert (out / "A/color_fused_images/a.png").is_file() and (out / "B/depth_indices/b.npy").is_file()
    assert (out / "B/results/b.json").is_file()
    r = run("predict-datasets", "--test_root", tmp_path, "--test_datasets", "nope", "--output_dir", out)
    assert r.exit_code == 2 and "neither image_stack" in r.output


def test_predict_pairs(tmp_path):
    stack, _, _ = region_stack([0, 1], 2, size=(32, 40))
    for side, k in (("A", 0), ("B", 1)):
        (tmp_path / "P" / side).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "P" / side / "1.png"), stack.frames[k])
    r = run("predict-pairs", "--test_root", tmp_path, "--test_datasets", "P", "--output_dir", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out/P/color_fused_images/1.png").is_file()


def test_eval_scores_against_ground_truth(tmp_path):
    stack, _, sharp = region_stack([0, 3, 1], 4, size=(48, 64))
    write_stackmff(FocalStack(stack.frames, stack.focal_powers_dpt, ground_truth={"all_in_focus": sharp},
                              name="s"), tmp_path / "D")
    r = run("eval", "--test_root", tmp_path, "--test_datasets", "D", "--peers", "none", "--output_dir", tmp_path)
    assert r.exit_code == 0, r.output
    assert "PSNR" in r.output and "classical" in r.output
    (row,) = json.loads((tmp_path / "eval.json").read_text())["summary"]
    assert row["psnr"] > 25 and 0 < row["qabf"] < 1


def test_predict_reads_a_focalrig_npz(tmp_path):
    stack, truth, sharp = region_stack([2, 0], 3, size=(32, 48))
    path = stack.save_npz(tmp_path / "s.npz")
    assert run("predict", "--input_dir", path, "--output_dir", tmp_path / "o").exit_code == 0
    fused = cv2.imread(str(tmp_path / "o/fused.png"))[..., ::-1]
    core = interior(truth, 6)
    assert np.mean(fused[core] == sharp[core]) > 0.99


def _noisy_flat_stack(tmp_path, gain_of_plane_2: float):
    """Six planes of one textured image, every plane as sharp, each with its own sensor noise; plane 2 darker."""
    rng = np.random.default_rng(3)
    clean = cv2.GaussianBlur(rng.uniform(40, 210, (48, 64, 3)).astype(np.float32), (0, 0), 2.0)
    folder = tmp_path / "flat"
    folder.mkdir()
    for k in range(6):
        plane = clean * (gain_of_plane_2 if k == 2 else 1.0) + rng.normal(0, 4.0, clean.shape)
        cv2.imwrite(str(folder / f"{k + 1}.png"), np.clip(np.rint(plane), 0, 255).astype(np.uint8)[..., ::-1])
    return folder, clean


def test_predict_blend_and_exposure_options(tmp_path):
    folder, clean = _noisy_flat_stack(tmp_path, 0.94)
    planes = np.stack([cv2.imread(str(folder / f"{k + 1}.png"))[..., ::-1] for k in range(6)])
    outs = {}
    for name, args in (("soft", []), ("gather", ["--blend", "gather", "--no-exposure"])):
        out = tmp_path / name
        r = run("predict", "--input_dir", folder, "--output_dir", out, *args)
        assert r.exit_code == 0, r.output
        outs[name] = (cv2.imread(str(out / "fused.png"))[..., ::-1], json.loads((out / "result.json").read_text()))
    gathered, info = outs["gather"]
    assert info["settings"]["output"] == "gather" and info["settings"]["exposure"] is False
    assert np.all((planes == gathered[None]).all(axis=-1).any(axis=0))  # every pixel one plane's own
    info = outs["soft"][1]
    assert info["settings"]["output"] == "soft" and info["settings"]["exposure"] is True
    assert abs(info["settings"]["exposure_gains"][2] - 0.94) < 0.01   # the darker plane found and evened out
    inner = (slice(8, -8), slice(8, -8))
    rms = {n: float(np.sqrt(np.mean((o[0][inner].astype(np.float32) - clean[inner]) ** 2))) for n, o in outs.items()}
    assert rms["soft"] < 0.6 * rms["gather"]  # six equally sharp planes: their mean has a fraction of the noise
    r = run("predict", "--input_dir", folder, "--output_dir", tmp_path / "x", "--blend", "median")
    assert r.exit_code == 2 and "--blend must be one of soft, gather" in r.output and "Traceback" not in r.output
