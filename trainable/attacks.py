"""L-infinity attacks: PGD on any loss, and the persistent free-AT perturbation (docs/METHOD.md 2, 3, 4).

Pixels are in [0, 1]; every perturbation is kept inside the epsilon ball and the [0, 1] box.
"""

from __future__ import annotations

from typing import Callable

import torch


def project(delta: torch.Tensor, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Clip ``delta`` to [-eps, eps], then so that ``x + delta`` lies in [0, 1]. Shapes as ``x``."""
    delta = delta.clamp(-epsilon, epsilon)
    return (x + delta).clamp(0.0, 1.0) - x


@torch.no_grad()
def _signed_step_(grad: torch.Tensor, delta: torch.Tensor, x: torch.Tensor, alpha: float,
                  epsilon: float) -> torch.Tensor:
    """``project(delta + alpha * sign(grad), x, eps)`` computed in ``grad``'s buffer, which it returns.

    Bit-for-bit the same values as the out-of-place form, without allocating any new per-input buffer
    (the step runs once per replay of every free-AT minibatch and per PGD step). ``grad`` is consumed.
    """
    if not (grad.is_contiguous() or grad.is_contiguous(memory_format=torch.channels_last)):
        grad = grad.clone()  # e.g. an expanded gradient (loss = x.sum()): not writable in place
    return grad.sign_().mul_(alpha).add_(delta).clamp_(-epsilon, epsilon).add_(x).clamp_(0.0, 1.0).sub_(x)


def pgd_linf(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    epsilon: float,
    alpha: float,
    steps: int,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    accumulate_param_grads: bool = False,
) -> torch.Tensor:
    """Maximise ``loss_fn(x + delta)`` over ||delta||_inf <= eps, x + delta in [0, 1]; return delta.

    ``loss_fn`` maps perturbed inputs (same shape as ``x``) to a scalar: the label-free SSL loss in
    pre-training, cross-entropy in evaluation. Zero start (the method's) or uniform random start.
    Each step: ``delta <- project(delta + alpha * sign(grad))``. Gradients are taken w.r.t. delta
    only, unless ``accumulate_param_grads`` (the reference's PGD quirk, METHOD.md 2): then each step's
    backward also adds into the parameters' ``.grad``. Returns a detached delta shaped like ``x``.
    """
    if random_start:
        where = generator.device if generator is not None else x.device  # a CPU generator may drive a GPU attack
        noise = torch.rand(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)
        delta = project((2 * noise - 1) * epsilon, x, epsilon)
    else:
        delta = torch.zeros_like(x)
    for _ in range(steps):
        delta = delta.detach().requires_grad_(True)
        loss = loss_fn(x + delta)
        if accumulate_param_grads:
            loss.backward()
            grad = delta.grad
        else:
            (grad,) = torch.autograd.grad(loss, delta)
        assert grad is not None  # the loss depends on delta
        delta.grad = None
        delta = _signed_step_(grad, delta.detach(), x, alpha, epsilon)
    return delta.detach()


class FreePerturbation:
    """The free-AT perturbation: one delta buffer carried across replays, minibatches and epochs (METHOD.md 3.2).

    ``delta`` has the shape of the perturbed batch, e.g. (C*B, 3, 32, 32) for EMP (one slice per
    crop slot). It is created as zeros on first use and never reset afterwards.
    """

    def __init__(self, epsilon: float, alpha: float) -> None:
        self.epsilon = epsilon
        self.alpha = alpha
        self.delta: torch.Tensor | None = None

    def perturb(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x + delta, delta_leaf): the input to train on and the leaf that will receive dL/d delta."""
        if self.delta is None:
            self.delta = torch.zeros_like(x)
        if self.delta.shape != x.shape:
            raise ValueError(f"free-AT delta has shape {tuple(self.delta.shape)}, batch has {tuple(x.shape)}")
        leaf = self.delta.detach().requires_grad_(True)
        return x + leaf, leaf

    @torch.no_grad()
    def ascend(self, x: torch.Tensor, leaf: torch.Tensor) -> None:
        """delta <- project(delta + alpha * sign(dL/d delta)) onto the eps ball and THIS minibatch's box."""
        grad = leaf.grad
        if grad is None:
            raise RuntimeError("free-AT ascent needs dL/d delta: call backward() on the loss first")
        leaf.grad = None
        # In the gradient's buffer: the delta stays the only persistent per-crop buffer (no copies).
        self.delta = _signed_step_(grad, leaf.detach(), x, self.alpha, self.epsilon)

    def state_dict(self) -> dict:
        return {"delta": None if self.delta is None else self.delta.detach().cpu()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        delta = state.get("delta")
        self.delta = None if delta is None else delta.to(device)
