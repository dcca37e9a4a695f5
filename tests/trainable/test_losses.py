"""Loss values against independent computations (docs/METHOD.md 1.3, 3.3, section 7 invariants 1-4)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainable.losses import emp_loss, invariance_loss, nt_xent, total_coding_rate, total_coding_rate_full


def unit(n: int, d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def tcr_numpy(z: np.ndarray, eps: float = 0.2) -> float:
    """R(Z) = 1/2 logdet(I_d + d/(B eps) Z^T Z), the spec's d x d formula, via numpy eigenvalues."""
    b, d = z.shape
    m = np.eye(d) + d / (b * eps) * z.T @ z
    return 0.5 * float(np.sum(np.log(np.linalg.eigvalsh(m))))


def test_tcr_matches_independent_numpy_value():
    z = unit(12, 40)
    assert total_coding_rate(z).item() == pytest.approx(tcr_numpy(z.numpy()), rel=1e-10)
    assert total_coding_rate(z, eps=0.5).item() == pytest.approx(tcr_numpy(z.numpy(), 0.5), rel=1e-10)


def test_tcr_sylvester_form_equals_full_form_value_and_gradient():
    z1 = unit(100, 1024, seed=1, dtype=torch.float32).requires_grad_(True)
    z2 = z1.detach().clone().requires_grad_(True)
    small, full = total_coding_rate(z1), total_coding_rate_full(z2)
    assert small.item() == pytest.approx(full.item(), rel=1e-4)
    small.backward()
    full.backward()
    assert torch.allclose(z1.grad, z2.grad, rtol=1e-3, atol=1e-5)


def test_tcr_positive_and_bigger_for_spread_than_collapsed_embeddings():
    spread = unit(16, 32)
    collapsed = unit(1, 32).repeat(16, 1)
    assert total_coding_rate(spread) > total_coding_rate(collapsed) > 0
    # collapsed rank-1: 1/2 log(1 + d/(B eps) * B) exactly
    assert total_coding_rate(collapsed).item() == pytest.approx(0.5 * math.log(1 + 32 / 0.2), rel=1e-9)


def test_invariance_loss_is_minus_one_for_identical_crops_and_within_bounds():
    one = unit(5, 8)
    z = one.repeat(3, 1)  # 3 identical crops of 5 images, crop-major
    assert invariance_loss(z, 3).item() == pytest.approx(-1.0)
    for seed in range(5):
        value = invariance_loss(unit(4 * 6, 8, seed=seed), 4).item()
        assert -1.0 <= value <= 1.0


def test_invariance_loss_matches_explicit_loop_over_crops_and_images():
    c, b, d = 3, 4, 6
    z = unit(c * b, d, seed=3)
    total = 0.0
    for img in range(b):
        rows = [z[k * b + img] for k in range(c)]  # crop-major: crop k of image img
        mean = sum(rows) / c
        total += sum(float(torch.dot(r, mean) / (r.norm() * mean.norm())) for r in rows)
    assert invariance_loss(z, c).item() == pytest.approx(-total / (c * b), rel=1e-10)


def test_emp_loss_combines_terms_with_spec_signs_and_chunks_per_crop():
    c, b, d = 4, 6, 10
    z = unit(c * b, d, seed=4)
    chunks = [z[k * b : (k + 1) * b].numpy() for k in range(c)]
    expected = 200.0 * invariance_loss(z, c).item() - 1.0 * np.mean([tcr_numpy(ch) for ch in chunks])
    assert emp_loss(z, c).item() == pytest.approx(expected, rel=1e-9)
    # TCR over all C*B rows at once would differ: the loss must be per chunk
    assert emp_loss(z, c).item() != pytest.approx(200.0 * invariance_loss(z, c).item() - tcr_numpy(z.numpy()))
    weighted = 3.0 * invariance_loss(z, c).item() - 0.5 * np.mean([tcr_numpy(ch, 0.3) for ch in chunks])
    assert emp_loss(z, c, lambda_inv=3.0, lambda_tcr=0.5, eps=0.3).item() == pytest.approx(weighted, rel=1e-9)


def test_crop_major_chunk_is_crop_c_of_all_images():
    c, b = 3, 5
    # image index encoded in dim 0, crop index in dim 1
    z = torch.zeros(c * b, 4, dtype=torch.float64)
    for k in range(c):
        for img in range(b):
            z[k * b + img] = torch.tensor([img, k, 1.0, 0.0])
    chunks = z.reshape(c, b, 4)
    for k in range(c):
        assert torch.equal(chunks[k, :, 1], torch.full((b,), float(k), dtype=torch.float64))
        assert torch.equal(chunks[k, :, 0], torch.arange(b, dtype=torch.float64))


def test_nt_xent_matches_explicit_formula():
    b, t = 4, 0.5
    z1, z2 = unit(b, 8, seed=5), unit(b, 8, seed=6)
    z = torch.cat([z1, z2])
    sim = (z @ z.T / t).numpy()
    losses = []
    for i in range(2 * b):
        pos = (i + b) % (2 * b)
        denom = sum(math.exp(sim[i, j]) for j in range(2 * b) if j != i)
        losses.append(-math.log(math.exp(sim[i, pos]) / denom))
    assert nt_xent(z1, z2, temperature=t).item() == pytest.approx(np.mean(losses), rel=1e-9)
    assert nt_xent(z1, z1, temperature=t).item() < nt_xent(z1, z2, temperature=t).item()


def test_loss_gradient_reaches_input_perturbation():
    """Invariant 4: the loss gradient flows back to a perturbation of the encoder input."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 8))
    x = torch.rand(2 * 3, 3, 4, 4)
    delta = torch.zeros_like(x, requires_grad=True)
    emp_loss(F.normalize(net(x + delta), dim=1), 2).backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0
