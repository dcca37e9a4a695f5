"""The GPU check (BENCHMARKS.md item 9): one command, torch and `trainable` only (no Ray, Optuna or MLflow).

On a CUDA machine (``python -m bench.gpu``, a few minutes on one GPU):

1. bf16 vs fp32 attack gradients: the sign agreement of d(SSL loss)/d(input) under bf16 autocast and
   in fp32 (the free-AT and PGD steps only use its sign), on the paper preset's model and crops;
2. its effect on one epoch's robust accuracy: one short epoch trained with ``precision=fp32`` and with
   ``precision=bf16`` from the same seed, then the same evaluation;
3. the paper preset's time per weight update, CF-AMC-SSL (m replays per minibatch) vs robust EMP-SSL
   with PGD-5 (its cost-free ratio on this GPU);
4. throughput of 1, 2 and 4 trial processes sharing the GPU (what fractional ``resources.gpu`` does):
   updates per second of all processes together;
5. peak GPU memory of one paper-preset update (``torch.cuda.max_memory_allocated``).

``--quick`` runs every part on the tiny preset, cut further, on whatever device there is (CPU here):
it checks the code runs, its numbers mean nothing. Without a GPU the full run says so and measures on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MARK = "BENCH-GPU "
TINY = dict(width=4, feature_dim=16, hidden_dim=16, z_dim=8, batch_size=4, num_crops=2)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _method(method: str, quick: bool, device: str, **extra: Any) -> tuple[Any, Any, Any]:
    """(TrainingMethod, images, config) at the paper preset's sizes (tiny with `quick`), random images."""
    import torch

    from trainable.config import preset
    from trainable.methods import TrainingMethod
    from trainable.model import build_encoder
    from trainable.optim import build_optimizer, build_scheduler

    sizes = dict(TINY, replay_steps=2, pgd_steps=2) if quick else {}
    config = preset("tiny" if quick else "paper", method=method, dataset="synthetic", device=device,
                    **{**sizes, **extra})
    torch.manual_seed(0)
    model = build_encoder(config).to(device)
    optimizer = build_optimizer(model, config.lr, config.momentum, config.weight_decay, config.lars_eta)
    scheduler = build_scheduler(optimizer, 10_000)
    method_obj = TrainingMethod(config, model, optimizer, scheduler, torch.Generator(device=device).manual_seed(1))
    images = torch.rand(config.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(2)).to(device)
    return method_obj, images, config


def sign_agreement(quick: bool, device: str) -> float:
    """Share of input-gradient elements whose sign is the same under bf16 autocast and in fp32."""
    import torch

    from trainable.methods import ssl_loss
    from trainable.views import make_views, recipe_for

    method, images, config = _method("cf-amc-ssl", quick, device)
    model = method.model
    views = make_views(images, config.num_crops, recipe_for("emp", "crop"),
                       torch.Generator(device=device).manual_seed(3))
    grads = []
    for dtype in (None, torch.bfloat16):
        x = views.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(ssl_loss(model, x, config, amp_dtype=dtype), x)
        grads.append(grad.sign())
    nonzero = (grads[0] != 0) | (grads[1] != 0)
    return float((grads[0] == grads[1])[nonzero].float().mean()) if nonzero.any() else 1.0


def one_epoch_robust_acc(quick: bool, device: str) -> dict[str, float]:
    """robust_acc (and clean_acc) after one epoch at each precision, same seed and data."""
    from trainable.loop import train

    sizes = dict(TINY, train_images=16, eval_images=8, probe_epochs=1, eval_pgd_steps=1) if quick else \
        dict(train_images=2000, eval_images=500, probe_epochs=20, eval_pgd_steps=10)
    out = {}
    for precision in ("fp32", "bf16"):
        from trainable.config import preset

        config = preset("tiny" if quick else "paper", method="cf-amc-ssl", dataset="synthetic", device=device,
                        epochs=1, precision=precision, **sizes)
        metrics = train(config)
        out[f"{precision}.robust_acc"] = float(metrics["robust_acc"])
        out[f"{precision}.clean_acc"] = float(metrics["clean_acc"])
    return out


def update_seconds(method: str, quick: bool, device: str, repeats: int) -> tuple[float, int]:
    """(median seconds per weight update, peak memory in bytes) of `method` at the paper preset's sizes."""
    import statistics

    import torch

    step, images, config = _method(method, quick, device)
    updates = config.replay_steps if method == "cf-amc-ssl" else 1
    step.step(images)  # warm-up (cuDNN autotuning, allocator)
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step.step(images)
        _sync(device)
        times.append((time.perf_counter() - start) / updates)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    return statistics.median(times), peak


def _child(quick: bool, device: str, seconds: float) -> None:
    """One trial process of the sharing test: CF-AMC-SSL updates for `seconds`; prints updates/s."""
    step, images, config = _method("cf-amc-ssl", quick, device, threads=1)
    step.step(images)
    _sync(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step.step(images)
        done += config.replay_steps
    _sync(device)
    print(MARK + json.dumps({"updates_per_s": done / (time.perf_counter() - start)}), flush=True)


def sharing(quick: bool, device: str, counts: tuple[int, ...], seconds: float) -> dict[int, float]:
    """Total updates/s of `n` trial processes running at once on the device, for each n in `counts`."""
    out = {}
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for n in counts:
        cmd = [sys.executable, "-m", "bench.gpu", "--child", device, repr(seconds)] + (["--quick"] if quick else [])
        procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        total = 0.0
        for proc in procs:
            stdout, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"sharing child failed (exit {proc.returncode})")
            total += json.loads([ln for ln in stdout.splitlines() if ln.startswith(MARK)][-1][len(MARK):])["updates_per_s"]
        out[n] = total
    return out


def run(quick: bool = False) -> str:
    from bench.common import markdown, table

    device = _device()
    repeats = 2 if quick else 10
    agree = sign_agreement(quick, device)
    accs = one_epoch_robust_acc(quick, device)
    free, free_peak = update_seconds("cf-amc-ssl", quick, device, repeats)
    pgd, pgd_peak = update_seconds("robust-emp-ssl", quick, device, repeats)
    shared = sharing(quick, device, (1, 2) if quick else (1, 2, 4), 2.0 if quick else 30.0)
    gib = 1024 ** 3
    rows = [
        ("bf16 vs fp32 attack-gradient sign agreement", f"{agree:.4f}", ">= 0.99", agree >= 0.99),
        ("robust_acc after one epoch, fp32 / bf16",
         f"{accs['fp32.robust_acc']:.4f} / {accs['bf16.robust_acc']:.4f}", "reported", None),
        ("paper preset: seconds per update, CF-AMC-SSL", f"{free:.4f}", "reported", None),
        ("paper preset: seconds per update, PGD-5 robust EMP-SSL", f"{pgd:.4f}", "reported", None),
        ("PGD-5 / CF-AMC-SSL per update (the cost-free ratio)", f"{pgd / free:.2f}", ">= 5 on a GPU", None),
        ("peak GPU memory of one update, CF-AMC-SSL / PGD-5",
         f"{free_peak / gib:.2f} / {pgd_peak / gib:.2f} GiB" if device == "cuda" else "n/a (no GPU)", "reported", None),
    ]
    lines = [table(rows), "", "Trial processes sharing the device (total CF-AMC-SSL updates per second):", ""]
    base = shared[min(shared)]
    lines += markdown(("processes", "updates/s, all together", "vs one process"),
                      [(n, f"{v:.2f}", f"{v / base:.2f}x") for n, v in shared.items()])
    where = "on the GPU" if device == "cuda" else "on the CPU: no GPU here, these are not GPU figures"
    lines += ["", f"Device: {device} ({where}); sizes: {'tiny (--quick)' if quick else 'the paper preset'}."]
    return "\n".join(lines)


def main() -> None:
    if "--child" in sys.argv:
        p = argparse.ArgumentParser()
        p.add_argument("--child", nargs=2, metavar=("DEVICE", "SECONDS"))
        p.add_argument("--quick", action="store_true")
        a = p.parse_args()
        _child(a.quick, a.child[0], float(a.child[1]))
        return
    from bench.common import header, parser

    args = parser("The GPU check: bf16 gradients, paper-preset update times, GPU sharing, peak memory").parse_args()
    header("bench.gpu: the GPU check", args.quick)
    print(run(args.quick))


if __name__ == "__main__":
    main()
