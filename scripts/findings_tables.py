"""EXPERIMENTS.md's tables from the three findings sweeps (`make findings`): one markdown table per claim.

    python scripts/findings_tables.py                        # reads runs/findings-{methods,crops,epsilon-replay}
    python scripts/findings_tables.py --runs /elsewhere       # the same sweep directories under another root

Every number is a mean over the finished seeds (± sample std); paired differences pair the trials
of two configurations that share a seed. Accuracies in percent, training time in seconds
(``train_seconds``: pre-training only, no evaluation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.results import FRONT_STATUS, ResultsError, load_sweep

ACC = ("clean_acc", "robust_acc@4/255", "robust_acc@8/255")


def finished(sweep_dir: Path) -> pd.DataFrame:
    trials = load_sweep(sweep_dir).trials
    return trials[trials["status"] == FRONT_STATUS]


def pm(values: pd.Series, scale: float = 1.0, decimals: int = 1) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna() * scale
    if values.empty:
        return "-"
    if len(values) == 1:
        return f"{values.iloc[0]:.{decimals}f}"
    return f"{values.mean():.{decimals}f} ± {values.std(ddof=1):.{decimals}f}"


def by_seed(trials: pd.DataFrame, column: str, key: str, metric: str) -> pd.Series:
    rows = trials[trials[column] == key]
    return rows.set_index("param.seed")[metric].astype(float)


def paired(trials: pd.DataFrame, column: str, a: str, b: str, metric: str, scale: float = 100.0) -> str:
    """mean ± std over shared seeds of metric(a) - metric(b)."""
    diff = (by_seed(trials, column, a, metric) - by_seed(trials, column, b, metric)).dropna()
    return pm(diff, scale) + f" (n={len(diff)})"


def ratio(trials: pd.DataFrame, column: str, a: str, b: str) -> str:
    """Ratio of the fastest (least disturbed) training times of a and b over their seeds."""
    fastest = [trials[trials[column] == k]["train_seconds"].astype(float).min() for k in (a, b)]
    return f"{fastest[0] / fastest[1]:.2f}"


def config_table(trials: pd.DataFrame, column: str, keys: list[str], metrics=ACC) -> str:
    lines = ["| configuration | seeds | " + " | ".join(m.replace("_acc", "") + " %" for m in metrics)
             + " | train seconds: fastest seed (mean ± std) |",
             "|---" * (len(metrics) + 3) + "|"]
    for key in keys:
        rows = trials[trials[column] == key]
        cells = [pm(rows[m], 100.0) if m in rows else "-" for m in metrics]
        seconds = rows["train_seconds"].astype(float)
        lines.append(f"| {key} | {len(rows)} | " + " | ".join(cells) + f" | {seconds.min():.0f} ({pm(seconds, 1.0, 0)}) |")
    return "\n".join(lines)


def methods(sweep_dir: Path) -> str:
    t = finished(sweep_dir)
    col = "param.row"
    out = ["### Claims 1-3: methods (findings-methods)", "",
           config_table(t, col, ["cf-amc-ssl", "robust-emp-ssl", "patch-emp-free", "cf-amc-ssl-16",
                                 "crop-simclr-free", "patch-simclr-free"]), "",
           "| comparison (paired by seed) | clean (pts) | PGD 4/255 (pts) | PGD 8/255 (pts) | time ratio (fastest seeds) |",
           "|---|---|---|---|---|"]
    for a, b in (("cf-amc-ssl", "robust-emp-ssl"), ("cf-amc-ssl", "patch-emp-free"),
                 ("crop-simclr-free", "patch-simclr-free"), ("cf-amc-ssl-16", "crop-simclr-free"),
                 ("cf-amc-ssl", "crop-simclr-free")):
        out.append(f"| {a} − {b} | " + " | ".join(paired(t, col, a, b, m) for m in ACC) + f" | {ratio(t, col, a, b)} |")
    return "\n".join(out)


def crops(sweep_dir: Path) -> str:
    sweep = load_sweep(sweep_dir)
    t = sweep.trials[sweep.trials["status"] == FRONT_STATUS]
    h = sweep.history.merge(t[["trial_id", "param.num_crops"]], on="trial_id")
    epochs = sorted(h["epoch"].dropna().unique())
    lines = ["### Claim 4: crops vs epochs (findings-crops; clean EMP-SSL, clean accuracy %)", "",
             "| crops | seeds | " + " | ".join(f"epoch {int(e)}" for e in epochs) + " | train seconds (all epochs) |",
             "|---" * (len(epochs) + 3) + "|"]
    for n in sorted(t["param.num_crops"].unique()):
        rows = h[h["param.num_crops"] == n]
        cells = [pm(rows[rows["epoch"] == e]["clean_acc"], 100.0) for e in epochs]
        seconds = t[t["param.num_crops"] == n]["train_seconds"]
        lines.append(f"| {int(n)} | {int((t['param.num_crops'] == n).sum())} | " + " | ".join(cells)
                     + f" | {pm(seconds, 1.0, 0)} |")
    return "\n".join(lines)


def epsilon_replay(sweep_dir: Path) -> str:
    t = finished(sweep_dir).copy()
    t["eps"] = (t["param.epsilon"].astype(float) * 255).round().astype(int).astype(str) + "/255"
    t["config"] = "eps " + t["eps"] + ", " + t["param.replay"].astype(str)
    keys = [f"eps {e}/255, {m}" for e in (0, 8, 16) for m in ("m1", "m3")]
    keys = [k for k in keys if k in set(t["config"])]
    table = config_table(t, "config", keys, metrics=("clean_acc", "robust_acc"))
    means = t.groupby("config")[["clean_acc", "robust_acc"]].mean()
    from analysis.pareto import pareto_front

    front = pareto_front(means.to_numpy(float), ["max", "max"])
    on = ", ".join(sorted(means.index[front]))
    return "\n".join(["### Claim 5: training epsilon x replay steps (findings-epsilon-replay; robust = PGD-20 at 8/255)",
                      "", table, "", f"Configurations whose means are on the Pareto front: {on}."])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder holding the findings sweeps")
    args = parser.parse_args(argv)
    parts = (("findings-methods", methods), ("findings-crops", crops), ("findings-epsilon-replay", epsilon_replay))
    for name, make in parts:
        try:
            print(make(args.runs / name) + "\n")
        except ResultsError as exc:
            print(f"({name}: {exc})\n", file=sys.stderr)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
