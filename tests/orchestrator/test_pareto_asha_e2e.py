"""A sweep under the pareto-asha scheduler on the tiny preset: the trials it stops early are
`early_stopped` in trials.parquet, PRUNED in Optuna and off the front, every trial is evaluated after
every epoch, and `orchestrator check` passes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.pareto import front
from analysis.results import Objective
from orchestrator.cli import main
from orchestrator.schedulers import replay
from tests.specs import tiny_spec

pytestmark = pytest.mark.slow


def test_pareto_asha_sweep_prunes_the_trials_it_stops(workdir: Path, write_spec, capsys) -> None:
    """One trial at a time, so the order the scheduler saw is the trials' order and the replay of the
    recorded history through the same rule must stop exactly the trials the sweep stopped. On the tiny
    preset the accuracies sit at chance (ties: no trial dominates another on them), so the second
    objective is train_loss, and the sweep is over lambda_tcr, which moves it by far more than any
    processor's rounding could."""
    text = tiny_spec(name="pareto-asha", trials=4, concurrency=1, epochs=2, space="  lambda_tcr: {float: [0.5, 2]}",
                     extra="scheduler: {type: pareto-asha, grace_period: 1, reduction_factor: 2}\n")
    text = text.replace("{metric: robust_acc, mode: max}", "{metric: train_loss, mode: min}")
    spec = write_spec(text)
    out = workdir / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "--verify", "none", "-q"]) == 0
    captured = capsys.readouterr()
    assert "check: OK" in captured.out, captured.out[-3000:] + captured.err[-3000:]

    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    assert set(trials["status"]) <= {"finished", "early_stopped"}, trials[["trial_id", "status"]]
    stopped = trials[trials["status"] == "early_stopped"]
    finished = trials[trials["status"] == "finished"]
    assert len(stopped) >= 1 and len(finished) >= 1, trials[["trial_id", "status", "clean_acc", "train_loss"]]
    assert set(stopped["optuna_state"]) == {"PRUNED"} and set(stopped["epochs_done"]) == {1}
    assert set(finished["optuna_state"]) == {"COMPLETE"} and set(finished["epochs_done"]) == {2}
    assert history["clean_acc"].notna().all()  # eval_every=1: every epoch evaluated

    objectives = [Objective("clean_acc", "max"), Objective("train_loss", "min")]
    on_front = set(front(trials, objectives)["trial_id"])
    assert on_front and not on_front & set(stopped["trial_id"])
    replayed = replay(history, [o.metric for o in objectives], [o.mode for o in objectives], "train_loss",
                      max_t=2, order=list(trials["trial_id"]))
    assert set(replayed.loc[replayed["pareto_stop"].notna(), "trial_id"]) == set(stopped["trial_id"])

    import optuna

    state = json.loads((out / "sweep.json").read_text())
    study = optuna.load_study(study_name=state["study_name"], storage=f"sqlite:///{out / 'optuna.db'}")
    pruned = {t.user_attrs["tune_trial_id"] for t in study.trials if t.state.name == "PRUNED"}
    assert pruned == set(stopped["trial_id"])
    assert not {t.user_attrs["tune_trial_id"] for t in study.best_trials} & pruned
    assert main(["check", str(out)]) == 0
