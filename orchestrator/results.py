"""The sweep's result tables, written next to the study: ``trials.parquet`` and ``history.parquet``.

``trials.parquet``: one row per Tune trial: ``trial_id``, ``status`` (finished, early_stopped,
stopped, failed, interrupted, pending), ``param.<name>`` per space parameter and bundle setting (as
sampled), ``config.<name>`` for every trial setting (resolved: preset, then the sweep's base and
``--set``, then the sampled values; what the trial ran with), one column per final metric named as
the metric (``clean_acc``, ``robust_acc@4/255``, ...), ``epochs_done``, ``seconds``,
``checkpoint``, ``node_id``, ``hostname``, ``pid``, ``error``, ``optuna_number`` and
``optuna_state``. Column names and statuses are `orchestrator.layout`'s.
``history.parquet``: one row per trial and epoch (``trial_id``, ``epoch``, the metrics, ``final``),
ending at the trial's ``epochs_done`` (Ray Tune's last result, or the last checkpoint's report where
that is newer; see `last_result` and `_aligned_history`); an epoch Tune's result file lacks comes from
the reports the checkpoint carries.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from trainable.tune_adapter import FAILED_MARKER, REPORTS_FILE, TIMED_OUT, TrialSettings, build_config, parse_reports

from .layout import CONFIG_PREFIX, FINAL_KEY, HISTORY_FILE, PARAM_PREFIX, TRIALS_FILE, TUNE_KEYS, first_line

log = logging.getLogger(__name__)


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
        return "finished" if (last_result or {}).get(FINAL_KEY) == 1.0 else early_stop_status
    if time_limit_reached:
        return "stopped"
    if tune_status == "PENDING" and not last_result:
        return "pending"
    return "interrupted"


def collect(experiment_path: str, param_names: Iterable[str], early_stop_status: str,
            optuna_trials: Mapping[str, tuple[int, str]] | None = None,
            settings: TrialSettings | None = None, time_limit_reached: bool = False,
            cut_short: set[str] | frozenset[str] = frozenset()) -> SweepResults:
    """Read Ray Tune's experiment directory into the two tables.

    `optuna_trials` maps a Tune trial id to (Optuna trial number, Optuna state name); `settings`
    (the sweep's shared trial settings) gives each trial's ``config.<name>`` columns; `cut_short`
    names trials an earlier run's time limit stopped (status ``stopped``).
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
        last, saved = last_result(trial)
        number, state = optuna_trials.get(trial.trial_id, (None, None))
        status = trial_status(trial.status, last, early_stop_status, time_limit_reached)
        if trial.status == "TERMINATED" and status != "finished" and (state == "RUNNING"
                                                                        or trial.trial_id in cut_short):
            status = "stopped"  # ended by the sweep's time limit: Tune stops those without telling the searcher
        if trial.status == "ERROR" and (marker_text(trial) or "").startswith(TIMED_OUT):
            status = "timed_out"
        row: dict[str, Any] = {"trial_id": trial.trial_id, "status": status}
        for name in param_names:
            row[PARAM_PREFIX + name] = trial.config.get(name)
        if settings is not None:
            row.update(resolved_settings(trial.config, settings))
        for key, value in last.items():
            if key not in TUNE_KEYS and _is_number(value):
                row[key] = float(value)
        row["epochs_done"] = int(last["epoch"]) if _is_number(last.get("epoch")) else 0
        row["seconds"] = float(last.get("time_total_s", math.nan))
        checkpoint = trial.checkpoint
        row["checkpoint"] = checkpoint.path if checkpoint is not None else None
        row["node_id"] = last.get("node_id")
        row["hostname"] = last.get("hostname")
        row["pid"] = last.get("pid")
        row["error"] = _error_line(trial) if trial.status == "ERROR" else None
        row["optuna_number"] = number
        row["optuna_state"] = state
        rows.append(row)
        frame = _with_saved_reports(analysis.trial_dataframes.get(trial.trial_id), saved)
        if frame is not None and len(frame) and "epoch" in frame:
            histories.append(_aligned_history(trial.trial_id, frame, last, row["epochs_done"]))
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


def resolved_settings(config: Mapping[str, Any], settings: TrialSettings) -> dict[str, Any]:
    """``config.<name>`` -> value for every trial setting the trial ran with (lists as text, so each
    column has one type); a config the trial refused gives ``config.error`` instead."""
    try:
        resolved = build_config(config, settings).to_dict()
    except ValueError as exc:
        return {f"{CONFIG_PREFIX}error": first_line(exc)}
    return {CONFIG_PREFIX + k: (",".join(f"{x:.6g}" for x in v) if isinstance(v, (list, tuple)) else v)
            for k, v in resolved.items()}


def last_result(trial: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Tune trial's last result, or its last checkpoint's last report where that is newer (a result
    Tune processed but did not keep), and the checkpoint's per-epoch reports (`checkpoint_reports`)."""
    last = dict(trial.last_result or {})
    saved = checkpoint_reports(trial.checkpoint)
    if saved and _epoch(saved[-1]) > _epoch(last):
        last = {**last, **saved[-1]}
    return last, saved


def checkpoint_reports(checkpoint: Any) -> list[dict[str, Any]]:
    """The per-epoch reports a trial's checkpoint carries (`trainable.tune_adapter.REPORTS_FILE`), read
    through the checkpoint's own file system (local, NFS or object store); [] when it has none."""
    if checkpoint is None:
        return []
    try:
        text = _read_text(checkpoint.filesystem, f"{checkpoint.path}/{REPORTS_FILE}")
        return parse_reports(text) if text is not None else []
    except (OSError, ValueError) as exc:
        log.warning("cannot read the reports of checkpoint %s (%s); Ray Tune's result file alone is used",
                    checkpoint.path, first_line(exc))
        return []


def _with_saved_reports(frame: pd.DataFrame | None, saved: list[dict[str, Any]]) -> pd.DataFrame | None:
    """Tune's per-epoch frame plus the checkpoint's reports of the epochs it lacks."""
    if not saved:
        return frame
    have = set() if frame is None or "epoch" not in frame else {int(e) for e in frame["epoch"].dropna()}
    missing = [r for r in saved if _epoch(r) not in have]
    if not missing:
        return frame
    extra = pd.DataFrame(missing)
    return extra if frame is None or not len(frame) else pd.concat([frame, extra], ignore_index=True)


def _epoch(result: Mapping[str, Any]) -> int:
    value = result.get("epoch")
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def _aligned_history(trial_id: str, frame: pd.DataFrame, last: Mapping[str, Any], epochs_done: int) -> pd.DataFrame:
    """`_history`, ending at Ray Tune's last result. Tune's result file and its last result can differ
    by an epoch when a trial's worker ends abruptly: a trial restored from an earlier checkpoint that
    ends at once has rows past its restored state (dropped: lost with the worker), and a result
    processed just before the worker was killed may be missing from the file (added from the last result)."""
    history = _history(trial_id, frame)
    if not epochs_done:
        return history
    history = history[history["epoch"] <= epochs_done]
    if not len(history) or int(history["epoch"].max()) < epochs_done:
        extra = _history(trial_id, pd.DataFrame([{k: v for k, v in last.items() if k in frame.columns}]))
        history = pd.concat([history, extra], ignore_index=True)
    return history.reset_index(drop=True)


def _history(trial_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows of one trial; an epoch reported twice (a resumed trial) keeps its last report."""
    keep = [c for c in frame.columns if not c.startswith("config/") and (c not in TUNE_KEYS or c in
            ("time_total_s", "training_iteration", FINAL_KEY, "node_id"))]
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


def marker_text(trial: Any) -> str | None:
    """The trial's deterministic-failure marker in Tune's storage (`trainable.tune_adapter`), or None."""
    try:
        text = _read_text(trial.storage.storage_filesystem, f"{trial.path}/{FAILED_MARKER}")
        return text.strip() if text is not None else None
    except Exception:  # noqa: BLE001 - no readable marker: the trial is judged by its error alone
        return None


def _read_text(fs: Any, path: str) -> str | None:
    """A file in Ray Tune's storage (a pyarrow file system: local, NFS or object store); None if absent."""
    import pyarrow.fs as pafs

    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as fh:
        return fh.readall().decode(errors="replace")


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
