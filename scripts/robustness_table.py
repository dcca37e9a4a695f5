"""Measure how much the sweep's PGD-20 metric overstates robustness, for demo encoders (EXPERIMENTS.md).

For each method (default: the demo CF-AMC-SSL and robust EMP-SSL encoders, demo preset, seed 0) it
trains one encoder, fits the evaluation's own probe (same seed, so PGD-20 here is the trial's
``robust_acc``) and measures robust accuracy at ``eval_epsilon`` (8/255) under: PGD-20 zero start
(the sweep's metric), PGD-50 with random restarts, APGD-CE, Square and standard AutoAttack (on the
first ``--aa-images`` test images), the worst case over all of them, and the PGD epsilon ladder.
Prints a Markdown table; ``--json PATH`` also writes the numbers.

    python scripts/robustness_table.py --aa-images 100 --json /tmp/robustness.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainable.audit import LADDER, load_trial  # noqa: E402
from trainable.config import preset  # noqa: E402
from trainable.evaluate import eval_seed, fit_classifier  # noqa: E402
from trainable.loop import train  # noqa: E402
from trainable.robustness import autoattack_flags, pgd_flags, standard_error  # noqa: E402


def measure(method: str, aa_images: int, restarts: int, threads: int) -> dict:
    """Train ``method`` on the demo preset and return every robust accuracy (fractions) with timings."""
    config = preset("demo", method=method, threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(config, reporter=lambda metrics, write: write(Path(tmp)))
        trial = load_trial(Path(tmp) / "checkpoint.pt")
    out: dict = {"method": method, "train_s": time.perf_counter() - t0}
    probe_x, probe_y, x, y = trial._eval_tensors()
    model = trial.model.eval().requires_grad_(False)
    k = trial.train_set.num_classes
    seed = eval_seed(config.seed)
    clf = fit_classifier(model, config, probe_x, probe_y, k, torch.Generator().manual_seed(seed))
    eps, alpha = config.eval_epsilon, config.eval_alpha
    timed: dict[str, float] = {}

    def run(name: str, fn):
        start = time.perf_counter()
        flags = fn()
        timed[name] = time.perf_counter() - start
        return flags

    sets = {
        "pgd20": run("pgd20", lambda: pgd_flags(clf, x, y, eps, alpha, 20)),
        "pgd50_restarts": run("pgd50_restarts", lambda: pgd_flags(clf, x, y, eps, alpha, 50, restarts, seed)),
        "apgd_ce": run("apgd_ce", lambda: autoattack_flags(clf, x, y, eps, "apgd-ce", seed, k)),
        "square": run("square", lambda: autoattack_flags(clf, x, y, eps, "square", seed, k)),
    }
    n_aa = min(aa_images, len(x))
    aa = run("autoattack", lambda: autoattack_flags(clf, x[:n_aa], y[:n_aa], eps, "standard", seed, k))
    worst = sets["pgd20"] & sets["pgd50_restarts"] & sets["apgd_ce"] & sets["square"]
    out.update(images=len(x), aa_images=n_aa, seconds=timed)
    out["acc"] = {name: f.float().mean().item() for name, f in sets.items()}
    out["acc"]["worst_without_aa"] = worst.float().mean().item()
    out["aa_subset"] = {"pgd20": sets["pgd20"][:n_aa].float().mean().item(), "autoattack": aa.float().mean().item(),
                        "worst": (worst[:n_aa] & aa).float().mean().item()}
    out["ladder"] = {f"{round(e * 255)}/255": (pgd_flags(clf, x, y, e, max(alpha, 2.5 * e / 20), 20).float().mean()
                                               .item() if e else (clf(x).argmax(1) == y).float().mean().item())
                     for e in LADDER}
    return out


def table(results: list[dict]) -> str:
    """The Markdown table: accuracy (%) ± binomial standard error, per attack and method."""
    def cell(p: float, n: int) -> str:
        return f"{100 * p:.1f} ± {100 * standard_error(p, n):.1f}"

    lines = ["| attack at 8/255 | " + " | ".join(r["method"] for r in results) + " |",
             "|---|" + "---|" * len(results)]
    rows = [("PGD-20, zero start (the sweep's metric)", "acc", "pgd20", "images"),
            ("PGD-50, zero start + restarts (worst case)", "acc", "pgd50_restarts", "images"),
            ("APGD-CE", "acc", "apgd_ce", "images"),
            ("Square (5000 queries, gradient-free)", "acc", "square", "images"),
            ("worst case of the four above", "acc", "worst_without_aa", "images"),
            ("PGD-20 on the AutoAttack subset", "aa_subset", "pgd20", "aa_images"),
            ("AutoAttack standard (subset)", "aa_subset", "autoattack", "aa_images"),
            ("worst case incl. AutoAttack (subset)", "aa_subset", "worst", "aa_images")]
    for label, group, key, size in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r[group][key], r[size]) for r in results) + " |")
    lines.append("| overstatement of PGD-20 (points, subset) | " + " | ".join(
        f"{100 * (r['aa_subset']['pgd20'] - r['aa_subset']['worst']):.1f}" for r in results) + " |")
    lines += ["", "| PGD-20 epsilon ladder | " + " | ".join(r["method"] for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for rung in results[0]["ladder"]:
        lines.append(f"| {rung} | " + " | ".join(cell(r["ladder"][rung], r["images"]) for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="cf-amc-ssl,robust-emp-ssl")
    parser.add_argument("--aa-images", type=int, default=100, help="test images for standard AutoAttack")
    parser.add_argument("--restarts", type=int, default=5, help="random restarts of PGD-50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for method in args.methods.split(","):
        results.append(measure(method, args.aa_images, args.restarts, args.threads))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
