"""SGD (Nesterov) inside a LARS wrapper, and the cosine schedule (docs/METHOD.md 1.4, 3.2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR


class LARSWrapper:
    """Layer-wise adaptive rate scaling around an inner optimiser (METHOD.md 1.4).

    Per step, for every parameter with ndim != 1 whose weight and gradient norms are non-zero:
    ``scale = eta*|p| / (|g| + wd*|p| + eps)``, clipped to ``min(scale / lr, 1)``, and the gradient
    becomes ``(g + wd*p) * scale``; then the inner step runs with weight decay 0. 1-D parameters
    (biases, BN) therefore get no weight decay and no LARS scaling.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, eta: float = 0.005, clip: bool = True, eps: float = 1e-8):
        self.optim = optimizer
        self.eta = eta
        self.clip = clip
        self.eps = eps

    @property
    def param_groups(self) -> list[dict]:
        return self.optim.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optim.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)

    @torch.no_grad()
    def step(self) -> None:
        saved_wd = []
        for group in self.optim.param_groups:
            wd = group["weight_decay"]
            saved_wd.append(wd)
            group["weight_decay"] = 0.0
            for p in group["params"]:
                if p.grad is None or p.ndim == 1:
                    continue
                p_norm = torch.linalg.vector_norm(p)
                g_norm = torch.linalg.vector_norm(p.grad)
                local = self.eta * p_norm / (g_norm + wd * p_norm + self.eps)
                if self.clip:
                    local = torch.clamp(local / group["lr"], max=1.0)
                # Zero norms leave the gradient untouched, as in the reference wrapper.
                valid = (p_norm > 0) & (g_norm > 0)
                scale = torch.where(valid, local, torch.ones_like(local))
                p.grad.add_(p * torch.where(valid, wd, 0.0)).mul_(scale)
        try:
            self.optim.step()
        finally:
            for group, wd in zip(self.optim.param_groups, saved_wd):
                group["weight_decay"] = wd


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, eta: float) -> LARSWrapper:
    """SGD(lr, momentum, Nesterov, weight_decay) in LARS(eta, clip) over all parameters (METHOD.md 1.4)."""
    sgd = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    return LARSWrapper(sgd, eta=eta, clip=True)


def schedule_length(steps_per_epoch: int, epochs: int, replay_steps: int, free: bool, faithful_schedule: bool) -> int:
    """T_max of the cosine schedule, in scheduler steps (one per optimiser step).

    Free AT takes m optimiser steps per minibatch, so T_max = steps_per_epoch * epochs * m. The
    reference omits the factor m (cyclic LR, METHOD.md 3.2); ``faithful_schedule=True`` reproduces that.
    """
    length = steps_per_epoch * epochs
    if free and not faithful_schedule:
        length *= replay_steps
    return max(1, length)


def build_scheduler(optimizer: LARSWrapper, t_max: int) -> CosineAnnealingLR:
    """Cosine annealing to 0 over ``t_max`` steps, no warm-up, stepped per optimiser step."""
    return CosineAnnealingLR(optimizer.optim, T_max=t_max, eta_min=0.0)
