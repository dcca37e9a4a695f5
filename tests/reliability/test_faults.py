"""Fault injection: real faults in real processes (Ray, MLflow's SQLite store, the file system) on the
tiny preset, each followed by the guarantee the orchestrator makes (README, "Reliability").

1. a trial's worker process SIGKILLed mid-epoch     -> retried from its last checkpoint, bit-for-bit
2. the sweep driver SIGKILLed mid-sweep              -> `orchestrator resume`: every trial once, none re-run
3. a worker node of a multi-node Ray cluster removed -> its trials finish on the remaining node from checkpoints
4. a checkpoint write interrupted / a corrupt file   -> the previous checkpoint is used; corrupt ones refused
5. a trial whose loss becomes NaN                    -> failed with that reason, the sweep goes on, off the front
6. two sweeps at once on one tracking store/storage  -> both finish, each with its own trials and runs
7. a read-only or full sweep directory               -> one line, exit code 2, before Ray or any trial starts

Sweeps run as `python -m orchestrator.cli` subprocesses in their own sessions (see conftest.py); the
test hook CFAMC_TEST_PROGRESS_DIR (trainable/tune_adapter.py) tells a test each trial attempt's PID and
reported epochs. Only processes started here are ever signalled.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import psutil
import pytest

from orchestrator.layout import SweepState
from tests.specs import REPO, tiny_spec

PROGRESS_ENV = "CFAMC_TEST_PROGRESS_DIR"
# The tiny preset cut further: 2 minibatches of 20 images per epoch, 20 test images, 1 probe epoch.
TINY_BASE = "train_images: 40, eval_images: 20, probe_epochs: 1"
TIMING_KEYS = ("train_seconds", "samples_per_second")


# --- helpers ------------------------------------------------------------------------------------------------
def spec_text(*, name: str = "fault", retries: int = 1, base: str = TINY_BASE, **changes: Any) -> str:
    """The shared tiny spec (tests/specs.py) with the fault tests' smaller data and a retry."""
    return tiny_spec(name=name, retries=retries, base=base, **changes)


def wait_for(condition: Callable[[], object], timeout: float, what: str, alive=None, interval: float = 0.1):
    """Poll `condition` until it returns something truthy (returned); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the process ended (code {alive.popen.returncode}) while waiting for {what}:\n"
                                 f"{alive.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f":\n{alive.output()[-3000:]}" if alive is not None else ""))
        time.sleep(interval)


def sqlite_rows(db: Path, query: str) -> list[tuple]:
    """Rows of a read-only query on a SQLite file another process writes ([] while it cannot be read)."""
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2) as conn:
            return conn.execute(query).fetchall()
    except sqlite3.Error:
        return []


def complete_tune_ids(sweep_dir: Path) -> list[str]:
    """Tune trial ids of the COMPLETE trials of the sweep's Optuna study (told when a trial finishes)."""
    rows = sqlite_rows(sweep_dir / "optuna.db",
                       "select a.value_json from trials t join trial_user_attributes a on a.trial_id = t.trial_id "
                       "where t.state = 'COMPLETE' and a.key = 'tune_trial_id'")
    return [json.loads(r[0]) for r in rows]


def study_trials(sweep_dir: Path) -> list:
    import optuna

    state = json.loads((sweep_dir / "sweep.json").read_text())
    study = optuna.load_study(study_name=state["study_name"], storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    return study.get_trials(deepcopy=False)


def mlflow_children(sweep_dir: Path, deleted_too: bool = False) -> tuple[object, list]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    state = json.loads((sweep_dir / "sweep.json").read_text())
    client = MlflowClient(tracking_uri=SweepState.load(sweep_dir).tracking(sweep_dir))
    runs = client.search_runs([state["mlflow_experiment_id"]],
                              filter_string=f"tags.`mlflow.parentRunId` = '{state['parent_run_id']}'",
                              run_view_type=ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY,
                              max_results=1000)
    return client, list(runs)


def result_lines(trial_dir: Path) -> list[dict]:
    """What Ray Tune's driver recorded for one trial (result.json: one JSON object per reported epoch)."""
    path = trial_dir / "result.json"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # the line being written right now
                pass
    return out


def progress_events(directory: Path) -> dict[str, list[dict]]:
    """CFAMC_TEST_PROGRESS_DIR lines per Tune trial id."""
    out: dict[str, list[dict]] = {}
    for path in sorted(directory.glob("*.jsonl")) if directory.exists() else []:
        events = []
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
        out[path.stem] = events
    return out


def descendants(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def tree_listing(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file under `root`."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def train_args(settings: dict[str, object]) -> list[str]:
    return ["train", "--preset", "tiny", "--no-progress", "--json",
            *[x for k, v in settings.items() for x in ("--set", f"{k}={v}")]]


def last_json(output: str) -> dict[str, float]:
    return json.loads(output.strip().splitlines()[-1])


# --- 1. a trial's worker killed mid-epoch --------------------------------------------------------------------
@pytest.mark.slow
def test_trial_killed_mid_epoch_resumes_from_checkpoint_bit_for_bit(tmp_path: Path, procs) -> None:
    """SIGKILL of the trial's Ray worker process while it trains epoch 2 (of 3): Ray Tune retries it
    (`retries: 1`) from the epoch-1 checkpoint, epoch 1 is not trained or reported again, and the final
    metrics equal, exactly, those of an uninterrupted `orchestrator train` of the same settings and seed
    (the loop checkpoints model, optimizer, scheduler, free-AT perturbation and all RNG streams, and a
    CPU run with one torch thread is deterministic, so no tolerance is needed)."""
    settings = {"epochs": 3, "train_images": 100, "eval_images": 20, "probe_epochs": 1, "epsilon": "8/255"}
    reference = procs([*train_args({**settings, "threads": 1})], name="reference")  # runs beside the sweep
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(trials=None, concurrency=1, epochs=3, sampler="grid", retries=1,
                              base="train_images: 100, eval_images: 20, probe_epochs: 1",
                              space="  epsilon: {choice: [8/255]}"))
    out, progress = tmp_path / "sweep", tmp_path / "progress"
    sweep = procs(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"],
                  env={PROGRESS_ENV: str(progress)}, name="sweep")

    def epoch_one_saved() -> tuple[str, dict] | None:
        # the worker reported epoch 1 (its checkpoint is persisted) and the driver recorded that result
        for tid, events in progress_events(progress).items():
            epochs = [e for e in events if e["event"] == "epoch"]
            if epochs and any(r.get("epoch") == 1 for r in result_lines(out / "tune" / f"trial_{tid}")):
                return tid, epochs[-1]
        return None

    trial_id, last = wait_for(epoch_one_saved, 300, "the trial's first checkpointed epoch", alive=sweep,
                              interval=0.05)
    victim = last["pid"]
    assert victim in descendants(sweep.pid)  # the trial's Ray worker: a process of our own sweep
    os.kill(victim, signal.SIGKILL)
    assert sweep.wait(300) == 0, sweep.output()[-3000:]
    assert "check: OK" in sweep.output()  # Ray Tune, Optuna, Parquet and MLflow agree

    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 1 and trials.loc[0, "status"] == "finished" and trials.loc[0, "epochs_done"] == 3
    assert trials.loc[0, "trial_id"] == trial_id and trials.loc[0, "pid"] != victim
    events = progress_events(progress)[trial_id]
    starts = [e for e in events if e["event"] == "start"]
    assert [s["from_checkpoint"] for s in starts] == [False, True], events  # retried once, from a checkpoint
    killed_epochs = [e["epoch"] for e in events if e["event"] == "epoch" and e["pid"] == victim]
    retry_epochs = [e["epoch"] for e in events if e["event"] == "epoch" and e["pid"] == starts[1]["pid"]]
    assert killed_epochs[-1] < 3  # it was killed while training, not after its last epoch
    # continued after the last checkpoint: the epoch after the last one the killed attempt recorded, or the
    # one after that when the kill fell between an epoch's checkpoint (persisted) and its progress line
    assert retry_epochs == list(range(retry_epochs[0], 4)), events
    assert retry_epochs[0] in (killed_epochs[-1] + 1, killed_epochs[-1] + 2), events
    # Ray Tune's result.json: each epoch once; the retry's all there (lines written before the kill can be
    # lost: on restore Tune copies the trial's file back from storage, which may not hold them yet)
    reported = [r["epoch"] for r in result_lines(out / "tune" / f"trial_{trial_id}")]
    assert reported == sorted(set(reported)) and set(retry_epochs) <= set(reported), reported

    assert reference.wait(300) == 0, reference.output()[-2000:]
    expected = last_json(reference.output())
    row = trials.loc[0]
    compared = [k for k in expected if k not in TIMING_KEYS]
    assert {"clean_acc", "robust_acc", "train_loss", "robust_acc@8/255"} <= set(compared)
    assert {k: float(row[k]) for k in compared if not same(float(row[k]), expected[k])} == {}, expected


# --- 2. the sweep driver killed --------------------------------------------------------------------------------
@pytest.mark.slow
def test_driver_killed_then_resume_keeps_every_trial_once(tmp_path: Path, procs) -> None:
    """SIGKILL of the `orchestrator sweep` driver (and then of its private Ray cluster) once a trial has
    finished and another has just started; `orchestrator resume DIR` then completes the budget: every
    trial exactly once in trials.parquet, in the Optuna study and among MLflow's child runs; the trials
    finished before the kill are not trained again (no epoch trained or checkpointed again, metrics
    unchanged, no epoch logged twice in MLflow or history.parquet).

    Orphans: a trial created after Ray Tune's last experiment-state save is unknown to the resumed run,
    but the driver had already asked Optuna for it and opened its MLflow child run. With
    ``execution.keep_checkpoints: 1`` (the strict setting this test runs; the default, 2, may redo a
    checkpoint interval, see orchestrator/execution.py) Ray saves its state after every trial
    checkpoint and every 10 s, so a real kill lands in
    that window only by luck; the test therefore also plants exactly what such a lost trial leaves behind
    (a RUNNING Optuna trial and a running MLflow child run with an unknown tune_trial_id) and checks
    the README's promise: the Optuna trial is marked FAIL with `orphaned`, the MLflow run is deleted."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(trials=4, concurrency=2, epochs=2, extra="execution: {keep_checkpoints: 1}\n"))
    out, progress = tmp_path / "sweep", tmp_path / "progress"
    sweep = procs(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"],
                  env={PROGRESS_ENV: str(progress)}, name="sweep")

    def just_started() -> bool:
        # a trial finished and another has just started (no result yet): the most fragile moment, when
        # Ray Tune has probably not saved the new trial in its experiment state yet
        done = complete_tune_ids(out)
        return bool(done) and any(tid not in done and not result_lines(out / "tune" / f"trial_{tid}")
                                  for tid in progress_events(progress))

    wait_for(just_started, 300, "a finished trial and a newly started one", alive=sweep, interval=0.05)
    finished = complete_tune_ids(out)
    before = {t.user_attrs["tune_trial_id"]: t.values for t in study_trials(out) if t.state.name == "COMPLETE"}
    checkpoints = {tid: tree_listing(out / "tune" / f"trial_{tid}") for tid in finished}
    victims = sweep.kill_tree()
    assert sweep.popen.returncode == -signal.SIGKILL
    assert len(victims) >= 3  # the driver's Ray processes (GCS, raylet, workers, ...) went down with it
    assert not [p for p in victims if p.is_running()]
    attempts = {tid: len(events) for tid, events in progress_events(progress).items()}
    lost_run = _plant_lost_trial(out, "lost0001")

    resume = procs(["resume", str(out), "--num-cpus", "2", "-q"], env={PROGRESS_ENV: str(progress)}, name="resume")
    assert resume.wait(400) == 0, resume.output()[-3000:]
    assert "check: OK" in resume.output()  # Ray Tune, Optuna, Parquet and MLflow agree

    trials = pd.read_parquet(out / "trials.parquet")
    ids = sorted(trials["trial_id"])
    assert len(trials) == 4 and trials["trial_id"].is_unique and set(trials["status"]) == {"finished"}, trials
    history = pd.read_parquet(out / "history.parquet")
    assert len(history) == 8 and not history.duplicated(["trial_id", "epoch"]).any()

    study = study_trials(out)
    orphans = [t for t in study if t.user_attrs.get("orphaned")]
    live = [t for t in study if not t.user_attrs.get("orphaned")]
    assert sorted(t.user_attrs["tune_trial_id"] for t in live) == ids  # each trial once in the study
    assert {t.state.name for t in live} == {"COMPLETE"}
    assert all(t.state.name == "FAIL" and t.user_attrs.get("tune_trial_id") not in ids for t in orphans)

    client, children = mlflow_children(out)
    assert sorted(r.data.tags["tune_trial_id"] for r in children) == ids  # each trial once in MLflow
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["trial_status"] == "finished"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch")] == [1, 2]
    _, every = mlflow_children(out, deleted_too=True)
    removed = {r.data.tags.get("tune_trial_id") for r in every} - set(ids)
    # only orphans' runs were deleted (a real orphan may have no MLflow run: the driver can die between
    # asking Optuna for the trial and opening its child run)
    assert removed <= {t.user_attrs.get("tune_trial_id") for t in orphans}
    assert "lost0001" in removed and client.get_run(lost_run).info.lifecycle_stage == "deleted"
    print(f"orphaned trials: {sorted(removed)}")

    rows = trials.set_index("trial_id")
    events = progress_events(progress)
    for tid in finished:  # finished before the kill: not trained again
        # no epoch trained again; at most a restart that reads its final checkpoint and re-reports it
        # (when Ray's last state save came between the trial's final checkpoint and its completion)
        later = events[tid][attempts[tid]:]
        assert all(e["event"] == "start" and e["from_checkpoint"] for e in later), events[tid]
        assert [rows.loc[tid, "clean_acc"], rows.loc[tid, "robust_acc"]] == before[tid]
        assert tree_listing(out / "tune" / f"trial_{tid}") == checkpoints[tid] or _only_result_appended(
            out / "tune" / f"trial_{tid}", checkpoints[tid])
        trained = [r["epoch"] for r in result_lines(out / "tune" / f"trial_{tid}") if r.get("checkpoint_dir_name")]
        assert trained == [1, 2], trained


def _plant_lost_trial(sweep_dir: Path, tune_id: str) -> str:
    """What the driver leaves of a trial it created after Ray's last state save: a RUNNING Optuna trial
    tagged with the Tune trial id and a running MLflow child run; returns the run id."""
    import optuna

    state = json.loads((sweep_dir / "sweep.json").read_text())
    study = optuna.load_study(study_name=state["study_name"], storage=SweepState.load(sweep_dir).study(sweep_dir))
    study.ask().set_user_attr("tune_trial_id", tune_id)
    client, _ = mlflow_children(sweep_dir)
    run = client.create_run(state["mlflow_experiment_id"], run_name=f"trial-{tune_id}", tags={
        "mlflow.parentRunId": state["parent_run_id"], "tune_trial_id": tune_id, "trial_status": "running"})
    return run.info.run_id


def _only_result_appended(trial_dir: Path, before: dict[str, tuple[int, int]]) -> bool:
    """True when the only change to a finished trial's directory is Ray's bookkeeping of a re-reported
    final result (no checkpoint written)."""
    after = tree_listing(trial_dir)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return all(not k.startswith("checkpoint_") for k in changed)


# --- 4. checkpoint writes interrupted, corrupt checkpoints --------------------------------------------------
# `orchestrator train` with os.replace patched to SIGKILL the process when it is about to rename the
# N-th checkpoint into place: a real crash after the new file was written and fsynced, before the rename.
CRASH_BEFORE_RENAME = textwrap.dedent("""\
    import os, signal, sys
    real_replace, seen = os.replace, []
    def replace(src, dst, *args, **kwargs):
        if os.path.basename(str(src)).startswith(".checkpoint.pt.tmp-"):
            seen.append(src)
            if len(seen) == int(os.environ["CRASH_AT_SAVE"]):
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
    from orchestrator.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_interrupted_checkpoint_write_keeps_previous_and_corrupt_is_refused(tmp_path: Path, procs) -> None:
    """A crash between writing epoch 2's checkpoint and renaming it into place leaves epoch 1's
    checkpoint.pt intact (plus the orphan temporary file); `orchestrator train --resume` continues from
    epoch 1 and ends exactly where an uninterrupted run ends. A truncated checkpoint.pt is refused with
    one line naming the file (exit code 2), never half-loaded."""
    settings = {"epochs": 2, "train_images": 40, "eval_images": 20, "probe_epochs": 1, "threads": 1}
    reference = procs(train_args(settings), name="reference")
    ck = tmp_path / "ck"
    args = [*train_args(settings), "--checkpoint-dir", str(ck)]
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_RENAME, *args], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO), CRASH_AT_SAVE="2"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    from trainable.checkpoint import load_checkpoint

    leftovers = list(ck.glob(".checkpoint.pt.tmp-*"))
    assert len(leftovers) == 1 and load_checkpoint(leftovers[0])["epoch"] == 2  # written, never renamed
    assert load_checkpoint(ck / "checkpoint.pt")["epoch"] == 1  # the previous checkpoint, intact

    resumed = _cli([*args, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "epoch 2/2" in resumed.stderr and "epoch 1/2" not in resumed.stderr  # continued after epoch 1
    assert load_checkpoint(ck / "checkpoint.pt")["epoch"] == 2
    assert reference.wait(300) == 0, reference.output()[-2000:]
    expected, got = last_json(reference.output()), last_json(resumed.stdout)
    assert {k for k in expected if k not in TIMING_KEYS and not same(got[k], expected[k])} == set()

    data = (ck / "checkpoint.pt").read_bytes()
    (ck / "checkpoint.pt").write_bytes(data[: len(data) // 2])  # a torn file (e.g. copied by hand mid-write)
    refused = _cli([*args, "--resume"], tmp_path)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("orchestrator train: error: checkpoint ") and str(ck / "checkpoint.pt") in last
    assert "corrupt" in last


def test_corrupt_checkpoints_are_refused_by_the_loader_and_never_half_loaded(tmp_path: Path) -> None:
    """Every damaged checkpoint is one `CheckpointError` naming the file: truncated at any length,
    garbage, a pickle carrying code, a trial state missing entries or with tensors of the wrong shape;
    a rejected state changes nothing in the trial it was meant for."""
    import torch

    from trainable.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from trainable.config import preset
    from trainable.loop import Trial, train

    config = preset("tiny", epochs=1, train_images=40, eval_images=20, probe_epochs=1)
    trial = Trial(config)
    path = trial.write_checkpoint(tmp_path / "good")
    data = path.read_bytes()
    good = load_checkpoint(path)
    assert good["epoch"] == 0

    damaged = {f"truncated-{n}": data[:n] for n in (0, 1, 100, len(data) // 2, len(data) - 1)}
    damaged["garbage"] = os.urandom(2048)
    for name, content in damaged.items():
        bad = tmp_path / name / "checkpoint.pt"
        bad.parent.mkdir()
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match="corrupt or unsafe") as err:
            load_checkpoint(bad)
        assert str(bad) in str(err.value) and "\n" not in str(err.value), name

    class Payload:  # a pickled object would run code when unpickled: refused by weights_only loading
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": Payload(), "epoch": 1}, unsafe)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        load_checkpoint(unsafe)

    before = {k: v.clone() for k, v in trial.model.state_dict().items()}
    missing = dict(good)
    del missing["optimizer"]
    wrong_shape = dict(good, model={k: (v[..., :1] if v.dim() else v) for k, v in good["model"].items()})
    wrong_shape["model"][next(iter(good["model"]))] = torch.zeros(3, 3)
    for name, state in (("missing", missing), ("wrong_shape", wrong_shape)):
        save_checkpoint(state, tmp_path / name / "checkpoint.pt")
        with pytest.raises(CheckpointError) as err:
            trial.load_state_dict(load_checkpoint(tmp_path / name / "checkpoint.pt"))
        assert "\n" not in str(err.value)
        after = trial.model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), f"{name}: the model was partly loaded"
        with pytest.raises(CheckpointError):
            train(config, resume_from=tmp_path / name)


# --- 5. a trial whose loss becomes NaN ----------------------------------------------------------------------
@pytest.mark.slow
def test_diverged_trial_fails_with_reason_sweep_goes_on_and_is_off_the_front(tmp_path: Path, procs) -> None:
    """lr=1e20 makes the loss NaN in the first epoch: that trial is failed (not retried: one attempt)
    with the reason in trials.parquet `error`, FAIL in Optuna and FAILED in MLflow; the other trials
    finish; the report's Pareto front holds only finished trials; exit code 1."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(trials=None, concurrency=2, epochs=1, sampler="grid", retries=1,
                              space="  lr: {choice: [1e20, 0.3, 0.2]}"))
    out, progress = tmp_path / "sweep", tmp_path / "progress"
    sweep = procs(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"],
                  env={PROGRESS_ENV: str(progress)}, name="sweep")
    assert sweep.wait(400) == 1, sweep.output()[-3000:]
    assert "check: OK" in sweep.output()  # Ray Tune, Optuna, Parquet and MLflow agree

    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 3
    diverged = trials[trials["param.lr"] == 1e20]
    assert len(diverged) == 1
    row = diverged.iloc[0]
    assert row["status"] == "failed" and "TrainingDiverged" in row["error"] and "nan" in row["error"], row["error"]
    assert row["optuna_state"] == "FAIL"
    others = trials[trials["param.lr"] != 1e20]
    assert set(others["status"]) == {"finished"} and set(others["optuna_state"]) == {"COMPLETE"}
    starts = [e for e in progress_events(progress)[row["trial_id"]] if e["event"] == "start"]
    assert len(starts) == 1  # deterministic: the retry failed at once without training again

    front = pd.read_csv(out / "report" / "pareto.csv")
    assert len(front) >= 1 and row["trial_id"] not in set(front["trial_id"])
    assert set(front["trial_id"]) <= set(others["trial_id"])
    _, children = mlflow_children(out)
    status = {r.data.tags["tune_trial_id"]: (r.info.status, r.data.tags["trial_status"]) for r in children}
    assert status[row["trial_id"]] == ("FAILED", "failed")
    assert "1 failed" in sweep.output()


# --- 7. read-only or full sweep directory ---------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path: Path):
    """mount(name, options) -> a fresh tmpfs mount point (unmounted at teardown). Root in a container
    ignores chmod, so a read-only or full file system needs a real mount; skipped where mounting is
    not permitted."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _fill(directory: Path) -> None:
    """Write until the file system is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    assert shutil.disk_usage(directory).free < 4096


def _one_line_usage_error(capsys, command: str, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    line = err[-1]
    assert line.startswith(f"orchestrator {command}: error: "), err
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def test_read_only_or_full_sweep_directory_is_refused_before_anything_starts(tmp_path: Path, tmpfs, capsys,
                                                                            monkeypatch) -> None:
    """A read-only file system, one with too little free space and one that is full (writes fail with
    ENOSPC) are each refused in one line naming the path, exit code 2, before Ray starts; for `sweep`
    (--out, --storage) and for `resume`."""
    import ray

    from orchestrator.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text())
    read_only = tmpfs("ro", "ro,size=1m")
    small = tmpfs("small", "size=1m")
    full = tmpfs("full", "size=256k")
    _fill(full)

    assert main(["sweep", str(spec), "--out", str(read_only / "sweep"), "-q"]) == 2
    _one_line_usage_error(capsys, "sweep", f"--out {read_only / 'sweep'}", "Read-only file system")
    assert main(["sweep", str(spec), "--out", str(small / "sweep"), "-q"]) == 2
    _one_line_usage_error(capsys, "sweep", f"--out {small / 'sweep'}", "MB free", "at least 50 MB",
                          "CFAMC_MIN_FREE_MB")
    assert not (small / "sweep").exists()
    monkeypatch.setenv("CFAMC_MIN_FREE_MB", "0")  # past the free-space check: the probe write itself fails
    assert main(["sweep", str(spec), "--out", str(full / "sweep"), "-q"]) == 2
    _one_line_usage_error(capsys, "sweep", f"--out {full / 'sweep'}", "No space left on device")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "ok"), "--storage", str(read_only / "ray"), "-q"]) == 2
    _one_line_usage_error(capsys, "sweep", f"--storage {read_only / 'ray'}", "Read-only file system")
    assert not (tmp_path / "ok").exists()
    monkeypatch.delenv("CFAMC_MIN_FREE_MB")

    # resume of a sweep whose directory has become read-only
    resumable = tmpfs("resumable", "size=1m")
    sweep_dir = resumable / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / "spec.yaml").write_text(spec.read_text())
    (sweep_dir / "sweep.json").write_text(json.dumps({
        "name": "fault", "preset": None, "overrides": [], "experiment_path": str(sweep_dir / "tune"),
        "tracking_uri": f"sqlite:///{sweep_dir / 'mlflow.db'}", "mlflow_experiment_id": "1", "parent_run_id": "x",
        "study_name": "fault", "study_url": f"sqlite:///{sweep_dir / 'optuna.db'}", "created": "2026-11-25T00:00:00",
        "sweeps": []}))
    subprocess.run(["mount", "-o", "remount,ro", str(resumable)], check=True)
    monkeypatch.setenv("CFAMC_MIN_FREE_MB", "0")
    assert main(["resume", str(sweep_dir), "-q"]) == 2
    _one_line_usage_error(capsys, "resume", str(sweep_dir), "Read-only file system")
    assert not ray.is_initialized()  # every refusal came before Ray was started


# --- 3. a worker node removed mid-sweep ---------------------------------------------------------------------
@pytest.mark.slow
def test_worker_node_removed_its_trial_finishes_on_the_remaining_node(tmp_path: Path, procs) -> None:
    """A two-node local Ray cluster (1 CPU each, one trial per node); once the worker node's trial has
    checkpointed an epoch, every process of that node (raylet, its workers, ...) is SIGKILLed. The trial
    is retried on the head node from its checkpoint: no epoch is reported twice, the first is on the lost
    node and the last on the head; the sweep finishes with exit code 0."""
    from ray.cluster_utils import Cluster

    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(trials=2, concurrency=2, epochs=3, retries=2,
                              base="train_images: 100, eval_images: 20, probe_epochs: 1"))
    out = tmp_path / "sweep"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        head_id, worker_id = cluster.head_node.node_id, worker.node_id
        # both nodes reach the trials' storage (here one disk; on a real cluster NFS or an object store)
        storage = tmp_path / "shared"
        sweep = procs(["sweep", str(spec), "--out", str(out), "--address", cluster.address, "--storage",
                       str(storage), "-q"], name="sweep")
        experiment = storage / out.name

        def checkpointed_on_worker() -> str | None:
            for trial_dir in experiment.glob("trial_*"):
                if any(r.get("node_id") == worker_id and r.get("epoch", 0) >= 1 for r in result_lines(trial_dir)):
                    return trial_dir.name.removeprefix("trial_")
            return None

        moved = wait_for(checkpointed_on_worker, 300, "a checkpointed epoch on the worker node", alive=sweep,
                         interval=0.05)
        cluster.remove_node(worker, allow_graceful=False)
        assert sweep.wait(400) == 0, sweep.output()[-3000:]
        assert "check: OK" in sweep.output()  # Ray Tune, Optuna, Parquet and MLflow agree
    finally:
        cluster.shutdown()

    trials = pd.read_parquet(out / "trials.parquet").set_index("trial_id")
    assert set(trials["status"]) == {"finished"} and set(trials["epochs_done"]) == {3}
    assert trials.loc[moved, "node_id"] == head_id
    # Tune's result file in --storage is synced from the driver now and then, so a line written just
    # before the node was lost may be missing there; what must hold: no epoch trained twice (it continued
    # from its checkpoint on the head node, not from scratch), the first epoch on the lost node, the last
    # on the head, and history.parquet holding every epoch (one the result file lacks comes from the
    # reports the trial's checkpoint carries)
    reported = result_lines(experiment / f"trial_{moved}")
    epochs = [r["epoch"] for r in reported]
    assert epochs == sorted(set(epochs)) and epochs[0] == 1 and epochs[-1] == 3, reported
    assert reported[0]["node_id"] == worker_id and reported[-1]["node_id"] == head_id
    history = pd.read_parquet(out / "history.parquet")
    assert history.loc[history["trial_id"] == moved, "epoch"].tolist() == [1, 2, 3]


# --- 6. two sweeps at once on one tracking store and storage ------------------------------------------------
@pytest.mark.slow
def test_two_sweeps_at_once_on_one_tracking_store_and_storage(tmp_path: Path, procs) -> None:
    """Four `orchestrator sweep` commands start together with the same --tracking-uri (one SQLite
    file) and --storage: `one/sweep-x`, the same `one/sweep-x` again, `two/sweep-x` (another directory
    with the same name, so the same place in --storage) and `one/sweep-y`. Exactly one of the three
    `sweep-x` commands runs, the other two are refused in one line (exit code 2) without touching it;
    sweep-x and sweep-y both finish, each with its own trials in its own directory, study and storage,
    and its own MLflow parent run whose child runs are exactly its trials; artifacts go next to the
    shared store, not into either sweep's directory."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(trials=2, concurrency=1, epochs=1))
    shared = tmp_path / "shared"
    shared.mkdir()
    uri, storage = f"sqlite:///{shared / 'mlflow.db'}", shared / "ray"
    outs = {"x1": tmp_path / "one" / "sweep-x", "x2": tmp_path / "one" / "sweep-x", "x3": tmp_path / "two" / "sweep-x",
            "y": tmp_path / "one" / "sweep-y"}
    started = {key: procs(["sweep", str(spec), "--out", str(out), "--tracking-uri", uri, "--storage", str(storage),
                           "--num-cpus", "1", "-q"], name=key) for key, out in outs.items()}
    codes = {key: proc.wait(400) for key, proc in started.items()}
    assert codes["y"] == 0, started["y"].output()[-3000:]
    assert all("check: OK" in started[k].output() for k in codes if codes[k] == 0)  # each sweep's records agree
    x_codes = sorted(codes[k] for k in ("x1", "x2", "x3"))
    assert x_codes == [0, 2, 2], {k: started[k].output()[-1500:] for k in ("x1", "x2", "x3")}
    for key in ("x1", "x2", "x3"):
        if codes[key] == 2:
            lines = [line for line in started[key].output().splitlines() if "error" in line.lower()]
            assert len(lines) == 1 and lines[0].startswith("orchestrator sweep: error: "), started[key].output()
            assert "another sweep" in lines[0] or "already exists" in lines[0], lines[0]
    winner = next(k for k in ("x1", "x2", "x3") if codes[k] == 0)
    if codes["x3"] == 2:  # refused for its place in --storage: what it had claimed is gone again
        assert not outs["x3"].exists()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    seen_trials: set[str] = set()
    for out in (outs[winner], outs["y"]):
        state = json.loads((out / "sweep.json").read_text())
        assert state["tracking_uri"] == uri and state["experiment_path"] == str(storage / out.name)
        trials = pd.read_parquet(out / "trials.parquet")
        ids = sorted(trials["trial_id"])
        assert len(ids) == 2 and set(trials["status"]) == {"finished"}
        assert not seen_trials & set(ids)
        seen_trials |= set(ids)
        assert sorted(p.name.removeprefix("trial_") for p in (storage / out.name).glob("trial_*")) == ids
        assert sorted(t.user_attrs["tune_trial_id"] for t in study_trials(out)) == ids
        _, children = mlflow_children(out)
        assert sorted(r.data.tags["tune_trial_id"] for r in children) == ids
        assert {r.info.status for r in children} == {"FINISHED"}
        assert client.get_run(state["parent_run_id"]).info.status == "FINISHED"
        logged = {a.path for a in client.list_artifacts(state["parent_run_id"])}
        assert {"spec.yaml", "trials.parquet"} <= logged
        assert not (out / "mlartifacts").exists()
    parents = client.search_runs([json.loads((outs["y"] / "sweep.json").read_text())["mlflow_experiment_id"]],
                                 filter_string="tags.sweep_dir != ''")
    assert sorted(r.data.tags["sweep_dir"] for r in parents) == sorted(str(outs[k]) for k in (winner, "y"))
