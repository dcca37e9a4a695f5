"""MLflow child runs are idempotent per Tune trial; metric names are made MLflow-safe."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

from orchestrator.layout import mlflow_metric_name
from orchestrator.tracking import MlflowTrialCallback, Tracker, default_tracking_uri
from trainable.tune_adapter import TrialSettings


def test_metric_names_for_mlflow() -> None:
    assert mlflow_metric_name("robust_acc@4/255") == "robust_acc_at_4/255"
    assert mlflow_metric_name("robust_acc@0.0300") == "robust_acc_at_0.0300"
    assert mlflow_metric_name("clean_acc") == "clean_acc"


def test_default_uri_is_absolute(tmp_path: Path) -> None:
    assert default_tracking_uri(tmp_path) == f"sqlite:////{str(tmp_path.resolve()).lstrip('/')}/mlflow.db"


def _tracked_trial(tmp_path: Path, epochs: int) -> tuple[Tracker, str, MlflowTrialCallback, SimpleNamespace]:
    """A tracker on a SQLite store in `tmp_path`, its parent run, the trial callback, and trial "abc"."""
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker(uri, "t", tmp_path / "mlartifacts")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("name: t\n")
    parent = tracker.start_parent("sweep", {"trials": 2}, {"git_commit": "x"}, spec_file)
    settings = TrialSettings(preset="tiny", base={"epochs": epochs}, metric_names=("clean_acc",))
    callback = MlflowTrialCallback(uri, tracker.experiment_id, parent, settings)
    return tracker, parent, callback, SimpleNamespace(trial_id="abc", config={"epsilon": 0.03},
                                                      last_result={"final": 1.0})


def test_child_runs_are_idempotent_and_reconciled(tmp_path: Path) -> None:
    tracker, parent, callback, trial = _tracked_trial(tmp_path, epochs=2)
    result = {"epoch": 1.0, "clean_acc": float("nan"), "train_loss": -1.0, "robust_acc@4/255": 0.2,
              "node_id": "n1", "training_iteration": 1}
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, result)
    callback = pickle.loads(pickle.dumps(callback))  # what Tune does on restore: caches are dropped
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, result)  # the same epoch again (a resumed trial) is not re-logged
    callback.on_trial_result(0, [], trial, {**result, "epoch": 2.0, "clean_acc": 0.5})
    callback.on_trial_complete(0, [], trial)
    children = tracker.children(parent)
    assert len(children) == 1
    run = children[0]
    assert run.data.tags["tune_trial_id"] == "abc" and run.data.tags["trial_status"] == "finished"
    assert run.data.tags["node_id"] == "n1" and run.info.status == "FINISHED"
    assert run.data.params["epsilon"] == "0.03" and run.data.params["epochs"] == "2"
    history = tracker.client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert [m.step for m in tracker.client.get_metric_history(run.info.run_id, "clean_acc")] == [2]  # NaN skipped
    assert "robust_acc_at_4/255" in run.data.metrics

    other = SimpleNamespace(trial_id="lost", config={}, last_result=None)
    callback.on_trial_start(0, [], other)
    tracker.reconcile_children(parent, {"abc": "finished"})
    assert [r.data.tags["tune_trial_id"] for r in tracker.children(parent)] == ["abc"]


def test_backfill_logs_what_mlflow_missed_once(tmp_path: Path) -> None:
    """What MLflow refused during an outage is in history.parquet: `backfill` logs the missing epochs and
    the epochs logged with another value (trained again), as the step's last value; a second call logs
    nothing; a trial with no child run gets one from `reconcile_children` first."""
    import pandas as pd

    tracker, parent, callback, trial = _tracked_trial(tmp_path, epochs=3)
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, {"epoch": 1.0, "train_loss": -1.0, "training_iteration": 1})
    # epochs 2 and 3 never reached MLflow; epoch 1 was trained again with another loss; "lost" has no run
    history = pd.DataFrame({"trial_id": ["abc"] * 3 + ["lost"], "epoch": [1.0, 2.0, 3.0, 1.0],
                            "train_loss": [-1.5, -2.0, float("nan"), -0.5]})
    statuses = {"abc": "finished", "lost": "failed"}
    tracker.reconcile_children(parent, statuses, {"lost": {"epsilon": 0.01}})
    # train_loss: abc epochs 1 and 2 (3 is NaN), lost epoch 1; the `epoch` metric: abc 2 and 3, lost 1
    assert tracker.backfill(parent, history, statuses) == 6
    runs = {r.data.tags["tune_trial_id"]: r.info.run_id for r in tracker.children(parent)}
    logged = tracker.client.get_metric_history(runs["abc"], "train_loss")
    last = {m.step: m.value for m in sorted(logged, key=lambda m: (m.step, m.timestamp))}
    assert last == {1: -1.5, 2: -2.0}
    assert sorted(m.step for m in tracker.client.get_metric_history(runs["abc"], "epoch")) == [1, 2, 3]
    assert [m.value for m in tracker.client.get_metric_history(runs["lost"], "train_loss")] == [-0.5]
    assert tracker.backfill(parent, history, statuses) == 0
