"""Load a sweep's results into one table of trials: from its directory (Parquet) or from MLflow.

A *trials table* is a `pandas.DataFrame` with one row per trial: ``trial_id``, ``status``
(finished, early_stopped, stopped, failed, interrupted, pending; ``running`` only from a live
MLflow experiment), ``param.<name>`` per knob, one float column per final metric named as the
metric (``clean_acc``, ``robust_acc@4/255``, ...) and ``seconds``; the sweep directory's table also
has the bookkeeping columns of ``orchestrator/results.py``. Tables of several sweeps are combined
with a ``sweep`` column (see `combine`).

Only stored results are read (DESIGN.md): nothing here needs Ray, Optuna or the trainable, so a
finished or interrupted sweep can be analysed on any machine.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import yaml

from trainable.config import first_line

log = logging.getLogger(__name__)

# The sweep directory's files (names as in orchestrator/results.py and orchestrator/sweep.py;
# tests/analysis/test_results.py checks that they still agree).
TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
STATE_FILE = "sweep.json"
SPEC_COPY = "spec.yaml"
# MLflow tags and params written by orchestrator/tracking.py and orchestrator/sweep.py.
TRIAL_TAG = "tune_trial_id"
STATUS_TAG = "trial_status"
PARENT_TAG = "mlflow.parentRunId"
OBJECTIVES_PARAM = "objectives"

STATUSES = ("finished", "early_stopped", "stopped", "failed", "interrupted", "pending")
FRONT_STATUS = "finished"  # the only status whose trials may be on a Pareto front
PARAM_PREFIX = "param."
# Non-metric columns of a trials table.
BOOKKEEPING = frozenset({
    "trial_id", "status", "sweep", "epochs_done", "seconds", "checkpoint", "node_id", "hostname", "pid", "error",
    "optuna_number", "optuna_state", "started_at", "ended_at", "run_id",
})


class ResultsError(ValueError):
    """Results that cannot be loaded or used as asked; the message is one line."""


@dataclass(frozen=True)
class Objective:
    """One Pareto axis: a metric column and whether larger (``max``) or smaller (``min``) is better."""

    metric: str
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ResultsError(f"objective {self.metric!r}: mode must be max or min, got {self.mode!r}")

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"


@dataclass
class Sweep:
    """One sweep's results and what is known about how it ran.

    `trials`: the trials table (module docstring). `history`: one row per trial and epoch
    (``trial_id``, ``epoch``, metrics), possibly empty. `objectives`: the spec's objectives (empty
    when unknown). `spec_text`: the spec YAML as given. `parent_run_id`/`tracking_uri`: the sweep's
    MLflow parent run, when one was recorded.
    """

    name: str
    trials: pd.DataFrame
    history: pd.DataFrame
    objectives: list[Objective] = field(default_factory=list)
    source: str = ""
    sweep_dir: Path | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    spec_text: str = ""
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


# --- objectives ---------------------------------------------------------------------------------------
def parse_objectives(text: str | Sequence[str] | Sequence[Objective]) -> list[Objective]:
    """``"clean_acc:max,robust_acc@4/255:max"`` (or a list of ``metric:mode`` / `Objective`) -> objectives.

    The mode is after the last ``:``; a metric listed twice is an error.
    """
    items: Iterable[Any] = [t for t in text.split(",") if t.strip()] if isinstance(text, str) else text
    out: list[Objective] = []
    for item in items:
        if isinstance(item, Objective):
            objective = item
        else:
            metric, sep, mode = str(item).strip().rpartition(":")
            if not sep or not metric:
                raise ResultsError(f"objective {str(item).strip()!r}: expected METRIC:max or METRIC:min, "
                                   f"e.g. clean_acc:max")
            objective = Objective(metric.strip(), mode.strip())
        if objective.metric in [o.metric for o in out]:
            raise ResultsError(f"objective {objective.metric!r} is listed twice")
        out.append(objective)
    if not out:
        raise ResultsError("no objectives given; expected e.g. clean_acc:max,robust_acc:max")
    return out


def metric_columns(trials: pd.DataFrame) -> list[str]:
    """The numeric, non-param, non-bookkeeping columns of a trials table (its metrics)."""
    return [c for c in trials.columns if c not in BOOKKEEPING and not str(c).startswith(PARAM_PREFIX)
            and pd.api.types.is_numeric_dtype(trials[c]) and not pd.api.types.is_bool_dtype(trials[c])]


def param_columns(trials: pd.DataFrame) -> list[str]:
    """The ``param.<name>`` columns, in table order."""
    return [c for c in trials.columns if str(c).startswith(PARAM_PREFIX)]


def swept_params(trials: pd.DataFrame) -> list[str]:
    """The param columns that take more than one distinct value (the knobs the sweep varied).

    A missing value counts as a value of its own: a bundle that leaves a setting unset (None)
    runs it at the base value, which differs from the bundles that set it.
    """
    out = []
    for column in param_columns(trials):
        values = trials[column].map(lambda v: None if _missing(v) else _hashable(v))
        if values.nunique(dropna=False) > 1:
            out.append(column)
    return out


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays are values
        return False


def check_objectives(trials: pd.DataFrame, objectives: Sequence[Objective], where: str = "the sweep") -> None:
    """Raise `ResultsError` naming the first objective that is not a metric column of `trials`."""
    metrics = metric_columns(trials)
    for objective in objectives:
        if objective.metric not in metrics:
            shown = ", ".join(metrics) if metrics else "none"
            raise ResultsError(f"unknown objective {objective.metric!r} for {where}; its metrics are: {shown}")


# --- the sweep directory ------------------------------------------------------------------------------
def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read ``<sweep_dir>/trials.parquet`` (required), ``history.parquet``, ``spec.yaml`` and ``sweep.json``.

    Raises `ResultsError` (one line) for a missing directory, a directory without results or
    an empty trials table, and for an unreadable spec copy.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ResultsError(f"{sweep_dir}: no such sweep directory")
    trials_path = sweep_dir / TRIALS_FILE
    if not trials_path.is_file():
        raise ResultsError(f"{sweep_dir}: no {TRIALS_FILE} (not a sweep directory, or the sweep has not "
                           f"written its results yet)")
    trials = _read_parquet(trials_path)
    if len(trials) == 0:
        raise ResultsError(f"{trials_path}: the sweep has no trials")
    for column in ("trial_id", "status"):
        if column not in trials.columns:
            raise ResultsError(f"{trials_path}: column {column!r} is missing (not a trials table)")
    history_path = sweep_dir / HISTORY_FILE
    history = _read_parquet(history_path) if history_path.is_file() else pd.DataFrame(columns=["trial_id", "epoch"])
    state = _read_state(sweep_dir / STATE_FILE)
    spec_text, spec = _read_spec(sweep_dir / SPEC_COPY)
    objectives = _spec_objectives(spec, sweep_dir / SPEC_COPY)
    name = str(spec.get("name") or state.get("name") or sweep_dir.name)
    return Sweep(name=name, trials=trials, history=history, objectives=objectives, source=str(sweep_dir),
                 sweep_dir=sweep_dir, spec=spec, spec_text=spec_text, tracking_uri=state.get("tracking_uri") or None,
                 parent_run_id=state.get("parent_run_id") or None, state=state)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types; all mean "unreadable"
        raise ResultsError(f"{path}: unreadable Parquet ({type(exc).__name__}: {first_line(exc)})") from None


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
    except ValueError as exc:
        raise ResultsError(f"{path}: unreadable JSON ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    return state


def _read_spec(path: Path) -> tuple[str, dict[str, Any]]:
    if not path.is_file():
        return "", {}
    text = path.read_text()
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ResultsError(f"{path}: malformed YAML ({first_line(exc)})") from None
    if not isinstance(spec, dict):
        raise ResultsError(f"{path}: expected a mapping (a sweep spec)")
    return text, spec


def _spec_objectives(spec: dict[str, Any], path: Path) -> list[Objective]:
    raw = spec.get("objectives")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(o, dict) and "metric" in o and "mode" in o for o in raw):
        raise ResultsError(f"{path}: objectives: expected a list of {{metric: NAME, mode: max|min}}")
    try:
        return parse_objectives([Objective(str(o["metric"]), str(o["mode"])) for o in raw])
    except ResultsError as exc:
        raise ResultsError(f"{path}: objectives: {exc}") from None


def load_sweeps(sweep_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Load several sweep directories and `combine` their trials tables."""
    return combine([load_sweep(d) for d in sweep_dirs])


def combine(sweeps: Sequence[Sweep]) -> pd.DataFrame:
    """One trials table of several sweeps, with a ``sweep`` column (the sweep directory's name,
    or the sweep's name; made unique with ``#2``, ``#3`` ... when two sweeps share one).

    Columns missing from a sweep are NaN/None in its rows; ``(sweep, trial_id)`` is unique.
    """
    if not sweeps:
        raise ResultsError("no sweeps to combine")
    frames, seen = [], set()
    for sweep in sweeps:
        label = sweep.sweep_dir.name if sweep.sweep_dir is not None else sweep.name
        base, n = label, 1
        while label in seen:
            n += 1
            label = f"{base}#{n}"
        seen.add(label)
        frame = sweep.trials.copy()
        if "sweep" in frame.columns:  # already a combination (e.g. an MLflow experiment of several sweeps)
            frame["sweep"] = label + "/" + frame["sweep"].astype(str)
        else:
            frame.insert(0, "sweep", label)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True, sort=False)


# --- MLflow -------------------------------------------------------------------------------------------
def mlflow_to_metric_name(name: str) -> str:
    """Invert `orchestrator.tracking.mlflow_metric_name`: ``robust_acc_at_4/255`` -> ``robust_acc@4/255``."""
    return name.replace("_at_", "@")


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

    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():  # MLflow would silently create an empty store
            raise ResultsError(f"{tracking_uri}: no such MLflow store")
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        if parent_run_id is not None:
            parent = client.get_run(parent_run_id)
            experiment_ids = [parent.info.experiment_id]
            parents = [parent]
            name = client.get_experiment(parent.info.experiment_id).name
        else:
            found = client.get_experiment_by_name(experiment)
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
    objectives = parse_objectives(specs.pop()) if len(specs) == 1 and None not in specs else []
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
        row[mlflow_to_metric_name(key)] = float(value)
    start, end = info.start_time, info.end_time
    row["started_at"] = pd.Timestamp(start, unit="ms", tz="UTC") if start else pd.NaT
    row["ended_at"] = pd.Timestamp(end, unit="ms", tz="UTC") if end else pd.NaT
    row["seconds"] = (end - start) / 1000.0 if start and end else float("nan")
    return row


def _run_history(client: Any, run: Any, trial_id: str) -> pd.DataFrame:
    per_step: dict[int, dict[str, float]] = {}
    for key in run.data.metrics:
        for m in client.get_metric_history(run.info.run_id, key):
            per_step.setdefault(int(m.step), {})[mlflow_to_metric_name(key)] = float(m.value)
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


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays from Parquet lists
        converted = value.tolist()
        return tuple(converted) if isinstance(converted, list) else converted
    return value


