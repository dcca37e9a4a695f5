"""Starting from what is known: `enqueue` points are the study's first trials, in order; `--warm-start`
copies an earlier sweep's finished trials into the new study (and changes what the sampler suggests);
spaces that do not match are refused in one line naming the parameter; constraint values reach the
study as Optuna's samplers read them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest

from orchestrator.layout import TRIALS_FILE, WARM_START_ATTR, SweepError, SweepState
from orchestrator.search import make_searcher
from orchestrator.spec import SweepSpec, parse_spec
from orchestrator.study_storage import open_storage
from orchestrator.warm_start import warm_trials
from tests.specs import tiny_spec

TPE = "{type: tpe, seed: 0, n_startup_trials: 2}"
EARLIER = [("e0", "finished", 0.0, 0.70, 0.10), ("e1", "finished", 4 / 255, 0.68, 0.40),
           ("e2", "finished", 8 / 255, 0.66, 0.55), ("e3", "failed", 12 / 255, float("nan"), float("nan"))]


def _spec(**changes) -> SweepSpec:
    changes.setdefault("sampler", TPE)
    return parse_spec(tiny_spec(**changes), "spec.yaml")


def _earlier_sweep(directory: Path, text: str, rows=EARLIER) -> Path:
    """A finished sweep's directory as `warm_trials` reads it: sweep.json, spec.yaml, trials.parquet."""
    directory.mkdir()
    (directory / "spec.yaml").write_text(text)
    SweepState(name="tiny", preset=None, overrides=[], experiment_path="tune", tracking_uri="sqlite:///mlflow.db",
               mlflow_experiment_id="", parent_run_id="", study_name="tiny", study_url="sqlite:///optuna.db",
               created="2026-12-01T00:00:00").save(directory)
    pd.DataFrame([{"trial_id": t, "status": s, "param.epsilon": e, "clean_acc": c, "robust_acc": r}
                  for t, s, e, c, r in rows]).to_parquet(directory / TRIALS_FILE)
    return directory


def _searcher(spec: SweepSpec, url: str, **kwargs):
    return make_searcher(spec.space, spec.metrics, spec.modes, spec.sampler, spec.sampler_options, "s", url,
                         1, enqueue=spec.enqueue, constraints=spec.constraints, **kwargs)


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=open_storage(url))


def test_enqueued_points_are_the_first_trials_in_order(tmp_path: Path) -> None:
    space = ("  row:\n    choice:\n      emp: {method: emp-ssl}\n      free: {method: cf-amc-ssl}\n"
             "  epsilon: {float: [0, 16/255]}")
    spec = _spec(space=space, sampler="{type: random, seed: 3}",
                 extra="enqueue: [{row: free, epsilon: 8/255}, emp, {epsilon: 0}]\n")
    assert spec.enqueue == [{"row": "free", "epsilon": pytest.approx(8 / 255)}, {"row": "emp"}, {"epsilon": 0.0}]
    searcher = _searcher(spec, f"sqlite:///{tmp_path / 'o.db'}")
    configs = [searcher.suggest(f"t{n}") for n in range(4)]
    assert configs[0]["row"] == "free" and configs[0]["epsilon"] == pytest.approx(8 / 255)
    assert configs[0]["method"] == "cf-amc-ssl"  # the bundle's settings come with its name
    assert configs[1]["row"] == "emp" and configs[1]["method"] == "emp-ssl"
    assert configs[2]["epsilon"] == 0.0
    assert configs[3]["epsilon"] not in (0.0, pytest.approx(8 / 255))  # then the sampler takes over
    numbers = {t.user_attrs["tune_trial_id"]: t.number for t in _study(f"sqlite:///{tmp_path / 'o.db'}").trials}
    assert [numbers[f"t{n}"] for n in range(4)] == [0, 1, 2, 3]


def test_warm_start_holds_the_earlier_trials_and_changes_the_first_suggestion(tmp_path: Path) -> None:
    spec = _spec()
    earlier = _earlier_sweep(tmp_path / "earlier", tiny_spec(sampler=TPE))
    warm = warm_trials(earlier, spec)
    assert [t.params["epsilon"] for t in warm] == pytest.approx([0.0, 4 / 255, 8 / 255])  # finished ones only
    assert [t.user_attrs[WARM_START_ATTR] for t in warm] == [f"{earlier}:e{i}" for i in range(3)]

    warm_url, cold_url = f"sqlite:///{tmp_path / 'warm.db'}", f"sqlite:///{tmp_path / 'cold.db'}"
    warm_first = _searcher(spec, warm_url, warm=warm).suggest("t0")
    cold_first = _searcher(spec, cold_url).suggest("t0")
    study = _study(warm_url)
    held = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.values for t in held] == [[0.70, 0.10], [0.68, 0.40], [0.66, 0.55]]
    assert len(study.trials) == 4 and study.trials[3].user_attrs["tune_trial_id"] == "t0"
    # same sampler, same seed: only the earlier trials can make TPE suggest something else
    assert warm_first["epsilon"] != pytest.approx(cold_first["epsilon"])
    assert _searcher(spec, f"sqlite:///{tmp_path / 'cold2.db'}").suggest("t0") == cold_first


def test_the_shipped_warm_start_spec_fits_the_demo_sweep(tmp_path: Path) -> None:
    """search_spaces/warm_start.yaml starts from a run of search_spaces/epsilon.yaml, as its comment says."""
    from tests.specs import SPACES

    earlier = _earlier_sweep(tmp_path / "demo", (SPACES / "epsilon.yaml").read_text())
    warm = warm_trials(earlier, parse_spec((SPACES / "warm_start.yaml").read_text(), "warm_start.yaml"))
    assert [t.params["epsilon"] for t in warm] == pytest.approx([0.0, 4 / 255, 8 / 255])


@pytest.mark.parametrize("space,fragment", [
    ("  epsilon: {choice: [0, 8/255]}", "the spaces do not match: space.epsilon differs: choice"),
    ("  epsilon: {float: [0, 16/255]}\n  num_crops: {choice: [2, 4]}", "space.num_crops is not in its space"),
    ("  num_crops: {choice: [2, 4]}", "space.num_crops is not in its space"),
    ("  epsilon: {float: [1/255, 16/255]}", "trial e0 has epsilon=0.0, which this spec's space.epsilon cannot take"),
])
def test_warm_start_from_a_mismatched_space_is_refused_in_one_line(space: str, fragment: str, tmp_path: Path) -> None:
    earlier = _earlier_sweep(tmp_path / "earlier", tiny_spec(sampler=TPE))
    with pytest.raises(SweepError) as err:
        warm_trials(earlier, _spec(space=space))
    message = str(err.value)
    assert message.startswith(f"--warm-start {earlier}: ") and fragment in message and "\n" not in message, message


def test_warm_start_refuses_a_space_that_drops_a_parameter(tmp_path: Path) -> None:
    earlier = _earlier_sweep(tmp_path / "earlier", tiny_spec(sampler=TPE, space="  epsilon: {float: [0, 16/255]}\n"
                                                                           "  num_crops: {choice: [2, 4]}"))
    with pytest.raises(SweepError, match=r"its space also sweeps 'num_crops', this spec's does not$"):
        warm_trials(earlier, _spec())
    with pytest.raises(SweepError, match=r"not a sweep directory"):
        warm_trials(tmp_path, _spec())


def test_constraint_values_reach_the_study_as_the_samplers_read_them(tmp_path: Path) -> None:
    spec = _spec(extra="constraints: [{metric: clean_acc, min: 0.6}, {metric: train_seconds, max: 100}]\n")
    url = f"sqlite:///{tmp_path / 'o.db'}"
    searcher = _searcher(spec, url)
    for tid, clean, seconds in (("ok", 0.7, 50.0), ("slow", 0.7, 150.0), ("bad", 0.5, 50.0)):
        assert searcher.suggest(tid) is not None
        searcher.on_trial_complete(tid, {"clean_acc": clean, "robust_acc": 0.3, "train_seconds": seconds, "final": 1.0})
    by_id = {t.user_attrs["tune_trial_id"]: t for t in _study(url).trials}
    assert by_id["ok"].constraints == pytest.approx({"clean_acc": -0.1, "train_seconds": -50.0})
    assert by_id["slow"].constraints["train_seconds"] == pytest.approx(50.0)
    assert by_id["bad"].user_attrs["constraints"] == pytest.approx([0.1, -50.0])
    # the earlier trials of a warm start carry them too (the sampler learns which were infeasible)
    earlier = _earlier_sweep(tmp_path / "earlier", tiny_spec(sampler=TPE), rows=[
        ("e0", "finished", 0.0, 0.5, 0.1)])
    frame = pd.read_parquet(earlier / TRIALS_FILE).assign(train_seconds=10.0)
    frame.to_parquet(earlier / TRIALS_FILE)
    (warm,) = warm_trials(earlier, spec)
    assert warm.constraints == pytest.approx({"clean_acc": 0.1, "train_seconds": -90.0})


def test_an_enqueued_value_its_condition_rules_out_is_warned_about() -> None:
    space = "  method: {choice: [emp-ssl, cf-amc-ssl]}\n  replay_steps: {int: [1, 4], when: {adversary: free}}"
    spec = _spec(space=space, extra="enqueue: [{method: emp-ssl, replay_steps: 2}, {method: cf-amc-ssl, "
                                    "replay_steps: 2}, {replay_steps: 3}]\n")
    assert spec.warnings == ["spec.yaml: enqueue[0].replay_steps: is not used: its condition {'adversary': "
                             "['free']} does not hold for this point"]
