"""Smoke test of the benchmarks (bench/): their correctness parts at tiny sizes. No timing is asserted.

Benchmarks measure; tests check. Each test runs a benchmark's core function on tiny sizes and checks
what must hold whatever the machine's speed (equal loss forms, view shapes and ranges, pass counts,
the persistent delta, FLOP scaling, the sweep benchmark's trials being the sweep's trials).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TINY_MODEL = dict(width=4, feature_dim=16, hidden_dim=16, z_dim=8)


def test_cost_free_pass_and_view_counts() -> None:
    from bench.cost_free import CLEAN, FREE, PGD, PGD_REF, build_trials, count_passes

    m, k, steps = 2, 2, 2
    trials = build_trials(images=8, batch=4, crops=2, replays=m, pgd_steps=k, **TINY_MODEL)
    passes = count_passes(trials)  # one unit = E = m epochs of clean/PGD = 1 epoch of CF-AMC-SSL
    assert passes[CLEAN] == (m * steps, m * steps)  # 1 forward and 1 view batch per update
    assert passes[FREE] == (m * steps, steps)  # m forwards per minibatch, views once per minibatch
    assert passes[PGD] == passes[PGD_REF] == ((k + 1) * m * steps, m * steps)


def test_views_pil_baseline_and_batched_shapes() -> None:
    from bench.views import pil_pipeline, pil_views, test_images, to_pil
    from trainable.views import make_views, recipe_for

    images = test_images(2)
    out = pil_views(to_pil(images[:1]), 16, pil_pipeline())
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    batched = make_views(images.float().div(255), 16, recipe_for("emp", "crop"), torch.Generator().manual_seed(0))
    assert batched.shape == (32, 3, 32, 32) and batched.min() >= 0 and batched.max() <= 1


def test_loss_forms_agree() -> None:
    from bench.loss import compare

    diff = compare(batch=8, crops=4, dim=64)
    assert diff["value_rel_diff"] <= 1e-4
    assert diff["grad_max_rel_diff"] <= 1e-4


def test_sweep_benchmark_runs_the_sweeps_trials(tmp_path: Path) -> None:
    from bench.sweep import spec_text, trial_configs
    from orchestrator.spec import load_spec
    from orchestrator.sweep import trial_settings
    from trainable.tune_adapter import build_config

    extra = {"train_images": 40, "eval_images": 20}
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text(3, 1, extra))
    spec = load_spec(path, None, {})
    settings = trial_settings(spec)
    ours = trial_configs(3, 1, extra)
    for seed, config in enumerate(ours):
        assert build_config({"seed": seed}, settings).to_dict() == config.to_dict()


def test_profile_demo_times_every_part_and_restores() -> None:
    import trainable.methods as methods
    from bench.profile_demo import profile_trial

    original = methods.make_views
    overrides = dict(method="cf-amc-ssl", threads=1, train_images=16, batch_size=8, num_crops=2, replay_steps=2,
                     eval_images=8, probe_epochs=1, eval_pgd_steps=1, **TINY_MODEL)
    times, calls, wall, metrics = profile_trial(overrides)
    assert methods.make_views is original  # the timers are removed afterwards
    assert calls["train: make_views"] == 2 and calls["train: encoder forward + EMP loss"] == 4
    assert calls["train: backward"] == 4 and calls["train: free-AT delta ascent"] == 4
    assert calls["eval: PGD robust accuracy (all epsilons)"] == 2 and calls["checkpoint write"] == 1
    assert sum(v for k, v in times.items() if k.startswith("train:")) <= times["train total"] + 1e-6
    assert "clean_acc" in metrics and wall > 0


def test_memory_only_the_delta_persists_between_steps() -> None:
    from bench.memory import build, per_crop_tensors

    method, images = build("demo", batch_size=6, num_crops=4, **TINY_MODEL)
    method.step(images)
    method.step(images)
    assert per_crop_tensors(method) == [("TrainingMethod.perturbation.delta", (24, 3, 32, 32))]


def test_flops_scale_with_the_batch_and_backward_is_twice_forward() -> None:
    from bench.flops import update_flops
    from trainable.config import preset

    config = preset("paper", num_crops=2, **TINY_MODEL)
    two, four = update_flops(config, 2), update_flops(config, 4)
    assert four["update"] == pytest.approx(2 * two["update"], rel=0.02)
    assert 2.5 <= two["update"] / two["forward"] <= 3.5


def test_gpu_check_parts_run_on_cpu_without_ray_optuna_or_mlflow() -> None:
    import subprocess

    from bench.gpu import sharing, sign_agreement, update_seconds

    agree = sign_agreement(quick=True, device="cpu")
    assert 0.0 <= agree <= 1.0
    seconds, peak = update_seconds("cf-amc-ssl", quick=True, device="cpu", repeats=1)
    assert seconds > 0 and peak == 0
    assert sharing(quick=True, device="cpu", counts=(1,), seconds=0.2)[1] > 0
    code = ("import sys, bench.gpu; bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna', 'mlflow')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


@pytest.mark.slow
def test_driver_scale_quick_runs_every_trial_through_the_sweep() -> None:
    from bench.driver_scale import run

    text, data = run(quick=True)
    assert data["exit_code"] == 0
    trials = data["trials"]
    assert len(trials) == 12 and trials["trial_id"].is_unique and set(trials["status"]) == {"finished"}
    assert [s["done"] for s in data["samples"]][:2] == [1, 10] and data["gaps"]
    assert "per-trial driver cost" in text
