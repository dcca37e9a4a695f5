"""Memory (BENCHMARKS.md item 6): peak memory of a CF-AMC-SSL step (demo and paper sizes) and the persistent buffers.

Each measurement runs in a fresh child process (``--child``): build the encoder, optimiser and
TrainingMethod at the preset's sizes on random images, note the RSS, run one CF-AMC-SSL step
(views + m replays), and report the peak RSS (``ru_maxrss``) minus the RSS before the step. The
paper preset (ResNet-18 full width, 16 crops x 100 images = 1600 crops of 32x32) is measured at a
few smaller batches and extrapolated linearly in the batch (activations grow linearly with the
crops); ``--paper-batches 100`` measures it directly if the machine has the memory (~15+ GB).

The demo preset is also measured for a whole trial (``train()``: training + evaluation) in a child.

Persistent buffers: after a step, every live tensor (``gc``) with C*B rows, i.e. one per crop, is
listed: the free-AT delta (C*B, 3, 32, 32) should be the only one (the views, x + delta, activations
and the input gradient are freed when the step returns).
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import warnings
from typing import Any

from bench.common import header, markdown, parser, table

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
MARK = "BENCH-MEMORY "
MB = 1024 * 1024


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def build(preset_name: str, **overrides: Any):
    """(method, images) of a CF-AMC-SSL trial at the preset's sizes, on random images (no dataset needed)."""
    import torch

    from trainable.config import preset
    from trainable.methods import TrainingMethod
    from trainable.model import build_encoder
    from trainable.optim import build_optimizer, build_scheduler

    config = preset(preset_name, method="cf-amc-ssl", dataset="synthetic", **overrides)
    torch.manual_seed(0)
    model = build_encoder(config)
    optimizer = build_optimizer(model, config.lr, config.momentum, config.weight_decay, config.lars_eta)
    scheduler = build_scheduler(optimizer, 1000)
    method = TrainingMethod(config, model, optimizer, scheduler, torch.Generator().manual_seed(1))
    images = torch.rand(config.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    return method, images


def per_crop_tensors(method: Any) -> list[tuple[str, tuple[int, ...]]]:
    """Live tensors with num_crops * batch rows after a step, named where TrainingMethod holds them."""
    import torch

    rows = method.config.num_crops * method.config.batch_size
    known = {}
    if method.perturbation is not None and method.perturbation.delta is not None:
        known[id(method.perturbation.delta)] = "TrainingMethod.perturbation.delta"
    # the model's and the optimiser's own tensors (weights, grads, BN buffers, momenta) are per-model, not per-crop
    own = {id(t) for t in method.model.state_dict(keep_vars=True).values()}
    own |= {id(p.grad) for p in method.model.parameters() if p.grad is not None}
    own |= {id(v) for state in method.optimizer.optim.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)}
    gc.collect()
    found = []
    with warnings.catch_warnings():  # isinstance on some lazily deprecated objects warns
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            try:
                if isinstance(obj, torch.Tensor) and id(obj) not in own and obj.dim() >= 1 and obj.shape[0] == rows:
                    found.append((known.get(id(obj), "unknown"), tuple(obj.shape)))
            except Exception:  # noqa: BLE001 - objects that refuse inspection
                continue
    return found


def child(args: dict[str, Any]) -> dict[str, Any]:
    import torch

    if args.get("threads"):
        torch.set_num_threads(args["threads"])
    if args.get("trial"):
        from trainable.config import preset
        from trainable.loop import train

        base = _rss()
        train(preset(args["preset"], method="cf-amc-ssl", **args.get("overrides", {})))
        return {"base": base, "peak": _maxrss()}
    method, images = build(args["preset"], batch_size=args["batch"], **args.get("overrides", {}))
    gc.collect()
    base = _rss()
    method.step(images)
    peak = _maxrss()
    tensors = per_crop_tensors(method)
    delta = method.perturbation.delta
    return {"base": base, "peak": peak, "tensors": tensors,
            "delta_bytes": delta.numel() * delta.element_size(), "params": sum(p.numel() for p in method.model.parameters())}


def measure(args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.memory", "--child", json.dumps(args)], cwd=REPO,
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory child failed ({args}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    out = json.loads(lines[-1][len(MARK):])
    out["step_peak"] = out["peak"] - out["base"]
    return out


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def run(quick: bool = False, paper_batches: list[int] | None = None, demo_trial: bool = True) -> str:
    tiny = dict(width=4, feature_dim=16, hidden_dim=16, z_dim=8)
    if quick:
        demo = measure({"preset": "demo", "batch": 6, "overrides": {"num_crops": 4, **tiny}})
        paper_overrides = {"width": 8, "feature_dim": 32, "hidden_dim": 32, "z_dim": 16, "num_crops": 4}
        paper_batches = [2, 4]
        demo_trial = False
    else:
        demo = measure({"preset": "demo", "batch": 50})
        paper_overrides = {}
        paper_batches = paper_batches or [4, 8, 16]
    paper = {b: measure({"preset": "paper", "batch": b, "overrides": paper_overrides}) for b in paper_batches}
    target_batch = 100
    intercept, slope = fit_line([float(b) for b in paper], [p["step_peak"] for p in paper.values()])
    paper_100 = paper[target_batch]["step_peak"] if target_batch in paper else intercept + slope * target_batch
    measured_directly = target_batch in paper
    crops_paper = 4 if quick else 16
    rows = [
        ("demo preset: one CF-AMC-SSL step (batch 50 x 8 crops, m=3), peak RSS increase"
         if not quick else "demo preset (shrunk): one step, peak RSS increase",
         f"{demo['step_peak'] / MB:,.0f} MB", "reported", None),
    ]
    if demo_trial:
        trial = measure({"preset": "demo", "trial": True, "threads": 1})
        rows.append(("demo preset: a whole trial (train + eval), peak RSS of the process",
                     f"{trial['peak'] / MB:,.0f} MB", "reported", None))
    rows.append((f"paper preset: one step at batch 100 x {crops_paper} crops"
                 + ("" if measured_directly else f" (extrapolated from batches {paper_batches})"),
                 f"{paper_100 / 1024 / MB:,.1f} GB", "reported", None))
    only_delta = all(name == "TrainingMethod.perturbation.delta" for name, _ in demo["tensors"]) and \
        len(demo["tensors"]) == 1
    rows.append(("per-crop tensors alive between steps (demo)", "; ".join(f"{n} {s}" for n, s in demo["tensors"]),
                 "only the free-AT delta (C*B, 3, 32, 32)", only_delta))
    lines = [table(rows), ""]
    lines += markdown(("paper-size step, batch", "crops", "RSS before step", "peak increase", "delta buffer"),
                      [(b, b * crops_paper, f"{p['base'] / MB:,.0f} MB", f"{p['step_peak'] / MB:,.0f} MB",
                        f"{p['delta_bytes'] / MB:.1f} MB") for b, p in paper.items()])
    lines.append("")
    lines.append(f"Linear fit of the paper-size step peak: {intercept / MB:,.0f} MB + {slope / MB:,.1f} MB per image "
                 f"({slope / MB / crops_paper:.2f} MB per crop); parameters {paper[paper_batches[0]]['params']:,}. "
                 f"The delta at batch 100 x 16 crops is 1600*3*32*32*4 B = {1600 * 3 * 32 * 32 * 4 / MB:.1f} MB. "
                 f"On a GPU under bf16 autocast the activations are about half of these fp32 figures.")
    return "\n".join(lines)


def main() -> None:
    if "--child" in sys.argv:
        print(MARK + json.dumps(child(json.loads(sys.argv[sys.argv.index("--child") + 1]))), flush=True)
        return
    p = parser("Memory: peak RSS of a CF-AMC-SSL step (demo, paper sizes) and the persistent per-crop buffers")
    p.add_argument("--paper-batches", default="4,8,16", help="batches to measure the paper-size step at "
                   "(comma-separated; 100 = the full batch, needs ~15+ GB)")
    p.add_argument("--no-demo-trial", action="store_true", help="skip the whole demo trial")
    args = p.parse_args()
    header("bench.memory: peak memory and persistent buffers", args.quick)
    print(run(args.quick, [int(b) for b in args.paper_batches.split(",")], not args.no_demo_trial))


if __name__ == "__main__":
    main()
