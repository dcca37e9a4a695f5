"""The sweep directory's contract: the state file with relative paths, metric names to and from MLflow,
objectives as text, and the error vocabulary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.layout import (
    EXIT_FAILED,
    EXIT_USAGE,
    Objective,
    RunFailed,
    SweepError,
    SweepState,
    UserError,
    bound_mlflow_http_retries,
    format_objectives,
    metric_name_from_mlflow,
    mlflow_metric_name,
    parse_objectives,
    relative_path,
    relative_url,
    resolve_url,
)


def state_for(sweep_dir: Path, **changes: str) -> SweepState:
    values = dict(name="s", preset=None, overrides=[], experiment_path=relative_path(sweep_dir, str(sweep_dir / "tune")),
                  tracking_uri=relative_url(sweep_dir, f"sqlite:///{sweep_dir.resolve() / 'mlflow.db'}"),
                  mlflow_experiment_id="1", parent_run_id="p", study_name="s",
                  study_url=relative_url(sweep_dir, f"sqlite:///{sweep_dir.resolve() / 'optuna.db'}"), created="now")
    values.update(changes)
    return SweepState(**values)  # type: ignore[arg-type]


def test_paths_inside_the_sweep_directory_are_stored_relative_and_follow_a_moved_directory(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "a" / "sweep"
    sweep_dir.mkdir(parents=True)
    state_for(sweep_dir).save(sweep_dir)
    raw = json.loads((sweep_dir / "sweep.json").read_text())
    assert (raw["experiment_path"], raw["tracking_uri"], raw["study_url"]) == (
        "tune", "sqlite:///mlflow.db", "sqlite:///optuna.db")
    moved = tmp_path / "b" / "elsewhere"
    shutil.move(str(sweep_dir), str(moved))
    state = SweepState.load(moved)
    assert state.experiment_dir(moved) == str(moved.resolve() / "tune")
    assert state.tracking(moved) == f"sqlite:///{moved.resolve() / 'mlflow.db'}"
    assert state.study(moved) == f"sqlite:///{moved.resolve() / 'optuna.db'}"


def test_locations_outside_the_sweep_directory_stay_as_given(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    shared = f"sqlite:///{tmp_path.resolve() / 'shared' / 'mlflow.db'}"
    assert relative_url(sweep_dir, shared) == shared and resolve_url(sweep_dir, shared) == shared
    assert relative_url(sweep_dir, "http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert relative_path(sweep_dir, "s3://bucket/sweeps/x") == "s3://bucket/sweeps/x"
    assert relative_path(sweep_dir, str(tmp_path / "nfs" / "x")) == str(tmp_path / "nfs" / "x")
    # query strings survive the round trip
    url = f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}?timeout=30"
    assert relative_url(sweep_dir, url) == "sqlite:///optuna.db?timeout=30"
    assert resolve_url(sweep_dir, "sqlite:///optuna.db?timeout=30") == url


def test_a_state_file_with_absolute_paths_still_loads(tmp_path: Path) -> None:
    """sweep.json of sweeps written before paths were relative: absolute paths are used as they are."""
    sweep_dir = tmp_path / "old"
    sweep_dir.mkdir()
    absolute = f"sqlite:///{sweep_dir.resolve() / 'mlflow.db'}"
    state_for(sweep_dir, tracking_uri=absolute, experiment_path=str(sweep_dir / "tune")).save(sweep_dir)
    state = SweepState.load(sweep_dir)
    assert state.tracking(sweep_dir) == absolute and state.experiment_dir(sweep_dir) == str(sweep_dir / "tune")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"name": "x"}'])
def test_an_unreadable_state_file_is_one_sweep_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "sweep.json").write_text(content)
    with pytest.raises(SweepError, match=r"sweep\.json: unreadable") as info:
        SweepState.load(tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(SweepError, match="not a sweep directory"):
        SweepState.load(tmp_path / "missing")


def test_metric_names_round_trip_through_mlflow() -> None:
    for name in ("clean_acc", "robust_acc@4/255", "robust_acc@0.0300", "autoattack_acc"):
        assert metric_name_from_mlflow(mlflow_metric_name(name)) == name
    assert mlflow_metric_name("robust_acc@8/255") == "robust_acc_at_8/255"
    assert mlflow_metric_name("a*b") == "a_b"


def test_mlflow_http_retries_are_bounded_unless_the_user_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "5")  # the user's choice
    bound_mlflow_http_retries()
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2 and MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 30
    assert MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 5


def test_objectives_as_text() -> None:
    objectives = [Objective("clean_acc", "max"), Objective("robust_acc@4/255", "min")]
    assert parse_objectives(format_objectives(objectives)) == objectives
    with pytest.raises(UserError, match="max or min"):
        Objective("clean_acc", "up")


def test_errors_carry_their_exit_code_and_stay_one_line() -> None:
    assert UserError("x").exit_code == EXIT_USAGE and isinstance(UserError("x"), ValueError)
    assert RunFailed("x").exit_code == EXIT_FAILED and isinstance(RunFailed("x"), RuntimeError)
    assert str(UserError("a\nb")) == "a\\nb"
