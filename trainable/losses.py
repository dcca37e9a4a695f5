"""The self-supervised losses as pure functions on embeddings (docs/METHOD.md sections 1.3, 3.3).

Embeddings of C crops of B images are crop-major: rows ``[c*B, (c+1)*B)`` of a ``(C*B, d)`` tensor
hold crop c of images 0..B-1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _coding_rate_scale(batch: int, dim: int, eps: float) -> float:
    # The reference multiplies by d / (B * eps) with eps = 0.2 (= eps^2 of the EMP-SSL paper).
    return dim / (batch * eps)


def total_coding_rate(z: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """R(Z) = 1/2 logdet(I_d + d/(B*eps) Z^T Z) for one chunk ``z`` of shape (B, d) (METHOD.md 1.3).

    Computed in the B x B form ``1/2 logdet(I_B + a Z Z^T)`` when B < d (Sylvester's identity: equal
    value and gradient, cheaper). Also accepts a stack of chunks (C, B, d) and returns (C,).
    """
    batch, dim = z.shape[-2], z.shape[-1]
    scale = _coding_rate_scale(batch, dim, eps)
    if batch < dim:
        gram = z @ z.transpose(-1, -2)  # (..., B, B)
    else:
        gram = z.transpose(-1, -2) @ z  # (..., d, d)
    eye = torch.eye(gram.shape[-1], device=z.device, dtype=z.dtype)
    return 0.5 * torch.logdet(eye + scale * gram)


def total_coding_rate_full(z: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """The d x d form of `total_coding_rate`, exactly as written in the spec (for tests, benchmarks)."""
    batch, dim = z.shape[-2], z.shape[-1]
    eye = torch.eye(dim, device=z.device, dtype=z.dtype)
    return 0.5 * torch.logdet(eye + _coding_rate_scale(batch, dim, eps) * z.transpose(-1, -2) @ z)


def _chunks(z: torch.Tensor, num_crops: int) -> torch.Tensor:
    """(C*B, d) crop-major -> (C, B, d)."""
    if z.dim() != 2 or z.shape[0] % num_crops:
        raise ValueError(f"expected (C*B, d) embeddings with C={num_crops}, got shape {tuple(z.shape)}")
    return z.reshape(num_crops, z.shape[0] // num_crops, z.shape[1])


def invariance_loss(z: torch.Tensor, num_crops: int) -> torch.Tensor:
    """-(mean over crops and images of cos(z_{c,b}, mean_c z_{c,b})), a value in [-1, 1] (METHOD.md 1.3).

    ``z``: (C*B, d) crop-major. The per-image mean is not re-normalised and gradients flow through it.
    """
    chunks = _chunks(z, num_crops)  # (C, B, d)
    mean = chunks.mean(dim=0, keepdim=True)  # (1, B, d)
    return -F.cosine_similarity(chunks, mean, dim=-1).mean()


def emp_loss(
    z: torch.Tensor,
    num_crops: int,
    lambda_inv: float = 200.0,
    lambda_tcr: float = 1.0,
    eps: float = 0.2,
) -> torch.Tensor:
    """L_EMP = lambda_inv * invariance_loss - lambda_tcr * mean_c R(Z_c) for crop-major ``z`` (C*B, d)."""
    tcr = total_coding_rate(_chunks(z, num_crops), eps=eps).mean()
    return lambda_inv * invariance_loss(z, num_crops) - lambda_tcr * tcr


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """NT-Xent (SupCon with no labels, contrast_mode 'all', METHOD.md 3.3) for two views (B, d) each.

    Each of the 2B embeddings is classified against the other 2B-1 by cosine similarity / temperature;
    its positive is the other view of the same image. Returns the mean cross-entropy (>= 0).
    """
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)  # (2B, d)
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(z.device)
    return F.cross_entropy(logits, positives)
