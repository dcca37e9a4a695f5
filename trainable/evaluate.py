"""Frozen-encoder evaluation: linear probes, clean and PGD robust accuracy, n-crop aggregation (METHOD.md 4).

The encoder is in eval mode and never updated; every probe is ``nn.Linear(feature_dim, K)`` on the
pre-feature. Robust accuracy is end-to-end PGD (zero start, sign steps, cross-entropy) through encoder
and head. Three probes, each with its own recipe:

- the standard probe (``clean_acc``, ``robust_acc``): Adam, ``probe_lr``, ``probe_epochs``, on fixed
  features of full images (METHOD.md 4.2);
- the robust probe (``robust_probe=true``): the same Adam recipe, but every minibatch is replaced by
  PGD examples against the frozen encoder and the probe being fitted (METHOD.md 4.2, robust head);
- the n-crop probe (``ncrop_eval=n``): on the mean feature of n augmented views; by default the
  method's SGD recipe (``ncrop_probe=sgd``), or the standard probe's Adam one (METHOD.md 4.1).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import pgd_linf
from .config import TrialConfig, metric_name_for_epsilon
from .model import Encoder
from .robustness import autoattack_flags, pgd_flags
from .views import ViewRecipe, make_views, recipe_for

# The n-crop probe's ``sgd`` recipe (METHOD.md 4.1); its learning rate and epochs are settings
# (``ncrop_probe_lr`` 0.03, ``ncrop_probe_epochs`` 100), the cosine runs over those epochs.
NCROP_SGD_MOMENTUM = 0.9
NCROP_SGD_WEIGHT_DECAY = 5e-5
NCROP_SGD_BATCH = 100


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
    head = new_head(features.shape[1], num_classes, features.device, generator)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    _fit_head(head, opt, None, features, labels, epochs, batch_size, len(features), generator)
    return head


def _fit_head(head: nn.Linear, opt: torch.optim.Optimizer, sched: Any, features: torch.Tensor,
              labels: torch.Tensor, epochs: int, batch_size: int, stop: int, generator: torch.Generator) -> None:
    """Cross-entropy minibatch epochs of ``head`` on fixed features (N, feature_dim): each epoch a fresh
    permutation from ``generator``, batches starting below ``stop``; ``sched`` (if any) steps per epoch."""
    n = len(features)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(features.device)
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            F.cross_entropy(head(features[idx]), labels[idx]).backward()
            opt.step()
        if sched is not None:
            sched.step()


def new_head(feature_dim: int, num_classes: int, device: torch.device, generator: torch.Generator) -> nn.Linear:
    """A freshly initialised ``nn.Linear(feature_dim, K)``; its initialisation is one draw from ``generator``."""
    head = nn.Linear(feature_dim, num_classes).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        head.reset_parameters()
    return head


def ncrop_probe_optimizer(head: nn.Linear, config: TrialConfig
                          ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, int, int]:
    """The n-crop probe's (optimiser, per-epoch scheduler or None, epochs, batch size) for ``config.ncrop_probe``.

    ``sgd``: SGD lr ``ncrop_probe_lr``, momentum 0.9, weight decay 5e-5, batch 100, a cosine schedule
    stepped once per epoch over ``ncrop_probe_epochs`` (METHOD.md 4.1). ``adam``: the standard probe's
    recipe (Adam ``probe_lr``, ``probe_epochs``, ``probe_batch_size``, constant learning rate).
    """
    if config.ncrop_probe == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(head.parameters(), lr=config.ncrop_probe_lr,
                                                     momentum=NCROP_SGD_MOMENTUM,
                                                     weight_decay=NCROP_SGD_WEIGHT_DECAY)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.ncrop_probe_epochs)
        return opt, sched, config.ncrop_probe_epochs, NCROP_SGD_BATCH
    return torch.optim.Adam(head.parameters(), lr=config.probe_lr), None, config.probe_epochs, config.probe_batch_size


def train_ncrop_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrialConfig,
                      generator: torch.Generator) -> nn.Linear:
    """Fit the n-crop probe on fixed mean-view features (N, feature_dim) with `ncrop_probe_optimizer`'s recipe.

    The ``sgd`` recipe drops the last incomplete batch of each epoch, as the method's evaluation does
    (all N images form one batch when N < 100); the ``adam`` recipe keeps it, as the standard probe.
    """
    head = new_head(features.shape[1], num_classes, features.device, generator)
    opt, sched, epochs, batch_size = ncrop_probe_optimizer(head, config)
    n = len(features)
    if n == 0:
        return head
    drop_last = config.ncrop_probe == "sgd"
    batch_size = min(batch_size, n) if drop_last else batch_size
    stop = n - n % batch_size if drop_last else n
    _fit_head(head, opt, sched, features, labels, epochs, batch_size, stop, generator)
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


def probe_attack(encoder: Encoder, head: nn.Linear, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                 alpha: float, steps: int) -> torch.Tensor:
    """The robust probe's training inputs for one minibatch: ``images + delta``, (B, 3, H, W) in [0, 1].

    ``delta`` is end-to-end PGD-``steps`` (L-inf ``epsilon``, step ``alpha``, zero start, CE) against the
    frozen encoder and ``head`` at its current weights; only delta is differentiated.
    """
    delta = pgd_linf(cross_entropy_of(Classifier(encoder, head), labels), images, epsilon, alpha, steps)
    return (images + delta).detach()


def train_robust_probe(model: Encoder, images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int,
                       lr: float, batch_size: int, epsilon: float, alpha: float, steps: int,
                       generator: torch.Generator) -> nn.Linear:
    """Fit ``nn.Linear(feature_dim, K)`` on PGD examples of the frozen encoder (METHOD.md 4.2, robust head).

    The standard probe's recipe (Adam ``lr``, ``epochs``, ``batch_size``, the same draws from
    ``generator``), except that each shuffled minibatch of full images is first attacked by
    `probe_attack` against the probe as it is at that step, and the probe takes its step on the
    features of the attacked images. The encoder stays in eval mode and is not updated.
    """
    model.eval()
    head = new_head(model.feature_dim, num_classes, images.device, generator)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    n = len(images)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            x_adv = probe_attack(model, head, images[idx], labels[idx], epsilon, alpha, steps)
            with torch.no_grad():
                feats = model.features(x_adv)
            opt.zero_grad()
            F.cross_entropy(head(feats), labels[idx]).backward()
            opt.step()
    return head


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


def ncrop_flags(model: Encoder, head: nn.Linear, images: torch.Tensor, labels: torch.Tensor, n: int,
                recipe: ViewRecipe, generator: torch.Generator, epsilon: float, alpha: float, steps: int,
                batch_views: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, robust) (N,) bool flags of the n-crop classifier: ``head`` on the mean feature of n views per image.

    One seeded draw of n views per test image serves both. The attack is PGD-``steps`` over all n
    views at once (an independent delta per view, zero start, sign steps, L-inf ``epsilon``, [0, 1]),
    maximising the cross-entropy of ``head(mean view feature)`` (METHOD.md 4.1). Its start, the
    unperturbed views, is one of the points the attacker may choose, so an image counts as robust only
    when it is classified correctly both clean and attacked: robust is a subset of clean.
    """
    model.eval()
    clean, robust = [], []
    per_batch = max(1, batch_views // n)
    for i in range(0, len(images), per_batch):
        x, y = images[i : i + per_batch], labels[i : i + per_batch]
        views = make_views(x, n, recipe, generator)  # (n*b, 3, 32, 32) crop-major

        def logits(v: torch.Tensor, b: int = len(x)) -> torch.Tensor:
            return head(model.features(v).reshape(n, b, -1).mean(0))

        def loss(v: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
            return F.cross_entropy(logits(v), y)

        with torch.no_grad():
            ok = logits(views).argmax(1) == y
        if epsilon > 0 and steps > 0:
            delta = pgd_linf(loss, views, epsilon, alpha, steps)
            with torch.no_grad():
                survived = ok & (logits(views + delta).argmax(1) == y)
        else:  # a zero budget cannot move the views
            survived = ok
        clean.append(ok)
        robust.append(survived)
    empty = torch.zeros(0, dtype=torch.bool, device=images.device)
    return (torch.cat(clean) if clean else empty), (torch.cat(robust) if robust else empty)


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


def robust_probe_metrics(model: Encoder, config: TrialConfig, train_images: torch.Tensor,
                         train_labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                         num_classes: int, seed: int) -> dict[str, float]:
    """robust_probe_clean_acc and robust_probe_robust_acc (the PGD of ``robust_acc``) of the robust probe.

    Its own generator (from ``seed``), so switching it on changes no other metric.
    """
    gen = torch.Generator().manual_seed(seed + 2)
    head = train_robust_probe(model, train_images, train_labels, num_classes,
                              config.robust_probe_epochs or config.probe_epochs, config.probe_lr,
                              config.probe_batch_size, config.robust_probe_epsilon, config.robust_probe_alpha,
                              config.robust_probe_steps, gen)
    clf = Classifier(model, head.requires_grad_(False)).eval()
    clean = accuracy(clf, test_images, test_labels)
    robust = clean if config.eval_epsilon == 0 else robust_accuracy(
        clf, test_images, test_labels, config.eval_epsilon, config.eval_alpha, config.eval_pgd_steps)
    return {"robust_probe_clean_acc": clean, "robust_probe_robust_acc": robust}


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
    """Probe on ``train_*`` features, test on ``test_*``: clean_acc, robust_acc, robust_acc@eps, and as configured
    ncrop_acc and ncrop_robust_acc, the strong attacks, robust_probe_clean_acc and robust_probe_robust_acc.

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
            ncrop_head = train_ncrop_probe(tr, train_labels, num_classes, config, gen).requires_grad_(False)
            ok, survived = ncrop_flags(model, ncrop_head, test_images, test_labels, config.ncrop_eval, recipe, vgen,
                                       config.eval_epsilon, config.eval_alpha, config.eval_pgd_steps)
            metrics["ncrop_acc"] = ok.float().mean().item() if len(ok) else 0.0
            metrics["ncrop_robust_acc"] = survived.float().mean().item() if len(ok) else 0.0
        metrics.update(strong_attack_metrics(clf, config, test_images, test_labels, num_classes, seed))
        if config.robust_probe:
            metrics.update(robust_probe_metrics(model, config, train_images, train_labels, test_images,
                                                test_labels, num_classes, seed))
        metrics["eval_images"] = float(len(test_images))
        metrics["eval_pgd_steps"] = float(config.eval_pgd_steps)
        metrics["probe_images"] = float(len(train_images))
        return metrics
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
        model.train(was_training)
