"""Measured rows beside the paper's table (`analysis.paper_results`) for a ``paper_table`` sweep.

A trial is matched to a paper row on its method's parts (objective, adversary, views), which
single out each row of the table. The settings come from the trial's ``config.<name>`` columns:
what the trial actually ran with, resolved by the orchestrator when it collected the results.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .paper_results import METRICS, PAPER_ROWS, PAPER_SPEC_NAME
from .results import CONFIG_PREFIX, FRONT_STATUS, ResultsError, Sweep

MATCH_KEYS = ("objective", "adversary", "views")


def is_paper_sweep(sweep: Sweep) -> bool:
    """Whether the sweep's spec is the paper's table (``paper_table``, or a variant such as
    ``paper_table_corrected``)."""
    return sweep.name == PAPER_SPEC_NAME or sweep.name.startswith(PAPER_SPEC_NAME + "_")


def require_settings(trials: pd.DataFrame, names: tuple[str, ...], source: str) -> None:
    """Raise `ResultsError` unless the trials table has the ``config.<name>`` columns of `names`."""
    missing = [n for n in names if CONFIG_PREFIX + n not in trials.columns]
    if missing:
        raise ResultsError(f"{source}: trials.parquet has no {', '.join(CONFIG_PREFIX + n for n in missing)} "
                           f"column (written by a version before trials carried their resolved settings); "
                           f"the paper comparison needs them")


def method_parts(row: pd.Series) -> tuple[str, str, str]:
    """The trial's (objective, adversary, views), from its ``config.*`` columns."""
    objective, adversary, views = (str(row[CONFIG_PREFIX + k]) for k in MATCH_KEYS)
    return objective, adversary, views


def paper_comparison(sweep: Sweep) -> pd.DataFrame:
    """One row per paper row and dataset: the paper's numbers beside the mean of the matching
    finished trials (accuracies in percent, time in minutes from ``train_seconds``, else
    ``seconds``). Paper rows without a matching trial show ``trials = 0`` and NaN measurements.
    Datasets the paper has no numbers for show NaN paper columns.
    """
    trials = sweep.trials
    require_settings(trials, (*MATCH_KEYS, "dataset", "epochs"), sweep.source)
    finished = trials[trials["status"] == FRONT_STATUS]
    matched: dict[tuple[tuple[str, str, str], str], list[int]] = {}
    for index, row in finished.iterrows():
        matched.setdefault((method_parts(row), str(row[CONFIG_PREFIX + "dataset"])), []).append(index)
    datasets = sorted({d for _, d in matched}) or sorted({str(d) for d in trials[CONFIG_PREFIX + "dataset"].dropna()})
    time_column = "train_seconds" if "train_seconds" in trials.columns else "seconds"
    rows = []
    for dataset in datasets:
        for paper in PAPER_ROWS:
            group = finished.loc[matched.get((paper.key(), dataset), [])]
            numbers = paper.accuracy.get(dataset, (math.nan,) * len(METRICS))
            out: dict[str, object] = {"method": paper.label, "dataset": dataset, "trials": len(group)}
            for metric, label, value in zip(METRICS, ("clean", "PGD 4/255", "PGD 8/255"), numbers):
                out[f"{label} paper"] = value
                out[f"{label} ours"] = _mean(group, metric, 100.0)
            out["minutes paper"] = paper.minutes if dataset in paper.accuracy else math.nan
            out["minutes ours"] = _mean(group, time_column, 1 / 60)
            out["epochs paper"] = paper.epochs
            out["epochs ours"] = "/".join(str(int(v)) for v in sorted(set(group[CONFIG_PREFIX + "epochs"])))
            out["profile ours"] = _profiles(group)
            rows.append(out)
    return pd.DataFrame(rows)


def _profiles(group: pd.DataFrame) -> str:
    """The fidelity profile(s) the trials ran (``config.fidelity``; sweeps from before the setting
    existed ran the corrected behaviour)."""
    column = CONFIG_PREFIX + "fidelity"
    if len(group) == 0:
        return ""
    if column not in group.columns:
        return "corrected"
    return "/".join(sorted({str(v) for v in group[column].dropna()}))


def _mean(group: pd.DataFrame, column: str, scale: float) -> float:
    if column not in group.columns or len(group) == 0:
        return math.nan
    values = group[column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean() * scale) if len(values) else math.nan
