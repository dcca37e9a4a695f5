"""Loading sweep results from a sweep directory and from MLflow; combining sweeps."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from analysis import tracking
from analysis.results import (
    Objective,
    ResultsError,
    combine,
    load_sweep,
    load_sweeps,
    metric_columns,
    parse_objectives,
    swept_params,
)
from analysis.tracking import load_mlflow
from orchestrator.layout import UserError

REPO = Path(__file__).resolve().parents[2]


def test_analysis_reads_the_sweep_directory_through_the_layout_module_only() -> None:
    """analysis/ imports nothing of orchestrator/ but its layout module, and nothing of trainable/:
    the sweep directory's contract has one home, and a sweep can be analysed without Ray or torch."""
    for path in sorted((REPO / "analysis").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert not name.startswith("trainable"), f"{path.name} imports {name}"
                assert not name.startswith("orchestrator") or name == "orchestrator.layout", f"{path.name} imports {name}"


def test_load_sweep_dir(tmp_path: Path, make_sweep, make_trials) -> None:
    sweep = load_sweep(make_sweep(tmp_path / "s", make_trials()))
    assert sweep.name == "epsilon" and len(sweep.trials) == 12 and len(sweep.history) == 24
    assert sweep.objectives == [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
    assert sweep.parent_run_id is None and "epsilon" in sweep.spec_text
    assert metric_columns(sweep.trials) == ["clean_acc", "robust_acc", "robust_acc@4/255", "train_loss", "epoch",
                                            "train_seconds"]
    assert swept_params(sweep.trials) == ["param.epsilon", "param.replay_steps"]


@pytest.mark.parametrize("case", ["missing", "empty_dir", "empty_table", "not_a_table"])
def test_load_sweep_errors_are_one_line(tmp_path: Path, case: str, make_trials) -> None:
    target = tmp_path / "s"
    if case != "missing":
        target.mkdir()
    if case == "empty_table":
        make_trials().iloc[:0].to_parquet(target / "trials.parquet")
    if case == "not_a_table":
        (target / "trials.parquet").write_text("not parquet")
    with pytest.raises(ResultsError) as info:
        load_sweep(target)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value) and str(target) in str(info.value)


def test_parse_objectives() -> None:
    assert parse_objectives("clean_acc:max, robust_acc@4/255:min") == [
        Objective("clean_acc", "max"), Objective("robust_acc@4/255", "min")]
    for bad, message in (("clean_acc", "METRIC:max"), ("clean_acc:up", "max or min"),
                         ("a:max,a:min", "twice"), ("", "no objectives")):
        with pytest.raises(UserError, match=message):
            parse_objectives(bad)


def test_combine_sweeps(tmp_path: Path, make_sweep, make_trials) -> None:
    a = make_sweep(tmp_path / "a", make_trials(4, seed=1))
    b = make_sweep(tmp_path / "b", make_trials(3, seed=2).drop(columns=["param.replay_steps"]))
    table = load_sweeps([a, b])
    assert table["sweep"].tolist() == ["a"] * 4 + ["b"] * 3
    assert table.loc[table["sweep"] == "b", "param.replay_steps"].isna().all()
    assert not table.duplicated(["sweep", "trial_id"]).any()
    twice = combine([load_sweep(a), load_sweep(a)])
    assert set(twice["sweep"]) == {"a", "a#2"}


def test_load_mlflow_builds_the_same_table(tracked_sweep: Path) -> None:
    parquet = load_sweep(tracked_sweep)
    sweep = load_mlflow(parquet.tracking_uri, parent_run_id=parquet.parent_run_id, with_history=True)
    table = sweep.trials.set_index("trial_id").loc[parquet.trials["trial_id"]]
    expected = parquet.trials.set_index("trial_id")
    assert table["status"].tolist() == expected["status"].tolist()
    np.testing.assert_allclose(table["param.epsilon"].to_numpy(float), expected["param.epsilon"].to_numpy(float))
    assert table["param.replay_steps"].tolist() == expected["param.replay_steps"].tolist()
    assert table["param.objective"].isna().all() and (table["param.method"] == "cf-amc-ssl").all()
    for metric in ("clean_acc", "robust_acc", "robust_acc@4/255"):  # the last epoch's value, '@' restored
        np.testing.assert_allclose(table[metric].to_numpy(float), expected[metric].to_numpy(float))
    assert (table["seconds"] == 30.0).all() and table["ended_at"].notna().all()
    assert sweep.objectives == parquet.objectives and sweep.name == "epsilon"
    assert set(sweep.history["epoch"]) == {1, 2} and len(sweep.history) == 2 * 11  # the failed trial logged nothing

    by_name = load_mlflow(parquet.tracking_uri, experiment="epsilon")
    assert (by_name.trials["sweep"] == tracked_sweep.name).all() and len(by_name.trials) == 12


def test_load_mlflow_errors(tracked_sweep: Path, tmp_path: Path) -> None:
    uri = load_sweep(tracked_sweep).tracking_uri
    with pytest.raises(ResultsError, match="exactly one"):
        load_mlflow(uri)
    with pytest.raises(ResultsError, match="no MLflow experiment named 'nope'"):
        load_mlflow(uri, experiment="nope")
    missing = tmp_path / "missing.db"
    with pytest.raises(ResultsError, match="no such MLflow store"):
        load_mlflow(f"sqlite:///{missing}", experiment="x")
    assert not missing.exists()  # nothing was created


def test_param_values_from_mlflow_strings() -> None:
    assert [tracking._param_value(v) for v in ("None", "True", "3", "0.031", "1e-4", "cf-amc-ssl", "0.01,0.03")] == [
        None, True, 3, 0.031, 1e-4, "cf-amc-ssl", "0.01,0.03"]
