"""Repeated trials: a sweep that varies ``seed`` beside other knobs, summarised per configuration.

A *configuration* is one combination of the swept knobs other than the seed. `over_seeds` gives, per
configuration, the number of finished seeds and the mean and sample standard deviation of each
metric (and marks the configurations whose *means* are Pareto-optimal); `curves_over_seeds` does the
same per epoch from the history table, for learning curves. Only finished trials are counted.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .pareto import pareto_front
from .results import FRONT_STATUS, PARAM_PREFIX, Objective, _hashable, _missing, swept_params

SEED_PARAM = PARAM_PREFIX + "seed"
# Metrics summarised when present, in this order (objectives come first in any case).
SUMMARY_METRICS = ("clean_acc", "robust_acc", "train_seconds")
ROBUST_PREFIX = "robust_acc@"


def has_seeds(trials: pd.DataFrame) -> bool:
    """True when the sweep ran some configuration with more than one seed."""
    return SEED_PARAM in swept_params(trials)


def configuration_knobs(trials: pd.DataFrame) -> list[str]:
    """The swept param columns other than the seed: they name a configuration."""
    return [k for k in swept_params(trials) if k != SEED_PARAM]


def summary_metrics(trials: pd.DataFrame, objectives: Sequence[Objective]) -> list[str]:
    """The metric columns a seed summary shows: the objectives, clean/robust accuracies, training time."""
    wanted = [o.metric for o in objectives] + list(SUMMARY_METRICS)
    wanted += sorted(c for c in trials.columns if str(c).startswith(ROBUST_PREFIX))
    return [m for m in dict.fromkeys(wanted) if m in trials.columns]


def _labels(frame: pd.DataFrame, knobs: Sequence[str]) -> pd.DataFrame:
    """The knob columns as hashable group keys (missing -> "-")."""
    return pd.DataFrame({k: frame[k].map(lambda v: "-" if _missing(v) else _hashable(v)) for k in knobs},
                        index=frame.index)


def over_seeds(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """One row per configuration: the knobs, ``seeds`` (finished trials), ``<metric>`` (mean) and
    ``<metric>_std`` (sample std, NaN for one seed) per summary metric, and ``on_front`` (the mean
    point is Pareto-optimal among the configurations' means). Sorted best first in objectives[0]."""
    knobs = configuration_knobs(trials)
    metrics = summary_metrics(trials, objectives)
    finished = trials[trials["status"] == FRONT_STATUS]
    columns = knobs + ["seeds"] + [c for m in metrics for c in (m, f"{m}_std")] + ["on_front"]
    if finished.empty:
        return pd.DataFrame(columns=columns)
    keys = _labels(finished, knobs) if knobs else pd.DataFrame({"_all": ["all"] * len(finished)},
                                                               index=finished.index)
    values = finished[metrics].apply(pd.to_numeric, errors="coerce")
    grouped = pd.concat([keys, values], axis=1).groupby(list(keys.columns), sort=False, dropna=False)
    out = grouped[metrics].mean()
    std = grouped[metrics].std(ddof=1).add_suffix("_std")
    out = pd.concat([grouped.size().rename("seeds"), out, std], axis=1).reset_index()
    out = out.drop(columns=["_all"], errors="ignore")
    points = out[[o.metric for o in objectives]].to_numpy(float)
    finite = np.isfinite(points).all(axis=1)
    mask = np.zeros(len(out), dtype=bool)
    if finite.any():  # configurations without a finite mean are simply not on the front
        mask[finite] = pareto_front(points[finite], [o.mode for o in objectives])
    out["on_front"] = mask
    first = objectives[0]
    out = out.sort_values(first.metric, ascending=first.mode == "min", kind="stable", na_position="last")
    return out[columns].reset_index(drop=True)


def curves_over_seeds(trials: pd.DataFrame, history: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per configuration and epoch: ``seeds`` and mean/std of each of `metrics` present in `history`
    (plus ``train_seconds``, the cumulative training time, when recorded). Finished trials only;
    empty when no trial reported more than one epoch."""
    if history.empty or "epoch" not in history.columns or history.groupby("trial_id")["epoch"].nunique().max() < 2:
        return pd.DataFrame()
    knobs = configuration_knobs(trials)
    finished = trials[trials["status"] == FRONT_STATUS]
    keys = _labels(finished, knobs) if knobs else pd.DataFrame({"_all": ["all"] * len(finished)},
                                                               index=finished.index)
    keys["trial_id"] = finished["trial_id"].to_numpy()
    wanted = [m for m in dict.fromkeys([*metrics, "train_seconds"]) if m in history.columns]
    rows = history[history["trial_id"].isin(keys["trial_id"])][["trial_id", "epoch", *wanted]]
    rows = rows.merge(keys, on="trial_id")
    group_cols = [c for c in keys.columns if c != "trial_id"] + ["epoch"]
    grouped = rows.groupby(group_cols, sort=True, dropna=False)
    out = pd.concat([grouped.size().rename("seeds"), grouped[wanted].mean(),
                     grouped[wanted].std(ddof=1).add_suffix("_std")], axis=1).reset_index()
    return out.drop(columns=["_all"], errors="ignore")


def mean_pm_std(mean: Any, std: Any, decimals: int = 3) -> str:
    """``0.748 ± 0.012`` (or just the mean when the spread is unknown)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def curve_metrics(history: pd.DataFrame) -> list[str]:
    """The accuracies worth a learning curve: ``clean_acc``, and ``robust_acc`` unless it never differs
    from the clean accuracy (a sweep evaluated at epsilon 0)."""
    out = [m for m in ("clean_acc", "robust_acc") if m in history.columns and history[m].notna().any()]
    if "robust_acc" in out and "clean_acc" in out and np.allclose(history["robust_acc"].to_numpy(float),
                                                                  history["clean_acc"].to_numpy(float), equal_nan=True):
        out.remove("robust_acc")
    return out
