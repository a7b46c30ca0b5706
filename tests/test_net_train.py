"""Training pipeline: losses fall on a fixed batch, checkpoints resume exactly, configs fail clearly."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion.net.data import DataRecipe, SyntheticPool, collate, sample_arrays, validation_specs
from fusion.net.losses import fusion_loss, soft_targets
from fusion.net.model import FocalIndexNet
from fusion.net.train import Reporter, TrainConfig, Trainer, lr_factor
from fusion.synthetic import synthetic_stack

TINY = {"train": {"steps": 4, "batch_size": 2, "warmup_steps": 1, "pool_per_bucket": 1, "val_every": 2,
                  "ckpt_every": 2, "val_count": 1, "threads": 1},
        "data": {"size": 24, "planes": [3], "event_substeps": 1}}


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    samples = [sample_arrays(synthetic_stack(s, size=(24, 24), n_planes=3, event_substeps=1)) for s in (1, 2)]
    batch = collate(samples, with_events=True)
    model = FocalIndexNet()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, _ = fusion_loss(model(batch["luma"], batch["events"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_soft_targets_peak_at_the_label():
    t = soft_targets(torch.tensor([[[2.0, 0.0]]]), 5)
    assert torch.allclose(t.sum(1), torch.ones(1, 1, 2))
    assert int(t[0, :, 0, 0].argmax()) == 2 and int(t[0, :, 0, 1].argmax()) == 0


def test_checkpoint_resume_restores_the_run_exactly(tmp_path):
    cfg = TrainConfig.model_validate(TINY)
    first = Trainer(cfg, tmp_path, device="cpu", command="test")
    first.prepare()
    for _ in range(2):
        first.train_step()
    first.save_checkpoint()
    resumed = Trainer(cfg, tmp_path, device="cpu", resume=True)
    assert resumed.step == 2
    for (k, a), b in zip(first.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert resumed.optimizer.state_dict()["state"][0]["exp_avg"].equal(first.optimizer.state_dict()["state"][0]
                                                                       ["exp_avg"])
    resumed.prepare()
    assert resumed.pool.state() == first.pool.state()
    # the next step is identical whether the run went on or was resumed
    a, b = first.train_step(), resumed.train_step()
    assert a == b
    for p, q in zip(first.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_run_writes_weights_report_and_refuses_to_overwrite(tmp_path):
    cfg = TrainConfig.model_validate(TINY)
    final = Trainer(cfg, tmp_path, device="cpu", command="focalrig train --config tiny.toml").run()
    assert math.isfinite(final["psnr"]) and final["step"] == 4
    for name in ("checkpoint.pt", "best.pt", "report.png", "log.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    weights = torch.load(tmp_path / "best.pt", weights_only=True)
    assert weights["recipe"]["command"] == "focalrig train --config tiny.toml"
    assert weights["recipe"]["seed"] == 0 and weights["recipe"]["data"]["size"] == 24
    with pytest.raises(ValueError, match="--resume"):
        Trainer(cfg, tmp_path, device="cpu")


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstepz = 3\n")
    with pytest.raises(ValueError, match=r"bad\.toml: train\.stepz"):
        TrainConfig.load(bad)
    bad.write_text("[data]\nevent_dropout = 2\n")
    with pytest.raises(ValueError, match=r"data\.event_dropout"):
        TrainConfig.load(bad)


def test_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig.model_validate({"train": {"steps": 100, "warmup_steps": 10, "lr": 1e-3, "min_lr": 1e-5}}).train
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.01)


def test_pool_batches_are_a_function_of_the_step_and_validation_seeds_are_held_out():
    recipe = DataRecipe(size=16, planes=(3,), event_substeps=1)
    pools = []
    for _ in range(2):
        pool = SyntheticPool(recipe, per_bucket=2, seed=7)
        pool.fill()
        pools.append(pool)
    a, b = pools[0].batch(5, 2), pools[1].batch(5, 2)
    assert torch.equal(a["luma"], b["luma"]) and torch.equal(a["label"], b["label"])
    train_seeds = {s.seed for slots in pools[0].specs.values() for s in slots}
    assert not train_seeds & {s.seed for s in validation_specs(8)}


def test_validation_scores_real_stack_folders_and_skips_missing_ones(tmp_path):
    import cv2

    folder = tmp_path / "stack"
    folder.mkdir()
    stack = synthetic_stack(5, size=(48, 40), n_planes=3, with_events=False)
    for k, frame in enumerate(stack.frames, 1):
        cv2.imwrite(str(folder / f"{k}.png"), frame[..., ::-1])
    cfg = TrainConfig.model_validate({**TINY, "train": {**TINY["train"], "real_val_dirs": [str(folder),
                                                                                         str(tmp_path / "gone")]}})
    notes = []

    class Notes(Reporter):
        def status(self, message: str) -> None:
            notes.append(message)

    trainer = Trainer(cfg, tmp_path / "run", device="cpu", reporter=Notes())
    trainer.prepare()
    val = trainer.validate()
    assert 0.0 < val["real_qabf"] <= 1.0 and 0.0 < val["real_qabf_classical"] <= 1.0
    assert any("gone" in n and "skipped" in n for n in notes)


def test_the_recipe_draws_frame_true_low_light_and_weak_texture_stacks():
    """With every share at 1, each drawn stack is a sine sweep's frames (non-uniform powers, both halves or the
    rising one), dimly lit and weakly textured; specs survive a checkpoint's list form, old 3-field states too."""
    from fusion.net.data import SampleSpec

    recipe = DataRecipe(size=24, planes=(6,), event_substeps=1, sweep_sampling=1.0, low_light=1.0, weak_texture=1.0)
    rng = np.random.default_rng(0)
    specs = [recipe.draw_spec(rng) for _ in range(12)]
    assert {s.sampling for s in specs} == {"period", "half"}
    assert all(150 <= s.light_e <= 3000 and 0.1 <= s.contrast <= 0.4 for s in specs)
    assert all(SampleSpec.from_list(s.to_list()) == s for s in specs)
    assert SampleSpec.from_list([5, 8, [0.1, 0.2]]) == SampleSpec(5, 8, (0.1, 0.2))
    stack = synthetic_stack(specs[0].seed, size=(24, 24), n_planes=6, plane_fractions=specs[0].plane_fractions(),
                            light_e=specs[0].light_e, texture_contrast=specs[0].contrast, event_substeps=1)
    steps = np.diff(stack.focal_powers_dpt)
    assert stack.n_planes == 6 and steps.min() > 0 and steps.max() > 1.5 * steps.min()
    sample = recipe.render(specs[0])
    assert sample["luma"].shape == (6, 24, 24) and np.isfinite(sample["label"]).all()
    # The original recipe draws what it always drew: uniform, bright, fully textured.
    first = DataRecipe(size=24, planes=(6,)).draw_spec(np.random.default_rng(3))
    assert first.sampling == "uniform" and first.light_e is None and first.contrast == 1.0


def test_sweep_fractions_interleave_the_two_halves():
    from fusion.synthetic import sweep_fractions

    period = sweep_fractions(15, 0.3)
    half = sweep_fractions(15, 0.3, "half")
    assert period.size == 15 and half.size == 15
    assert np.all(np.diff(period) > 0) and 0 <= period.min() and period.max() <= 1
    assert sweep_fractions(15, 0.0).size < 15  # at phase 0 the two halves sample the same powers


def test_training_can_start_from_existing_weights(tmp_path):
    first = Trainer(TrainConfig.model_validate(TINY), tmp_path / "a")
    first.export_weights(tmp_path / "w.pt")
    cfg = TrainConfig.model_validate({**TINY, "train": {**TINY["train"], "init_weights": str(tmp_path / "w.pt")}})
    second = Trainer(cfg, tmp_path / "b")
    for (name, p), q in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    # The fine-tune's weights name the weights it started from and carry their recipe, also after a resume.
    second.save_checkpoint()
    resumed = Trainer(cfg, tmp_path / "b", resume=True)
    for trainer in (second, resumed):
        origin = torch.load(trainer.export_weights(tmp_path / "ft.pt"), weights_only=True)["recipe"]["initialised_from"]
        assert origin["path"] == str(tmp_path / "w.pt")
        assert origin["recipe"]["config"] == first.cfg.model_dump(mode="json")
    other = TrainConfig.model_validate({**TINY, "train": {**TINY["train"], "init_weights": str(tmp_path / "w.pt")},
                                        "model": {"d_model": 8}})
    with pytest.raises(ValueError, match="another shape"):
        Trainer(other, tmp_path / "c")


TRAIN_CONFIGS = Path(__file__).parents[1] / "configs" / "train"


@pytest.mark.parametrize("name", sorted(p.name for p in TRAIN_CONFIGS.glob("*.toml")))
def test_shipped_training_configs_validate(name):
    cfg = TrainConfig.load(TRAIN_CONFIGS / name)
    assert cfg.train.steps > 0 and cfg.data.planes


def test_the_recipe_draws_stacks_with_refocused_planes_of_the_planes_asked():
    """A refocused spec keeps its plane count (the batch buckets by it): frames plus refocused planes."""
    from fusion.net.data import SampleSpec

    recipe = DataRecipe(size=24, planes=(6,), event_substeps=1, refocused=1.0)
    specs = [recipe.draw_spec(np.random.default_rng(i)) for i in range(6)]
    assert all(s.refocused in (1, 2) and s.frames == 6 - s.refocused for s in specs)
    assert all(SampleSpec.from_list(s.to_list()) == s for s in specs)
    assert SampleSpec.from_list([5, 8, [0.1, 0.2], "uniform", 0.0, None, 1.0]).refocused == 0  # 7-field states
    sample = recipe.render(specs[0])
    assert sample["luma"].shape == (6, 24, 24) and sample["events"].shape[0] == 6
