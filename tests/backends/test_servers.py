"""The production backends, for real: the Optuna study in PostgreSQL (or a journal file) and the
tracking store on an ``mlflow server`` (tests/backends/conftest.py starts both on 127.0.0.1).

A sweep against both is started, its driver SIGKILLed once a trial has finished, and resumed: every
trial once in trials.parquet, in the PostgreSQL study and among the server's MLflow runs; the
password is never in ``sweep.json`` and resume reads it from ``CFAMC_STUDY_PASSWORD``; ``check``,
``report`` and ``ui`` work on the result. The tracking server is also stopped mid-sweep: the sweep
finishes, ``check`` lists what MLflow lacks, and ``resume`` once it is back logs it.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import pytest

from orchestrator.layout import STUDY_PASSWORD_ENV, SweepState
from orchestrator.study_storage import check_study_url, masked, open_storage, split_password, storage_problem
from tests.backends.conftest import PG_PASSWORD, PG_USER, MlflowServer, Postgres
from tests.reliability.conftest import CLI, Proc, child_env
from tests.reliability.test_faults import mlflow_children, progress_events
from tests.specs import tiny_spec

TINY_BASE = "train_images: 40, eval_images: 20, probe_epochs: 1"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []

    def start(args: list[str], env: dict[str, str] | None = None, name: str = "cli") -> Proc:
        proc = Proc([*CLI, *args], cwd=tmp_path, log=tmp_path / f"{name}-{len(started)}.log",
                    env=child_env(**(env or {})))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill_tree()


def test_study_urls_are_checked_and_passwords_kept_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.layout import SweepError, relative_url, resolve_url

    url = "postgresql://sweeps:pa%40ss@db.example:5432/optuna"
    assert split_password(url) == ("postgresql://sweeps@db.example:5432/optuna", "pa%40ss")
    assert masked(url) == "postgresql://sweeps:***@db.example:5432/optuna"
    for bad in ("redis://x", "postgresql://host-only", "optuna.db", "sqlite://", "journal:///"):
        with pytest.raises(SweepError) as err:
            check_study_url(bad)
        assert "\n" not in str(err.value) and "expected" in str(err.value)
    monkeypatch.chdir(tmp_path)
    journal = check_study_url("journal:///study.log")
    assert journal == f"journal:///{tmp_path.resolve() / 'study.log'}"
    assert relative_url(tmp_path, journal) == "journal:///study.log"
    assert resolve_url(tmp_path, "journal:///study.log") == journal
    state = SweepState(name="s", preset=None, overrides=[], experiment_path="tune", tracking_uri="sqlite:///m.db",
                       mlflow_experiment_id="", parent_run_id="", study_name="s",
                       study_url="postgresql://sweeps@db.example:5432/optuna", created="now")
    monkeypatch.setenv(STUDY_PASSWORD_ENV, "p@ss")
    assert state.study(tmp_path) == "postgresql://sweeps:p%40ss@db.example:5432/optuna"


def test_journal_file_study_records_and_links(tmp_path: Path) -> None:
    """The journal storage through the functions the sweep and its reports use."""
    import optuna

    from orchestrator.search import optuna_links
    from orchestrator.study_store import load_study

    url = f"journal:///{tmp_path / 'nfs' / 'study.log'}"
    assert storage_problem(url) is None
    study = optuna.create_study(study_name="j", storage=open_storage(url), directions=["maximize", "maximize"])
    done = study.ask()
    done.set_user_attr("tune_trial_id", "t1")
    study.tell(done, [0.5, 0.25])
    study.ask().set_user_attr("tune_trial_id", "running")
    assert optuna_links(url, "j") == {"t1": (0, "COMPLETE"), "running": (1, "RUNNING")}
    assert [t.values for t in load_study(url, "j").get_trials() if t.values] == [[0.5, 0.25]]
    print("backend: Optuna journal file", file=sys.stderr)


def test_postgres_wrong_password_is_one_line(postgres: Postgres) -> None:
    db = postgres.create_database("refused")
    problem = storage_problem(f"postgresql://{PG_USER}:wrong@{postgres.host}:{postgres.port}/{db}")
    assert problem is not None and "\n" not in problem and "***" in problem and "wrong" not in problem
    assert storage_problem(postgres.url(db)) is None  # creates Optuna's tables


def _complete_trials(postgres: Postgres, db: str) -> int:
    import psycopg

    try:
        conn = psycopg.connect(host=postgres.host, port=postgres.port, user=PG_USER, password=PG_PASSWORD,
                                dbname=db, connect_timeout=5)
    except psycopg.Error:
        return 0
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
            return int(cur.fetchone()[0])
    except psycopg.Error:  # tables not created yet
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_sweep_kill_resume_on_postgres_study_and_mlflow_server(tmp_path: Path, postgres: Postgres,
                                                               mlflow_server: str, procs) -> None:
    import optuna
    from mlflow import MlflowClient

    print(f"backends: study PostgreSQL {postgres.version}, tracking {mlflow_server}", file=sys.stderr)
    db = postgres.create_database("sweep")
    spec = tmp_path / "spec.yaml"
    spec.write_text(tiny_spec(name="pg", trials=4, concurrency=2, epochs=2, base=TINY_BASE))
    out = tmp_path / "sweep"
    sweep = procs(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q", "--verify", "none", "--study-storage",
                   postgres.url(db), "--tracking-uri", mlflow_server], name="sweep")
    deadline = time.monotonic() + 300
    while _complete_trials(postgres, db) == 0:
        assert sweep.poll() is None, sweep.output()[-3000:]
        assert time.monotonic() < deadline, sweep.output()[-3000:]
        time.sleep(0.2)
    sweep.kill_tree()
    assert sweep.popen.returncode == -signal.SIGKILL

    raw = (out / "sweep.json").read_text()
    assert PG_PASSWORD not in raw and json.loads(raw)["study_url"] == postgres.url(db, password=False)
    assert not (out / "optuna.db").exists() and not (out / "mlflow.db").exists()

    refused = procs(["resume", str(out), "--num-cpus", "2", "-q", "--verify", "none"], name="resume-no-password")
    assert refused.wait(120) == 2
    assert "cannot open the Optuna study storage" in refused.output() and PG_PASSWORD not in refused.output()

    resume = procs(["resume", str(out), "--num-cpus", "2", "-q", "--verify", "none"], env={STUDY_PASSWORD_ENV: PG_PASSWORD},
                   name="resume")
    assert resume.wait(400) == 0, resume.output()[-3000:]

    trials = pd.read_parquet(out / "trials.parquet")
    ids = sorted(trials["trial_id"])
    assert len(ids) == 4 and trials["trial_id"].is_unique and set(trials["status"]) == {"finished"}, trials
    study = optuna.load_study(study_name="pg", storage=open_storage(postgres.url(db)))
    live = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("orphaned")]
    assert sorted(t.user_attrs["tune_trial_id"] for t in live) == ids
    assert {t.state.name for t in live} == {"COMPLETE"}

    state = SweepState.load(out)
    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([state.mlflow_experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{state.parent_run_id}'")
    assert sorted(r.data.tags["tune_trial_id"] for r in runs) == ids
    assert {r.info.status for r in runs} == {"FINISHED"}

    check = procs(["check", str(out)], env={STUDY_PASSWORD_ENV: PG_PASSWORD}, name="check")
    assert check.wait(300) == 0, check.output()[-3000:]
    report = procs(["report", str(out)], env={STUDY_PASSWORD_ENV: PG_PASSWORD}, name="report")
    assert report.wait(300) == 0, report.output()[-3000:]
    assert (out / "report" / "report.md").is_file()
    ui = procs(["ui", str(out)], name="ui")
    assert ui.wait(120) == 0 and mlflow_server in ui.output()


@pytest.mark.slow
def test_mlflow_server_stopped_mid_sweep_then_resume_logs_what_it_lacks(tmp_path: Path, procs) -> None:
    server = MlflowServer(tmp_path / "mlflow-server")
    server.root.mkdir()
    try:
        server.start()
        spec = tmp_path / "spec.yaml"
        spec.write_text(tiny_spec(name="outage", trials=2, concurrency=1, epochs=3, base=TINY_BASE))
        out, progress = tmp_path / "sweep", tmp_path / "progress"
        sweep = procs(["sweep", str(spec), "--out", str(out), "--tracking-uri", server.url, "--num-cpus", "2", "-q"],
                      env={"CFAMC_TEST_PROGRESS_DIR": str(progress), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
                      name="sweep")  # no retries: each call refused at once (the default's 2 cost ~2 s a call)
        deadline = time.monotonic() + 300
        while not any(e.get("event") == "epoch" for events in progress_events(progress).values() for e in events):
            assert sweep.poll() is None, sweep.output()[-3000:]
            assert time.monotonic() < deadline, sweep.output()[-3000:]
            time.sleep(0.1)
        server.stop()  # the shared tracking server goes down after the first epoch

        code = sweep.wait(400)
        output = sweep.output()
        assert code == 1, output[-3000:]  # the sweep ends; its check (MLflow lacks metrics) fails it
        assert "MLflow tracking failed" in output and "Traceback" not in output, output[-3000:]
        trials = pd.read_parquet(out / "trials.parquet")
        assert len(trials) == 2 and set(trials["status"]) == {"finished"}, trials
        assert "MLflow: cannot read the sweep's runs" in output, output[-3000:]  # the sweep's own check

        server.start()  # back, same port and store
        check = procs(["check", str(out)], name="check")
        assert check.wait(120) == 1, check.output()[-3000:]
        assert "0 MLflow child runs" in check.output() or "not in MLflow" in check.output(), check.output()[-3000:]
        resume = procs(["resume", str(out), "--num-cpus", "2", "-q"], name="resume")
        assert resume.wait(300) == 0, resume.output()[-3000:]
        assert "check: OK" in resume.output(), resume.output()[-3000:]

        history = pd.read_parquet(out / "history.parquet")
        client, children = mlflow_children(out)
        assert sorted(r.data.tags["tune_trial_id"] for r in children) == sorted(trials["trial_id"])
        for run in children:
            epochs = history.loc[history["trial_id"] == run.data.tags["tune_trial_id"], "epoch"]
            assert sorted(epochs) == [1, 2, 3]
            logged = {int(m.step) for m in client.get_metric_history(run.info.run_id, "epoch")}
            assert set(epochs) <= logged, (run.data.tags, logged)
    finally:
        server.stop()
