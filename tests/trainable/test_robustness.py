"""Strong evaluation attacks and the masking audit on small trained classifiers (seconds on a CPU).

The models are trained here on a synthetic 4-class image task: an ordinary linear classifier, and the same classifier
behind an input quantiser (zero gradient everywhere: the textbook gradient-masked model).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainable.audit import MASKING, WEAK, audit
from trainable.evaluate import robust_accuracy
from trainable.robustness import autoattack_flags, correct_flags, pgd_flags, standard_error

pytest.importorskip("pyautoattack")

K = 4
EPS = 2 / 255  # where the ordinary model is partly robust, so comparisons are not vacuous


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainable/conftest.py


def _task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randn(K, 3, 16, 16, generator=torch.Generator().manual_seed(99))
    labels = torch.arange(n) % K
    noise = torch.randn(n, 3, 16, 16, generator=gen)
    images = (0.5 + 0.01 * patterns[labels] + 0.05 * noise).clamp(0, 1)
    return images, labels


class Quantise(nn.Module):
    """x -> round(32 x) / 32: piecewise constant, so every input gradient is zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 32) / 32


def _train(masked: bool) -> nn.Module:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, K))
    model = nn.Sequential(Quantise(), mlp) if masked else mlp
    x, y = _task(256, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(mlp(x), y).backward()  # trained without the quantiser (it has no gradient)
        opt.step()
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def ordinary() -> nn.Module:
    return _train(masked=False)


@pytest.fixture(scope="module")
def masked() -> nn.Module:
    return _train(masked=True)


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    return _task(96, 2)


def test_restarts_robust_set_is_a_subset_of_zero_start(ordinary, test_set) -> None:
    x, y = test_set
    zero = pgd_flags(ordinary, x, y, EPS, 0.003, 5)
    restarts = pgd_flags(ordinary, x, y, EPS, 0.003, 5, restarts=3, seed=1)
    assert zero.float().mean().item() == robust_accuracy(ordinary, x, y, EPS, 0.003, 5)
    assert not (restarts & ~zero).any()  # robust under restarts => robust from the zero start
    assert restarts.sum() <= zero.sum() <= correct_flags(ordinary, x, y).sum()
    assert torch.equal(restarts, pgd_flags(ordinary, x, y, EPS, 0.003, 5, restarts=3, seed=1))  # seeded


def test_autoattack_never_above_pgd(ordinary, test_set) -> None:
    x, y = test_set
    state = torch.random.get_rng_state()
    pgd = pgd_flags(ordinary, x, y, EPS, 0.01, 20)
    strong = autoattack_flags(ordinary, x, y, EPS, "cheap", seed=0, num_classes=K)
    assert torch.equal(state, torch.random.get_rng_state())  # AutoAttack's reseeding does not leak out
    assert 0 < pgd.sum()  # the comparison is not vacuous
    assert strong.sum() <= pgd.sum()
    assert not (strong & ~correct_flags(ordinary, x, y)).any()  # a clean error is never robust


def test_standard_autoattack_runs(ordinary, test_set) -> None:
    x, y = test_set[0][:16], test_set[1][:16]
    flags = autoattack_flags(ordinary, x, y, EPS, "standard", seed=0, num_classes=K, square_queries=50)
    assert flags.shape == (16,) and flags.dtype == torch.bool
    assert flags.sum() <= pgd_flags(ordinary, x, y, EPS, 0.01, 20).sum()


def test_audit_passes_an_ordinary_model(ordinary, test_set) -> None:
    x, y = test_set
    # The strong attack here is APGD on the same loss as PGD: targeted attacks (the cheap and standard
    # suites) do beat cross-entropy PGD by more than the noise on this 4-class toy, and the audit says so.
    result = audit(ordinary, x, y, K, epsilon=EPS, alpha=EPS / 4, suite="apgd-ce", square_queries=300)
    assert result.passed, result.lines()
    assert result.ladder[0] > result.ladder[64 / 255]
    assert result.metrics()["audit_passed"] == 1.0


def test_audit_names_a_weak_evaluation(ordinary, test_set) -> None:
    x, y = test_set
    result = audit(ordinary, x, y, K, epsilon=EPS, alpha=EPS / 4, suite="cheap", square_queries=300)
    weak = [c for c in result.checks if c.name == "strong_vs_pgd"]
    assert weak and not weak[0].passed and weak[0].verdict == WEAK
    assert result.accuracies["strong"] < result.accuracies["pgd"]


def test_audit_flags_a_gradient_masked_model(masked, test_set) -> None:
    x, y = test_set
    result = audit(masked, x, y, K, epsilon=EPS, alpha=EPS / 4, square_queries=300)
    assert not result.passed
    failed = {c.name for c in result.checks if not c.passed}
    assert {"chance", "gradient_free_vs_whitebox"} <= failed, result.lines()
    assert result.accuracies["square"] < result.accuracies["pgd"]  # the black box beats the white box
    assert all(line.startswith(MASKING) for line in result.failures() if "gradient_free" in line or "chance" in line)


def test_standard_error() -> None:
    assert standard_error(0.5, 100) == pytest.approx(0.05)
    assert standard_error(0.0, 100) == 0.0
