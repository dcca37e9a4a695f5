"""The GPU path's execution settings (precision, memory format, compile), checked on the CPU.

What is selected per device is tested directly (`TrialConfig.execution_plan`); that each setting
computes the same function is tested by running it on the CPU, where bf16 autocast and
channels-last are supported too.
"""

import copy

import pytest
import torch

from trainable.attacks import FreePerturbation, project
from trainable.config import ConfigError, preset
from trainable.methods import TrainingMethod, ssl_loss
from trainable.model import build_encoder
from trainable.optim import build_optimizer, build_scheduler

B = 6


def tiny(**overrides):
    return preset("tiny", width=4, feature_dim=16, hidden_dim=16, z_dim=8, batch_size=B, num_crops=4, **overrides)


def make_method(**overrides) -> TrainingMethod:
    cfg = tiny(**overrides)
    torch.manual_seed(0)
    model = build_encoder(cfg)
    opt = build_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.lars_eta)
    return TrainingMethod(cfg, model, opt, build_scheduler(opt, 100), torch.Generator().manual_seed(1))


def test_auto_plan_is_bf16_channels_last_on_cuda_and_fp32_contiguous_on_cpu():
    cfg = tiny()
    gpu = cfg.execution_plan("cuda", bf16_supported=True)
    assert (gpu.precision, gpu.channels_last, gpu.compile) == ("bf16", True, False)
    cpu = cfg.execution_plan("cpu")
    assert (cpu.precision, cpu.channels_last) == ("fp32", False)
    old_gpu = cfg.execution_plan("cuda", bf16_supported=False)  # e.g. a V100: no bf16, so fp32
    assert old_gpu.precision == "fp32" and old_gpu.channels_last


def test_explicit_settings_override_auto_and_unsupported_bf16_is_an_error():
    cfg = tiny(precision="bf16", memory_format="channels_last", compile=True)
    plan = cfg.execution_plan("cpu")
    assert (plan.precision, plan.channels_last, plan.compile) == ("bf16", True, True)
    assert tiny(precision="fp32", memory_format="contiguous").execution_plan("cuda").precision == "fp32"
    with pytest.raises(ConfigError, match="bf16 is not supported"):
        cfg.execution_plan("cuda", bf16_supported=False)


@pytest.mark.parametrize("key,value", [("precision", "fp16"), ("memory_format", "nhwc"), ("compile", "maybe")])
def test_bad_execution_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        tiny(**{key: value})


def test_cpu_trial_runs_the_reference_path():
    method = make_method(method="cf-amc-ssl")
    assert method.amp_dtype is None and not method.plan.channels_last
    assert method.forward is method.model


def test_bf16_autocast_computes_the_same_loss_and_gradient_within_tolerance():
    """The encoder's forward in bf16, the loss in float32: close to the fp32 loss and gradient.

    bf16 keeps 8 mantissa bits, so gradients differ visibly: at width 16 the parameter gradient's
    cosine to the fp32 one measured 0.957 (0.90 at width 4, where BN biases of a few channels
    dominate); unrelated gradients would be near 0. The loss agrees to 0.2%.
    """
    cfg = preset("tiny", width=16, feature_dim=64, hidden_dim=64, z_dim=32, batch_size=B, num_crops=4,
                 method="cf-amc-ssl")
    torch.manual_seed(0)
    model = build_encoder(cfg).train()
    views = torch.rand(cfg.num_crops * B, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    results = []
    for dtype in (None, torch.bfloat16):
        m = copy.deepcopy(model)
        loss = ssl_loss(m, views, cfg, dtype)
        assert loss.dtype == torch.float32
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in m.parameters()])
        results.append((loss.detach(), grad))
    (loss32, grad32), (loss16, grad16) = results
    assert torch.allclose(loss16, loss32, rtol=0.01), (loss16, loss32)
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)
    assert cosine > 0.9, cosine


def test_channels_last_training_step_equals_the_contiguous_one(monkeypatch):
    """Same seed, same batch: channels-last gives the same loss, and weights that differ by rounding only.

    The weights' difference between the layouts must be far below the update the step made (LARS
    amplifies float rounding a little; measured ratio about 1e-3 here). The perturbation moves by
    sign(dL/d delta), and the sign of an input gradient that is zero up to rounding (pixels outside
    every crop, for one) depends on which convolution algorithm the CPU's library picked. So the
    invariant is: wherever the gradient is clearly non-zero (above `significant` of its largest
    entry) the two layouts move delta the same way, and delta differs only where some replay's
    gradient's sign differs between the layouts.
    """
    significant = 1e-3
    original_ascend = FreePerturbation.ascend
    grads: list[torch.Tensor] = []

    def recording_ascend(self, x, leaf):
        grads.append(leaf.grad.detach().clone().contiguous())
        original_ascend(self, x, leaf)

    monkeypatch.setattr(FreePerturbation, "ascend", recording_ascend)
    images = torch.rand(B, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    outcomes = []
    for fmt in ("contiguous", "channels_last"):
        grads.clear()
        method = make_method(method="cf-amc-ssl", memory_format=fmt, replay_steps=2)
        before = torch.cat([p.detach().flatten() for p in method.model.parameters()])
        loss = method.step(images)
        after = torch.cat([p.detach().flatten() for p in method.model.parameters()])
        outcomes.append((loss, before, after, method.perturbation.delta.contiguous(), list(grads)))
    (loss_a, w0, w_a, d_a, g_a), (loss_b, _, w_b, d_b, g_b) = outcomes
    assert torch.allclose(loss_a, loss_b, rtol=1e-4, atol=1e-5)
    assert (w_a - w_b).norm() < 0.01 * (w_a - w0).norm()
    assert method.perturbation.delta.is_contiguous(memory_format=torch.channels_last)  # follows the views
    assert len(g_a) == len(g_b) == 2  # one ascent per replay
    first_a, first_b = g_a[0], g_b[0]  # the first replay: identical weights in both layouts
    assert (first_a - first_b).norm() < 1e-3 * first_a.norm()  # measured 2e-5
    clear = first_a.abs() > significant * first_a.abs().max()
    assert clear.float().mean() > 0.5  # the check below is about most entries, not a handful
    assert torch.equal(first_a[clear].sign(), first_b[clear].sign())
    # The second replay follows one optimizer step, so it sees weights that differ by rounding.
    assert (g_a[1] - g_b[1]).norm() < 0.05 * g_a[1].norm()  # measured 0.01
    flipped = torch.zeros_like(clear)
    for ga, gb in zip(g_a, g_b):
        flipped |= ga.sign() != gb.sign()
    assert not ((d_a != d_b) & ~flipped).any()  # delta differs only where a gradient's sign flipped
    for d in (d_a, d_b):
        assert d.abs().max() <= 8 / 255 + 1e-6


def test_in_place_free_ascent_equals_the_out_of_place_projection():
    """`FreePerturbation.ascend` reuses the gradient's buffer: same values as project(delta + a*sign(g))."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 4, 4, generator=g)
    pert = FreePerturbation(epsilon=8 / 255, alpha=0.01)
    pert.delta = project((torch.rand(x.shape, generator=g) - 0.5) * 0.1, x, 8 / 255)
    _, leaf = pert.perturb(x)
    grad = torch.randn(x.shape, generator=g)
    leaf.grad = grad.clone()
    expected = project(leaf.detach() + 0.01 * grad.sign(), x, 8 / 255)
    pert.ascend(x, leaf)
    assert torch.equal(pert.delta, expected)
    assert leaf.grad is None


def test_cpu_data_stays_on_host_and_cuda_plan_needs_no_gpu_to_be_chosen():
    """`device=cuda` without a GPU is one clear error, never a silent CPU run."""
    from trainable.loop import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
