"""MLflow, read and written from stored results: a sweep's trials table from its child runs
(`load_mlflow`), the trials' start and end times (`with_run_times`), and the report logged on the
sweep's parent run (`log_report`). Run tags and metric names are `orchestrator.layout`'s, as the
orchestrator's tracking writes them.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from orchestrator.layout import (
    OBJECTIVES_PARAM,
    PARAM_PREFIX,
    PARENT_TAG,
    STATUS_TAG,
    TRIAL_TAG,
    RunFailed,
    first_line,
    metric_name_from_mlflow,
    parse_objectives,
    relocated_artifact_uri,
    sqlite_file,
)

from .results import ResultsError, Sweep, param_columns

log = logging.getLogger(__name__)

REPORT_ARTIFACT_PATH = "report"  # the report's files on the parent run


class MlflowLogError(RunFailed):
    """The report was written but could not be logged on the sweep's MLflow parent run (exit code 1)."""


def load_mlflow(tracking_uri: str, experiment: str | None = None, parent_run_id: str | None = None,
                with_history: bool = False) -> Sweep:
    """Build the trials table from the child runs of a sweep's MLflow parent run(s).

    Give exactly one of `experiment` (a name: every sweep in it, with a ``sweep`` column holding
    each parent run's name) or `parent_run_id` (one sweep). Per child run: ``trial_id`` (tag
    ``tune_trial_id``), ``status`` (tag ``trial_status``), ``param.<name>`` for every logged param
    (numbers parsed, ``None`` -> missing), the last value of every metric (MLflow names mapped
    back, ``robust_acc_at_4/255`` -> ``robust_acc@4/255``), ``started_at``/``ended_at`` (UTC) and
    ``seconds`` (the run's wall time, as MLflow saw it). Objectives come from the parent's
    ``objectives`` param when all parents agree. `with_history` also reads every metric's
    per-epoch history (one request per run and metric).
    """
    if (experiment is None) == (parent_run_id is None):
        raise ResultsError("give exactly one of experiment= or parent_run_id=")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    db_file = sqlite_file(tracking_uri)
    if db_file is not None:
        if not Path(db_file).is_file():  # MLflow would silently create an empty store
            raise ResultsError(f"{tracking_uri}: no such MLflow store")
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        if parent_run_id is not None:
            parent = client.get_run(parent_run_id)
            experiment_ids = [parent.info.experiment_id]
            parents = [parent]
            name = client.get_experiment(parent.info.experiment_id).name
        else:
            found = client.get_experiment_by_name(str(experiment))
            if found is None:
                raise ResultsError(f"{tracking_uri}: no MLflow experiment named {experiment!r}")
            experiment_ids = [found.experiment_id]
            runs = _all_runs(client, experiment_ids, "")
            parents = [r for r in runs if PARENT_TAG not in r.data.tags]
            name = str(experiment)
        if not parents:
            raise ResultsError(f"{tracking_uri}: experiment {name!r} has no sweep (parent) runs")
        rows, histories = [], []
        for parent in parents:
            children = _all_runs(client, experiment_ids, f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
            for run in sorted(children, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
                row = _run_row(run)
                if experiment is not None:
                    row["sweep"] = parent.info.run_name or parent.info.run_id
                rows.append(row)
                if with_history:
                    histories.append(_run_history(client, run, row["trial_id"]))
    except MlflowException as exc:
        raise ResultsError(f"{tracking_uri}: MLflow: {first_line(exc)}") from None
    if not rows:
        raise ResultsError(f"{tracking_uri}: the sweep {name!r} has no trial runs")
    trials = _tidy_mlflow_table(pd.DataFrame(rows))
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=["trial_id", "epoch"])
    specs = {p.data.params.get(OBJECTIVES_PARAM) for p in parents}
    only = specs.pop() if len(specs) == 1 else None
    objectives = parse_objectives(only) if only is not None else []
    return Sweep(name=name, trials=trials, history=history, objectives=objectives, source=tracking_uri,
                 tracking_uri=tracking_uri, parent_run_id=parents[0].info.run_id if len(parents) == 1 else None)


def _all_runs(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _run_row(run: Any) -> dict[str, Any]:
    tags, info = run.data.tags, run.info
    row: dict[str, Any] = {"trial_id": tags.get(TRIAL_TAG, info.run_id),
                           "status": tags.get(STATUS_TAG, "interrupted"), "run_id": info.run_id}
    for key, value in run.data.params.items():
        row[PARAM_PREFIX + key] = _param_value(value)
    for key, value in run.data.metrics.items():
        row[metric_name_from_mlflow(key)] = float(value)
    start, end = info.start_time, info.end_time
    row["started_at"] = pd.Timestamp(start, unit="ms", tz="UTC") if start else pd.NaT
    row["ended_at"] = pd.Timestamp(end, unit="ms", tz="UTC") if end else pd.NaT
    row["seconds"] = (end - start) / 1000.0 if start and end else float("nan")
    return row


def _run_history(client: Any, run: Any, trial_id: str) -> pd.DataFrame:
    per_step: dict[int, dict[str, float]] = {}
    for key in run.data.metrics:
        for m in client.get_metric_history(run.info.run_id, key):
            per_step.setdefault(int(m.step), {})[metric_name_from_mlflow(key)] = float(m.value)
    frame = pd.DataFrame([{"trial_id": trial_id, "epoch": step, **values} for step, values in sorted(per_step.items())])
    return frame if len(frame) else pd.DataFrame(columns=["trial_id", "epoch"])


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _param_value(text: str) -> Any:
    """MLflow params are strings: ``None`` -> None, ``True``/``False`` -> bool, numbers -> int/float."""
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    if _NUMBER.match(text):
        value = float(text)
        return int(value) if re.fullmatch(r"[+-]?\d+", text) else value
    return text


def _tidy_mlflow_table(trials: pd.DataFrame) -> pd.DataFrame:
    front = [c for c in ("sweep", "trial_id", "status") if c in trials.columns]
    params = sorted(param_columns(trials))
    rest = [c for c in trials.columns if c not in front and c not in params]
    return trials[front + params + rest].reset_index(drop=True)


def with_run_times(sweep: Sweep, mlflow_times: bool) -> pd.DataFrame:
    """The trials table with ``started_at``/``ended_at`` when known: from the table itself, else
    (with `mlflow_times`) from the start/end times of the sweep's MLflow child runs."""
    trials = sweep.trials
    if "ended_at" in trials.columns or not mlflow_times or not has_store(sweep):
        return trials
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    try:
        parent = client.get_run(str(sweep.parent_run_id))
        runs = _all_runs(client, [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{sweep.parent_run_id}'")
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; timing is then reported as unknown
        log.warning("could not read trial times from MLflow (%s); the wall span is not reported", exc)
        return trials
    times = {r.data.tags.get(TRIAL_TAG): (r.info.start_time, r.info.end_time) for r in runs}
    out = trials.copy()
    out["started_at"] = [_ms(times.get(t, (None, None))[0]) for t in out["trial_id"]]
    out["ended_at"] = [_ms(times.get(t, (None, None))[1]) for t in out["trial_id"]]
    out.attrs["times_from"] = "MLflow run times"
    return out


def _ms(value: int | None) -> pd.Timestamp:
    return pd.Timestamp(value, unit="ms", tz="UTC") if value else pd.NaT


def has_store(sweep: Sweep) -> bool:
    """Whether the sweep has a parent run in a store that exists (a moved sweep's sqlite path may not)."""
    if not sweep.parent_run_id or not sweep.tracking_uri:
        return False
    db = sqlite_file(sweep.tracking_uri)
    return db is None or Path(db).is_file()


def log_report(sweep: Sweep, files: Sequence[Path], metrics: dict[str, float]) -> bool:
    """Log `files` (the report's) under ``report/`` on the sweep's MLflow parent run, and `metrics`.

    Returns False, with a warning, when the sweep recorded no parent run or its SQLite store is
    not where ``sweep.json`` says (MLflow would silently create an empty store there); raises
    `MlflowLogError` when MLflow itself fails.
    """
    if not sweep.parent_run_id:
        log.info("%s: no MLflow parent run recorded; the report is not logged to MLflow", sweep.source)
        return False
    if not has_store(sweep):
        log.warning("%s: the MLflow store %s does not exist (was the sweep directory moved?); the report is "
                    "not logged to MLflow", sweep.source, sweep.tracking_uri)
        return False
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    try:
        client = MlflowClient(tracking_uri=sweep.tracking_uri)
        stored = client.get_run(sweep.parent_run_id).info.artifact_uri
        target = stored if sweep.sweep_dir is None else relocated_artifact_uri(sweep.sweep_dir, sweep.tracking_uri or "",
                                                                               stored)
        for path in files:
            if target != stored:  # a moved sweep: its artifacts go where the sweep directory is now
                from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

                LocalArtifactRepository(target).log_artifact(str(path), REPORT_ARTIFACT_PATH)
            else:
                client.log_artifact(sweep.parent_run_id, str(path), artifact_path=REPORT_ARTIFACT_PATH)
        now = int(time.time() * 1000)
        client.log_batch(sweep.parent_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; all are reported the same way
        raise MlflowLogError(f"report written to {Path(files[0]).parent}, but logging it on MLflow parent run "
                             f"{sweep.parent_run_id} ({sweep.tracking_uri}) failed: {first_line(exc)}") from None
    return True
