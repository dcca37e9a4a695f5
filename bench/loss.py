"""EMP loss (BENCHMARKS.md item 3): forward + backward with the B x B (Sylvester) TCR vs the d x d TCR.

``trainable.losses.emp_loss`` computes R(Z_c) = 1/2 logdet(I_d + a Z^T Z) as 1/2 logdet(I_B + a Z Z^T)
(equal by Sylvester's identity) when B < d. Here: B = 100 images, C = 16 crops, d = 1024 (the paper's
z), float32, on random unit-norm embeddings; both forms timed interleaved, medians; values and
gradients compared in the same run.
"""

from __future__ import annotations

import torch

from bench.common import interleaved, markdown, median, run_main, spread, table
from trainable.losses import invariance_loss, total_coding_rate, total_coding_rate_full


def emp_loss_with(tcr, z: torch.Tensor, crops: int, lambda_inv: float = 200.0, lambda_tcr: float = 1.0,
                  eps: float = 0.2) -> torch.Tensor:
    """L_EMP of crop-major z (C*B, d) with the given TCR function (the same formula as `emp_loss`)."""
    chunks = z.reshape(crops, z.shape[0] // crops, z.shape[1])
    return lambda_inv * invariance_loss(z, crops) - lambda_tcr * tcr(chunks, eps=eps).mean()


def value_and_grad(tcr, z: torch.Tensor, crops: int) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = z.detach().requires_grad_(True)
    loss = emp_loss_with(tcr, leaf, crops)
    loss.backward()
    return loss.detach(), leaf.grad


def embeddings(batch: int, crops: int, dim: int, seed: int = 0) -> torch.Tensor:
    z = torch.randn(crops * batch, dim, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(z, dim=1)


def compare(batch: int, crops: int, dim: int) -> dict[str, float]:
    """Relative value difference and max relative gradient difference (float32), with a float64 reference."""
    z = embeddings(batch, crops, dim)
    v_small, g_small = value_and_grad(total_coding_rate, z, crops)
    v_full, g_full = value_and_grad(total_coding_rate_full, z, crops)
    v_ref, g_ref = value_and_grad(total_coding_rate_full, z.double(), crops)
    scale = g_ref.abs().max()

    def grad_diff(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.double() - b.double()).abs().max() / scale).item()

    return {
        "value_rel_diff": abs(v_small.item() - v_full.item()) / abs(v_full.item()),
        "grad_max_rel_diff": grad_diff(g_small, g_full),
        "value_small_vs_f64": abs(v_small.item() - v_ref.item()) / abs(v_ref.item()),
        "value_full_vs_f64": abs(v_full.item() - v_ref.item()) / abs(v_ref.item()),
        "grad_small_vs_f64": grad_diff(g_small, g_ref),
        "grad_full_vs_f64": grad_diff(g_full, g_ref),
        "value": v_full.item(),
    }


def run(quick: bool = False) -> str:
    batch, crops, dim = (8, 4, 64) if quick else (100, 16, 1024)
    repeats = 2 if quick else 7
    z = embeddings(batch, crops, dim, seed=1)
    times = interleaved({
        "B x B (Sylvester, ours)": lambda: value_and_grad(total_coding_rate, z, crops),
        "d x d (as written in the spec)": lambda: value_and_grad(total_coding_rate_full, z, crops),
    }, repeats)
    speedup = median(times["d x d (as written in the spec)"]) / median(times["B x B (Sylvester, ours)"])
    diff = compare(batch, crops, dim)
    rows = [
        (f"EMP loss fwd+bwd, d x d / B x B time (B={batch}, C={crops}, d={dim})", f"{speedup:.1f}x", ">= 5x",
         speedup >= 5),
        ("relative value difference, float32", f"{diff['value_rel_diff']:.2e}", "<= 1e-4",
         diff["value_rel_diff"] <= 1e-4),
        ("max gradient difference relative to the largest gradient entry, float32", f"{diff['grad_max_rel_diff']:.2e}", "reported",
         None),
    ]
    lines = [table(rows), ""]
    lines += markdown(("form", "fwd+bwd time"), [(k, spread(v)) for k, v in times.items()])
    lines.append("")
    lines.append(f"Against a float64 d x d reference: value rel. error B x B {diff['value_small_vs_f64']:.1e}, "
                 f"d x d {diff['value_full_vs_f64']:.1e}; gradient (max abs diff / max |grad|) B x B "
                 f"{diff['grad_small_vs_f64']:.1e}, d x d {diff['grad_full_vs_f64']:.1e}. Loss value "
                 f"{diff['value']:.4f} on random unit-norm embeddings; {repeats} interleaved repetitions.")
    return "\n".join(lines)


def main() -> None:
    run_main("EMP loss: B x B vs d x d total coding rate", "bench.loss: EMP loss, B x B vs d x d", run)


if __name__ == "__main__":
    main()
