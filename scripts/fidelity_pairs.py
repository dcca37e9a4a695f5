"""Robust EMP-SSL under the reference vs the corrected fidelity profile, paired by seed.

Runs the trials of search_spaces/findings/fidelity.yaml (the same resolved settings as its sweep)
with `trainable.loop.train` in worker processes, without Ray, writes each trial's metrics to
``<out>/<fidelity>-seed<seed>.json`` (a trial whose file exists is not run again, so an interrupted
run continues), then prints a Markdown table: mean and standard deviation per profile, and the
paired difference reference - corrected over seeds.

    nice -n 10 python scripts/fidelity_pairs.py --out runs/fidelity-pairs [--set budget_epochs=1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.spec import load_spec, trial_configs  # noqa: E402
from trainable.config import TrialConfig, parse_overrides  # noqa: E402

SPEC = REPO / "search_spaces" / "findings" / "fidelity.yaml"
METRICS = ("clean_acc", "robust_acc@4/255", "robust_acc", "train_seconds")


def run_one(job: tuple[dict[str, Any], str]) -> None:
    """Train one trial and write its metrics (with its settings) as JSON to ``path``."""
    from trainable.loop import train

    values, path = job
    config = TrialConfig.from_dict(values)
    metrics = train(config)
    Path(path).write_text(json.dumps({"config": config.to_dict(), "metrics": metrics}, indent=1))


def table(results: dict[tuple[str, int], dict[str, float]]) -> str:
    """Per-profile mean ± std and the paired differences (accuracies in points, time in seconds)."""
    def scale(metric: str) -> float:
        return 1.0 if metric == "train_seconds" else 100.0

    def cell(values: list[float]) -> str:
        mean = statistics.fmean(values)
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{mean:.1f} ± {spread:.1f}"

    seeds = sorted({s for _, s in results if ("reference", s) in results and ("corrected", s) in results})
    head = "| profile | seeds | clean % | PGD 4/255 % | PGD 8/255 % | train s |"
    lines = [head, "|---|---|---|---|---|---|"]
    for fidelity in ("reference", "corrected"):
        rows = [results[(fidelity, s)] for s in sorted(s for f, s in results if f == fidelity)]
        if rows:
            lines.append(f"| {fidelity} | {len(rows)} | "
                         + " | ".join(cell([r[m] * scale(m) for r in rows]) for m in METRICS) + " |")
    if seeds:
        diffs = {m: [(results[("reference", s)][m] - results[("corrected", s)][m]) * scale(m) for s in seeds]
                 for m in METRICS}
        lines.append(f"| reference − corrected (paired) | {len(seeds)} | "
                     + " | ".join(cell(diffs[m]) for m in METRICS) + " |")
        lines.append("")
        lines.append("per seed (reference − corrected): " + "; ".join(
            f"seed {s}: " + ", ".join(f"{m} {diffs[m][i]:+.1f}" for m in METRICS) for i, s in enumerate(seeds)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "fidelity-pairs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base setting of the spec, e.g. --set budget_epochs=1")
    parser.add_argument("--jobs", type=int, default=2, help="trials run at a time (default 2)")
    args = parser.parse_args(argv)
    spec = load_spec(SPEC, overrides=parse_overrides(args.overrides))
    args.out.mkdir(parents=True, exist_ok=True)
    jobs, files = [], {}
    configs = sorted((config for _, config in trial_configs(spec.space)), key=lambda c: (c.seed, c.fidelity))
    for config in configs:  # pairs first: seed 0 under both profiles, then seed 1, ...
        config = config.replace(threads=1)
        path = args.out / f"{config.fidelity}-seed{config.seed}.json"
        files[(config.fidelity, config.seed)] = path
        if not path.is_file():
            jobs.append((config.to_dict(), str(path)))
    if jobs:
        with multiprocessing.get_context("spawn").Pool(max(1, args.jobs)) as pool:
            pool.map(run_one, jobs, chunksize=1)
    results = {key: json.loads(path.read_text())["metrics"] for key, path in files.items() if path.is_file()}
    first = TrialConfig.from_dict(json.loads(next(iter(files.values())).read_text())["config"])
    print(f"robust EMP-SSL, preset {spec.preset}: epochs {first.epochs}, crops {first.num_crops}, "
          f"PGD-{first.pgd_steps} in training, PGD-{first.eval_pgd_steps} evaluation on {first.eval_images} "
          f"test images")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
