"""Training-step invariants (docs/METHOD.md section 7: 4-7, 9, 11)."""

import copy

import pytest
import torch

from trainable.config import preset
from trainable.methods import TrainingMethod, equal_budget_epochs, ssl_loss
from trainable.model import build_encoder
from trainable.optim import build_optimizer, build_scheduler

B = 6


def make_method(**overrides) -> TrainingMethod:
    cfg = preset("tiny", width=4, feature_dim=16, hidden_dim=16, z_dim=8, batch_size=B, **overrides)
    torch.manual_seed(0)
    model = build_encoder(cfg)
    opt = build_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.lars_eta)
    sched = build_scheduler(opt, 100)
    return TrainingMethod(cfg, model, opt, sched, torch.Generator().manual_seed(1))


def batches(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(B, 3, 32, 32, generator=g) for _ in range(n)]


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a, **k):
        self.calls += 1
        return self.fn(*a, **k)


@pytest.mark.parametrize("objective,crops", [("emp", 4), ("simclr", 2)])
def test_free_at_takes_m_optimizer_and_scheduler_steps_per_minibatch(objective, crops):
    method = make_method(method=None, objective=objective, adversary="free", views="crop",
                         num_crops=crops, replay_steps=3)
    method.optimizer.step = Counter(method.optimizer.step)
    method.scheduler.step = Counter(method.scheduler.step)
    for i, x in enumerate(batches(2), start=1):
        method.step(x)
        assert method.optimizer.step.calls == 3 * i
        assert method.scheduler.step.calls == 3 * i


def test_free_delta_stays_in_ball_and_box_after_every_replay_and_is_carried_over():
    method = make_method(method="cf-amc-ssl", num_crops=4, replay_steps=3, epsilon=8 / 255)
    pert = method.perturbation
    seen_at_perturb: list[torch.Tensor] = []
    after_ascent: list[torch.Tensor] = []
    perturb, ascend = pert.perturb, pert.ascend

    def spy_perturb(x):
        seen_at_perturb.append(None if pert.delta is None else pert.delta.clone())
        return perturb(x)

    def spy_ascend(x, leaf):
        ascend(x, leaf)
        d = pert.delta
        assert d.abs().max().item() <= 8 / 255 + 1e-7
        assert (x + d).min().item() >= 0.0 and (x + d).max().item() <= 1.0
        after_ascent.append(d.clone())

    pert.perturb, pert.ascend = spy_perturb, spy_ascend
    for x in batches(3):
        method.step(x)
    assert len(after_ascent) == 9
    assert seen_at_perturb[0] is None  # zero init on the very first replay
    # never reset: each replay (also the first of a new minibatch) starts from the last ascent
    for k in range(1, 9):
        assert torch.equal(seen_at_perturb[k], after_ascent[k - 1])
    assert after_ascent[-1].abs().sum() > 0
    assert pert.delta.shape == (4 * B, 3, 32, 32)


def test_simclr_free_perturbs_view_two_only():
    method = make_method(method="free-simclr", num_crops=2, replay_steps=2)
    method.step(batches(1)[0])
    assert method.perturbation.delta.shape == (B, 3, 32, 32)


@pytest.mark.parametrize("steps", [1, 3])
def test_pgd_runs_k_plus_one_forward_backward_passes(steps):
    method = make_method(method="robust-emp-ssl", num_crops=4, pgd_steps=steps)
    forwards = []
    method.model.register_forward_pre_hook(lambda m, inp: forwards.append(inp[0].shape))
    method.optimizer.step = Counter(method.optimizer.step)
    method.step(batches(1)[0])
    assert len(forwards) == steps + 1
    assert all(s == (4 * B, 3, 32, 32) for s in forwards)
    assert method.optimizer.step.calls == 1


@pytest.mark.parametrize("accumulate", [False, True])
def test_pgd_update_uses_final_adversarial_grad_or_quirk_sum(accumulate):
    method = make_method(method="robust-emp-ssl", num_crops=2, pgd_steps=2, accumulate_attack_grads=accumulate)
    inputs, captured = [], {}
    before = copy.deepcopy(method.model)  # copied before the hook, so recomputation is not recorded
    method.model.register_forward_pre_hook(lambda m, inp: inputs.append(inp[0].detach().clone()))
    real_step = method.optimizer.step

    def capture():
        captured["grads"] = [p.grad.clone() for p in method.model.parameters()]
        real_step()

    method.optimizer.step = capture
    method.step(batches(1)[0])
    used = list(inputs) if accumulate else inputs[-1:]
    ref = [torch.zeros_like(p) for p in before.parameters()]
    for x in used:  # independent recomputation on an untouched copy (train mode: batch statistics)
        before.zero_grad()
        ssl_loss(before, x, method.config).backward()
        ref = [r + p.grad for r, p in zip(ref, before.parameters())]
    for got, want in zip(captured["grads"], ref):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    assert (inputs[-1] - inputs[0]).abs().max() > 0  # the last pass is adversarial, the first clean


def test_each_method_updates_the_model_and_returns_a_finite_loss():
    for name, crops in [("emp-ssl", 4), ("cf-amc-ssl", 4), ("robust-emp-ssl", 4), ("simclr", 2),
                        ("robust-simclr", 2), ("free-simclr", 2)]:
        method = make_method(method=name, num_crops=crops, pgd_steps=1, replay_steps=2)
        w0 = method.model.backbone.conv1.weight.detach().clone()
        loss = method.step(batches(1)[0])
        assert torch.isfinite(loss), name
        assert not torch.equal(w0, method.model.backbone.conv1.weight), name


def test_patch_views_run_and_epoch_accounting():
    method = make_method(method=None, objective="emp", adversary="free", views="patch", num_crops=4)
    assert method.recipe.scale == (0.25, 0.25)
    assert torch.isfinite(method.step(batches(1)[0]))
    assert equal_budget_epochs(30, 3) == 10  # invariant 11: E_free = round(E_PGD / m)
    assert equal_budget_epochs(500, 3) == 167
    assert equal_budget_epochs(2, 5) == 1
