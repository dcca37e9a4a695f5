"""Encoder topology (spec 1.2), LARS wrapper and cosine schedule (spec 1.4, 3.2, invariant 8)."""

import math

import pytest
import torch
from torch import nn

from trainable.config import preset
from trainable.model import Encoder, build_encoder
from trainable.optim import LARSWrapper, build_optimizer, build_scheduler, schedule_length


def test_encoder_topology_and_outputs():
    enc = Encoder(width=8, blocks_per_stage=1, feature_dim=32, hidden_dim=24, z_dim=16)
    stem = enc.backbone.conv1
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.bias is None
    assert not any(isinstance(m, nn.MaxPool2d) for m in enc.modules())
    assert [len(s) for s in enc.backbone.stages] == [1, 1, 1, 1]
    assert enc.backbone.out_dim == 64
    assert [type(m) for m in enc.pre_feature] == [nn.Linear, nn.BatchNorm1d, nn.ReLU]
    assert [type(m) for m in enc.projector] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    out = enc(torch.rand(6, 3, 32, 32))
    assert out.z.shape == (6, 16) and out.feature.shape == (6, 32)
    assert torch.allclose(out.z.norm(dim=1), torch.ones(6), atol=1e-5)
    assert (out.feature >= 0).all()  # after ReLU


def test_paper_preset_is_resnet18_with_spec_dims():
    enc = build_encoder(preset("paper"))
    assert [len(s) for s in enc.backbone.stages] == [2, 2, 2, 2]
    assert enc.backbone.conv1.out_channels == 64 and enc.backbone.out_dim == 512
    assert enc.feature_dim == 4096 and enc.z_dim == 1024
    resnet18_params = 11_168_832  # torchvision resnet18 without fc, CIFAR stem (3x3 conv1)
    backbone = sum(p.numel() for p in enc.backbone.parameters())
    assert backbone == resnet18_params
    assert build_encoder(preset("paper", method="simclr", num_crops=2)).z_dim == 128


def reference_lars_step(params, grads, lr, wd, eta, momentum, bufs):
    """Independent re-statement of spec 1.4: scaled grads then Nesterov SGD with wd 0."""
    new = []
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g.clone()
        if p.ndim != 1:
            pn, gn = p.norm(), g.norm()
            local = eta * pn / (gn + wd * pn + 1e-8)
            scale = min(float(local) / lr, 1.0)
            g = (g + wd * p) * scale
        bufs[i] = g if bufs[i] is None else momentum * bufs[i] + g
        new.append(p - lr * (g + momentum * bufs[i]))
    return new


def test_lars_wrapper_matches_reference_update_and_skips_1d_params():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    opt = build_optimizer(model, lr=0.3, momentum=0.9, weight_decay=1e-4, eta=0.005)
    params = [p.detach().clone() for p in model.parameters()]
    bufs = [None] * len(params)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 5)).pow(2).sum().backward()
        grads = [p.grad.detach().clone() for p in model.parameters()]
        params = reference_lars_step(params, grads, 0.3, 1e-4, 0.005, 0.9, bufs)
        opt.step()
        for mine, ref in zip(model.parameters(), params):
            assert torch.allclose(mine, ref, atol=1e-6)
    assert opt.param_groups[0]["weight_decay"] == 1e-4  # restored after the step


def test_lars_trust_ratio_limits_the_weight_update():
    p = nn.Parameter(torch.ones(10, 10))
    opt = LARSWrapper(torch.optim.SGD([p], lr=1.0, momentum=0.0), eta=0.001)
    p.grad = torch.full_like(p, 100.0)
    opt.step()
    # |update| = eta * |p| (ratio below lr): 0.001 * 10 = 0.01 in norm
    assert (torch.ones(10, 10) - p.detach()).norm().item() == pytest.approx(0.01, rel=1e-4)


def lr_trace(t_max: int, steps: int) -> list[float]:
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, lr=0.3, momentum=0.9, weight_decay=1e-4, eta=0.005)
    sched = build_scheduler(opt, t_max)
    trace = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        sched.step()
        trace.append(opt.param_groups[0]["lr"])
    return trace


def test_cosine_schedule_length_and_faithful_quirk():
    steps, epochs, m = 5, 2, 3
    fixed = schedule_length(steps, epochs, m, free=True, faithful_schedule=False)
    quirk = schedule_length(steps, epochs, m, free=True, faithful_schedule=True)
    assert fixed == steps * epochs * m and quirk == steps * epochs
    assert schedule_length(steps, epochs, m, free=False, faithful_schedule=False) == steps * epochs
    trace = lr_trace(fixed, fixed)  # default: one half cosine over the m*E*S steps, ends at 0
    assert trace[0] == pytest.approx(0.3) and trace[-1] == pytest.approx(0.0, abs=1e-9)
    assert all(a >= b - 1e-12 for a, b in zip(trace, trace[1:]))
    cyc = lr_trace(quirk, 3 * quirk)  # invariant 8: 0 at T_max, lr0 at 2 T_max
    assert cyc[quirk] == pytest.approx(0.0, abs=1e-9)
    assert cyc[2 * quirk] == pytest.approx(0.3, rel=1e-6)
    assert cyc[quirk // 2] == pytest.approx(0.15, rel=1e-6)
    assert cyc[3 * quirk] == pytest.approx(0.0, abs=1e-9)
    assert math.isclose(cyc[quirk + quirk // 2], 0.15, rel_tol=1e-6)


def test_basic_block_is_torchvisions() -> None:
    """The local BasicBlock (no torchvision import in the trainable, BENCHMARKS.md item 4) is torchvision's."""
    from torchvision.models.resnet import BasicBlock as TorchvisionBlock

    from trainable.model import BasicBlock

    def pair(seed: int, downsample: bool) -> tuple[nn.Module, nn.Module]:
        blocks = []
        for cls in (BasicBlock, TorchvisionBlock):
            torch.manual_seed(seed)
            down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16)) if downsample else None
            blocks.append(cls(8, 16 if downsample else 8, 2 if downsample else 1, down))
        return blocks[0], blocks[1]

    for downsample in (False, True):
        ours, ref = pair(3, downsample)
        assert list(ours.state_dict()) == list(ref.state_dict())
        for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(a, b), name
        x = torch.rand(4, 8, 8, 8, generator=torch.Generator().manual_seed(1))
        out_ours, out_ref = ours(x.clone().requires_grad_()), ref(x.clone().requires_grad_())
        assert torch.equal(out_ours, out_ref)
        out_ours.square().sum().backward()
        out_ref.square().sum().backward()
        for a, b in zip(ours.parameters(), ref.parameters()):
            assert torch.equal(a.grad, b.grad)


def test_importing_the_trainable_does_not_import_torchvision() -> None:
    """A trial worker imports torch and ray but not torchvision (whose import pulls in torch._dynamo)."""
    import subprocess
    import sys

    code = ("import sys, trainable.tune_adapter, trainable.loop, trainable.evaluate; "
            "print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
