"""The four records of a sweep agree: Ray Tune's experiment, the Optuna study, the Parquet tables and MLflow.

`repair_study` brings the study in line with Tune's outcomes after a fit (tell what was never told,
add a COMPLETE trial for a failed one a resume finished, fail what was orphaned; never tell twice).
`check_sweep` reads all four records and lists every trial whose status or final metrics disagree and
every trial missing from one of them (`orchestrator check`; every sweep and resume ends with it).

What "agree" means, per trial (statuses are `orchestrator.layout.STATUSES`):

- Tune and ``trials.parquet``: the same trials; TERMINATED is finished/early_stopped/stopped (finished
  exactly when the last result is the final epoch), ERROR is failed/timed_out, anything else
  interrupted/pending/stopped; the objectives and ``epochs_done`` equal Tune's last result.
- Optuna: the newest Optuna trial carrying the Tune trial id has `layout.OPTUNA_STATE`'s state
  (RUNNING for a trial that continues on resume), a COMPLETE one the objectives' values; at most one
  COMPLETE trial per Tune trial; no RUNNING trial that Tune does not know.
- MLflow: one active child run per trial, tagged with its status, with the run status
  `layout.RUN_STATUS` maps it to, and every finite objective value of ``history.parquet`` at its
  epoch (the value logged last for that step).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
from optuna.trial import TrialState

from .layout import (
    FINAL_KEY,
    HISTORY_FILE,
    OPTUNA_STATE,
    RUN_STATUS,
    SPEC_COPY,
    STATUS_TAG,
    STATUSES,
    TRIAL_TAG,
    TRIALS_FILE,
    TUNE_TRIAL_ATTR,
    WARM_START_ATTR,
    Constraint,
    SweepError,
    SweepState,
    constraint_values,
    first_line,
    mlflow_metric_name,
)
from .results import last_result
from .search import set_constraints, supersede
from .study_store import load_study, with_retry

log = logging.getLogger(__name__)

TUNE_CLASSES = {"TERMINATED": {"finished", "early_stopped", "stopped"}, "ERROR": {"failed", "timed_out"}}
UNFINISHED = {"interrupted", "pending", "stopped"}
STOPPED_BY = "stopped_by"  # user attribute of an Optuna trial the sweep's time limit cut short


# --- repair ---------------------------------------------------------------------------------------------
def newest_by_tune_id(trials: Iterable[Any]) -> dict[str, Any]:
    """Tune trial id -> its newest Optuna trial (a retried trial's COMPLETE supersedes its FAIL)."""
    out: dict[str, Any] = {}
    for t in sorted(trials, key=lambda t: t.number):
        tid = t.user_attrs.get(TUNE_TRIAL_ATTR)
        if tid is not None:
            out[tid] = t
    return out


def time_limited(study_url: str, study_name: str) -> set[str]:
    """Tune ids of trials the sweep's time limit cut short (so a later resume keeps calling them stopped)."""
    try:
        study = load_study(study_url, study_name)
    except KeyError:
        return set()
    return {t.user_attrs[TUNE_TRIAL_ATTR] for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(STOPPED_BY) == "time_limit" and TUNE_TRIAL_ATTR in t.user_attrs}


def repair_study(study_url: str, study_name: str, trials: pd.DataFrame, metrics: list[str],
                 constraints: Sequence[Constraint] = ()) -> list[str]:
    """Tell the study every outcome Tune decided that it never heard; return one note per change.

    A RUNNING Optuna trial whose Tune trial is over is told (COMPLETE with the objectives, PRUNED,
    FAIL); a FAIL/PRUNED one whose Tune trial a resume finished gets a new COMPLETE trial
    (``retried_from``) unless one exists; a RUNNING trial Tune does not know is failed (``orphaned``:
    Tune saves its state when a fit ends, so such a trial can never run again).
    """
    study = load_study(study_url, study_name)
    storage = study._storage
    every = study.get_trials(deepcopy=False)
    newest = newest_by_tune_id(every)
    completed = {t.user_attrs.get(TUNE_TRIAL_ATTR) for t in every if t.state == TrialState.COMPLETE}
    notes: list[str] = []
    rows = trials.to_dict("records") if len(trials) else []
    for row in rows:
        tid, status = row["trial_id"], row["status"]
        want = OPTUNA_STATE.get(status)
        current = newest.get(tid)
        if current is None or want is None:
            continue
        values = [float(row.get(m, math.nan)) for m in metrics]
        if want == "COMPLETE" and not all(math.isfinite(v) for v in values):
            want = "FAIL"
        if current.state == TrialState.RUNNING:
            if status == "stopped":
                with_retry(storage.set_trial_user_attr, current._trial_id, STOPPED_BY, "time_limit")
            if constraints and want in ("COMPLETE", "PRUNED"):
                set_constraints(study, current._trial_id, constraints, constraint_values(constraints, row))
            with_retry(study.tell, current.number, values if want == "COMPLETE" else None,
                       state=TrialState[want], what="tell")
            notes.append(f"trial {tid}: told Optuna {want} (Tune's outcome had not reached the study)")
        elif current.state.name != want and want == "COMPLETE" and tid not in completed:
            supersede(study, current, values, tid, {c.metric: v for c, v in
                                                   zip(constraints, constraint_values(constraints, row))} or None)
            notes.append(f"trial {tid}: finished after {current.state.name}; added as a COMPLETE Optuna trial")
    known = {row["trial_id"] for row in rows}
    for t in every:
        if t.state == TrialState.RUNNING and t.user_attrs.get(TUNE_TRIAL_ATTR) not in known:
            with_retry(storage.set_trial_user_attr, t._trial_id, "orphaned", True)
            with_retry(storage.set_trial_state_values, t._trial_id, TrialState.FAIL)
            notes.append(f"Optuna trial {t.number}: its Tune trial was lost (a killed driver); marked FAIL/orphaned")
    return notes


# --- check ----------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What `check_sweep` found: one line per disagreement (empty: the records agree)."""

    sweep_dir: Path
    trials: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (f"check: OK: {self.trials} trials agree in Ray Tune, Optuna, {TRIALS_FILE}/{HISTORY_FILE} "
                    f"and MLflow")
        return f"check: {len(self.problems)} disagreement(s) among the sweep's records:\n" + "\n".join(
            f"  - {p}" for p in self.problems)


def _same(a: Any, b: Any) -> bool:
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def check_sweep(sweep_dir: Path) -> Verdict:
    """Compare the four records of the sweep in `sweep_dir` (see the module docstring)."""
    from trainable.config import parse_overrides

    from .spec import load_spec

    sweep_dir = Path(sweep_dir).resolve()
    state = SweepState.load(sweep_dir)
    verdict = Verdict(sweep_dir)
    problems = verdict.problems
    spec = load_spec(sweep_dir / SPEC_COPY, state.preset, parse_overrides(state.overrides))
    metrics = spec.metrics
    if not (sweep_dir / TRIALS_FILE).is_file():
        raise SweepError(f"{sweep_dir}: no {TRIALS_FILE} yet (the sweep has not ended once)")
    table = pd.read_parquet(sweep_dir / TRIALS_FILE)
    history = pd.read_parquet(sweep_dir / HISTORY_FILE) if (sweep_dir / HISTORY_FILE).is_file() else None
    rows = {r["trial_id"]: r for r in table.to_dict("records")} if len(table) else {}
    verdict.trials = len(rows)
    if len(rows) != len(table):
        problems.append(f"{TRIALS_FILE}: a trial id appears more than once")
    tune = _tune_trials(state.experiment_dir(sweep_dir), problems)
    _check_tune(tune, rows, metrics, problems)
    _check_history(rows, history, problems)
    _check_optuna(state, sweep_dir, rows, set(tune), metrics, problems)
    _check_mlflow(state, sweep_dir, rows, history, metrics, problems)
    return verdict


def _tune_trials(experiment: str, problems: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    from ray.tune import ExperimentAnalysis

    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        analysis = ExperimentAnalysis(experiment)
    except Exception as exc:  # noqa: BLE001 - reported as a disagreement: the record is unreadable
        problems.append(f"Ray Tune: experiment at {experiment} unreadable ({first_line(exc)})")
        return {}
    finally:
        quiet.setLevel(level)
    return {t.trial_id: (t.status, last_result(t)[0]) for t in analysis.trials}


def _check_tune(tune: Mapping[str, tuple[str, dict]], rows: Mapping[str, dict], metrics: list[str],
                problems: list[str]) -> None:
    for tid in sorted(set(tune) - set(rows)):
        problems.append(f"trial {tid}: in Ray Tune ({tune[tid][0]}) but not in {TRIALS_FILE}")
    for tid in sorted(set(rows) - set(tune)):
        problems.append(f"trial {tid}: in {TRIALS_FILE} ({rows[tid]['status']}) but not in Ray Tune")
    for tid in sorted(set(rows) & set(tune)):
        status, (tune_status, last) = rows[tid]["status"], tune[tid]
        if status not in STATUSES:
            problems.append(f"trial {tid}: {TRIALS_FILE} status {status!r} is not one of {', '.join(STATUSES)}")
            continue
        allowed = TUNE_CLASSES.get(tune_status, UNFINISHED)
        final = tune_status == "TERMINATED" and last.get(FINAL_KEY) == 1.0
        if status not in allowed or (status == "finished") != final:
            problems.append(f"trial {tid}: {TRIALS_FILE} says {status}, Ray Tune says {tune_status}"
                            f"{' after its final epoch' if last.get(FINAL_KEY) == 1.0 else ''}")
            continue
        for m in metrics:
            if m in last and not _same(rows[tid].get(m, math.nan), last[m]):
                problems.append(f"trial {tid}: {m} is {rows[tid].get(m)} in {TRIALS_FILE}, {last[m]} in Ray Tune")
        epoch = last.get("epoch", 0)
        if not _same(rows[tid].get("epochs_done", 0), epoch or 0):
            problems.append(f"trial {tid}: epochs_done {rows[tid].get('epochs_done')} in {TRIALS_FILE}, last epoch "
                            f"{epoch} in Ray Tune")


def _check_history(rows: Mapping[str, dict], history: pd.DataFrame | None, problems: list[str]) -> None:
    if history is None:
        problems.append(f"{HISTORY_FILE}: missing")
        return
    if len(history) and history.duplicated(["trial_id", "epoch"]).any():
        problems.append(f"{HISTORY_FILE}: an epoch of a trial appears twice")
    last = history.groupby("trial_id")["epoch"].max().to_dict() if len(history) else {}
    for tid in sorted(set(last) - set(rows)):
        problems.append(f"trial {tid}: in {HISTORY_FILE} but not in {TRIALS_FILE}")
    for tid, row in rows.items():
        done = int(row.get("epochs_done") or 0)
        if done and last.get(tid) != done:
            problems.append(f"trial {tid}: {HISTORY_FILE} ends at epoch {last.get(tid)}, {TRIALS_FILE} says "
                            f"{done} epochs done")


def _check_optuna(state: SweepState, sweep_dir: Path, rows: Mapping[str, dict], tune_ids: set[str],
                  metrics: list[str], problems: list[str]) -> None:
    try:
        trials = load_study(state.study(sweep_dir), state.study_name).get_trials(deepcopy=False)
    except Exception as exc:  # noqa: BLE001 - an unreadable study is a disagreement
        problems.append(f"Optuna: study {state.study_name!r} unreadable ({first_line(exc)})")
        return
    newest = newest_by_tune_id(trials)
    complete: dict[Any, int] = {}
    for t in trials:
        if WARM_START_ATTR in t.user_attrs:
            continue  # an earlier sweep's trial the study started with (`--warm-start`): no Tune trial here
        tid = t.user_attrs.get(TUNE_TRIAL_ATTR)
        if t.state == TrialState.COMPLETE:
            complete[tid] = complete.get(tid, 0) + 1
        if tid not in rows and tid not in tune_ids:
            if t.state == TrialState.RUNNING:
                problems.append(f"Optuna trial {t.number}: RUNNING, but its Tune trial {tid} is unknown")
            elif t.state == TrialState.COMPLETE:
                problems.append(f"Optuna trial {t.number}: COMPLETE, but its Tune trial {tid} is unknown")
    for tid, n in complete.items():
        if n > 1:
            problems.append(f"trial {tid}: told to Optuna as COMPLETE {n} times")
    for tid, row in sorted(rows.items()):
        found = newest.get(tid)
        if found is None:
            problems.append(f"trial {tid}: in {TRIALS_FILE} ({row['status']}) but not in the Optuna study")
            continue
        t = found
        want = OPTUNA_STATE.get(row["status"]) or "RUNNING"
        values = [row.get(m, math.nan) for m in metrics]
        if want == "COMPLETE" and not all(_is_finite(v) for v in values):
            want = "FAIL"
        if t.state.name != want:
            problems.append(f"trial {tid}: {TRIALS_FILE} says {row['status']}, Optuna trial {t.number} is "
                            f"{t.state.name} (expected {want})")
        elif want == "COMPLETE" and not all(_same(a, b) for a, b in zip(t.values or [], values)):
            problems.append(f"trial {tid}: Optuna values {t.values} differ from {TRIALS_FILE} {values}")


def _is_finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _check_mlflow(state: SweepState, sweep_dir: Path, rows: Mapping[str, dict], history: pd.DataFrame | None,
                  metrics: list[str], problems: list[str]) -> None:
    from mlflow import MlflowClient

    from .layout import PARENT_TAG

    try:
        client = MlflowClient(tracking_uri=state.tracking(sweep_dir))
        runs: list[Any] = []
        token = None
        while True:
            page = client.search_runs([state.mlflow_experiment_id], max_results=1000, page_token=token,
                                      filter_string=f"tags.`{PARENT_TAG}` = '{state.parent_run_id}'")
            runs.extend(page)
            token = page.token
            if not token:
                break
    except Exception as exc:  # noqa: BLE001 - an unreachable store is a disagreement (nothing can be compared)
        problems.append(f"MLflow: cannot read the sweep's runs at {state.tracking(sweep_dir)} ({first_line(exc)})")
        return
    by_trial: dict[str, list[Any]] = {}
    for run in runs:
        by_trial.setdefault(run.data.tags.get(TRIAL_TAG, "?"), []).append(run)
    for tid in sorted(set(by_trial) - set(rows)):
        problems.append(f"trial {tid}: has an MLflow child run but is not in {TRIALS_FILE}")
    per_epoch = history.groupby("trial_id") if history is not None and len(history) else None
    for tid, row in sorted(rows.items()):
        found = by_trial.get(tid, [])
        if len(found) != 1:
            problems.append(f"trial {tid}: {len(found)} MLflow child runs (expected 1)")
            if not found:
                continue
        run = found[0]
        status = row["status"]
        if run.data.tags.get(STATUS_TAG) != status:
            problems.append(f"trial {tid}: MLflow tag {STATUS_TAG}={run.data.tags.get(STATUS_TAG)}, {TRIALS_FILE} "
                            f"says {status}")
        if run.info.status != RUN_STATUS.get(status, "FINISHED"):
            problems.append(f"trial {tid}: MLflow run {run.info.status}, expected {RUN_STATUS.get(status)} for {status}")
        if per_epoch is None or tid not in per_epoch.groups:
            continue
        epochs = per_epoch.get_group(tid)
        for m in [m for m in metrics if m in epochs.columns]:
            logged = _logged(client, run.info.run_id, mlflow_metric_name(m))
            for epoch in sorted(set(logged) - {int(e) for e in epochs["epoch"]}):
                problems.append(f"trial {tid}: epoch {epoch} {m} is in MLflow but not in {HISTORY_FILE}")
            for epoch, value in zip(epochs["epoch"], epochs[m]):
                if not _is_finite(value):
                    continue
                if int(epoch) not in logged:
                    problems.append(f"trial {tid}: epoch {int(epoch)} {m} is in {HISTORY_FILE} but not in MLflow")
                elif not _same(logged[int(epoch)], value):
                    problems.append(f"trial {tid}: epoch {int(epoch)} {m} is {value} in {HISTORY_FILE}, "
                                    f"{logged[int(epoch)]} in MLflow")


def _logged(client: Any, run_id: str, name: str) -> dict[int, float]:
    """step -> the value logged last for it (a re-trained epoch's newer value supersedes the older)."""
    out: dict[int, float] = {}
    for m in sorted(client.get_metric_history(run_id, name), key=lambda m: (m.step, m.timestamp)):
        out[int(m.step)] = m.value
    return out
