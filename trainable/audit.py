"""The masking audit: checks that a robust accuracy is one a reviewer would accept (docs/METHOD.md 4.4).

A sweep that maximises robust accuracy also searches for settings whose gradients mislead the attack
(gradient masking). `audit` runs four checks on a classifier (frozen encoder + probe) and names each
one that fails, with its numbers, as "gradient masking suspected" or "weak evaluation":

1. ladder: PGD robust accuracy over an epsilon ladder (0, 2, ..., 64 /255) never rises by more than
   the noise from one rung to the next;
2. chance: at the largest rung it is at chance level (1/K) within the noise;
3. strong vs PGD: the strong attack (an AutoAttack suite) does not lower PGD's accuracy by more
   than the noise (else the sweep's PGD metric overstates robustness: weak evaluation);
4. gradient-free vs white-box: Square does not beat the white-box PGD by more than the noise.

"The noise" is max(margin, 2 binomial standard errors) at the accuracy compared against, with
``margin`` stated in the result (0.02 = 2 points by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .robustness import autoattack_flags, correct_flags, pgd_flags, standard_error

if TYPE_CHECKING:
    from .loop import Trial

LADDER = tuple(k / 255 for k in (0, 2, 4, 8, 16, 32, 64))
MASKING = "gradient masking suspected"
WEAK = "weak evaluation"


@dataclass
class AuditCheck:
    """One check: its name, whether it passed, the verdict if it failed, and the numbers behind it."""

    name: str
    passed: bool
    verdict: str
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'pass' if self.passed else self.verdict} - {self.detail}"


@dataclass
class AuditResult:
    """The audit of one classifier on ``images`` test images (accuracies in [0, 1])."""

    images: int
    chance: float
    margin: float
    ladder: dict[float, float]
    accuracies: dict[str, float]  # at the audit epsilon: clean, pgd, [pgd_restarts], strong, square, worst
    checks: list[AuditCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        """One line per failing check: '<verdict>: <name> - <numbers>'."""
        return [f"{c.verdict}: {c.name} - {c.detail}" for c in self.checks if not c.passed]

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow / results: audit_passed, audit_<check> (1 pass, 0 fail), ladder, attacks."""
        out = {"audit_passed": float(self.passed)}
        out.update({f"audit_{c.name}": float(c.passed) for c in self.checks})
        out.update({f"audit_ladder@{round(e * 255)}/255": a for e, a in self.ladder.items()})
        out.update({f"audit_{k}_acc": v for k, v in self.accuracies.items()})
        return out

    def lines(self) -> list[str]:
        """A readable block: the ladder, the attacks with standard errors, each check."""
        se = lambda p: standard_error(p, self.images)  # noqa: E731
        rungs = ", ".join(f"{round(e * 255)}/255: {a:.3f}" for e, a in self.ladder.items())
        attacks = ", ".join(f"{k} {v:.3f} +/- {se(v):.3f}" for k, v in self.accuracies.items())
        head = f"masking audit on {self.images} images (chance {self.chance:.3f}, margin {self.margin:.3f}): " \
               f"{'PASS' if self.passed else 'FAIL'}"
        return [head, f"  PGD ladder: {rungs}", f"  attacks: {attacks}", *(f"  {c.line()}" for c in self.checks)]


def _noise(p: float, n: int, margin: float) -> float:
    return max(margin, 2 * standard_error(p, n))


def audit(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
          epsilon: float = 8 / 255, alpha: float = 0.01, steps: int = 20, restarts: int = 0,
          ladder: tuple[float, ...] = LADDER, suite: str = "cheap", square_queries: int = 5000,
          margin: float = 0.02, seed: int = 0) -> AuditResult:
    """Run the four checks on ``classifier`` (eval mode, (N, 3, H, W) in [0, 1] -> logits).

    PGD at ``epsilon`` uses ``steps`` and step ``alpha`` (the sweep's metric; plus ``restarts`` random
    starts when > 0). On the ladder each rung's step is max(alpha, 2.5 eps / steps), so that PGD can
    reach the ball's boundary at the large rungs. ``suite`` names the strong attack (`AUTOATTACK_SUITES`).
    """
    n = len(images)
    ladder = tuple(sorted(set(ladder)))
    clean = correct_flags(classifier, images, labels).float().mean().item()
    acc_ladder: dict[float, float] = {}
    pgd_set = None
    for eps in ladder:
        if eps == 0:
            acc_ladder[eps] = clean
            continue
        step = max(alpha, 2.5 * eps / max(1, steps))
        flags = pgd_flags(classifier, images, labels, eps, step, steps, seed=seed)
        acc_ladder[eps] = flags.float().mean().item()
        if eps == epsilon and step == alpha:  # zero-start PGD is deterministic: this rung is the metric's PGD
            pgd_set = flags
    if pgd_set is None:
        pgd_set = pgd_flags(classifier, images, labels, epsilon, alpha, steps)
    pgd = pgd_set.float().mean().item()
    accs: dict[str, float] = {"clean": clean, "pgd": pgd}
    whitebox = pgd
    worst = pgd_set.clone()
    if restarts:
        restart_set = pgd_flags(classifier, images, labels, epsilon, alpha, steps, restarts, seed)
        accs["pgd_restarts"] = restart_set.float().mean().item()
        whitebox = min(whitebox, accs["pgd_restarts"])
        worst &= restart_set
    strong_set = autoattack_flags(classifier, images, labels, epsilon, suite, seed, num_classes, square_queries)
    accs["strong"] = strong_set.float().mean().item()
    square_set = autoattack_flags(classifier, images, labels, epsilon, "square", seed, num_classes, square_queries)
    accs["square"] = square_set.float().mean().item()
    worst &= strong_set & square_set
    accs["worst"] = worst.float().mean().item()  # robust only if every attack above fails
    chance = 1.0 / num_classes
    checks = []
    rises = [(a, b) for a, b in zip(ladder, ladder[1:])
             if acc_ladder[b] > acc_ladder[a] + _noise(acc_ladder[a], n, margin)]
    detail = "; ".join(f"rises from {acc_ladder[a]:.3f} at {round(a * 255)}/255 to {acc_ladder[b]:.3f} at "
                       f"{round(b * 255)}/255" for a, b in rises) or "falls monotonically within the noise"
    checks.append(AuditCheck("ladder", not rises, MASKING, detail))
    top = acc_ladder[ladder[-1]]
    tol = _noise(chance, n, margin)
    checks.append(AuditCheck("chance", top <= chance + tol, MASKING,
                             f"PGD accuracy at {round(ladder[-1] * 255)}/255 is {top:.3f}; chance is {chance:.3f} "
                             f"(allowed up to {chance + tol:.3f})"))
    gap = pgd - accs["strong"]
    tol = _noise(pgd, n, margin)
    checks.append(AuditCheck("strong_vs_pgd", gap <= tol, WEAK,
                             f"{suite} AutoAttack {accs['strong']:.3f} vs PGD-{steps} {pgd:.3f}: "
                             f"overstatement {gap:.3f} (allowed {tol:.3f})"))
    gap = whitebox - accs["square"]
    tol = _noise(whitebox, n, margin)
    checks.append(AuditCheck("gradient_free_vs_whitebox", gap <= tol, MASKING,
                             f"Square {accs['square']:.3f} vs white-box PGD {whitebox:.3f}: gap {gap:.3f} "
                             f"(allowed {tol:.3f})"))
    return AuditResult(n, chance, margin, acc_ladder, accs, checks)


def load_trial(checkpoint: Path | str) -> "Trial":
    """The trial saved in ``checkpoint`` (a file or a directory holding checkpoint.pt), model restored."""
    from .checkpoint import load_checkpoint
    from .config import TrialConfig
    from .loop import Trial
    from .reporting import CHECKPOINT_FILE

    path = Path(checkpoint)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    state = load_checkpoint(file)
    trial = Trial(TrialConfig.from_dict(state["config"]))
    trial.load_state_dict(state)
    return trial


def audit_trial(trial: "Trial", suite: str | None = None, square_queries: int | None = None,
                margin: float = 0.02) -> AuditResult:
    """Audit a trial's encoder with the probe its evaluation fits (same seed, so PGD here is its robust_acc).

    ``suite`` / ``square_queries`` default to the trial's ``autoattack_suite`` / ``square_queries``.
    """
    from .evaluate import eval_seed, fit_classifier

    config = trial.config
    probe_x, probe_y, test_x, test_y = trial._eval_tensors()
    model = trial.model
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        seed = eval_seed(config.seed)
        clf = fit_classifier(model, config, probe_x, probe_y, trial.train_set.num_classes,
                             torch.Generator().manual_seed(seed))
        return audit(clf, test_x, test_y, trial.train_set.num_classes, epsilon=config.eval_epsilon,
                     alpha=config.eval_alpha, steps=config.eval_pgd_steps, restarts=config.eval_restarts,
                     suite=suite or config.autoattack_suite, square_queries=square_queries or config.square_queries,
                     margin=margin, seed=seed)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
