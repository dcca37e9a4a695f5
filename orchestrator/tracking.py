"""MLflow tracking of a sweep: one parent run per sweep, one nested child run per Tune trial.

Everything is logged from the driver (a Tune callback), so trials on other nodes need no access to
the tracking store. By default the store is SQLite inside the sweep directory
(``sqlite:////<abs sweep dir>/mlflow.db``, artifacts in ``<sweep dir>/mlartifacts``).

Child runs are idempotent per Tune trial id (tag ``tune_trial_id``): a restarted or resumed trial
reuses its run, and an epoch already logged is not logged again. MLflow metric names may not hold
'@', so ``robust_acc@4/255`` is logged as ``robust_acc_at_4/255`` (`mlflow_metric_name`).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import platform
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from ray import tune

from trainable.tune_adapter import TrialSettings, build_config

from .layout import (
    FINAL_KEY,
    MLFLOW_DB,
    PARENT_TAG,
    RUN_STATUS,
    STATUS_TAG,
    TRIAL_TAG,
    TUNE_KEYS,
    first_line,
    mlflow_metric_name,
    relocated_artifact_uri,
    sqlite_file,
)

log = logging.getLogger(__name__)

PACKAGES = ("ray", "optuna", "mlflow", "torch", "pyarrow", "pandas", "numpy")


@contextmanager
def sqlite_store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on the directory of a ``sqlite:///`` store (nothing for other stores).

    Sweeps started at once on one shared SQLite file would otherwise both create and migrate its
    tables (MLflow runs alembic on first use) and one of them crash; normal writes afterwards are
    serialised by SQLite itself. The lock is flock(2) on the directory: nothing is left behind.
    """
    file = sqlite_file(uri)
    if file is None:
        yield
        return
    directory = Path(file).resolve().parent
    try:
        import fcntl

        fd = os.open(directory, os.O_RDONLY)
    except (ImportError, OSError):  # no flock here, or no directory yet (MLflow reports that itself)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


TRACKING_PROBE_TIMEOUT_S = 5.0  # how long a tracking server may take to answer /health before a sweep starts


def probe_tracking(uri: str) -> None:
    """Fail within TRACKING_PROBE_TIMEOUT_S when an http(s) tracking server does not answer (MLflow's own
    client would retry for minutes and then raise a traceback); other stores are checked by preflight."""
    import urllib.error
    import urllib.request

    from .layout import SweepError

    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TRACKING_PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return  # something answers (a server without /health, or behind a proxy): MLflow reports the rest
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SweepError(f"--tracking-uri {uri}: the MLflow tracking server does not answer ({first_line(reason)}"
                         f"); start it or choose another --tracking-uri") from None


def default_tracking_uri(sweep_dir: Path) -> str:
    """``sqlite:////abs/path/mlflow.db`` (MLflow needs the absolute form)."""
    return f"sqlite:///{Path(sweep_dir).resolve() / MLFLOW_DB}"


def _param_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_param_value(v) for v in value)
    return str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def git_commit(repo: Path) -> str:
    """The repository's commit (with '+dirty' for uncommitted changes), or 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


class Tracker:
    """The sweep's experiment and parent run, through an `MlflowClient` (no global MLflow state)."""

    def __init__(self, uri: str, experiment: str, artifact_dir: Path | None, sweep_dir: Path | None = None) -> None:
        self.uri = uri
        self.sweep_dir = sweep_dir  # artifacts of the sweep's own store follow a moved sweep directory
        with sqlite_store_lock(uri):  # first use creates/migrates the tables: one process at a time
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                location = artifact_dir.resolve().as_uri() if artifact_dir is not None else None
                try:
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
                except MlflowException as exc:  # another sweep created it since (tracking server)
                    found = self.client.get_experiment_by_name(experiment)
                    if found is None:
                        raise exc from None
        if found is not None:
            self.experiment_id = found.experiment_id

    def start_parent(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                     spec_file: Path) -> str:
        """Create the sweep's parent run (params, tags, the spec as an artifact); return its id."""
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        run_id = run.info.run_id
        items = [Param(k, _param_value(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start:start + 100])
        self.log_artifact(run_id, spec_file)
        return run_id

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """`MlflowClient.log_artifact`, into the sweep directory where it is now (`relocated_artifact_uri`)."""
        if self.sweep_dir is not None:
            stored = self.client.get_run(run_id).info.artifact_uri
            target = relocated_artifact_uri(self.sweep_dir, self.uri, stored)
            if target != stored:
                from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

                LocalArtifactRepository(target).log_artifact(str(path), artifact_path)
                return
        self.client.log_artifact(run_id, str(path), artifact_path)

    def resume_parent(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, "resumed_at", time.strftime("%Y-%m-%dT%H:%M:%S"))

    def finish_parent(self, run_id: str, status: str, artifacts: Iterable[Path] = (),
                      counts: Mapping[str, int] | None = None) -> None:
        """Log the result files and counts, then mark the parent FINISHED/FAILED/KILLED."""
        for path in artifacts:
            if Path(path).exists():
                self.log_artifact(run_id, Path(path))
        if counts:
            self.client.log_batch(run_id, metrics=[Metric(f"trials_{k}", float(v), _now_ms(), 0)
                                                   for k, v in counts.items()])
        self.client.set_terminated(run_id, status=status)

    def children(self, parent_id: str) -> list[Any]:
        """Every child run of the parent (all pages)."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                           max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def reconcile_children(self, parent_id: str, statuses: Mapping[str, str],
                           params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Make MLflow agree with the sweep's results: one child per trial, with the trial's status.

        Children of trials Ray Tune no longer knows (lost when a driver was killed before its state
        was saved) and duplicates are deleted (soft delete: `mlflow gc` removes them for good); a trial
        with no child (it never started, or MLflow was unreachable when it did) gets one, with `params`.
        """
        kept: dict[str, Any] = {}
        for run in sorted(self.children(parent_id), key=lambda r: r.info.start_time or 0):
            trial_id = run.data.tags.get(TRIAL_TAG)
            if trial_id not in statuses or trial_id in kept:
                log.warning("deleting MLflow run %s of %s trial %s", run.info.run_id,
                            "duplicate" if trial_id in kept else "unknown", trial_id)
                self.client.delete_run(run.info.run_id)
                continue
            kept[trial_id] = run
        for trial_id in [t for t in statuses if t not in kept]:
            run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags={
                PARENT_TAG: parent_id, TRIAL_TAG: trial_id, STATUS_TAG: statuses[trial_id]})
            items = [Param(k, _param_value(v)[:6000]) for k, v in (params or {}).get(trial_id, {}).items()]
            for start in range(0, len(items), 100):
                self.client.log_batch(run.info.run_id, params=items[start:start + 100])
            kept[trial_id] = self.client.get_run(run.info.run_id)
        for trial_id, run in kept.items():
            status = statuses[trial_id]
            if run.data.tags.get(STATUS_TAG) != status:
                self.client.set_tag(run.info.run_id, STATUS_TAG, status)
            wanted = RUN_STATUS.get(status, "FINISHED")
            if run.info.status != wanted:
                self.client.set_terminated(run.info.run_id, status=wanted)


    def backfill(self, parent_id: str, history: Any, statuses: Mapping[str, str]) -> int:
        """Log every finite metric of ``history.parquet`` that MLflow lacks or holds with another value at
        that epoch (lost while MLflow was unreachable, or an epoch trained again): history keeps an epoch's
        last report, and so does MLflow afterwards (the value logged last for a step). Returns the count."""
        if history is None or not len(history):
            return 0
        try:
            runs = {r.data.tags.get(TRIAL_TAG): r.info.run_id for r in self.children(parent_id)}
        except Exception as exc:  # noqa: BLE001 - MLflow still down: `orchestrator check` lists what is missing
            log.error("MLflow unreachable (%s); metrics missing there stay listed by `orchestrator check`",
                      first_line(exc))
            return 0
        names = [c for c in history.columns if c not in TUNE_KEYS and c not in ("trial_id",)
                 and c not in ("time_total_s", "training_iteration")]
        count = 0
        for trial_id, frame in history.groupby("trial_id"):
            run_id = runs.get(trial_id)
            if run_id is None or trial_id not in statuses:
                continue
            try:
                count += self._backfill_run(run_id, frame, names)
            except Exception as exc:  # noqa: BLE001 - as above
                log.error("MLflow refused the metrics of trial %s (%s)", trial_id, first_line(exc))
        return count

    def _backfill_run(self, run_id: str, frame: Any, names: list[str]) -> int:
        missing: list[Metric] = []
        now = _now_ms() + 1  # after everything logged so far: this value is the step's last
        for name in names:
            if name not in frame.columns:
                continue
            key = mlflow_metric_name(name)
            logged = {int(m.step): m.value for m in sorted(self.client.get_metric_history(run_id, key),
                                                            key=lambda m: (m.step, m.timestamp))}
            for epoch, value in zip(frame["epoch"], frame[name]):
                if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
                    continue
                if logged.get(int(epoch)) != float(value):
                    missing.append(Metric(key, float(value), now, int(epoch)))
        for start in range(0, len(missing), 1000):
            self.client.log_batch(run_id, metrics=missing[start:start + 1000])
        return len(missing)


class MlflowTrialCallback(tune.Callback):
    """Driver-side Tune callback: a child run per trial with params, per-epoch metrics and status."""

    def __init__(self, uri: str, experiment_id: str, parent_run_id: str, settings: TrialSettings,
                 early_stop_status: str = "stopped") -> None:
        self.uri = uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.settings = settings
        self.early_stop_status = early_stop_status  # status of trials stopped before their last epoch
        self._reset()

    def _reset(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}  # trial id -> run id
        self._logged: dict[str, set[int]] = {}  # trial id -> epochs already logged

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the run config
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_runs", "_logged")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def rebind(self, uri: str) -> None:
        """The tracking URI where the sweep's store is now (a restored callback holds the saved one)."""
        self.uri = uri
        self._reset()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    # --- runs ----------------------------------------------------------------------------------------
    def run_for(self, trial: Any) -> str:
        """The trial's child run: found by its trial id tag, else created (idempotent)."""
        trial_id = trial.trial_id
        if trial_id in self._runs:
            return self._runs[trial_id]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'",
            max_results=10, order_by=["attributes.start_time ASC"])
        if found:
            run_id = found[0].info.run_id
            steps = {int(m.step) for m in self.client.get_metric_history(run_id, "epoch")}
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags={
                PARENT_TAG: self.parent_run_id, TRIAL_TAG: trial_id, STATUS_TAG: "running"})
            run_id = run.info.run_id
            steps = set()
            self.client.log_batch(run_id, params=[Param(k, _param_value(v)[:6000])
                                                  for k, v in self._params(trial.config).items()])
        self._runs[trial_id] = run_id
        self._logged[trial_id] = steps
        return run_id

    def _params(self, config: Mapping[str, Any]) -> dict[str, Any]:
        params = {k: config[k] for k in self.settings.labels if k in config}
        try:
            params.update(build_config(config, self.settings).to_dict())
        except ValueError as exc:  # the trial will fail with the same error; keep what was sampled
            params.update(config)
            params["config_error"] = str(exc)[:500]
        return params

    # --- Tune hooks ----------------------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(self.run_for, trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._safely(self._log_result, trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        final = (trial.last_result or {}).get(FINAL_KEY) == 1.0
        self._safely(self._finish, trial, "finished" if final else self.early_stop_status, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(self._finish, trial, "failed", "FAILED")

    def _log_result(self, trial: Any, result: Mapping[str, Any]) -> None:
        run_id = self.run_for(trial)
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        if epoch in self._logged[trial.trial_id]:
            return
        now = _now_ms()
        metrics = [Metric(mlflow_metric_name(k), float(v), now, epoch) for k, v in result.items()
                   if k not in TUNE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(float(v))]
        tags = [RunTag("node_id", str(result["node_id"]))] if "node_id" in result else []
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self._logged[trial.trial_id].add(epoch)

    def _finish(self, trial: Any, status: str, run_status: str) -> None:
        run_id = self.run_for(trial)
        self.client.set_tag(run_id, STATUS_TAG, status)
        self.client.set_terminated(run_id, status=run_status)

    def _safely(self, func: Any, *args: Any) -> None:
        """Tracking problems are logged loudly but never stop the sweep (the results are in Parquet)."""
        try:
            func(*args)
        except Exception as exc:  # noqa: BLE001 - an MLflow outage must not kill running trials
            log.error("MLflow tracking failed (%s: %s); the sweep goes on and results stay in Parquet",
                      type(exc).__name__, first_line(exc))
