"""Per-image robustness under the evaluation attacks: PGD (zero start, random restarts), AutoAttack, Square.

Every function returns a bool tensor (N,) that is True where the image is classified correctly after
the attack: the robust set. Accuracies are means of these flags, so attacks can be compared image by
image and combined as a worst case (an image is robust only if every attack fails). Pixels are in
[0, 1]; the classifier maps (N, 3, H, W) to logits and is in eval mode.

AutoAttack and Square come from ``pyautoattack``, the packaged reference implementation of
Croce & Hein's AutoAttack (APGD-CE, APGD-T, FAB-T, Square). It reseeds torch's global generator,
so every call here runs inside ``torch.random.fork_rng``: the training streams are never disturbed.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import pgd_linf
from .config import AUTOATTACK_SUITES, ConfigError


def standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy measured on ``n`` images: sqrt(p (1 - p) / n)."""
    if n <= 0 or math.isnan(accuracy):
        return math.nan
    p = min(1.0, max(0.0, accuracy))
    return math.sqrt(p * (1.0 - p) / n)


@torch.no_grad()
def correct_flags(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  batch_size: int = 256) -> torch.Tensor:
    """(N,) bool: the clean prediction is the label."""
    out = [classifier(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=images.device)


def _cross_entropy(classifier: nn.Module, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x_adv: F.cross_entropy(classifier(x_adv), labels)


def pgd_flags(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float, alpha: float,
              steps: int, restarts: int = 0, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """(N,) bool robust set under PGD-``steps`` from a zero start and ``restarts`` uniform random starts.

    Worst case over starts: an image is robust only if every start fails. The zero-start run is the
    sweep's metric (the paper's protocol), so with ``restarts=0`` this is exactly `robust_accuracy`'s
    attack and with restarts its robust set is a subset of the zero-start one. Random starts attack
    only the images still robust (an image already broken stays broken). Deterministic given ``seed``.
    """
    flags = []
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size], labels[i : i + batch_size]
        delta = pgd_linf(_cross_entropy(classifier, y), x, epsilon, alpha, steps)
        with torch.no_grad():
            flags.append(classifier(x + delta).argmax(1) == y)
    robust = torch.cat(flags) if flags else torch.zeros(0, dtype=torch.bool, device=images.device)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(restarts):
        idx = robust.nonzero().flatten()
        for i in range(0, len(idx), batch_size):
            sel = idx[i : i + batch_size]
            x, y = images[sel], labels[sel]
            delta = pgd_linf(_cross_entropy(classifier, y), x, epsilon, alpha, steps,
                             random_start=True, generator=gen)
            with torch.no_grad():
                robust[sel] &= classifier(x + delta).argmax(1) == y
    return robust


def require_autoattack() -> None:
    """Fail early, in one line, when AutoAttack or Square is asked for but pyautoattack is missing."""
    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        raise ConfigError("autoattack and square need the package pyautoattack: "
                          "pip install 'pyautoattack>=0.2,<0.3' (a dependency of this project)") from None


def _autoattack(classifier: nn.Module, epsilon: float, attacks: tuple[str, ...], seed: int, num_classes: int,
                square_queries: int, device: torch.device):
    """A configured ``pyautoattack.AutoAttack`` running ``attacks`` with the standard version's parameters."""
    from pyautoattack import AutoAttack

    if attacks == AUTOATTACK_SUITES["standard"]:
        attack = AutoAttack(classifier, norm="Linf", eps=epsilon, version="standard", device=device, seed=seed)
    else:
        attack = AutoAttack(classifier, norm="Linf", eps=epsilon, version="custom", attacks=list(attacks),
                            device=device, seed=seed)
        attack.apgd.n_restarts = 1  # the standard version's settings for the attacks it shares
        attack.apgd_targeted.n_restarts = 1
        attack.fab.n_restarts = 1
    targets = max(1, min(9, num_classes - 1))  # APGD-T / FAB-T: the top-9 other classes (fewer when K < 10)
    attack.apgd_targeted.n_target_classes = targets
    attack.fab.n_target_classes = targets
    attack.square.n_queries = square_queries
    attack.verbose = False
    return attack


def autoattack_flags(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
                     suite: str = "standard", seed: int = 0, num_classes: int = 10, square_queries: int = 5000,
                     batch_size: int = 250) -> torch.Tensor:
    """(N,) bool robust set under an AutoAttack suite (`AUTOATTACK_SUITES`): robust only if all its attacks fail.

    ``standard`` is the published ensemble (APGD-CE, APGD-T, FAB-T, Square 5000 queries); the others
    are cheaper subsets for CPU sweeps, with the same per-attack parameters. ``square`` alone is the
    gradient-free attack. Deterministic given ``seed``; torch's global RNG state is restored afterwards.
    """
    require_autoattack()
    if suite not in AUTOATTACK_SUITES:
        raise ConfigError(f"autoattack_suite: unknown value {suite!r}; allowed: {', '.join(AUTOATTACK_SUITES)}")
    if len(images) == 0:
        return torch.zeros(0, dtype=torch.bool, device=images.device)
    devices = [images.device.index or 0] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its checks also log through the 'auto-attack' logger
        attack = _autoattack(classifier, epsilon, AUTOATTACK_SUITES[suite], seed, num_classes, square_queries,
                             images.device)
        x_adv, _ = attack.run_standard_evaluation(images, labels, batch_size=batch_size)
    x_adv = torch.min(torch.max(x_adv, images - epsilon), images + epsilon).clamp(0.0, 1.0)  # guard the ball
    return correct_flags(classifier, x_adv, labels)
