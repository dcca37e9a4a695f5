"""One training step per method: objective (emp | simclr) x adversary (none | pgd | free) x views.

METHOD_SPEC.md sections 1-3. CF-AMC-SSL = emp + free + crop; robust EMP-SSL = emp + pgd(5) + crop.
Every step takes a minibatch of full images (B, 3, H, W) in [0, 1], makes the views on the
training device (crop-major (C*B, 3, 32, 32)) and updates the model.
"""

from __future__ import annotations

import torch
from torch import nn

from .attacks import FreePerturbation, pgd_linf
from .config import TrialConfig
from .losses import emp_loss, nt_xent
from .optim import LARSWrapper
from .views import make_views, recipe_for


def equal_budget_epochs(epochs: int, replay_steps: int) -> int:
    """Epochs of a free-AT run with the cost of ``epochs`` clean epochs: round(E / m), at least 1 (spec 3.2)."""
    return max(1, round(epochs / replay_steps))


def ssl_loss(model: nn.Module, views: torch.Tensor, config: TrialConfig) -> torch.Tensor:
    """The objective on crop-major views (C*B, 3, H, W), one train-mode forward: EMP or NT-Xent."""
    z = model(views).z
    if config.objective == "emp":
        return emp_loss(z, config.num_crops, lambda_inv=config.lambda_inv, lambda_tcr=config.lambda_tcr,
                        eps=config.tcr_eps)
    half = z.shape[0] // 2
    return nt_xent(z[:half], z[half:], temperature=config.temperature)


class TrainingMethod:
    """Holds what persists between steps (optimiser, schedule, free-AT delta) and runs one step."""

    def __init__(
        self,
        config: TrialConfig,
        model: nn.Module,
        optimizer: LARSWrapper,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        view_generator: torch.Generator,
    ) -> None:
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.view_generator = view_generator
        self.objective, self.adversary, self.view_family = config.resolved
        self.recipe = recipe_for(self.objective, self.view_family)
        self.perturbation = FreePerturbation(config.epsilon, config.alpha) if self.adversary == "free" else None

    def ssl_loss(self, views: torch.Tensor) -> torch.Tensor:
        return ssl_loss(self.model, views, self.config)

    # --- one minibatch -----------------------------------------------------------------------------
    def step(self, images: torch.Tensor) -> torch.Tensor:
        """Train on one minibatch (B, 3, H, W); return the mean training loss of its updates (0-d, detached)."""
        self.model.train()
        views = make_views(images, self.config.num_crops, self.recipe, self.view_generator)
        if self.adversary == "none":
            return self._update(views)
        if self.adversary == "pgd":
            return self._pgd_step(views)
        return self._free_step(views)

    def _update(self, inputs: torch.Tensor, zero_grad: bool = True) -> torch.Tensor:
        if zero_grad:
            self.optimizer.zero_grad()
        loss = self.ssl_loss(inputs)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    def _attacked_part(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean part, attacked part): EMP attacks every crop; SimCLR attacks view 2 only (spec 3.3)."""
        if self.objective == "emp":
            return views[:0], views
        half = views.shape[0] // 2
        return views[:half], views[half:]

    def _pgd_step(self, views: torch.Tensor) -> torch.Tensor:
        """K-step PGD on the SSL loss from zero, then one update on the adversarial views (spec 2)."""
        c = self.config
        clean, attacked = self._attacked_part(views)
        if self.objective == "emp":
            def attack_loss(x_adv: torch.Tensor) -> torch.Tensor:
                return self.ssl_loss(x_adv)
        else:
            with torch.no_grad():
                z_clean = self.model(attacked).z

            def attack_loss(x_adv: torch.Tensor) -> torch.Tensor:
                return nt_xent(z_clean, self.model(x_adv).z, temperature=c.temperature)

        self.optimizer.zero_grad()  # the quirk accumulates the attack's parameter grads from here on
        delta = pgd_linf(attack_loss, attacked, c.epsilon, c.alpha, c.pgd_steps,
                         accumulate_param_grads=c.accumulate_attack_grads)
        return self._update(torch.cat([clean, attacked + delta]), zero_grad=not c.accumulate_attack_grads)

    def _free_step(self, views: torch.Tensor) -> torch.Tensor:
        """m replays; each is one forward/backward giving parameter and delta gradients (spec 3.2)."""
        assert self.perturbation is not None
        clean, attacked = self._attacked_part(views)
        total = torch.zeros((), device=views.device)
        for _ in range(self.config.replay_steps):
            self.optimizer.zero_grad()
            x_adv, leaf = self.perturbation.perturb(attacked)
            loss = self.ssl_loss(torch.cat([clean, x_adv]))
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.perturbation.ascend(attacked, leaf)
            total += loss.detach()
        return total / self.config.replay_steps
