"""The YAML space becomes the declared Optuna distributions, with conditionals and bundles, and pickles."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from orchestrator.spec import load_spec, parse_spec
from trainable.tune_adapter import TrialSettings, build_config

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"

SPEC = """\
name: space-test
preset: tiny
objectives: [{metric: clean_acc, mode: max}, {metric: robust_acc, mode: max}]
budget: {trials: 4}
base: {method: cf-amc-ssl}
space:
  method: {choice: [cf-amc-ssl, robust-emp-ssl]}
  epsilon: {float: [2/255, 16/255], log: true}
  alpha: {float: [0.005, 0.02], step: 0.005}
  num_crops: {int: [2, 8], step: 2}
  replay_steps: {int: [1, 5], when: {adversary: free}}
  pgd_steps: {int: [1, 3], when: {method: robust-emp-ssl}}
  tcr_eps: {choice: [0.1, 1/5]}
"""


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _ask_many(space, n: int, seed: int = 0) -> list[optuna.Trial]:
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed))
    trials = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        study.tell(trial, [0.5, 0.5])
        trials.append(trial)
    return trials


def test_declared_distributions_and_conditionals() -> None:
    space = parse_spec(SPEC, "s.yaml").space
    trials = _ask_many(space, 24)
    seen_methods = set()
    for trial in trials:
        d = trial.distributions
        assert d["method"] == CategoricalDistribution(["cf-amc-ssl", "robust-emp-ssl"])
        assert d["epsilon"] == FloatDistribution(2 / 255, 16 / 255, log=True)
        assert d["alpha"] == FloatDistribution(0.005, 0.02, step=0.005)
        assert d["num_crops"] == IntDistribution(2, 8, step=2)
        assert d["tcr_eps"] == CategoricalDistribution([0.1, 0.2])  # "1/5" parsed as a number
        method = trial.params["method"]
        seen_methods.add(method)
        # the adversary is derived from the sampled method: free for cf-amc-ssl, pgd for robust-emp-ssl
        assert ("replay_steps" in trial.params) == (method == "cf-amc-ssl")
        assert ("pgd_steps" in trial.params) == (method == "robust-emp-ssl")
        if "replay_steps" in d:
            assert d["replay_steps"] == IntDistribution(1, 5)
        if "pgd_steps" in d:
            assert d["pgd_steps"] == IntDistribution(1, 3)
        assert 2 / 255 <= trial.params["epsilon"] <= 16 / 255
        assert trial.params["num_crops"] % 2 == 0
    assert seen_methods == {"cf-amc-ssl", "robust-emp-ssl"}


def test_sampled_params_build_valid_trial_configs() -> None:
    spec = parse_spec(SPEC, "s.yaml")
    settings = TrialSettings(preset=spec.preset, base=spec.base, labels=spec.space.labels)
    for trial in _ask_many(spec.space, 10, seed=3):
        config = build_config(trial.params, settings)
        assert config.adversary == ("free" if trial.params["method"] == "cf-amc-ssl" else "pgd")
        assert config.epsilon == pytest.approx(trial.params["epsilon"])


def test_space_pickles_and_behaves_the_same() -> None:
    space = parse_spec(SPEC, "s.yaml").space
    clone = pickle.loads(pickle.dumps(space))
    a = [t.params for t in _ask_many(space, 5, seed=7)]
    b = [t.params for t in _ask_many(clone, 5, seed=7)]
    assert a == b


def test_bundles_return_their_settings_and_grid_covers_every_row() -> None:
    from orchestrator.samplers import TuneGridSampler

    spec = load_spec(SPACES / "paper_table.yaml")
    space = spec.space
    assert spec.trials == 7 and space.grid_size() == 7
    study = optuna.create_study(directions=["maximize"] * 4, sampler=TuneGridSampler(space.grid(), seed=0))
    rows = []
    for _ in range(7):
        trial = study.ask()
        extra = space(trial)
        row = trial.params["row"]
        rows.append(row)
        assert extra == space.params[0].bundles[row]
        study.tell(trial, [0.5, 0.5, 0.5, 1.0])  # the grid sampler must not call study.stop() here
        settings = TrialSettings(preset=spec.preset, base=spec.base, labels=space.labels)
        config = build_config({**trial.params, **extra}, settings)
        assert config.method == extra["method"] and config.views == extra["views"]
    assert sorted(rows) == sorted(space.params[0].bundles)


def test_pareto_search_tells_pruned_failed_and_complete() -> None:
    from orchestrator.search import ParetoOptunaSearch

    space = parse_spec(SPEC, "s.yaml").space
    search = ParetoOptunaSearch(space, metric=["clean_acc", "robust_acc"], mode=["max", "max"],
                                sampler=optuna.samplers.RandomSampler(0), study_name="t")
    for tid in ("full", "stopped", "crashed", "nan"):
        assert search.suggest(tid)["method"] in ("cf-amc-ssl", "robust-emp-ssl")
    search.on_trial_complete("full", {"clean_acc": 0.7, "robust_acc": 0.4, "final": 1.0})
    search.on_trial_complete("stopped", {"clean_acc": 0.9, "robust_acc": 0.9, "final": 0.0})
    search.on_trial_complete("crashed", None, error=True)
    search.on_trial_complete("nan", {"clean_acc": math.nan, "robust_acc": 0.1, "final": 1.0})
    study = search._ot_study
    states = {t.user_attrs["tune_trial_id"]: t.state for t in study.trials}
    assert states == {"full": TrialState.COMPLETE, "stopped": TrialState.PRUNED, "crashed": TrialState.FAIL,
                      "nan": TrialState.FAIL}
    assert [t.user_attrs["tune_trial_id"] for t in study.best_trials] == ["full"]
    # a failed trial retried by a resume and finished is added as a new COMPLETE trial
    search.on_trial_complete("crashed", {"clean_acc": 0.6, "robust_acc": 0.6, "final": 1.0})
    retried = [t for t in study.trials if t.user_attrs.get("retried_from") is not None]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].user_attrs["tune_trial_id"] == "crashed"
    assert pickle.loads(pickle.dumps(search.__dict__["_space"])).names == space.names


def test_trial_status_mapping() -> None:
    from orchestrator.results import trial_status

    assert trial_status("TERMINATED", {"final": 1.0}, "early_stopped") == "finished"
    assert trial_status("TERMINATED", {"final": 0.0}, "early_stopped") == "early_stopped"
    assert trial_status("ERROR", {"final": 1.0}, "stopped") == "failed"
    assert trial_status("RUNNING", {"final": 0.0}, "stopped") == "interrupted"
    assert trial_status("PENDING", None, "stopped") == "pending"
    assert trial_status("RUNNING", {"final": 0.0}, "stopped", time_limit_reached=True) == "stopped"
