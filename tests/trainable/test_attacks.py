"""PGD and the free-AT perturbation: epsilon ball, [0,1] box, ascent direction (spec 2, 3, 4)."""

import torch
import torch.nn.functional as F
from torch import nn

from trainable.attacks import FreePerturbation, pgd_linf, project


def test_project_keeps_delta_in_ball_and_input_in_box():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 4, 4, generator=g)
    delta = project(torch.randn(64, 3, 4, 4, generator=g), x, 8 / 255)
    assert delta.abs().max() <= 8 / 255 + 1e-7
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1


def test_pgd_increases_loss_and_respects_constraints():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    x = torch.rand(32, 3, 8, 8)
    x[:4] = 0.0  # pixels on the box edge
    y = torch.randint(0, 10, (32,))
    loss_fn = lambda xa: F.cross_entropy(model(xa), y)  # noqa: E731
    delta = pgd_linf(loss_fn, x, 8 / 255, 0.01, steps=10)
    assert delta.abs().max() <= 8 / 255 + 1e-7
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    assert loss_fn(x + delta) > loss_fn(x) + 1e-3
    # random start also stays feasible and is reproducible with a generator
    d1 = pgd_linf(loss_fn, x, 4 / 255, 0.01, 2, random_start=True, generator=torch.Generator().manual_seed(1))
    d2 = pgd_linf(loss_fn, x, 4 / 255, 0.01, 2, random_start=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(d1, d2) and d1.abs().max() <= 4 / 255 + 1e-7


def test_pgd_does_not_touch_parameter_grads_unless_quirk_enabled():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x = torch.rand(8, 4)
    loss_fn = lambda xa: model(xa).sum()  # noqa: E731
    pgd_linf(loss_fn, x, 0.1, 0.01, 3)
    assert model.weight.grad is None
    pgd_linf(loss_fn, x, 0.1, 0.01, 3, accumulate_param_grads=True)
    # three backward passes of sum(W x + b) w.r.t. b: 3 * 8 per output unit
    assert torch.allclose(model.bias.grad, torch.full((2,), 24.0))


def test_pgd_zero_steps_is_no_perturbation():
    x = torch.rand(2, 3)
    assert torch.equal(pgd_linf(lambda xa: xa.sum(), x, 0.1, 0.01, 0), torch.zeros_like(x))


def test_free_perturbation_ascends_projects_and_persists():
    pert = FreePerturbation(epsilon=0.05, alpha=0.02)
    x = torch.rand(6, 3, 4, 4)
    x_adv, leaf = pert.perturb(x)
    assert torch.equal(x_adv, x)  # zero init
    (x_adv * torch.sign(torch.randn_like(x))).sum().backward()
    pert.ascend(x, leaf)
    first = pert.delta.clone()
    assert first.abs().max() <= 0.05 + 1e-7 and ((x + first) >= 0).all() and ((x + first) <= 1).all()
    # a positive gradient pushes delta up by alpha (where the box allows)
    x2 = torch.full((6, 3, 4, 4), 0.5)
    for _ in range(5):
        x_adv, leaf = pert.perturb(x2)
        assert torch.equal(leaf.detach(), pert.delta)  # the carried delta is what is used
        x_adv.sum().backward()
        pert.ascend(x2, leaf)
    assert torch.allclose(pert.delta, torch.full_like(pert.delta, 0.05))  # clipped at epsilon
    state = pert.state_dict()
    other = FreePerturbation(0.05, 0.02)
    other.load_state_dict(state)
    assert torch.equal(other.delta, pert.delta)
