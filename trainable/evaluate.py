"""Frozen-encoder evaluation: linear probe, clean and PGD robust accuracy, n-crop aggregation (METHOD.md 4).

The encoder is in eval mode and never updated; the probe is ``nn.Linear(feature_dim, K)`` on the
pre-feature of full images (METHOD.md 4.2). Robust accuracy is end-to-end PGD (zero start, sign steps,
cross-entropy) through encoder and head.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrialConfig, metric_name_for_epsilon
from .model import Encoder
from .robustness import autoattack_flags, pgd_flags
from .views import make_views, recipe_for


@torch.no_grad()
def extract_features(model: Encoder, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, feature_dim), eval mode, no grad."""
    model.eval()
    out = [model.features(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def train_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
) -> nn.Linear:
    """Fit ``nn.Linear(feature_dim, K)`` with Adam and cross-entropy on fixed features (N, feature_dim)."""
    head = nn.Linear(features.shape[1], num_classes).to(features.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        head.reset_parameters()
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    n = len(features)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(features.device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            F.cross_entropy(head(features[idx]), labels[idx]).backward()
            opt.step()
    return head


class Classifier(nn.Module):
    """Frozen encoder features -> linear head: the model the evaluation attacks end to end."""

    def __init__(self, encoder: Encoder, head: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.features(x))


@torch.no_grad()
def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    correct = 0
    for i in range(0, len(images), batch_size):
        correct += (classifier(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
    return correct / max(1, len(images))


def cross_entropy_of(classifier: nn.Module, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss an evaluation attack maximises: cross-entropy of `classifier` on perturbed inputs vs `labels`."""
    return lambda x_adv: F.cross_entropy(classifier(x_adv), labels)


def robust_accuracy(
    classifier: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float,
    alpha: float,
    steps: int,
    batch_size: int = 256,
) -> float:
    """Accuracy under end-to-end PGD-``steps`` (L-inf ``epsilon``, step ``alpha``, zero start, CE)."""
    return pgd_flags(classifier, images, labels, epsilon, alpha, steps, batch_size=batch_size).float().mean().item() \
        if len(images) else 0.0


def autoattack_accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                        seed: int, suite: str = "standard", num_classes: int = 10, square_queries: int = 5000,
                        batch_size: int = 250) -> float:
    """Accuracy under an AutoAttack suite (default the standard APGD-CE, APGD-T, FAB-T, Square), L-inf ``epsilon``."""
    flags = autoattack_flags(classifier, images, labels, epsilon, suite, seed, num_classes, square_queries,
                             batch_size)
    return flags.float().mean().item() if len(flags) else 0.0


def eval_seed(trial_seed: int) -> int:
    """The seed of a trial's evaluation streams (probe init, shuffling, n-crop views, attack restarts).

    A function of the trial's seed only, never of the epoch or of `epochs`, so trials paired by seed
    share their probe randomness; offset so it never equals a training stream's seed.
    """
    return (int(trial_seed) * 1_000_003 + 7_919) % (2**63 - 1)


@torch.no_grad()
def ncrop_features(model: Encoder, images: torch.Tensor, n: int, recipe, generator: torch.Generator,
                   batch_size: int = 128) -> torch.Tensor:
    """Mean pre-feature over ``n`` augmented views per image (METHOD.md 4.1): (N, 3, H, W) -> (N, feature_dim)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size]
        views = make_views(x, n, recipe, generator)  # (n*b, 3, 32, 32) crop-major
        out.append(model.features(views).reshape(n, len(x), -1).mean(0))
    return torch.cat(out)


def fit_classifier(model: Encoder, config: TrialConfig, train_images: torch.Tensor, train_labels: torch.Tensor,
                   num_classes: int, generator: torch.Generator) -> Classifier:
    """The frozen encoder with its linear probe fitted on ``train_*`` (draws from ``generator``), eval mode."""
    model.eval()
    feats = extract_features(model, train_images)
    head = train_probe(feats, train_labels, num_classes, config.probe_epochs, config.probe_lr,
                       config.probe_batch_size, generator)
    head.requires_grad_(False)
    return Classifier(model, head).eval()


def strong_attack_metrics(clf: nn.Module, config: TrialConfig, images: torch.Tensor, labels: torch.Tensor,
                          num_classes: int, seed: int) -> dict[str, float]:
    """The optional attacks at ``eval_epsilon``: pgd_restarts_acc, autoattack_acc, square_acc (as configured)."""
    out: dict[str, float] = {}
    eps = config.eval_epsilon
    n = max(1, len(images))
    if config.eval_restarts:
        steps = config.eval_restart_steps or config.eval_pgd_steps
        flags = pgd_flags(clf, images, labels, eps, config.eval_alpha, steps, config.eval_restarts, seed)
        out["pgd_restarts_acc"] = flags.sum().item() / n
    if config.autoattack:
        flags = autoattack_flags(clf, images, labels, eps, config.autoattack_suite, seed, num_classes,
                                 config.square_queries)
        out["autoattack_acc"] = flags.sum().item() / n
    if config.square:
        flags = autoattack_flags(clf, images, labels, eps, "square", seed, num_classes, config.square_queries)
        out["square_acc"] = flags.sum().item() / n
    return out


def evaluate(
    model: Encoder,
    config: TrialConfig,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    seed: int,
) -> dict[str, float]:
    """Probe on ``train_*`` features, test on ``test_*``: clean_acc, robust_acc, robust_acc@eps, [ncrop_acc].

    Images are float (N, 3, 32, 32) in [0, 1] on the model's device. Deterministic given ``seed``; uses
    its own generators, so it never disturbs the training RNG streams.
    """
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        gen = torch.Generator().manual_seed(seed)
        clf = fit_classifier(model, config, train_images, train_labels, num_classes, gen)
        metrics: dict[str, float] = {"clean_acc": accuracy(clf, test_images, test_labels)}
        robust: dict[float, float] = {}
        for eps in dict.fromkeys((*config.eval_epsilons, config.eval_epsilon)):
            if eps == 0:  # an attack with a zero budget cannot move the input: PGD is skipped, not run
                robust[eps] = metrics["clean_acc"]
                continue
            robust[eps] = robust_accuracy(clf, test_images, test_labels, eps, config.eval_alpha,
                                          config.eval_pgd_steps)
        metrics["robust_acc"] = robust[config.eval_epsilon]
        for eps in config.eval_epsilons:
            metrics[metric_name_for_epsilon(eps)] = robust[eps]
        if config.ncrop_eval:
            objective, _, views = config.resolved
            recipe = recipe_for(objective, views)
            vgen = torch.Generator(device=train_images.device).manual_seed(seed + 1)
            tr = ncrop_features(model, train_images, config.ncrop_eval, recipe, vgen)
            te = ncrop_features(model, test_images, config.ncrop_eval, recipe, vgen)
            ncrop_head = train_probe(tr, train_labels, num_classes, config.probe_epochs, config.probe_lr,
                                     config.probe_batch_size, gen)
            with torch.no_grad():
                metrics["ncrop_acc"] = (ncrop_head(te).argmax(1) == test_labels).float().mean().item()
        metrics.update(strong_attack_metrics(clf, config, test_images, test_labels, num_classes, seed))
        metrics["eval_images"] = float(len(test_images))
        metrics["eval_pgd_steps"] = float(config.eval_pgd_steps)
        metrics["probe_images"] = float(len(train_images))
        return metrics
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
