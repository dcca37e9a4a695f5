"""Load a sweep's results into one table of trials, from its directory (Parquet).

A *trials table* is a `pandas.DataFrame` with one row per trial: ``trial_id``, ``status``
(finished, early_stopped, stopped, failed, interrupted, pending; ``running`` only from a live
MLflow experiment), ``param.<name>`` per swept knob, ``config.<name>`` per resolved trial setting
(sweeps written since those columns exist), one float column per final metric named as the metric
(``clean_acc``, ``robust_acc@4/255``, ...) and ``seconds``, plus the bookkeeping columns of
`orchestrator.layout.TRIAL_COLUMNS`. Tables of several sweeps are combined with a ``sweep`` column
(see `combine`). The same table from a sweep's MLflow runs: `analysis.tracking.load_mlflow`.

Only stored results are read, through the names of `orchestrator.layout` (the one module of the
orchestrator this package uses): nothing here needs Ray, Optuna or the trainable, so a finished or
interrupted sweep can be analysed on any machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import yaml

from orchestrator.layout import (
    CONFIG_PREFIX,
    FEASIBLE_COLUMN,
    FRONT_STATUS,
    HISTORY_FILE,
    PARAM_PREFIX,
    SPEC_COPY,
    STATE_FILE,
    STATUSES,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    Objective,
    SweepState,
    UserError,
    first_line,
    parse_objectives,
)

log = logging.getLogger(__name__)

__all__ = ["CONFIG_PREFIX", "FEASIBLE_COLUMN", "FRONT_STATUS", "PARAM_PREFIX", "STATUSES", "Objective", "ResultsError", "Sweep",
           "check_objectives", "combine", "config_columns", "load_sweep", "load_sweeps", "metric_columns",
           "param_columns", "parse_objectives", "swept_params"]


class ResultsError(UserError):
    """Results that cannot be loaded or used as asked; the message is one line."""


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
    state: SweepState | None = None  # sweep.json, when the sweep has one


# --- columns ---------------------------------------------------------------------------------------------
def metric_columns(trials: pd.DataFrame) -> list[str]:
    """The numeric, non-param, non-bookkeeping columns of a trials table (its metrics)."""
    return [c for c in trials.columns if c not in TRIAL_COLUMNS and not str(c).startswith((PARAM_PREFIX, CONFIG_PREFIX))
            and pd.api.types.is_numeric_dtype(trials[c]) and not pd.api.types.is_bool_dtype(trials[c])]


def config_columns(trials: pd.DataFrame) -> list[str]:
    """The ``config.<name>`` columns (every resolved trial setting), in table order."""
    return [c for c in trials.columns if str(c).startswith(CONFIG_PREFIX)]


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
    state = _read_state(sweep_dir)
    spec_text, spec = _read_spec(sweep_dir / SPEC_COPY)
    objectives = _spec_objectives(spec, sweep_dir / SPEC_COPY)
    name = str(spec.get("name") or (state.name if state else "") or sweep_dir.name)
    return Sweep(name=name, trials=trials, history=history, objectives=objectives, source=str(sweep_dir),
                 sweep_dir=sweep_dir, spec=spec, spec_text=spec_text,
                 tracking_uri=state.tracking(sweep_dir) if state and state.tracking_uri else None,
                 parent_run_id=(state.parent_run_id or None) if state else None, state=state)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types; all mean "unreadable"
        raise ResultsError(f"{path}: unreadable Parquet ({type(exc).__name__}: {first_line(exc)})") from None


def _read_state(sweep_dir: Path) -> SweepState | None:
    if not (sweep_dir / STATE_FILE).is_file():
        return None
    try:
        return SweepState.load(sweep_dir)
    except UserError as exc:
        raise ResultsError(str(exc)) from None


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
    except UserError as exc:
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


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays from Parquet lists
        converted = value.tolist()
        return tuple(converted) if isinstance(converted, list) else converted
    return value


