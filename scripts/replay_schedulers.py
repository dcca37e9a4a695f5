"""Replay a recorded sweep through two early-stopping rules: ASHA on one metric and pareto-asha.

Reads ``<sweep>/history.parquet`` (every trial's metrics per epoch) and ``trials.parquet``, feeds the
epochs through Ray Tune's ``ASHAScheduler`` on ``--asha-metric`` alone and through the project's
``ParetoASHAScheduler`` on all the sweep's objectives (`orchestrator.schedulers.replay`: the trials
as if run one after another, in the sweep's order), and prints per trial the epoch each rule would
stop it at, whether it ends on the sweep's Pareto front, and the trials on the front that ASHA
would have stopped and pareto-asha keeps. The sweep should have run without a scheduler and with
``eval_every=1`` (every trial's every epoch evaluated), so that every trial's whole curve is known.

    python scripts/replay_schedulers.py runs/crops-20261125-091151 [--asha-metric robust_acc]
        [--grace-period 1] [--reduction-factor 2] [--objectives clean_acc:max,robust_acc:max] [--all-orders]

``--all-orders`` also replays every order the trials could have arrived in (all permutations up to
7 trials, else 5,040 random ones, seeded) and counts, over those orders, how often each rule stops a
trial of the final front and how many trials it stops in all: the answer for one order can be luck.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.pareto import rank_trials  # noqa: E402
from analysis.results import ResultsError, load_sweep  # noqa: E402
from orchestrator.layout import Objective, UserError  # noqa: E402
from orchestrator.schedulers import replay  # noqa: E402


def compare(sweep_dir: str | Path, asha_metric: str = "robust_acc", grace_period: int = 1,
            reduction_factor: float = 2, objectives: Sequence[Objective] | None = None) -> pd.DataFrame:
    """One row per trial: ``trial_id``, ``status``, ``epochs``, ``on_front`` (of the finished trials,
    on the objectives), ``asha_stop`` and ``pareto_stop`` (the epoch each rule stops it at, or NA)."""
    sweep = load_sweep(sweep_dir)
    objectives = list(objectives or sweep.objectives)
    if not objectives:
        raise ResultsError(f"{sweep_dir}: the sweep's objectives are unknown; give --objectives")
    if asha_metric not in [o.metric for o in objectives]:
        raise ResultsError(f"--asha-metric {asha_metric!r} is not one of the objectives "
                           f"{', '.join(o.metric for o in objectives)}")
    if not len(sweep.history):
        raise ResultsError(f"{sweep_dir}: no history.parquet rows to replay")
    order = [t for t in sweep.trials["trial_id"] if t in set(sweep.history["trial_id"])]
    stops = replay(sweep.history, [o.metric for o in objectives], [o.mode for o in objectives], asha_metric,
                   grace_period=grace_period, reduction_factor=reduction_factor, order=order)
    ranked = rank_trials(sweep.trials, objectives)
    front = set(ranked.loc[ranked["on_front"], "trial_id"])
    out = sweep.trials[["trial_id", "status"]].merge(stops, on="trial_id", how="right")
    out["on_front"] = out["trial_id"].isin(front)
    return out[["trial_id", "status", "epochs", "on_front", "asha_stop", "pareto_stop"]]


def over_orders(sweep_dir: str | Path, asha_metric: str = "robust_acc", grace_period: int = 1,
                reduction_factor: float = 2, objectives: Sequence[Objective] | None = None,
                limit: int = 5040) -> dict[str, int]:
    """`compare` over every arrival order of the trials (`limit` random ones, seeded, when there are
    more): ``orders``, and per rule (``asha``, ``pareto``) the stops of final-front trials
    (``<rule>_front_stops``) and all its stops (``<rule>_stops``), summed over the orders."""
    sweep = load_sweep(sweep_dir)
    table = compare(sweep_dir, asha_metric, grace_period, reduction_factor, objectives)
    objectives = list(objectives or sweep.objectives)
    ids = list(table["trial_id"])
    front = set(table.loc[table["on_front"], "trial_id"])
    if len(ids) <= 7:
        orders: list[Sequence[str]] = list(itertools.permutations(ids))
    else:
        rng = random.Random(0)
        orders = [rng.sample(ids, len(ids)) for _ in range(limit)]
    counts = {"orders": len(orders), "asha_front_stops": 0, "pareto_front_stops": 0, "asha_stops": 0, "pareto_stops": 0}
    for order in orders:
        stops = replay(sweep.history, [o.metric for o in objectives], [o.mode for o in objectives], asha_metric,
                       grace_period=grace_period, reduction_factor=reduction_factor, order=list(order))
        for rule in ("asha", "pareto"):
            stopped = set(stops.loc[stops[f"{rule}_stop"].notna(), "trial_id"])
            counts[f"{rule}_stops"] += len(stopped)
            counts[f"{rule}_front_stops"] += len(stopped & front)
    return counts


def summary(table: pd.DataFrame, asha_metric: str) -> list[str]:
    """What the replay shows, in a few lines."""
    front = table[table["on_front"]]
    lost = front[front["asha_stop"].notna()]
    kept = lost[lost["pareto_stop"].isna()]
    return [
        f"ASHA on {asha_metric} stops {int(table['asha_stop'].notna().sum())} of {len(table)} trials, "
        f"pareto-asha {int(table['pareto_stop'].notna().sum())}",
        f"trials on the final front that ASHA on {asha_metric} stops: {len(lost)} "
        f"({', '.join(lost['trial_id']) or 'none'}); pareto-asha keeps {len(kept)} of them "
        f"({', '.join(kept['trial_id']) or 'none'})",
        f"trials on the final front that pareto-asha stops: {int(front['pareto_stop'].notna().sum())}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--asha-metric", default="robust_acc")
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=2.0)
    parser.add_argument("--objectives", help="metric:mode,... (default: the sweep's)")
    parser.add_argument("--all-orders", action="store_true", help="also count over every arrival order")
    args = parser.parse_args(argv)
    objectives = None
    if args.objectives:
        objectives = [Objective(*item.rsplit(":", 1)) for item in args.objectives.split(",")]
    try:
        table = compare(args.sweep_dir, args.asha_metric, args.grace_period, args.reduction_factor, objectives)
        counts = over_orders(args.sweep_dir, args.asha_metric, args.grace_period, args.reduction_factor,
                             objectives) if args.all_orders else None
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = table.astype({"asha_stop": "object", "pareto_stop": "object"}).fillna("-")
    print(shown.to_string(index=False))
    print("\n".join(summary(table, args.asha_metric)))
    if counts is not None:
        print(f"over {counts['orders']} arrival orders: trials of the final front stopped "
              f"{counts['asha_front_stops']} times by ASHA on {args.asha_metric}, {counts['pareto_front_stops']} "
              f"by pareto-asha; trials stopped in all {counts['asha_stops']} and {counts['pareto_stops']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
