"""`write_report` on synthetic sweep directories: files, content, MLflow artifacts, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.pareto import NonFiniteRowsWarning
from analysis.report import MlflowLogError, ReportError, write_report
from analysis.results import load_sweep
from orchestrator.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]


def test_report_files_content_and_mlflow_artifacts(tracked_sweep: Path) -> None:
    path = write_report(tracked_sweep)
    out = tracked_sweep / "report"
    assert path == out / "report.md"
    for name in ("pareto.png", "knobs.png", "hypervolume.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    page = (out / "pareto.html").read_text()
    assert len(page) > 1_000_000 and "plotly" in page  # plotly.js embedded: opens offline
    assert "replay_steps: " in page and "epsilon: " in page  # hover text shows the params

    trials = load_sweep(tracked_sweep).trials
    table = pd.read_parquet(out / "pareto.parquet")
    assert table.equals(table) and list(pd.read_csv(out / "pareto.csv")["trial_id"]) == list(table["trial_id"])
    assert set(table["status"]) == {"finished"} and "t00" not in set(table["trial_id"])  # early-stopped never
    assert table["knee"].sum() == 1 and (table["pareto_rank"] == 0).all()
    assert table["clean_acc"].is_monotonic_decreasing  # best first in the first objective
    finished = trials[trials["status"] == "finished"]
    assert len(table) < len(finished)

    text = path.read_text()
    for expected in ("## Pareto front", "## Hypervolume", "reference point (0, 0)", "## Best trial per objective",
                     "clean_acc:max", "robust_acc:max", "## Time", "sum of trial times", "wall-clock span: 41.0 s",
                     "```yaml\nname: epsilon", "![pareto](pareto.png)", "| t01 | failed | 0 | RuntimeError: boom",
                     "Order of trials in the curve: by end time"):
        assert expected in text, expected
    knee_id = table.loc[table["knee"], "trial_id"].iloc[0]
    assert f"| {knee_id} * |" in text

    from mlflow import MlflowClient

    sweep = load_sweep(tracked_sweep)
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    logged = {a.path for a in client.list_artifacts(sweep.parent_run_id, "report")}
    assert {"report/report.md", "report/pareto.png", "report/pareto.html", "report/pareto.csv",
            "report/pareto.parquet", "report/knobs.png", "report/hypervolume.png"} <= logged
    metrics = client.get_run(sweep.parent_run_id).data.metrics
    assert metrics["report_front_size"] == len(table) and metrics["report_hypervolume"] > 0

    html_path = write_report(tracked_sweep, "clean_acc:max,robust_acc@4/255:max", fmt="html", log_to_mlflow=False)
    page = html_path.read_text()
    assert html_path.name == "report.html" and "<table" in page and "plotly" in page and "robust_acc@4/255" in page


def test_report_without_mlflow_and_with_nan_trials(tmp_path: Path, make_sweep, make_trials) -> None:
    trials = make_trials()
    trials.loc[5, "robust_acc"] = np.nan  # a finished trial with a NaN objective: excluded, with a warning
    sweep_dir = make_sweep(tmp_path / "s", trials)
    with pytest.warns(NonFiniteRowsWarning, match="t05") as record:
        path = write_report(sweep_dir, objectives=["clean_acc:max", "robust_acc:max", "train_seconds:min"])
    assert sum(issubclass(w.category, NonFiniteRowsWarning) for w in record) == 1  # once, not per helper
    text = path.read_text()
    assert "Note: 1 finished trial(s) have a NaN" in text and "recorded no MLflow parent run" in text
    assert "wall-clock span: not available" in text and "Order of trials in the curve: by Optuna trial number" in text
    assert "t05" not in set(pd.read_csv(sweep_dir / "report" / "pareto.csv")["trial_id"])


def test_single_objective_and_explicit_reference(tmp_path: Path, make_sweep, make_trials) -> None:
    sweep_dir = make_sweep(tmp_path / "s", make_trials())
    write_report(sweep_dir, log_to_mlflow=False)
    assert (sweep_dir / "report" / "pareto.png").exists()
    path = write_report(sweep_dir, "robust_acc:max", log_to_mlflow=False)
    # No Pareto plot for one objective, and the earlier report's plot is not left behind.
    assert not (sweep_dir / "report" / "pareto.png").exists() and (sweep_dir / "report" / "knobs.png").exists()
    best = load_sweep(sweep_dir).trials.query("status == 'finished'")["robust_acc"].max()
    assert f"**{best:.6g}**" in path.read_text()  # 1-D hypervolume = best - reference (0)
    path = write_report(sweep_dir, "clean_acc:max,robust_acc:max", log_to_mlflow=False, reference=[0.4, 0.05])
    assert "reference point (0.4, 0.05)" in path.read_text()


@pytest.mark.parametrize("case", ["missing", "empty", "unknown_objective", "bad_mode", "bad_format", "reference"])
def test_errors_are_one_line_value_errors(tmp_path: Path, case: str, make_sweep, make_trials, capsys) -> None:
    sweep_dir = tmp_path / "s"
    objectives, fmt, kwargs = None, "md", {}
    if case == "empty":
        sweep_dir.mkdir()
    elif case != "missing":
        make_sweep(sweep_dir, make_trials())
    if case == "unknown_objective":
        objectives = "clean_acc:max,robust_ac:max"
    if case == "bad_mode":
        objectives = "clean_acc:up"
    if case == "bad_format":
        fmt = "pdf"
    if case == "reference":
        kwargs = {"reference": [0.0]}
    with pytest.raises(ReportError) as info:
        write_report(sweep_dir, objectives, fmt, log_to_mlflow=False, **kwargs)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    if case == "unknown_objective":
        assert "unknown objective 'robust_ac'" in message and "robust_acc@4/255" in message
    if not kwargs:
        argv = ["report", str(sweep_dir), "--no-mlflow"] + (["--objectives", objectives] if objectives else [])
        if fmt != "pdf":
            assert main(argv + ["--format", fmt]) == 2
        else:  # argparse itself refuses the format
            with pytest.raises(SystemExit) as exit_info:
                main(argv + ["--format", fmt])
            assert exit_info.value.code == 2
            return
        err = capsys.readouterr().err
        assert err.startswith("orchestrator report: error: ") and err.count("\n") == 1


def test_report_command_prints_summary(tmp_path: Path, make_sweep, make_trials, capsys) -> None:
    sweep_dir = make_sweep(tmp_path / "s", make_trials())
    assert main(["report", str(sweep_dir), "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front:" in out and f"report: {sweep_dir / 'report' / 'report.md'}" in out


def test_mlflow_failure_is_reported_after_writing(tmp_path: Path, tracked_sweep: Path, caplog) -> None:
    sweep_dir = tmp_path / tracked_sweep.name
    shutil.copytree(tracked_sweep, sweep_dir, ignore=shutil.ignore_patterns("report"))
    state = (sweep_dir / "sweep.json").read_text()
    parent = load_sweep(sweep_dir).parent_run_id
    # Point sweep.json at the copy's store but at a run that does not exist there.
    state = state.replace(str(tracked_sweep.resolve()), str(sweep_dir.resolve())).replace(parent, "0" * 32)
    (sweep_dir / "sweep.json").write_text(state)
    with pytest.raises(MlflowLogError, match="report written to .* but logging it on MLflow parent run 0+"):
        write_report(sweep_dir)
    assert (sweep_dir / "report" / "report.md").is_file()
    # A moved sweep whose SQLite store is not where sweep.json says: not logged, with a warning, no new store.
    (sweep_dir / "sweep.json").write_text(state.replace(str(sweep_dir.resolve()), str(tmp_path / "gone")))
    write_report(sweep_dir)
    assert "does not exist (was the sweep directory moved?)" in caplog.text
    assert not (tmp_path / "gone").exists()


def test_report_after_verifying_an_empty_front(tmp_path: Path, make_sweep, make_trials) -> None:
    """A sweep whose trials all failed is verified too (`orchestrator.verify` writes a verified.parquet
    with no rows): its report says that no trial was verified instead of failing on the empty table."""
    trials = make_trials()
    trials["status"] = "failed"
    sweep_dir = make_sweep(tmp_path / "s", trials)
    pd.DataFrame(columns=["trial_id", "verify_suite"]).to_parquet(sweep_dir / "verified.parquet", index=False)
    write_report(sweep_dir, log_to_mlflow=False)
    summary = (sweep_dir / "report" / "summary.txt").read_text()
    assert "verified front (AutoAttack + Square + PGD, worst case): 0 of 0 searched-front trials" in summary
