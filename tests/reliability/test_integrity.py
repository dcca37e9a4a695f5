"""Ray Tune, Optuna, Parquet and MLflow agree on every trial, through every fault (`orchestrator check`).

Each test injects a real fault into real processes on the tiny preset and ends with `orchestrator
check` passing: a trial that fails and then succeeds on `resume` (from a moved sweep directory), a
diverged trial not retrained after resume, a time-limited sweep resumed, a trial past
`budget.trial_time_limit`, a study locked by another process. `check` itself is shown to list each
kind of disagreement on a damaged copy of a finished sweep.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.integrity import check_sweep
from orchestrator.layout import SweepState
from tests.reliability.test_faults import (
    PROGRESS_ENV,
    TINY_BASE,
    mlflow_children,
    progress_events,
    result_lines,
    study_trials,
)
from tests.specs import tiny_spec


def _spec(tmp_path: Path, **changes) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(tiny_spec(name="integrity", base=TINY_BASE, **changes))
    return spec


def _check(sweep_dir: Path, capsys) -> str:
    """`orchestrator check` passes (exit 0) and says so."""
    capsys.readouterr()
    code = main(["check", str(sweep_dir)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "check: OK" in out.out
    return out.out


@pytest.mark.slow
def test_failed_trial_retried_on_resume_of_a_moved_sweep_is_told_complete(tmp_path: Path, procs, capsys) -> None:
    """A trial crashes after its first checkpoint with no retries left (FAIL in Optuna), a diverged one
    fails deterministically; the sweep directory is then moved and `orchestrator resume` run there:
    the crashed trial continues from its checkpoint and is COMPLETE in Optuna with its values (before:
    Tune's ConcurrencyLimiter dropped the outcome of a trial it had not suggested in this run, so the
    study kept FAIL); the diverged one fails again at once without training (its marker is in Tune's
    storage); every record is written in the new place (the old one is never re-created) and `check`
    passes. Then `check` lists each disagreement planted in a copy."""
    spec = _spec(tmp_path, trials=None, sampler="grid", retries=0, epochs=2, space="  lr: {choice: [1e20, 0.3]}")
    first, progress, crash = tmp_path / "first", tmp_path / "progress", tmp_path / "crash"
    env = {PROGRESS_ENV: str(progress), "CFAMC_TEST_CRASH_ONCE_DIR": str(crash)}
    sweep = procs(["sweep", str(spec), "--out", str(first), "--num-cpus", "2", "-q"], env=env, name="sweep")
    assert sweep.wait(400) == 1, sweep.output()[-3000:]
    assert "check: OK" in sweep.output()  # the sweep ends with its verdict
    before = pd.read_parquet(first / "trials.parquet").set_index("param.lr")
    assert set(before["status"]) == {"failed"} and set(before["optuna_state"]) == {"FAIL"}
    crashed, diverged = before.loc[0.3, "trial_id"], before.loc[1e20, "trial_id"]
    assert (crash / crashed).exists() and (first / "tune" / f"trial_{diverged}" / "deterministic_failure.txt").exists()

    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(first), str(moved))
    resume = procs(["resume", str(moved), "--num-cpus", "2", "-q"], env=env, name="resume")
    assert resume.wait(400) == 1, resume.output()[-3000:]  # the diverged trial is still failed
    assert "check: OK" in resume.output(), resume.output()[-3000:]
    assert not first.exists()  # nothing wrote into the old place (study, MLflow, Tune)

    trials = pd.read_parquet(moved / "trials.parquet").set_index("trial_id")
    assert trials.loc[crashed, "status"] == "finished" and trials.loc[crashed, "optuna_state"] == "COMPLETE"
    assert trials.loc[diverged, "status"] == "failed" and "not retried" in trials.loc[diverged, "error"]
    study = study_trials(moved)
    told = [t for t in study if t.user_attrs["tune_trial_id"] == crashed and t.state.name == "COMPLETE"]
    assert len(told) == 1 and told[0].values == [trials.loc[crashed, "clean_acc"], trials.loc[crashed, "robust_acc"]]
    assert told[0].user_attrs["retried_from"] is not None
    events = progress_events(progress)
    assert [e["from_checkpoint"] for e in events[crashed] if e["event"] == "start"] == [False, True]
    assert len([e for e in events[diverged] if e["event"] == "start"]) == 1  # never trained again
    _check(moved, capsys)
    assert main(["report", str(moved), "--no-mlflow"]) == 0

    _damaged_copies_are_caught(moved, tmp_path, crashed, diverged)


def _damaged_copies_are_caught(sweep_dir: Path, tmp_path: Path, finished: str, failed: str) -> None:
    """`check` on copies of a good sweep, each with one record damaged, names the trial and the records."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(sweep_dir, target)
        return target

    # trials.parquet: a status changed, a metric changed, a trial dropped
    bad = copy("bad-status")
    table = pd.read_parquet(bad / "trials.parquet")
    table.loc[table["trial_id"] == finished, "status"] = "early_stopped"
    table.to_parquet(bad / "trials.parquet", index=False)
    problems = check_sweep(bad).problems
    assert any(finished in p and "Ray Tune says TERMINATED" in p for p in problems), problems
    assert any(finished in p and "Optuna trial" in p and "COMPLETE" in p for p in problems), problems
    assert any(finished in p and "MLflow tag" in p for p in problems), problems

    bad = copy("bad-metric")
    table = pd.read_parquet(bad / "trials.parquet")
    table.loc[table["trial_id"] == finished, "clean_acc"] += 0.25
    table.to_parquet(bad / "trials.parquet", index=False)
    problems = check_sweep(bad).problems
    assert any(finished in p and "clean_acc" in p and "Ray Tune" in p for p in problems), problems
    assert any(finished in p and "Optuna values" in p for p in problems), problems

    bad = copy("missing-row")
    table = pd.read_parquet(bad / "trials.parquet")
    table[table["trial_id"] != failed].to_parquet(bad / "trials.parquet", index=False)
    problems = check_sweep(bad).problems
    assert any(failed in p and "not in trials.parquet" in p for p in problems), problems

    # Optuna: the finished trial's COMPLETE record told a second time; an orphan left RUNNING
    bad = copy("bad-study")
    import optuna

    state = SweepState.load(bad)
    study = optuna.load_study(study_name=state.study_name, storage=state.study(bad))
    done = next(t for t in study.trials if t.state.name == "COMPLETE")
    study.add_trial(optuna.trial.create_trial(params=done.params, distributions=done.distributions,
                                              values=done.values, user_attrs=done.user_attrs))
    study.ask().set_user_attr("tune_trial_id", "lost0001")
    problems = check_sweep(bad).problems
    assert any(finished in p and "COMPLETE 2 times" in p for p in problems), problems
    assert any("RUNNING" in p and "lost0001" in p for p in problems), problems

    # MLflow: a child run deleted, a metric value changed
    bad = copy("bad-mlflow")
    client, children = mlflow_children(bad)
    runs = {r.data.tags["tune_trial_id"]: r for r in children}
    client.delete_run(runs[failed].info.run_id)
    client.log_metric(runs[finished].info.run_id, "clean_acc", 0.123456, step=2)
    problems = check_sweep(bad).problems
    assert any(failed in p and "0 MLflow child runs" in p for p in problems), problems
    assert any(finished in p and "clean_acc" in p and "0.123456" in p for p in problems), problems
    client.log_metric(runs[finished].info.run_id, "clean_acc", 0.5, step=7)  # an epoch history.parquet lacks
    assert any(finished in p and "epoch 7 clean_acc is in MLflow but not in history.parquet" in p
               for p in check_sweep(bad).problems)
    # the CLI: one line and exit code 1 when the records disagree
    assert main(["check", str(bad)]) == 1
    assert main(["check", str(tmp_path / "nowhere")]) == 2

    # Ray Tune's result file without an epoch (as Tune leaves it when it copies the file back from
    # storage on a restore): the epoch comes from the reports the trial's last checkpoint carries
    # (they span the crash and the resume), with the values history.parquet had
    from orchestrator.results import collect

    bad = copy("result-file-gap")
    result_file = bad / "tune" / f"trial_{finished}" / "result.json"
    lines = result_file.read_text().splitlines()
    result_file.write_text("\n".join(line for line in lines if json.loads(line)["epoch"] != 1) + "\n")
    state = SweepState.load(bad)
    history = collect(str(state.experiment_dir(bad)), ["lr"], "early_stopped").history
    want = pd.read_parquet(sweep_dir / "history.parquet")
    got, want = (h[h["trial_id"] == finished].set_index("epoch") for h in (history, want))
    assert got.index.tolist() == want.index.tolist() == [1, 2]
    for column in ("train_loss", "clean_acc", "robust_acc"):
        assert got[column].fillna(-1.0).tolist() == want[column].fillna(-1.0).tolist(), column  # NaN: no eval
    assert main(["check", str(bad)]) == 0  # `check` reads Tune's records the same way



@pytest.mark.slow
def test_time_limited_sweep_interrupted_twice_then_resumed_to_its_end(tmp_path: Path, procs, capsys) -> None:
    """A sweep with `budget.time_limit: 40s` (long trials under ASHA) gets Ctrl-C twice once a trial has
    reported: the second interrupt still writes trials.parquet, marks the MLflow parent KILLED (before:
    FAILED, no Parquet) and prints the resume hint (exit 130). `resume` then runs the rest of the time
    budget and ends with exit code 0 (before: it compared its own elapsed time with the whole limit and
    exited 130 again and again); the trials the limit cut are `stopped` and PRUNED in Optuna (before:
    RUNNING forever, and called early_stopped under ASHA); `check` passes after each run."""
    import signal

    spec = _spec(tmp_path, trials=4, concurrency=2, epochs=200,
                 extra="scheduler: {type: asha, metric: robust_acc, grace_period: 1, reduction_factor: 2}\n")
    spec.write_text(spec.read_text().replace("budget: {trials: 4, concurrency: 2}",
                                             "budget: {trials: 4, concurrency: 2, time_limit: 40s}"))
    out = tmp_path / "sweep"
    sweep = procs(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"], name="sweep")
    deadline = time.monotonic() + 300
    while not any(result_lines(d) for d in (out / "tune").glob("trial_*")):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.output()[-3000:]
        time.sleep(0.2)
    sweep.popen.send_signal(signal.SIGINT)
    time.sleep(1.0)
    sweep.popen.send_signal(signal.SIGINT)
    assert sweep.wait(300) == 130, sweep.output()[-3000:]
    output = sweep.output()
    assert f"continue with: orchestrator resume {out}" in output and "check: OK" in output, output[-3000:]
    assert (out / "trials.parquet").is_file()
    client, _ = mlflow_children(out)
    assert client.get_run(SweepState.load(out).parent_run_id).info.status == "KILLED"

    resume = procs(["resume", str(out), "--num-cpus", "2", "-q"], name="resume")
    assert resume.wait(400) == 0, resume.output()[-3000:]
    assert "check: OK" in resume.output() and "time limit" in resume.output()
    trials = pd.read_parquet(out / "trials.parquet")
    cut = trials[trials["status"] == "stopped"]
    assert len(cut) >= 1 and set(cut["optuna_state"]) == {"PRUNED"}, trials[["trial_id", "status", "optuna_state"]]
    assert "RUNNING" not in {t.state.name for t in study_trials(out)}
    assert client.get_run(SweepState.load(out).parent_run_id).info.status == "FINISHED"
    state = json.loads((out / "sweep.json").read_text())
    assert [s["kind"] for s in state["sweeps"]] == ["sweep", "resume"] and state["sweeps"][0]["seconds"] > 0
    _check(out, capsys)


@pytest.mark.slow
def test_trial_past_its_time_limit_is_timed_out_and_locked_stores_are_waited_for(tmp_path: Path, procs,
                                                                                capsys) -> None:
    """`budget.trial_time_limit: 12s`: a 200-epoch trial is ended at its limit (a watchdog ends the
    worker process, which a hung trial could not do itself), recorded `timed_out` with its last
    metrics, FAIL in Optuna (it produced no objective worth learning from), off the front, and not
    retried; a 1-epoch trial finishes. Meanwhile another process holds an exclusive lock on optuna.db
    for longer than SQLite's busy timeout: the searcher waits and retries (no storage error escapes),
    every outcome reaches the study. `check` passes. (An MLflow outage mid-sweep used to be injected here
    too, by a lock for a fixed time; whether the driver wrote to MLflow within it depended on the
    machine's speed. The end-of-sweep backfill it exercised is tested in tests/orchestrator/test_tracking.py.)"""
    spec = _spec(tmp_path, trials=None, sampler="grid", concurrency=2, retries=1, epochs=1,
                 space="  epochs: {choice: [1, 200]}")
    spec.write_text(spec.read_text().replace("budget: {concurrency: 2}",
                                             "budget: {concurrency: 2, trial_time_limit: 12s}"))
    out, progress = tmp_path / "sweep", tmp_path / "progress"
    sweep = procs(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"], name="sweep",
                  env={PROGRESS_ENV: str(progress)})
    db = out / "optuna.db"
    deadline = time.monotonic() + 300
    # the lock starts once both trials are asked (a locked suggestion is tested on its own below) ...
    while not (db.exists() and _count(db, "select count(*) from trial_user_attributes") >= 2):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.output()[-3000:]
        time.sleep(0.2)
    release = threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(db, release))
    locker.start()
    try:  # ... and lasts until the 1-epoch trial has trained its epoch (its outcome is then told while the
        # study is locked) and past SQLite's 5 s busy timeout; its worker's progress line says so without
        # the driver, which waits for the lock (so the other trial's report may wait too)
        while not _trained_an_epoch(progress, epochs=1):
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.output()[-3000:]
            time.sleep(0.2)
        time.sleep(10.0)  # the outcome's tell waits 5 s in SQLite, then retries
    finally:
        release.set()
        locker.join()
    assert sweep.wait(400) == 1, sweep.output()[-3000:]
    output = sweep.output()
    assert "check: OK" in output, output[-3000:]
    assert "database is locked; retrying" in output  # the lock was met, and waited for
    # no storage error escaped as an exception (a tell that outlasts the retries is logged in one line
    # and told again by the end-of-sweep repair: the states below show every outcome reached the study)
    escaped = [ln for ln in output.splitlines() if ln.startswith(("optuna.exceptions.", "sqlalchemy.exc.",
                                                                   "sqlite3.OperationalError"))]
    assert not escaped, escaped
    trials = pd.read_parquet(out / "trials.parquet").set_index("param.epochs")
    assert trials.loc[1, "status"] == "finished" and trials.loc[1, "optuna_state"] == "COMPLETE"
    late = trials.loc[200]
    assert late["status"] == "timed_out" and late["optuna_state"] == "FAIL", late
    assert late["epochs_done"] >= 1 and "TrialTimedOut" in late["error"]
    front = pd.read_csv(out / "report" / "pareto.csv")
    assert late["trial_id"] not in set(front["trial_id"])
    # every epoch of history.parquet is in MLflow (what MLflow misses is backfilled at the end: test_tracking)
    history = pd.read_parquet(out / "history.parquet")
    client, children = mlflow_children(out)
    for run in children:
        epochs = history.loc[history["trial_id"] == run.data.tags["tune_trial_id"], "epoch"].tolist()
        # (subset: the timed-out trial's last epoch can reach MLflow but not Ray Tune's result file when
        # the watchdog ends the worker right after reporting it)
        assert set(epochs) <= {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")}
    _check(out, capsys)


def _trained_an_epoch(progress: Path, epochs: int) -> bool:
    """Whether the trial configured with `epochs` epochs has reported one (its worker's progress lines)."""
    return any(any(e["event"] == "start" and e.get("epochs") == epochs for e in events)
               and any(e["event"] == "epoch" for e in events) for events in progress_events(progress).values())


def _count(db: Path, query: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0


def _hold_lock(db: Path, release: threading.Event) -> None:
    """An exclusive transaction on the study's database until `release` is set."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("begin exclusive")
        release.wait(120)
        conn.execute("rollback")
    finally:
        conn.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_server_down_at_start_is_one_line_and_the_directory_stays_usable(tmp_path: Path, capsys) -> None:
    """`--tracking-uri` of a server that does not answer: one line naming it, exit code 2, before Ray
    starts, and nothing claimed (before: a traceback after minutes of retries, and the same --out was
    then refused as taken)."""
    import ray

    spec = _spec(tmp_path)
    out = tmp_path / "sweep"
    uri = f"http://127.0.0.1:{_free_port()}"
    for _ in range(2):  # the same --out again: not refused as taken
        assert main(["sweep", str(spec), "--out", str(out), "--tracking-uri", uri, "-q"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("orchestrator sweep: error: --tracking-uri " + uri), err
        assert "does not answer" in err[0]
        assert not out.exists() and not ray.is_initialized()


def test_resume_refuses_an_edited_spec_copy_in_one_line(tmp_path: Path, capsys) -> None:
    """The spec copy's SHA-256 is in sweep.json; resume of a sweep whose copy was edited is refused."""
    import hashlib

    import ray

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    text = tiny_spec(name="integrity", base=TINY_BASE)
    (sweep_dir / "spec.yaml").write_text(text)
    SweepState(name="integrity", preset=None, overrides=[], experiment_path="tune",
               tracking_uri="sqlite:///mlflow.db", mlflow_experiment_id="1", parent_run_id="x",
               study_name="integrity", study_url="sqlite:///optuna.db", created="2026-12-02T00:00:00",
               spec_sha256=hashlib.sha256(text.encode()).hexdigest()).save(sweep_dir)
    (sweep_dir / "spec.yaml").write_text(text.replace("trials: 3", "trials: 30"))
    assert main(["resume", str(sweep_dir), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edited since the sweep started" in err[0] and "spec.yaml" in err[0], err
    assert not ray.is_initialized()


def test_searcher_follows_a_moved_study_caps_resumed_trials_and_never_tells_twice(tmp_path: Path) -> None:
    """The searcher as Tune pickles it (with the Tuner, and its own state file) holds no storage: moved
    with its study, it connects where `rebind` says, never to the old place (an RDBStorage unpickles by
    creating tables at its URL); the trials a resume re-runs count against the concurrency cap; a
    FAIL trial finished later gets one COMPLETE trial (`retried_from`), however often it is told."""
    import pickle

    import optuna

    from orchestrator.search import make_searcher
    from orchestrator.spec import parse_spec

    spec = parse_spec(tiny_spec(), tmp_path / "spec.yaml")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    searcher = make_searcher(spec.space, spec.metrics, spec.modes, spec.sampler, spec.sampler_options, "s",
                             f"sqlite:///{old / 'optuna.db'}")
    assert searcher.set_max_concurrency(2)  # so Tune's ConcurrencyLimiter passes every call through
    assert searcher.suggest("a") and searcher.suggest("b") and searcher.suggest("c") is None  # the cap
    searcher.on_trial_complete("b", error=True)  # FAIL; a resume will retry it
    searcher.save(str(tmp_path / "searcher.pkl"))
    pickled = pickle.dumps(searcher)
    old.rename(new)

    restored = pickle.loads(pickled)  # what Tuner.restore does with tuner.pkl: no connection made
    restored.rebind(f"sqlite:///{new / 'optuna.db'}", {"a", "b"})
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("d") is None  # a and b run again: the cap is full
    final = {"clean_acc": 0.5, "robust_acc": 0.25, "final": 1.0}
    restored.on_trial_complete("b", final)
    restored.on_trial_complete("b", final)  # told again (a second retry): still one COMPLETE
    restored.on_trial_complete("a", final)
    assert not old.exists()
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{new / 'optuna.db'}").trials
    outcome = sorted((t.user_attrs["tune_trial_id"], t.state.name, tuple(t.values or ())) for t in trials)
    assert outcome == [("a", "COMPLETE", (0.5, 0.25)), ("b", "COMPLETE", (0.5, 0.25)), ("b", "FAIL", ())]
    assert next(t for t in trials if t.state.name == "COMPLETE" and t.user_attrs["tune_trial_id"] == "b"
                ).user_attrs["retried_from"] == 1


def test_a_suggestion_whose_tagging_meets_a_locked_study_is_not_asked_again(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna has asked a trial when setting its ``tune_trial_id`` meets a study locked past the retries:
    no trial now, and the next suggestion (Tune's new trial id) gets that same Optuna trial. Before, a
    second one was asked and the first stayed RUNNING, so the grid sampler repeated a point and never
    ran the one the lost trial held."""
    import optuna
    from sqlalchemy.exc import OperationalError

    from orchestrator.search import make_searcher
    from orchestrator.spec import parse_spec

    monkeypatch.setenv("CFAMC_STUDY_RETRY_S", "0")  # the lock outlasts the retries at once
    spec = parse_spec(tiny_spec(trials=None, sampler="grid", space="  epochs: {choice: [1, 200]}"),
                      tmp_path / "spec.yaml")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(spec.space, spec.metrics, spec.modes, spec.sampler, spec.sampler_options, "s", url)
    tag = optuna.Trial.set_user_attr
    locked = iter([True])

    def set_user_attr(self, key, value):
        if next(locked, False):
            raise OperationalError("UPDATE trials", {}, Exception("database is locked"))
        return tag(self, key, value)

    monkeypatch.setattr(optuna.Trial, "set_user_attr", set_user_attr)
    assert searcher.suggest("a") is None  # asked, but not linked to Tune trial "a"
    first = searcher.suggest("b")
    second = searcher.suggest("c")
    assert first and second and {first["epochs"], second["epochs"]} == {1, 200}
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert sorted((t.number, t.user_attrs.get("tune_trial_id")) for t in trials) == [(0, "b"), (1, "c")]


def test_a_tell_the_disk_refused_is_logged_then_told_by_the_repair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """SQLite "database or disk is full" on a trial's outcome (not transient: no retry) is one logged
    line naming the trial, the sweep goes on, the Optuna trial stays RUNNING; the sweep's repair then
    tells it COMPLETE with the values of trials.parquet, once."""
    import logging

    import optuna
    from sqlalchemy.exc import OperationalError

    from orchestrator.integrity import repair_study
    from orchestrator.search import make_searcher
    from orchestrator.spec import parse_spec

    spec = parse_spec(tiny_spec(), tmp_path / "spec.yaml")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = make_searcher(spec.space, spec.metrics, spec.modes, spec.sampler, spec.sampler_options, "s", url)
    assert searcher.suggest("a")
    tell = optuna.Study.tell

    def full(self, *args, **kwargs):
        raise OperationalError("UPDATE trials", {}, Exception("database or disk is full"))

    monkeypatch.setattr(optuna.Study, "tell", full)
    with caplog.at_level(logging.ERROR, logger="orchestrator.search"):
        searcher.on_trial_complete("a", {"clean_acc": 0.5, "robust_acc": 0.25, "final": 1.0})
    assert [r.getMessage() for r in caplog.records if "could not record trial a" in r.getMessage()]
    assert [t.state.name for t in optuna.load_study(study_name="s", storage=url).trials] == ["RUNNING"]

    monkeypatch.setattr(optuna.Study, "tell", tell)  # the disk has room again at the end of the sweep
    rows = pd.DataFrame([{"trial_id": "a", "status": "finished", "clean_acc": 0.5, "robust_acc": 0.25}])
    notes = repair_study(url, "s", rows, ["clean_acc", "robust_acc"])
    assert notes == ["trial a: told Optuna COMPLETE (Tune's outcome had not reached the study)"]
    assert repair_study(url, "s", rows, ["clean_acc", "robust_acc"]) == []  # never told twice
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [(t.state.name, t.values) for t in trials] == [("COMPLETE", [0.5, 0.25])]
