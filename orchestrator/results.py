"""The sweep's result tables, written next to the study: ``trials.parquet`` and ``history.parquet``.

``trials.parquet``: one row per Tune trial: ``trial_id``, ``status`` (finished, early_stopped,
stopped, failed, interrupted, pending), ``param.<name>`` per space parameter and bundle setting,
one column per final metric named as the metric (``clean_acc``, ``robust_acc@4/255``, ...),
``epochs_done``, ``seconds``, ``checkpoint``, ``node_id``, ``hostname``, ``pid``, ``error``,
``optuna_number`` and ``optuna_state``.
``history.parquet``: one row per trial and epoch (``trial_id``, ``epoch``, the metrics, ``final``).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
# Keys of Tune's results that are bookkeeping, not metrics.
BOOKKEEPING = frozenset({
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "experiment_tag", "final", "node_id",
})
FINISHED_STATUSES = ("finished", "early_stopped", "stopped")


@dataclass
class SweepResults:
    trials: pd.DataFrame
    history: pd.DataFrame

    @property
    def statuses(self) -> dict[str, str]:
        return dict(zip(self.trials["trial_id"], self.trials["status"])) if len(self.trials) else {}

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.trials["status"].value_counts().items()} if len(self.trials) else {}


def trial_status(tune_status: str, last_result: Mapping[str, Any] | None, early_stop_status: str,
                 time_limit_reached: bool = False) -> str:
    """Our status from Tune's (TERMINATED/ERROR/RUNNING/PAUSED/PENDING) and the last result."""
    if tune_status == "ERROR":
        return "failed"
    if tune_status == "TERMINATED":
        return "finished" if (last_result or {}).get("final") == 1.0 else early_stop_status
    if time_limit_reached:
        return "stopped"
    if tune_status == "PENDING" and not last_result:
        return "pending"
    return "interrupted"


def collect(experiment_path: str, param_names: Iterable[str], early_stop_status: str,
            optuna_trials: Mapping[str, tuple[int, str]] | None = None,
            time_limit_reached: bool = False) -> SweepResults:
    """Read Ray Tune's experiment directory into the two tables.

    `optuna_trials` maps a Tune trial id to (Optuna trial number, Optuna state name).
    """
    from ray.tune import ExperimentAnalysis

    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # trials that never reported have no result files: not a problem here
    try:
        analysis = ExperimentAnalysis(experiment_path)
    finally:
        quiet.setLevel(level)
    param_names = list(param_names)
    optuna_trials = dict(optuna_trials or {})
    rows: list[dict[str, Any]] = []
    histories: list[pd.DataFrame] = []
    for trial in analysis.trials:
        last = dict(trial.last_result or {})
        row: dict[str, Any] = {"trial_id": trial.trial_id,
                               "status": trial_status(trial.status, last, early_stop_status, time_limit_reached)}
        for name in param_names:
            row[f"param.{name}"] = trial.config.get(name)
        for key, value in last.items():
            if key not in BOOKKEEPING and _is_number(value):
                row[key] = float(value)
        row["epochs_done"] = int(last["epoch"]) if _is_number(last.get("epoch")) else 0
        row["seconds"] = float(last.get("time_total_s", math.nan))
        checkpoint = trial.checkpoint
        row["checkpoint"] = checkpoint.path if checkpoint is not None else None
        row["node_id"] = last.get("node_id")
        row["hostname"] = last.get("hostname")
        row["pid"] = last.get("pid")
        row["error"] = _error_line(trial) if trial.status == "ERROR" else None
        number, state = optuna_trials.get(trial.trial_id, (None, None))
        row["optuna_number"] = number
        row["optuna_state"] = state
        rows.append(row)
        frame = analysis.trial_dataframes.get(trial.trial_id)
        if frame is not None and len(frame) and "epoch" in frame:
            histories.append(_history(trial.trial_id, frame))
    trials = pd.DataFrame(rows)
    if len(trials):
        trials = trials.sort_values(["optuna_number", "trial_id"], na_position="last", kind="stable")
        trials = trials.reset_index(drop=True)
        trials["optuna_number"] = trials["optuna_number"].astype("Int64")
        trials["pid"] = trials["pid"].astype("Int64")
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=["trial_id", "epoch"])
    if len(history) and len(trials):  # same trial order as trials.parquet
        order = {tid: i for i, tid in enumerate(trials["trial_id"])}
        history = history.sort_values(["trial_id", "epoch"], key=lambda c: c.map(order) if c.name == "trial_id"
                                      else c, kind="stable").reset_index(drop=True)
    return SweepResults(trials, history)


def _history(trial_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows of one trial; an epoch reported twice (a resumed trial) keeps its last report."""
    keep = [c for c in frame.columns if not c.startswith("config/") and (c not in BOOKKEEPING or c in
            ("time_total_s", "training_iteration", "final", "node_id"))]
    out = frame[keep].copy()
    out.insert(0, "trial_id", trial_id)
    out = out.drop_duplicates(subset=["epoch"], keep="last").sort_values("epoch").reset_index(drop=True)
    out["epoch"] = out["epoch"].astype(int)
    return out


def write(results: SweepResults, sweep_dir: Path) -> tuple[Path, Path]:
    """Write both tables atomically (temporary file + rename)."""
    paths = (Path(sweep_dir) / TRIALS_FILE, Path(sweep_dir) / HISTORY_FILE)
    for frame, path in zip((results.trials, results.history), paths):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    return paths


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _error_line(trial: Any) -> str | None:
    """The last line of the trial's error (the exception), or None when it left no error file."""
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - an unreadable error file is reported as such
        return "error file unreadable"
    if error is None:
        return None
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else type(error).__name__
