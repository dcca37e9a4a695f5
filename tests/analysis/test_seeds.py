"""Repeated seeds: per-configuration means and spreads, learning curves, and their report section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import write_report
from analysis.results import Objective
from analysis.seeds import curve_metrics, curves_over_seeds, has_seeds, mean_pm_std, over_seeds

OBJECTIVES = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
SPEC = """\
name: seeds
preset: demo
objectives:
  - {metric: clean_acc, mode: max}
  - {metric: robust_acc, mode: max}
sampler: grid
budget: {concurrency: 2}
space:
  replay_steps: {choice: [1, 3, 5]}
  seed: {choice: [0, 1, 2]}
"""


def seeded_trials() -> pd.DataFrame:
    """3 replay counts x 3 seeds; m=5 is dominated on average; one m=3 seed failed (NaN metrics)."""
    rng = np.random.default_rng(1)
    rows = []
    means = {1: (0.80, 0.40), 3: (0.75, 0.60), 5: (0.70, 0.55)}
    for m, (clean, robust) in means.items():
        for seed in range(3):
            failed = m == 3 and seed == 2
            rows.append({"trial_id": f"m{m}s{seed}", "status": "failed" if failed else "finished",
                         "param.replay_steps": m, "param.seed": seed,
                         "clean_acc": np.nan if failed else clean + rng.normal(0, 0.01),
                         "robust_acc": np.nan if failed else robust + rng.normal(0, 0.01),
                         "train_seconds": 10.0 + seed, "seconds": 12.0 + seed})
    return pd.DataFrame(rows)


def seeded_history(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, t in trials.iterrows():
        for epoch in (1, 2, 3):
            rows.append({"trial_id": t["trial_id"], "epoch": epoch, "clean_acc": 0.1 * epoch + t["param.seed"] * 0.01,
                         "robust_acc": 0.05 * epoch, "train_seconds": 5.0 * epoch, "final": float(epoch == 3)})
    return pd.DataFrame(rows)


def test_means_and_spreads_equal_numpy_over_finished_seeds() -> None:
    trials = seeded_trials()
    assert has_seeds(trials) and not has_seeds(trials.assign(**{"param.seed": 0}))
    summary = over_seeds(trials, OBJECTIVES).set_index("param.replay_steps")
    for m in (1, 3, 5):
        done = trials[(trials["param.replay_steps"] == m) & (trials["status"] == "finished")]
        assert summary.loc[m, "seeds"] == len(done) == (2 if m == 3 else 3)
        for metric in ("clean_acc", "robust_acc", "train_seconds"):
            assert summary.loc[m, metric] == pytest.approx(done[metric].mean())
            assert summary.loc[m, f"{metric}_std"] == pytest.approx(np.std(done[metric].to_numpy(), ddof=1))
    # m=5's mean (0.70, 0.55) is dominated by m=3's (0.75, 0.60); m=1 and m=3 trade off
    assert summary["on_front"].to_dict() == {1: True, 3: True, 5: False}
    assert list(over_seeds(trials, OBJECTIVES)["param.replay_steps"]) == [1, 3, 5]  # best clean first


def test_learning_curves_average_seeds_per_epoch() -> None:
    trials = seeded_trials()
    history = seeded_history(trials)
    curves = curves_over_seeds(trials, history, ["clean_acc"])
    row = curves[(curves["param.replay_steps"] == 1) & (curves["epoch"] == 2)].iloc[0]
    assert row["seeds"] == 3
    assert row["clean_acc"] == pytest.approx(0.2 + 0.01)  # seeds 0, 1, 2 add 0, .01, .02
    assert row["clean_acc_std"] == pytest.approx(0.01)
    assert row["train_seconds"] == pytest.approx(10.0)
    # the failed trial is not averaged in: m=3 has two seeds at every epoch
    assert set(curves.loc[curves["param.replay_steps"] == 3, "seeds"]) == {2}
    assert curves_over_seeds(trials, history[history["epoch"] == 3], ["clean_acc"]).empty  # one epoch: no curve


def test_curve_metrics_drop_robust_accuracy_that_equals_clean() -> None:
    history = pd.DataFrame({"clean_acc": [0.1, 0.2], "robust_acc": [0.1, 0.2]})
    assert curve_metrics(history) == ["clean_acc"]
    assert curve_metrics(history.assign(robust_acc=[0.0, 0.1])) == ["clean_acc", "robust_acc"]


def test_mean_pm_std_formatting() -> None:
    assert mean_pm_std(0.74812, 0.0123) == "0.748 ± 0.012"
    assert mean_pm_std(0.5, float("nan")) == "0.500"
    assert mean_pm_std(float("nan"), 0.1) == "-"


def test_report_has_seed_section_and_plots(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "seeds"
    sweep_dir.mkdir()
    trials = seeded_trials()
    trials.to_parquet(sweep_dir / "trials.parquet", index=False)
    seeded_history(trials).to_parquet(sweep_dir / "history.parquet", index=False)
    (sweep_dir / "spec.yaml").write_text(SPEC)
    path = write_report(sweep_dir, log_to_mlflow=False)
    text = path.read_text()
    section = text.split("## Mean over seeds", 1)[1].split("\n## ", 1)[0]
    assert "| replay_steps | seeds |" in section
    m1 = over_seeds(trials, OBJECTIVES).iloc[0]
    assert mean_pm_std(m1["clean_acc"], m1["clean_acc_std"]) in section
    for name in ("seeds.csv", "seed_means.png", "learning_curves.png", "learning_curves.csv"):
        assert (path.parent / name).stat().st_size > 0, name
    assert pd.read_csv(path.parent / "seeds.csv")["seeds"].tolist() == [3, 2, 3]
    # a sweep without seeds gets neither the section nor the files (stale ones are removed)
    trials.assign(**{"param.seed": 0}).to_parquet(sweep_dir / "trials.parquet", index=False)
    path = write_report(sweep_dir, log_to_mlflow=False)
    assert "Mean over seeds" not in path.read_text()
    assert not (path.parent / "seeds.csv").exists() and not (path.parent / "seed_means.png").exists()
