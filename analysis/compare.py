"""Measured rows beside the paper's table (`analysis.paper_results`) for a ``paper_table`` sweep.

A trial is matched to a paper row on its method's parts (objective, adversary, views), which
single out each row of the table. A trial's setting is resolved the way the sweep built it:
its ``param.<name>`` column, else the sweep's ``--set`` overrides, else the spec's ``base``, else
the preset, else `TrialConfig`'s default; ``method`` fills any part left unset.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from trainable.config import METHODS, PRESETS, TrialConfig, parse_overrides

from .paper_results import METRICS, PAPER_ROWS, PAPER_SPEC_NAME
from .results import FRONT_STATUS, PARAM_PREFIX, ResultsError, Sweep

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig)}


def is_paper_sweep(sweep: Sweep) -> bool:
    """Whether the sweep's spec is the paper's table (its name is ``paper_table``)."""
    return sweep.name == PAPER_SPEC_NAME


def resolved_setting(sweep: Sweep, row: pd.Series, name: str) -> Any:
    """One trial setting as the sweep built it (module docstring)."""
    column = PARAM_PREFIX + name
    if column in row.index and _present(row[column]):
        return row[column]
    overrides = _overrides(sweep)
    if name in overrides:
        return overrides[name]
    base = sweep.spec.get("base") or {}
    if name in base:
        return base[name]
    preset = sweep.state.get("preset") or sweep.spec.get("preset") or "demo"
    if preset not in PRESETS:
        raise ResultsError(f"{sweep.source}: unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    if name in PRESETS[preset]:
        return PRESETS[preset][name]
    if name not in _DEFAULTS:
        raise ResultsError(f"unknown trial setting {name!r}")
    return _DEFAULTS[name]


def method_parts(sweep: Sweep, row: pd.Series) -> tuple[str, str, str]:
    """The trial's (objective, adversary, views)."""
    method = resolved_setting(sweep, row, "method")
    parts = []
    for i, name in enumerate(("objective", "adversary", "views")):
        column = PARAM_PREFIX + name
        value = row[column] if column in row.index and _present(row[column]) else None
        if value is None and method is not None:
            if method not in METHODS:
                raise ResultsError(f"trial {row['trial_id']}: unknown method {method!r}")
            value = METHODS[method][i]
        if value is None:
            value = resolved_setting(sweep, row, name)
        parts.append(str(value))
    return parts[0], parts[1], parts[2]


def paper_comparison(sweep: Sweep) -> pd.DataFrame:
    """One row per paper row and dataset: the paper's numbers beside the mean of the matching
    finished trials (accuracies in percent, time in minutes from ``train_seconds``, else
    ``seconds``). Paper rows without a matching trial show ``trials = 0`` and NaN measurements.
    Datasets the paper has no numbers for show NaN paper columns.
    """
    trials = sweep.trials
    finished = trials[trials["status"] == FRONT_STATUS]
    matched: dict[tuple[tuple[str, str, str], str], list[int]] = {}
    for index, row in finished.iterrows():
        dataset = str(resolved_setting(sweep, row, "dataset"))
        matched.setdefault((method_parts(sweep, row), dataset), []).append(index)
    datasets = sorted({d for _, d in matched}) or [str(resolved_setting(sweep, pd.Series({"trial_id": "-"}),
                                                                        "dataset"))]
    time_column = "train_seconds" if "train_seconds" in trials.columns else "seconds"
    rows = []
    for dataset in datasets:
        for paper in PAPER_ROWS:
            group = finished.loc[matched.get((paper.key(), dataset), [])]
            numbers = paper.accuracy.get(dataset, (math.nan,) * len(METRICS))
            out: dict[str, Any] = {"method": paper.label, "dataset": dataset, "trials": len(group)}
            for metric, label, value in zip(METRICS, ("clean", "PGD 4/255", "PGD 8/255"), numbers):
                out[f"{label} paper"] = value
                out[f"{label} ours"] = _mean(group, metric, 100.0)
            out["minutes paper"] = paper.minutes if dataset in paper.accuracy else math.nan
            out["minutes ours"] = _mean(group, time_column, 1 / 60)
            out["epochs paper"] = paper.epochs
            out["epochs ours"] = _epochs(sweep, group)
            rows.append(out)
    return pd.DataFrame(rows)


def _mean(group: pd.DataFrame, column: str, scale: float) -> float:
    if column not in group.columns or len(group) == 0:
        return math.nan
    values = group[column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean() * scale) if len(values) else math.nan


def _epochs(sweep: Sweep, group: pd.DataFrame) -> str:
    values = sorted({int(resolved_setting(sweep, row, "epochs")) for _, row in group.iterrows()})
    return "/".join(str(v) for v in values)


def _overrides(sweep: Sweep) -> dict[str, Any]:
    pairs = sweep.state.get("overrides") or []
    try:
        return parse_overrides(list(pairs))
    except ValueError as exc:
        raise ResultsError(f"{sweep.source}: sweep.json overrides: {exc}") from None


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays
        return True
