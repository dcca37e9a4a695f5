"""End-to-end sweeps on the tiny preset (CPU, seconds per trial): results, study, MLflow, crash and
resume, interruption and `orchestrator resume`, a two-node Ray cluster, the MLflow UI."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.layout import SweepState

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _study_states(sweep_dir: Path) -> list[str]:
    import optuna

    study = optuna.load_study(study_name=json.loads((sweep_dir / "sweep.json").read_text())["study_name"],
                              storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    return [t.state.name for t in study.trials]


def _mlflow_children(sweep_dir: Path) -> tuple[object, list]:
    from mlflow import MlflowClient

    state = json.loads((sweep_dir / "sweep.json").read_text())
    client = MlflowClient(tracking_uri=SweepState.load(sweep_dir).tracking(sweep_dir))
    runs = client.search_runs([state["mlflow_experiment_id"]],
                              filter_string=f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'")
    return client, list(runs)


def _sweep(argv: list[str]) -> int:
    return main(["sweep", *argv, "-q"])


def test_three_trial_sweep(write_spec, workdir: Path, tiny_spec: str, capsys) -> None:
    """Also: a GPU request on a cluster without GPUs warns and runs on CPU instead of hanging."""
    spec = write_spec(tiny_spec.replace("resources: {cpu: 1}", "resources: {cpu: 1, gpu: 0.5}"))
    out = workdir / "sweep"
    assert _sweep([str(spec), "--out", str(out), "--num-cpus", "2"]) == 0
    captured = capsys.readouterr()
    assert f"sweep directory: {out}" in captured.out and "3 finished" in captured.out
    assert "Ray cluster has no GPUs; trials run on CPU" in captured.err

    assert (out / "spec.yaml").read_text() == spec.read_text()
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 3 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"finished"}
    for column in ("param.epsilon", "clean_acc", "robust_acc", "robust_acc@4/255", "robust_acc@8/255",
                   "seconds", "checkpoint", "node_id", "epochs_done"):
        assert column in trials.columns, column
    assert trials["epochs_done"].tolist() == [2, 2, 2]
    assert all(Path(p).is_dir() for p in trials["checkpoint"])
    assert trials["optuna_state"].tolist() == ["COMPLETE"] * 3

    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == 6 and set(history["trial_id"]) == set(trials["trial_id"])
    assert history.groupby("trial_id")["epoch"].apply(list).tolist() == [[1, 2]] * 3
    assert history.loc[history["epoch"] == 1, "clean_acc"].isna().all()  # evaluated at the end only

    assert _study_states(out) == ["COMPLETE"] * 3

    client, children = _mlflow_children(out)
    assert len(children) == 3
    assert {r.data.tags["tune_trial_id"] for r in children} == set(trials["trial_id"])
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["trial_status"] == "finished"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
        assert "robust_acc_at_8/255" in run.data.metrics and run.data.params["epochs"] == "2"
        assert float(run.data.params["epsilon"]) == pytest.approx(
            trials.set_index("trial_id").loc[run.data.tags["tune_trial_id"], "param.epsilon"])
    state = json.loads((out / "sweep.json").read_text())
    parent = client.get_run(state["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["git_commit"]
    assert parent.data.tags["version.ray"].startswith("2.60")
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"spec.yaml", "trials.parquet"}
    # the sweep ends with the Pareto report (analysis), written and logged on the parent run
    report_dir = out / "report"
    for name in ("pareto.png", "pareto.html", "pareto.csv", "pareto.parquet", "report.md", "knobs.png"):
        assert (report_dir / name).is_file(), name
    assert f"report: {report_dir}" in captured.out
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/pareto.png", "report/pareto.html", "report/report.md"} <= logged
    # and `orchestrator report` rewrites it on demand, in HTML too
    assert main(["report", str(out), "--format", "html", "--no-mlflow"]) == 0
    assert (report_dir / "report.html").is_file()
    assert main(["report", str(out), "--objectives", "clean_acc:max,nonexistent:max"]) == 2
    assert "nonexistent" in capsys.readouterr().err
    _check_ui(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_ui(sweep_dir: Path) -> None:
    """`orchestrator ui` serves the sweep's store on 127.0.0.1 and prints the URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ui", str(sweep_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/" in line, line
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.read().strip() == b"OK"
                    break
            except OSError:
                assert time.time() < deadline, "mlflow server did not come up"
                assert proc.poll() is None, "orchestrator ui exited"
                time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_crash_resumes_from_checkpoint_and_failures_are_marked(write_spec, workdir: Path, tiny_spec: str,
                                                                 monkeypatch, capsys) -> None:
    """Trial A crashes once (test hook) after epoch 1 and resumes from that checkpoint; trial B cannot load
    its data (deterministic failure, not retried): B is failed, the sweep goes on, exit code 1.

    B's CIFAR files exist (so the spec passes validation, which checks files exist) but are garbage."""
    bad = workdir / "bad-cifar" / "cifar-10-batches-py"
    bad.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (bad / name).write_bytes(b"not a pickle")
    crash_dir = workdir / "crash-markers"
    monkeypatch.setenv("CFAMC_TEST_CRASH_ONCE_DIR", str(crash_dir))
    progress = workdir / "progress"
    monkeypatch.setenv("CFAMC_TEST_PROGRESS_DIR", str(progress))
    text = tiny_spec.replace("sampler: {type: random, seed: 1}", "sampler: grid").replace(
        "budget: {trials: 3, concurrency: 2}", "budget: {concurrency: 2}").replace(
        "probe_epochs: 2}", f"probe_epochs: 2, data_dir: {bad.parent}}}").replace(
        "  epsilon: {float: [0, 16/255]}", "  dataset: {choice: [embedded, cifar10]}")
    spec = write_spec(text + "retries: 2\n")
    out = workdir / "sweep"
    assert _sweep([str(spec), "--out", str(out), "--num-cpus", "2"]) == 1
    trials = pd.read_parquet(out / "trials.parquet").set_index("param.dataset")
    assert trials.loc["embedded", "status"] == "finished" and trials.loc["embedded", "epochs_done"] == 2
    assert trials.loc["cifar10", "status"] == "failed"
    assert "DatasetError" in trials.loc["cifar10", "error"] or "cifar" in trials.loc["cifar10", "error"]
    crashed = trials.loc["embedded", "trial_id"]
    assert (crash_dir / crashed).exists()  # it did crash once
    # resumed from the epoch-1 checkpoint: the retry trained epoch 2 only, and MLflow holds both epochs
    events = [json.loads(line) for line in (progress / f"{crashed}.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert [e["from_checkpoint"] for e in starts] == [False, True], events
    assert [e["epoch"] for e in events if e["event"] == "epoch" and e["pid"] == starts[1]["pid"]] == [2], events
    client, children = _mlflow_children(out)
    run = next(r for r in children if r.data.tags["tune_trial_id"] == crashed)
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss")) == [1, 2]
    # (Ray Tune's own result.json can lose the epoch-1 line here: on restore it copies the trial's file
    # back from storage, which may not hold the last line yet; each epoch is in it at most once)
    result_lines = (out / "tune" / f"trial_{crashed}" / "result.json").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in result_lines]
    assert epochs in ([1.0, 2.0], [2.0]), epochs
    # the failed trial was not retried: one attempt, marked deterministic
    failed_dir = out / "tune" / f"trial_{trials.loc['cifar10', 'trial_id']}"
    assert (failed_dir / "deterministic_failure.txt").exists()
    assert sorted(_study_states(out)) == ["COMPLETE", "FAIL"]
    _, children = _mlflow_children(out)
    statuses = {r.data.tags["tune_trial_id"]: (r.info.status, r.data.tags["trial_status"]) for r in children}
    assert statuses == {crashed: ("FINISHED", "finished"),
                        trials.loc["cifar10", "trial_id"]: ("FAILED", "failed")}


def test_interrupted_sweep_resumes_with_every_trial_once(write_spec, workdir: Path, tiny_spec: str,
                                                          capsys) -> None:
    text = tiny_spec.replace("concurrency: 2", "concurrency: 1").replace("epochs: 2", "epochs: 3")
    spec = write_spec(text)
    out = workdir / "sweep"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "sweep", str(spec), "--out", str(out),
                             "--num-cpus", "2", "-q"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while _complete_trials(out / "optuna.db") < 1:
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl-C while the second trial runs
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert f"orchestrator resume {out}" in output
    before = pd.read_parquet(out / "trials.parquet")
    assert (before["status"] == "finished").sum() >= 1
    assert len(before) < 3 or (before["status"] != "finished").any()  # the sweep was cut short

    assert main(["resume", str(out), "--num-cpus", "2", "-q"]) == 0
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 3 and trials["trial_id"].is_unique and set(trials["status"]) == {"finished"}
    assert set(before["trial_id"]) <= set(trials["trial_id"])
    history = pd.read_parquet(out / "history.parquet")
    assert not history.duplicated(["trial_id", "epoch"]).any() and len(history) == 9
    assert _study_states(out) == ["COMPLETE"] * 3
    client, children = _mlflow_children(out)
    ids = [r.data.tags["tune_trial_id"] for r in children]
    assert sorted(ids) == sorted(trials["trial_id"])  # every trial exactly once in MLflow
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        assert steps == [1, 2, 3], steps  # no epoch logged twice
        assert run.info.status == "FINISHED"
    state = json.loads((out / "sweep.json").read_text())
    assert [s["kind"] for s in state["sweeps"]] == ["sweep", "resume"]
    assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"


def _complete_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_two_node_cluster_places_trials_on_both_nodes(write_spec, workdir: Path, tiny_spec: str) -> None:
    from ray.cluster_utils import Cluster

    text = tiny_spec.replace("trials: 3", "trials: 2").replace("epochs: 2", "epochs: 1")
    spec = write_spec(text)
    out = workdir / "sweep"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        node_ids = {n.node_id for n in cluster.list_all_nodes()}
        # trials on the second node cannot reach this machine's sweep directory: refused in one line
        assert _sweep([str(spec), "--out", str(workdir / "refused"), "--address", cluster.address]) == 2
        assert not (workdir / "refused").exists()
        assert _sweep([str(spec), "--out", str(out), "--address", cluster.address,
                       "--storage", str(workdir / "shared")]) == 0
    finally:
        cluster.shutdown()
    trials = pd.read_parquet(out / "trials.parquet")
    assert set(trials["status"]) == {"finished"}
    assert set(trials["node_id"]) == node_ids and len(node_ids) == 2


def test_budget_flags_enqueue_constraints_and_warm_start(write_spec, workdir: Path, tiny_spec: str, capsys) -> None:
    """`--trials 2` on a 3-trial spec runs 2; they are the enqueued points, in order; the trial that breaks
    the constraint (epoch <= 1) is marked infeasible and is off the front although it is best on `epoch`;
    a second sweep warm-started from the first holds its trials in the study, and `check` agrees."""
    text = tiny_spec.replace("  - {metric: robust_acc, mode: max}", "  - {metric: epoch, mode: max}").replace(
        "sampler: {type: random, seed: 1}", "sampler: {type: tpe, seed: 0, n_startup_trials: 2}").replace(
        "  epsilon: {float: [0, 16/255]}", "  epochs: {choice: [1, 2]}")
    text = text.replace("base:", "enqueue: [{epochs: 2}, {epochs: 1}]\nconstraints: [{metric: epoch, max: 1}]\nbase:")
    spec = write_spec(text)
    first = workdir / "first"
    assert _sweep([str(spec), "--out", str(first), "--num-cpus", "2", "--trials", "2", "--verify", "none"]) == 0
    trials = pd.read_parquet(first / "trials.parquet").sort_values("optuna_number")
    assert trials["param.epochs"].tolist() == [2, 1] and trials["status"].tolist() == ["finished"] * 2
    assert trials["feasible"].tolist() == [False, True]
    infeasible_id = trials["trial_id"].iloc[0]
    front = pd.read_csv(first / "report" / "pareto.csv")
    assert infeasible_id not in set(front["trial_id"]) and len(front) == 1
    report = (first / "report" / "report.md").read_text()
    assert "Infeasible trials" in report and infeasible_id in report
    state = json.loads((first / "sweep.json").read_text())
    assert state["budget"] == {"trials": "2"}
    capsys.readouterr()

    second = workdir / "second"
    plain = write_spec(text.replace("enqueue: [{epochs: 2}, {epochs: 1}]\n", ""), "plain.yaml")
    assert _sweep([str(plain), "--out", str(second), "--num-cpus", "2", "--trials", "1", "--concurrency", "1",
                   "--warm-start", str(first), "--verify", "none"]) == 0
    assert main(["check", str(second)]) == 0  # the earlier trials in the study are no disagreement
    import optuna

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{second / 'optuna.db'}")
    warm = [t for t in study.trials if "warm_start_from" in t.user_attrs]
    assert sorted(t.params["epochs"] for t in warm) == [1, 2] and all(t.state.name == "COMPLETE" for t in warm)
    assert {t.user_attrs["warm_start_from"].rsplit(":", 1)[1] for t in warm} == set(trials["trial_id"])
    assert [t.constraints["epoch"] for t in sorted(warm, key=lambda t: t.params["epochs"])] == [0.0, 1.0]
    assert len(pd.read_parquet(second / "trials.parquet")) == 1


def test_a_bundle_row_runs_with_its_own_resources(write_spec, workdir: Path, tiny_spec: str) -> None:
    """Ray Tune asks for the row's CPUs (2) for its trial and the spec's (1) for the other; each trial
    runs with its CPUs as torch threads; no GPU is asked for anywhere."""
    from ray.tune import ExperimentAnalysis

    text = tiny_spec.replace("sampler: {type: random, seed: 1}", "sampler: grid").replace(
        "budget: {trials: 3, concurrency: 2}", "budget: {concurrency: 2}").replace(
        "  epsilon: {float: [0, 16/255]}", "  row:\n    choice:\n      big: {num_crops: 4, resources: {cpu: 2}}\n"
                                           "      small: {num_crops: 2}")
    out = workdir / "rows"
    assert _sweep([str(write_spec(text)), "--out", str(out), "--num-cpus", "2", "--verify", "none"]) == 0
    trials = pd.read_parquet(out / "trials.parquet").set_index("param.row")
    assert trials.loc["big", "config.threads"] == 2 and trials.loc["small", "config.threads"] == 1
    asked = {t.config["row"]: t.placement_group_factory.required_resources
             for t in ExperimentAnalysis(SweepState.load(out).experiment_dir(out)).trials}
    assert asked == {"big": {"CPU": 2.0}, "small": {"CPU": 1.0}}
