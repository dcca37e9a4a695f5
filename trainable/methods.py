"""One training step per method: objective (emp | simclr) x adversary (none | pgd | free) x views.

docs/METHOD.md sections 1-3. CF-AMC-SSL = emp + free + crop; robust EMP-SSL = emp + pgd(5) + crop.
Every step takes a minibatch of full images (B, 3, H, W) in [0, 1], makes the views on the
training device (crop-major (C*B, 3, 32, 32)) and updates the model.

Execution (`TrialConfig.execution_plan`, the GPU path): the encoder's forward may run under bf16
autocast, in channels-last layout and/or through ``torch.compile``; embeddings, losses, the
adversarial perturbations and the optimiser stay float32. The passes whose input gradient moves a
perturbation (free-AT replays, PGD steps) run in ``attack_precision`` (fp32 by default), not in
``precision``. Nothing in a step copies between host
and device or syncs with the host; the free-AT step's only per-crop buffers besides the views are
the forward's activations, the input gradient and the persistent delta (updated in place).
"""

from __future__ import annotations

import contextlib
from typing import cast

import torch
from torch import nn

from .attacks import FreePerturbation, pgd_linf
from .config import TrialConfig
from .losses import emp_loss, nt_xent
from .optim import LARSWrapper
from .views import make_views, recipe_for


def equal_budget_epochs(epochs: int, replay_steps: int) -> int:
    """Epochs of a free-AT run with the cost of ``epochs`` clean epochs: round(E / m), at least 1 (METHOD.md 3.2)."""
    return max(1, round(epochs / replay_steps))


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def embed(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The L2-normalised projections z (N, z_dim) in float32; the forward under ``amp_dtype`` autocast if given."""
    with autocast(x.device, amp_dtype):
        z = model(x).z
    return z.float()


def ssl_loss(model: nn.Module, views: torch.Tensor, config: TrialConfig,
             amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The objective on crop-major views (C*B, 3, H, W) in train mode: EMP or NT-Xent.

    EMP: one forward over all C*B views (the reference's). SimCLR: one forward per view, so each view
    has its own BatchNorm batch statistics, as the reference calls the network on x1 and x2 separately
    (docs/METHOD.md section 3.3). ``amp_dtype`` (e.g. torch.bfloat16): autocast for the encoder's
    forward only; the loss is float32.
    """
    if config.objective == "emp":
        z = embed(model, views, amp_dtype)
        return emp_loss(z, config.num_crops, lambda_inv=config.lambda_inv, lambda_tcr=config.lambda_tcr,
                        eps=config.tcr_eps)
    half = views.shape[0] // 2
    z1, z2 = embed(model, views[:half], amp_dtype), embed(model, views[half:], amp_dtype)
    return nt_xent(z1, z2, temperature=config.temperature)


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast can run on ``device``: always on CPU; on CUDA when the GPU supports bf16."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return True


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
        device = next(model.parameters()).device
        self.plan = config.execution_plan(device.type, bf16_supported(device))
        self.amp_dtype = torch.bfloat16 if self.plan.precision == "bf16" else None
        self.attack_amp_dtype = torch.bfloat16 if self.plan.attack_precision == "bf16" else None
        self.memory_format = torch.channels_last if self.plan.channels_last else torch.contiguous_format
        if self.plan.channels_last:
            model.to(memory_format=torch.channels_last)  # in place: the optimiser's parameters stay the same
        # The training forward; the uncompiled `model` keeps the state dict (checkpoints) and evaluation.
        self.forward = cast(nn.Module, torch.compile(model)) if self.plan.compile else model

    def ssl_loss(self, views: torch.Tensor, attack: bool = False) -> torch.Tensor:
        """The objective in the training precision, or (``attack``) in the attack precision."""
        return ssl_loss(self.forward, views, self.config, self.attack_amp_dtype if attack else self.amp_dtype)

    def embed(self, x: torch.Tensor, attack: bool = False) -> torch.Tensor:
        return embed(self.forward, x, self.attack_amp_dtype if attack else self.amp_dtype)

    # --- one minibatch -----------------------------------------------------------------------------
    def step(self, images: torch.Tensor) -> torch.Tensor:
        """Train on one minibatch (B, 3, H, W); return the mean training loss of its updates (0-d, detached)."""
        self.model.train()
        views = make_views(images, self.config.num_crops, self.recipe, self.view_generator)
        if self.plan.channels_last:
            views = views.contiguous(memory_format=self.memory_format)
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

    def _attacked_part(self, views: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(clean part, attacked part): EMP attacks every crop (no clean part); SimCLR view 2 only (METHOD.md 3.3)."""
        if self.objective == "emp":
            return None, views
        half = views.shape[0] // 2
        return views[:half], views[half:]

    @staticmethod
    def _join(clean: torch.Tensor | None, attacked: torch.Tensor) -> torch.Tensor:
        """The training input: the attacked part alone (EMP, no copy) or after the clean part (SimCLR)."""
        return attacked if clean is None else torch.cat([clean, attacked])

    def _pgd_step(self, views: torch.Tensor) -> torch.Tensor:
        """K-step PGD on the SSL loss from zero, then one update on the adversarial views (METHOD.md 2)."""
        c = self.config
        clean, attacked = self._attacked_part(views)
        if self.objective == "emp":
            def attack_loss(x_adv: torch.Tensor) -> torch.Tensor:
                return self.ssl_loss(x_adv, attack=True)
        else:
            with torch.no_grad():
                z_clean = self.embed(attacked, attack=True)

            def attack_loss(x_adv: torch.Tensor) -> torch.Tensor:
                return nt_xent(z_clean, self.embed(x_adv, attack=True), temperature=c.temperature)

        self.optimizer.zero_grad()  # the quirk accumulates the attack's parameter grads from here on
        delta = pgd_linf(attack_loss, attacked, c.epsilon, c.alpha, c.pgd_steps,
                         accumulate_param_grads=c.accumulate_attack_grads)
        x_adv = delta.add_(attacked)  # attacked + delta, in delta's buffer
        return self._update(self._join(clean, x_adv), zero_grad=not c.accumulate_attack_grads)

    def _free_step(self, views: torch.Tensor) -> torch.Tensor:
        """m replays; each is one forward/backward giving parameter and delta gradients (METHOD.md 3.2)."""
        assert self.perturbation is not None
        clean, attacked = self._attacked_part(views)
        total = torch.zeros((), device=views.device)
        for _ in range(self.config.replay_steps):
            self.optimizer.zero_grad()
            x_adv, leaf = self.perturbation.perturb(attacked)
            loss = self.ssl_loss(self._join(clean, x_adv), attack=True)  # its input gradient moves delta
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.perturbation.ascend(attacked, leaf)
            total += loss.detach()
        return total / self.config.replay_steps
