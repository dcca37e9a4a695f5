"""The pareto-asha scheduler's rung decision against Ray's ASHA fed the same results, its replay of a
recorded history (a script's too). No Ray cluster is started: the
schedulers are called as Tune calls them, with stand-in trials."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from orchestrator.schedulers import ParetoASHAScheduler, make_scheduler, replay, rung_milestones
from orchestrator.spec import parse_spec
from tests.specs import REPO

STOP, CONTINUE = TrialScheduler.STOP, TrialScheduler.CONTINUE
METRICS, MODES = ["robust_acc", "clean_acc"], ["max", "max"]


class Trial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def feed(schedulers: dict[str, TrialScheduler], reports: list[tuple[str, int, float, float]]) -> dict[str, list[str]]:
    """Each (trial, epoch, robust_acc, clean_acc) to every scheduler, in order; the decisions per scheduler."""
    trials: dict[str, Trial] = {}
    out: dict[str, list[str]] = {name: [] for name in schedulers}
    for trial_id, epoch, robust, clean in reports:
        new = trial_id not in trials
        trial = trials.setdefault(trial_id, Trial(trial_id))
        for name, scheduler in schedulers.items():
            if new:
                scheduler.on_trial_add(None, trial)
            result = {"training_iteration": epoch, "robust_acc": robust, "clean_acc": clean}
            out[name].append(scheduler.on_trial_result(None, trial, result))
    return out


def both(max_t: int = 4, reduction_factor: float = 2) -> dict[str, TrialScheduler]:
    return {"asha": ASHAScheduler(metric="robust_acc", mode="max", time_attr="training_iteration", max_t=max_t,
                                  grace_period=1, reduction_factor=reduction_factor),
            "pareto": ParetoASHAScheduler(METRICS, MODES, max_t=max_t, grace_period=1,
                                          reduction_factor=reduction_factor)}


def test_a_trial_best_on_another_objective_is_kept_where_asha_on_one_stops_it() -> None:
    """At the first rung: a and b are recorded (b dominates a); c is the worst on robust_acc but the
    best on clean_acc, so it is on the rung's front: ASHA on robust_acc stops it (0.30 is below the
    rung's median 0.625), pareto-asha keeps it. d is dominated by a and b on both: both rules stop it."""
    decisions = feed(both(), [("a", 1, 0.60, 0.70), ("b", 1, 0.65, 0.72), ("c", 1, 0.30, 0.80),
                              ("d", 1, 0.20, 0.60)])
    assert decisions["asha"] == [CONTINUE, CONTINUE, STOP, STOP]
    assert decisions["pareto"] == [CONTINUE, CONTINUE, CONTINUE, STOP]
    # ASHA's documented rule gives the same verdict on c: below the rung's 1 - 1/rf quantile
    assert 0.30 < np.percentile([0.60, 0.65], 50)


def test_later_rungs_and_the_last_epoch() -> None:
    """A kept trial is judged again at the next rung (epoch 2) against the trials recorded there; the
    last epoch (max_t) is always STOP for both rules (the trial has run its epochs)."""
    reports = [("a", 1, 0.60, 0.70), ("a", 2, 0.70, 0.75), ("a", 3, 0.72, 0.76), ("a", 4, 0.73, 0.77),
               ("c", 1, 0.30, 0.80), ("c", 2, 0.20, 0.70)]  # at epoch 2 c is dominated by a
    decisions = feed(both(), reports)
    assert decisions["pareto"] == [CONTINUE, CONTINUE, CONTINUE, STOP, CONTINUE, STOP]
    assert decisions["asha"][:5] == [CONTINUE, CONTINUE, CONTINUE, STOP, STOP]  # ASHA stops c at epoch 1
    scheduler = both()["pareto"]
    assert [m for m, _ in scheduler.rungs] == rung_milestones(1, 4, 2) == [4, 2, 1]  # type: ignore[attr-defined]


def test_a_crowded_front_keeps_its_least_crowded_share() -> None:
    """When more than 1/rf of a rung is on its front, crowding distance decides: `mid`, on the front
    between the two extremes, is stopped (only 1.5 of 3 continue: the extremes); `edge`, on the front
    beyond `hi`, is a new extreme and continues. Equal values are never ahead of each other."""
    decisions = feed(both(), [("lo", 1, 0.10, 0.90), ("hi", 1, 0.90, 0.10), ("mid", 1, 0.50, 0.50),
                              ("edge", 1, 0.95, 0.05), ("twin", 1, 0.95, 0.05)])
    assert decisions["pareto"] == [CONTINUE, CONTINUE, STOP, CONTINUE, CONTINUE]


def test_with_one_objective_it_stops_only_what_asha_stops() -> None:
    """On one objective the rule is ASHA's, up to the quantile's interpolation: over random rungs
    pareto-asha never stops a trial ASHA keeps, and agrees with it on most decisions."""
    rng = np.random.default_rng(0)
    agree = total = 0
    for _ in range(60):
        asha = ASHAScheduler(metric="robust_acc", mode="max", time_attr="training_iteration", max_t=8,
                             grace_period=1, reduction_factor=2)
        pareto = ParetoASHAScheduler(["robust_acc"], ["max"], max_t=8, grace_period=1, reduction_factor=2)
        for i in range(12):
            trial = Trial(f"t{i}")
            asha.on_trial_add(None, trial)
            for epoch in (1, 2, 4):
                result = {"training_iteration": epoch, "robust_acc": float(rng.random())}
                a, p = asha.on_trial_result(None, trial, result), pareto.on_trial_result(None, trial, result)
                assert not (p == STOP and a == CONTINUE), (i, epoch)
                agree += a == p
                total += 1
                if a == STOP or p == STOP:
                    break
    assert agree / total > 0.9


def test_missing_or_nan_values_are_never_stopped_for() -> None:
    scheduler = ParetoASHAScheduler(METRICS, MODES, max_t=4)
    trial = Trial("x")
    assert scheduler.on_trial_result(None, trial, {"training_iteration": 1, "robust_acc": 0.5}) == CONTINUE
    feed({"p": scheduler}, [("a", 1, 0.9, 0.9), ("b", 1, 0.8, 0.8)])
    assert scheduler.on_trial_result(None, Trial("n"), {"training_iteration": 1, "robust_acc": math.nan,
                                                         "clean_acc": 0.1}) == CONTINUE
    # NaN rows recorded at a rung do not count (as ASHA's nanpercentile): d is behind the one real row
    decisions = feed({"p": ParetoASHAScheduler(METRICS, MODES, max_t=4)},
                     [("a", 1, 0.9, 0.9), ("n1", 1, math.nan, 0.5), ("n2", 1, math.nan, 0.5), ("d", 1, 0.1, 0.1)])
    assert decisions["p"] == [CONTINUE, CONTINUE, CONTINUE, STOP]


def synthetic_history() -> pd.DataFrame:
    """Four trials over 4 epochs. `late` starts worst on robust_acc (but best on clean_acc) and ends
    with the best clean_acc: on the final front. `poor` is dominated throughout."""
    curves = {
        "a": [(0.60, 0.70), (0.65, 0.72), (0.67, 0.73), (0.70, 0.74)],
        "b": [(0.62, 0.71), (0.66, 0.72), (0.69, 0.73), (0.72, 0.75)],
        "late": [(0.30, 0.80), (0.40, 0.81), (0.50, 0.82), (0.55, 0.84)],
        "poor": [(0.20, 0.60), (0.25, 0.61), (0.30, 0.62), (0.35, 0.63)],
    }
    rows = [{"trial_id": t, "epoch": e + 1, "robust_acc": r, "clean_acc": c, "final": float(e == 3)}
            for t, curve in curves.items() for e, (r, c) in enumerate(curve)]
    return pd.DataFrame(rows)


def test_replay_of_a_recorded_history() -> None:
    table = replay(synthetic_history(), ["clean_acc", "robust_acc"], ["max", "max"], "robust_acc")
    stops = dict(zip(table["trial_id"], table["asha_stop"].astype(object).where(table["asha_stop"].notna(), None)))
    pareto = dict(zip(table["trial_id"], table["pareto_stop"].astype(object).where(table["pareto_stop"].notna(), None)))
    assert stops == {"a": None, "b": None, "late": 1, "poor": 1}
    assert pareto == {"a": None, "b": None, "late": None, "poor": 1}
    assert table["epochs"].tolist() == [4, 4, 4, 4]


def _script():
    spec = importlib.util.spec_from_file_location("replay_schedulers", REPO / "scripts" / "replay_schedulers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replay_script_on_a_recorded_sweep_directory(tmp_path, capsys) -> None:
    """The script reads a sweep directory: the trial ASHA on robust_acc would stop although it ends on
    the front is named, and pareto-asha keeps it."""
    history = synthetic_history()
    last = history[history["final"] == 1.0]
    trials = last[["trial_id", "robust_acc", "clean_acc"]].assign(status="finished", epochs_done=4)
    trials.to_parquet(tmp_path / "trials.parquet", index=False)
    history.to_parquet(tmp_path / "history.parquet", index=False)
    (tmp_path / "spec.yaml").write_text("name: s\nobjectives:\n  - {metric: clean_acc, mode: max}\n"
                                        "  - {metric: robust_acc, mode: max}\n")
    script = _script()
    table = script.compare(tmp_path)
    assert table.set_index("trial_id")["on_front"].to_dict() == {"a": False, "b": True, "late": True, "poor": False}
    assert script.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trials on the final front that ASHA on robust_acc stops: 1 (late); pareto-asha keeps 1 of them (late)" in out
    assert "trials on the final front that pareto-asha stops: 0" in out
    assert script.main([str(tmp_path), "--asha-metric", "train_loss"]) == 2
    # over all 24 arrival orders pareto-asha never stops a trial of the final front; ASHA does
    assert script.over_orders(tmp_path) == {"orders": 24, "asha_front_stops": 16, "pareto_front_stops": 0,
                                            "asha_stops": 40, "pareto_stops": 29}
    assert script.main([str(tmp_path), "--all-orders"]) == 0
    assert "over 24 arrival orders: trials of the final front stopped 16 times by ASHA on robust_acc, 0 by " \
           "pareto-asha" in capsys.readouterr().out


def test_make_scheduler_from_the_spec(tiny_spec: str) -> None:
    spec = parse_spec(tiny_spec.replace("space:\n", "scheduler: {type: pareto-asha, reduction_factor: 3}\nspace:\n"))
    scheduler = make_scheduler(spec.scheduler)
    assert isinstance(scheduler, ParetoASHAScheduler)
    assert scheduler.metrics == ["clean_acc", "robust_acc"] and scheduler.modes == ["max", "max"]
    assert (scheduler.max_t, scheduler.grace_period, scheduler.reduction_factor) == (2, 1, 3)
    asha = make_scheduler(parse_spec(tiny_spec.replace("space:\n", "scheduler: {type: asha, metric: robust_acc}\n"
                                                                   "space:\n")).scheduler)
    assert isinstance(asha, ASHAScheduler) and not isinstance(asha, ParetoASHAScheduler)


def test_the_scheduler_survives_the_tuner_pickle() -> None:
    """Tune pickles the scheduler with the Tuner (tuner.pkl) and unpickles it on `resume`."""
    import pickle

    scheduler = ParetoASHAScheduler(METRICS, MODES, max_t=4)
    feed({"p": scheduler}, [("a", 1, 0.6, 0.7), ("b", 1, 0.1, 0.1)])
    copy = pickle.loads(pickle.dumps(scheduler))
    assert copy.rungs == scheduler.rungs and copy.stopped == {"b": 1}
    assert copy.on_trial_result(None, Trial("c"), {"training_iteration": 1, "robust_acc": 0.9, "clean_acc": 0.9}) \
        == CONTINUE
