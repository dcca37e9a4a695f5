"""Synthetic sweep directories in the schema orchestrator/results.py writes (no Ray, no training)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

SPEC = """\
name: epsilon
preset: demo
objectives:
  - {metric: clean_acc, mode: max}
  - {metric: robust_acc, mode: max}
budget: {trials: 12, concurrency: 2}
sampler: tpe
base: {method: cf-amc-ssl, epochs: 2}
space:
  epsilon: {float: [0, 16/255]}
  replay_steps: {int: [1, 5]}
"""


def synthetic_trials(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """`n` trials with a clean/robust trade-off in epsilon; trial 0 is early-stopped with the best
    metrics of all (it must never reach the front), trial 1 failed (NaN metrics)."""
    rng = np.random.default_rng(seed)
    eps = np.round(rng.uniform(0, 16, n)) / 255
    replay = rng.integers(1, 6, n)
    clean = 0.8 - 6.0 * eps + rng.normal(0, 0.02, n)
    robust = 0.1 + 5.0 * eps - 0.01 * replay + rng.normal(0, 0.02, n)
    status = ["finished"] * n
    status[0], status[1] = "early_stopped", "failed"
    clean[0], robust[0] = 0.99, 0.99
    clean[1], robust[1] = np.nan, np.nan
    return pd.DataFrame({
        "trial_id": [f"t{i:02d}" for i in range(n)], "status": status,
        "param.epsilon": eps, "param.replay_steps": replay,
        "clean_acc": clean, "robust_acc": robust, "robust_acc@4/255": (clean + robust) / 2,
        "train_loss": rng.normal(-5, 1, n), "epoch": np.full(n, 2.0), "train_seconds": rng.uniform(10, 20, n),
        "epochs_done": [1, 0] + [2] * (n - 2), "seconds": rng.uniform(11, 21, n),
        "checkpoint": [None] * n, "node_id": ["n1"] * n, "hostname": ["h"] * n, "pid": pd.array([1] * n, "Int64"),
        "error": [None, "RuntimeError: boom"] + [None] * (n - 2),
        "optuna_number": pd.array(range(n), dtype="Int64"), "optuna_state": ["COMPLETE"] * n,
    })


def write_sweep(sweep_dir: Path, trials: pd.DataFrame, spec: str = SPEC, state: dict[str, Any] | None = None) -> Path:
    """Write trials.parquet, history.parquet (2 epochs per trial), spec.yaml and optionally sweep.json."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    trials.to_parquet(sweep_dir / "trials.parquet", index=False)
    rows = [{"trial_id": t, "epoch": e, "clean_acc": 0.1 * e, "robust_acc": 0.05 * e, "final": float(e == 2)}
            for t in trials["trial_id"] for e in (1, 2)]
    pd.DataFrame(rows).to_parquet(sweep_dir / "history.parquet", index=False)
    (sweep_dir / "spec.yaml").write_text(textwrap.dedent(spec))
    if state is not None:
        (sweep_dir / "sweep.json").write_text(json.dumps(state, indent=2))
    return sweep_dir


def mlflow_sweep(sweep_dir: Path, trials: pd.DataFrame, name: str = "epsilon") -> dict[str, Any]:
    """An MLflow SQLite store in `sweep_dir` laid out as orchestrator/tracking.py's Tracker does it
    (experiment = spec name, artifacts in <sweep_dir>/mlartifacts, one parent run with the spec as
    an artifact, one child run per trial tagged tune_trial_id / trial_status, metrics with '@' as
    '_at_'); returns the sweep.json content orchestrator/sweep.py writes."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{sweep_dir.resolve() / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(name, artifact_location=(sweep_dir / "mlartifacts").resolve().as_uri())
    parent = client.create_run(experiment_id, run_name=sweep_dir.name, tags={"git_commit": "x"}).info.run_id
    client.log_batch(parent, params=[Param("objectives", "clean_acc:max,robust_acc:max"), Param("trials", "12")])
    client.log_artifact(parent, str(sweep_dir / "spec.yaml"))
    for i, row in trials.iterrows():
        child = client.create_run(experiment_id, run_name=f"trial-{row['trial_id']}", start_time=1_700_000_000_000 + i * 1000,
                                  tags={"mlflow.parentRunId": parent, "tune_trial_id": row["trial_id"],
                                        "trial_status": row["status"]}).info.run_id
        params = [Param("epsilon", str(row["param.epsilon"])), Param("replay_steps", str(row["param.replay_steps"])),
                  Param("method", "cf-amc-ssl"), Param("objective", "None")]
        metrics = []
        for epoch in (1, 2):
            for key in ("clean_acc", "robust_acc", "robust_acc@4/255"):
                value = float(row[key])
                if np.isfinite(value):
                    metrics.append(Metric(key.replace("@", "_at_"), value * epoch / 2, 1_700_000_000_000, epoch))
        client.log_batch(child, params=params, metrics=metrics)
        client.set_terminated(child, "FINISHED", end_time=1_700_000_000_000 + i * 1000 + 30_000)
    client.set_terminated(parent, "FINISHED")
    return {"name": name, "preset": None, "overrides": [], "experiment_path": str(sweep_dir / "tune"),
            "tracking_uri": uri, "mlflow_experiment_id": experiment_id, "parent_run_id": parent,
            "study_name": name, "study_url": f"sqlite:///{sweep_dir / 'optuna.db'}", "created": "2025-01-01T00:00:00",
            "sweeps": [{"kind": "sweep", "at": "2025-01-01T00:00:00", "address": "local"}]}


@pytest.fixture(scope="session")
def tracked_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic sweep directory with Parquet results, spec.yaml, sweep.json and an MLflow store."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "epsilon-20250101-000000"
    trials = synthetic_trials()
    write_sweep(sweep_dir, trials)
    state = mlflow_sweep(sweep_dir, trials)
    (sweep_dir / "sweep.json").write_text(json.dumps(state, indent=2))
    return sweep_dir


@pytest.fixture
def make_trials():
    """`synthetic_trials` as a fixture (test modules here are not a package)."""
    return synthetic_trials


@pytest.fixture
def make_sweep():
    """`write_sweep` as a fixture."""
    return write_sweep


@pytest.fixture
def make_mlflow_sweep():
    """`mlflow_sweep` as a fixture."""
    return mlflow_sweep
