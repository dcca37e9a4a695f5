"""Run and resume sweeps: Ray Tune + multi-objective OptunaSearch + MLflow, all state in one directory.

<sweep_dir>/ spec.yaml (the spec as given), sweep.json (how to resume), optuna.db (the study),
mlflow.db + mlartifacts/ (tracking, unless --tracking-uri), tune/ (Ray's experiment: trial dirs,
checkpoints; or <storage>/<sweep dir name> with --storage), trials.parquet, history.parquet.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from trainable.config import parse_overrides
from trainable.tune_adapter import TrialSettings, run_trial

from . import results as results_mod
from .preflight import directory_problem
from .spec import SpecError, SweepSpec, load_spec
from .tracking import MlflowTrialCallback, Tracker, default_tracking_uri, git_commit, package_versions

log = logging.getLogger(__name__)

STATE_FILE = "sweep.json"
SPEC_COPY = "spec.yaml"
STUDY_FILE = "optuna.db"
TUNE_DIR = "tune"
TUNE_TRIAL_ATTR = "tune_trial_id"
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
REPO = Path(__file__).resolve().parent.parent


class SweepError(RuntimeError):
    """A sweep that cannot start or resume (bad directory, no Ray cluster, ...): one line, exit 2."""


@dataclass
class SweepOptions:
    """Command-line choices of where and how a sweep runs."""

    out: Path | None = None
    address: str | None = None  # None: start a local Ray instance; 'auto' or 'ray://host:10001': join
    storage: str | None = None  # Ray's storage_path (shared path or URI); default <sweep dir>
    tracking_uri: str | None = None  # default sqlite in the sweep dir
    num_cpus: int | None = None  # CPUs of the local Ray instance (default: all)
    verbose: int = 1  # Ray Tune's progress output: 0 silent, 1 status table, 2 every result


@dataclass
class SweepState:
    """What `orchestrator resume` needs; stored as <sweep_dir>/sweep.json."""

    name: str
    preset: str | None
    overrides: list[str]
    experiment_path: str
    tracking_uri: str
    mlflow_experiment_id: str
    parent_run_id: str
    study_name: str
    study_url: str
    created: str
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # one entry per run/resume

    def save(self, sweep_dir: Path) -> None:
        path = sweep_dir / STATE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepState":
        path = sweep_dir / STATE_FILE
        if not path.is_file():
            raise SweepError(f"{sweep_dir}: not a sweep directory (no {STATE_FILE})")
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise SweepError(f"{path}: unreadable ({exc})") from None


# --- Optuna ---------------------------------------------------------------------------------------------
class ParetoOptunaSearch(OptunaSearch):
    """OptunaSearch that keeps the Pareto front clean and links Optuna trials to Tune trials.

    - A trial stopped before its last epoch (ASHA, time limit) is told PRUNED, never COMPLETE with
      partial metrics (STACK_NOTES.md section 3.6); an errored one FAIL.
    - Each Optuna trial carries the user attribute ``tune_trial_id``.
    - A FAILED trial that a resume retries and finishes is added as a new COMPLETE trial (Optuna
      cannot change a finished trial) with ``retried_from`` = the old trial's number.
    """

    def suggest(self, trial_id: str) -> dict | None:
        new = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if new and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            log.warning("Optuna knows no trial for Tune trial %s; not recorded in the study", trial_id)
            return
        values = None
        if error or not result:
            state = TrialState.FAIL
        elif result.get("final") != 1.0:
            state = TrialState.PRUNED
        else:
            values = [result.get(m) for m in self.metric]
            bad = [m for m, v in zip(self.metric, values) if v is None or not math.isfinite(float(v))]
            state = TrialState.COMPLETE
            if bad:
                log.warning("trial %s finished without a finite %s; told to Optuna as FAIL", trial_id, bad)
                state, values = TrialState.FAIL, None
        storage = self._ot_study._storage
        current = storage.get_trial(ot_trial._trial_id)
        if current.state.is_finished():
            if state == TrialState.COMPLETE and current.state != TrialState.COMPLETE:
                self._supersede(current, values, trial_id)
            self._completed_trials.add(trial_id)
            return
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as exc:  # noqa: BLE001 - a study problem must not stop the sweep
            log.warning("Optuna tell failed for trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)

    def _supersede(self, old: optuna.trial.FrozenTrial, values: list[float], trial_id: str) -> None:
        new = optuna.trial.create_trial(params=old.params, distributions=old.distributions, values=values,
                                        user_attrs={**old.user_attrs, TUNE_TRIAL_ATTR: trial_id,
                                                    "retried_from": old.number})
        self._ot_study.add_trial(new)


class TuneGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose `after_trial` never calls `study.stop()`: Tune owns the budget (and
    `stop()` outside `optimize` raises)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    opts = spec.sampler_options
    seed = opts.get("seed", 0)
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=opts.get("n_startup_trials", 10))
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=opts.get("population_size", 50))
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return TuneGridSampler(spec.space.grid(), seed=seed)
    if spec.sampler == "gp":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=opts.get("n_startup_trials", 10))
    raise SpecError(f"{spec.path}: sampler: unknown sampler {spec.sampler!r}")  # checked by the spec already


def optuna_links(study_url: str, study_name: str) -> dict[str, tuple[int, str]]:
    """Tune trial id -> (Optuna trial number, state name), from the study on disk."""
    try:
        study = optuna.load_study(study_name=study_name, storage=study_url)
    except KeyError:
        return {}
    out: dict[str, tuple[int, str]] = {}
    for t in study.get_trials(deepcopy=False):
        tid = t.user_attrs.get(TUNE_TRIAL_ATTR)
        if tid is not None:  # a retried trial's newer Optuna trial wins
            out[tid] = (t.number, t.state.name)
    return out


def fail_orphan_optuna_trials(study_url: str, study_name: str, known: set[str]) -> int:
    """Optuna trials still RUNNING whose Tune trial is unknown (lost with a killed driver) -> FAIL."""
    study = optuna.load_study(study_name=study_name, storage=study_url)
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(TUNE_TRIAL_ATTR) not in known:
            study._storage.set_trial_user_attr(t._trial_id, "orphaned", True)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            count += 1
    return count


# --- Ray ------------------------------------------------------------------------------------------------
RAY_PROBE_TIMEOUT_S = 5.0  # how long a cluster address may take to accept a TCP connection


def _ray_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) that must answer for `address` (HOST[:PORT] or ray://HOST[:PORT]); None for 'auto' when
    Ray finds no recorded cluster (ray.init then says so itself)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # noqa: BLE001 - Ray's own lookup; let ray.init report its problem
            return None
        if not address:
            return None
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, sep, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not sep:
        host, port = rest, "10001" if client else "6379"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SweepError(f"--address {address}: expected 'auto', HOST:PORT (a node of the cluster, port 6379) or "
                         f"ray://HOST:10001")
    return host, int(port)


def _probe_ray(address: str) -> None:
    """Fail within RAY_PROBE_TIMEOUT_S when nothing listens at `address` (ray.init would retry for minutes)."""
    import socket

    endpoint = _ray_endpoint(address)
    if endpoint is None:
        return
    host, port = endpoint
    try:
        with socket.create_connection((host, port), timeout=RAY_PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or type(exc).__name__)
        raise SweepError(f"cannot join the Ray cluster at {address}: nothing answers at {host}:{port} ({reason}); "
                         f"start it with `ray start --head` or check --address") from None


def connect_ray(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray instance (address None) or join an existing cluster."""
    import ray
    from ray.exceptions import RayError

    try:
        if address is None:  # "local": always a new private instance, never someone else's cluster
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            if num_cpus is not None:
                raise SweepError("--num-cpus only applies to the local Ray instance; drop it with --address")
            _probe_ray(address)
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:  # RayError: e.g. AuthenticationError
        if isinstance(exc, SweepError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(f"cannot {'start Ray' if address is None else f'join the Ray cluster at {address}'}: "
                         f"{first}") from None


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """{'cpu': n, 'gpu': f} that the cluster can satisfy; GPUs dropped (with a warning) where there are none."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n["Resources"].get("CPU", 0.0) for n in nodes), default=0.0)
    if spec.cpu > most_cpus:
        raise SweepError(f"resources.cpu: a trial asks for {spec.cpu:g} CPUs but the largest Ray node has "
                         f"{most_cpus:g}; lower resources.cpu")
    resources = {"cpu": spec.cpu}
    if spec.gpu > 0:
        gpus = ray.cluster_resources().get("GPU", 0.0)
        if gpus <= 0:
            print(f"warning: the spec asks for {spec.gpu:g} GPU per trial but the Ray cluster has no GPUs; "
                  f"trials run on CPU", file=sys.stderr)
        elif spec.gpu > max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0):
            raise SweepError(f"resources.gpu: a trial asks for {spec.gpu:g} GPUs but no Ray node has that many")
        else:
            resources["gpu"] = spec.gpu
    return resources


def trial_settings(spec: SweepSpec) -> TrialSettings:
    """The settings every trial shares: base, threads = the trial's CPUs, eval_every=1 under ASHA."""
    base = dict(spec.base)
    base.setdefault("threads", max(1, int(spec.cpu)))
    if spec.scheduler is not None:
        base["eval_every"] = 1
    if base.get("data_dir") and not Path(base["data_dir"]).is_absolute() and "://" not in base["data_dir"]:
        base["data_dir"] = str(Path(base["data_dir"]).resolve())  # trials run in their own directories
    metrics = tuple(spec.base_config().metric_names())
    return TrialSettings(preset=spec.preset, base=base, labels=spec.space.labels, metric_names=metrics)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _build_trainable(spec: SweepSpec) -> tuple[Any, TrialSettings]:
    from ray import tune

    settings = trial_settings(spec)
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings), trial_resources(spec))
    return trainable, settings


def _reporter(spec: SweepSpec) -> Any:
    from ray import tune

    metrics = {"epoch": "epoch", **{m: m for m in spec.metrics}}
    return tune.CLIReporter(parameter_columns=spec.space.names[:6], metric_columns=metrics,
                            max_report_frequency=30, sort_by_metric=False)


def _early_stop_status(spec: SweepSpec) -> str:
    return "early_stopped" if spec.scheduler is not None else "stopped"


# --- sweep and resume ---------------------------------------------------------------------------------------
def default_sweep_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_sweep(spec_path: Path, preset: str | None, set_pairs: list[str], options: SweepOptions) -> int:
    """Validate, connect, create the sweep directory, run; return the exit code."""
    spec = load_spec(spec_path, preset, parse_overrides(set_pairs), require_data=True)
    sweep_dir = (options.out or default_sweep_dir(spec.name)).resolve()
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        hint = " (continue it with `orchestrator resume`)" if (sweep_dir / STATE_FILE).exists() else ""
        raise SweepError(f"--out {sweep_dir}: already exists and is not empty{hint}")
    _preflight(sweep_dir, _experiment_path(sweep_dir, options.storage),
               options.tracking_uri or default_tracking_uri(sweep_dir))
    claimed: list[Path] = []  # created here; removed again when the sweep does not get going
    try:
        sweep_dir = _claim_sweep_dir(sweep_dir, spec_path, options.out is not None, claimed)
        _claim_experiment_path(_experiment_path(sweep_dir, options.storage), options.storage, claimed)
        connect_ray(options.address, options.num_cpus)
    except BaseException:
        _release(claimed)
        raise
    try:
        try:
            trainable, settings = _build_trainable(spec)  # checks resources against the cluster first
        except BaseException:
            _release(claimed)
            raise
        print(f"sweep directory: {sweep_dir}", flush=True)
        state = _new_state(spec, sweep_dir, preset, set_pairs, options)
        _quiet_tune_output()
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial tables"
        tracker = Tracker(state.tracking_uri, spec.name, _artifact_dir(state.tracking_uri, sweep_dir))
        state.mlflow_experiment_id = tracker.experiment_id
        state.parent_run_id = tracker.start_parent(sweep_dir.name, _parent_params(spec, set_pairs),
                                                   _parent_tags(spec, sweep_dir, options), sweep_dir / SPEC_COPY)
        state.sweeps.append(_run_entry("sweep", options))
        state.save(sweep_dir)
        tuner = _new_tuner(spec, state, trainable, settings, options)
        return _fit_and_finish(tuner, spec, state, tracker, sweep_dir)
    finally:
        _disconnect_ray()


def resume_sweep(sweep_dir: Path, options: SweepOptions, retry_failed: bool = True) -> int:
    """Continue a sweep from its directory: finished trials kept, unfinished ones from their checkpoints."""
    from ray import tune

    sweep_dir = sweep_dir.resolve()
    state = SweepState.load(sweep_dir)
    spec = load_spec(sweep_dir / SPEC_COPY, state.preset, parse_overrides(state.overrides))
    if options.out is not None and options.out.resolve() != sweep_dir:
        raise SweepError("--out cannot be combined with resume; the sweep continues in its own directory")
    if options.storage is not None or options.tracking_uri is not None:
        raise SweepError("--storage and --tracking-uri are fixed when a sweep starts; resume uses the stored ones")
    _preflight(sweep_dir, state.experiment_path, state.tracking_uri, label="sweep directory")
    connect_ray(options.address, options.num_cpus)
    try:
        if not tune.Tuner.can_restore(state.experiment_path):
            raise SweepError(f"{sweep_dir}: Ray Tune's experiment at {state.experiment_path} cannot be restored "
                             f"(no experiment state was saved)")
        trainable, _settings = _build_trainable(spec)
        print(f"sweep directory: {sweep_dir} (resuming)", flush=True)
        tracker = Tracker(state.tracking_uri, spec.name, _artifact_dir(state.tracking_uri, sweep_dir))
        tracker.resume_parent(state.parent_run_id)
        state.sweeps.append(_run_entry("resume", options))
        state.save(sweep_dir)
        tuner = tune.Tuner.restore(state.experiment_path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=retry_failed)
        return _fit_and_finish(tuner, spec, state, tracker, sweep_dir)
    finally:
        _disconnect_ray()


def _experiment_path(sweep_dir: Path, storage: str | None) -> str:
    """Where Ray Tune keeps this sweep's experiment: <sweep dir>/tune or <storage>/<sweep dir name>."""
    if storage is None:
        return str(sweep_dir / TUNE_DIR)
    if "://" in storage:
        return f"{storage.rstrip('/')}/{sweep_dir.name}"
    return str(Path(storage).resolve() / sweep_dir.name)


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for servers and other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0]).resolve()


def _preflight(sweep_dir: Path, experiment_path: str, tracking_uri: str, label: str = "--out") -> None:
    """Before Ray starts: the sweep dir, a local --storage and a SQLite tracking store are writable and
    have room (orchestrator/preflight.py); else one line naming the path (exit code 2)."""
    checks = [(sweep_dir, label)]
    if "://" not in experiment_path:
        checks.append((Path(experiment_path), "--storage"))
    db = _sqlite_file(tracking_uri)
    if db is not None:
        checks.append((db.parent, "--tracking-uri"))
    for path, what in checks:
        problem = directory_problem(path, what)
        if problem:
            raise SweepError(problem)


def _claim_sweep_dir(sweep_dir: Path, spec_path: Path, explicit: bool, claimed: list[Path]) -> Path:
    """Create the sweep dir and its spec copy exclusively, so two sweeps started at once never share one.

    An explicit --out that another sweep claimed first is refused; a default (timestamped) name that is
    taken gets a suffix (-2, -3, ...). What was created is appended to `claimed` (see `_release`).
    """
    text = spec_path.read_bytes()
    for attempt in range(1, 100):
        candidate = sweep_dir if attempt == 1 else sweep_dir.with_name(f"{sweep_dir.name}-{attempt}")
        new = not candidate.exists()
        candidate.mkdir(parents=True, exist_ok=True)
        try:
            if attempt > 1 and any(candidate.iterdir()):
                raise FileExistsError(candidate)
            with open(candidate / SPEC_COPY, "xb") as fh:
                if new:
                    claimed.append(candidate)
                claimed.append(candidate / SPEC_COPY)
                fh.write(text)
            return candidate
        except FileExistsError:
            if explicit:
                raise SweepError(f"--out {candidate}: another sweep started in this directory at the same time; "
                                 f"choose another --out") from None
    raise SweepError(f"--out {sweep_dir}: no free directory name (tried -2 to -99)")


def _claim_experiment_path(experiment_path: str, storage: str | None, claimed: list[Path]) -> None:
    """With a local --storage, create <storage>/<sweep dir name> exclusively: two sweeps whose directories
    share a name must not share Ray's experiment (trial dirs, checkpoints, experiment state)."""
    if storage is None or "://" in experiment_path:
        return
    path = Path(experiment_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise SweepError(f"--storage {storage}: {path} already exists (another sweep directory named {path.name} "
                         f"uses this storage); choose another --out name") from None
    claimed.append(path)


def _release(claimed: list[Path]) -> None:
    """Undo `_claim_*` for a sweep that failed before it started: files removed, directories if empty."""
    for path in reversed(claimed):
        try:
            path.rmdir() if path.is_dir() else path.unlink()
        except OSError:
            pass


def _artifact_dir(tracking_uri: str, sweep_dir: Path) -> Path | None:
    """Where a new MLflow experiment keeps artifacts: the sweep dir's mlartifacts/ for its own store; next
    to a shared SQLite store (sweeps sharing it must not write into each other's directories); the
    server's default for a tracking server."""
    db = _sqlite_file(tracking_uri)
    if db is None:
        return None
    if db == (sweep_dir / "mlflow.db").resolve():
        return sweep_dir / "mlartifacts"
    return db.parent / "mlartifacts"


def _disconnect_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _new_state(spec: SweepSpec, sweep_dir: Path, preset: str | None, set_pairs: list[str],
               options: SweepOptions) -> SweepState:
    return SweepState(
        name=spec.name, preset=preset, overrides=list(set_pairs),
        experiment_path=_experiment_path(sweep_dir, options.storage),
        tracking_uri=options.tracking_uri or default_tracking_uri(sweep_dir), mlflow_experiment_id="",
        parent_run_id="", study_name=spec.name, study_url=f"sqlite:///{sweep_dir / STUDY_FILE}",
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


def _run_entry(kind: str, options: SweepOptions) -> dict[str, Any]:
    return {"kind": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "address": options.address or "local"}


def _new_tuner(spec: SweepSpec, state: SweepState, trainable: Any, settings: TrialSettings,
               options: SweepOptions) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    searcher = ParetoOptunaSearch(spec.space, metric=spec.metrics, mode=spec.modes, sampler=make_sampler(spec),
                                  study_name=state.study_name,
                                  storage=optuna.storages.RDBStorage(state.study_url))
    scheduler = None
    if spec.scheduler is not None:
        s = spec.scheduler
        scheduler = ASHAScheduler(metric=s.metric, mode=s.mode, time_attr="training_iteration", max_t=s.max_t,
                                  grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    callback = MlflowTrialCallback(state.tracking_uri, state.mlflow_experiment_id, state.parent_run_id, settings,
                                   early_stop_status=_early_stop_status(spec))
    parent = state.experiment_path.rsplit("/", 1)[0]
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(  # no metric/mode here: it would make the search single-objective
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.concurrency),
            scheduler=scheduler, num_samples=spec.trials, time_budget_s=spec.time_limit_s,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=state.experiment_path.rsplit("/", 1)[1], storage_path=parent,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[callback], progress_reporter=_reporter(spec), verbose=options.verbose,
        ),
    )


def _quiet_tune_output() -> None:
    """Ray's classic status table (it honours our CLIReporter columns) without snapshot-rate warnings."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _write_report(sweep_dir: Path) -> None:
    """The Pareto report of the sweep (analysis issue); a sweep with nothing to report says why."""
    from analysis.report import ReportError, write_report

    try:
        print(f"report: {write_report(sweep_dir)}")
    except ReportError as exc:
        print(f"note: no report: {exc}", file=sys.stderr)


def _fit_and_finish(tuner: Any, spec: SweepSpec, state: SweepState, tracker: Tracker, sweep_dir: Path) -> int:
    _quiet_tune_output()
    started = time.monotonic()
    try:
        tuner.fit()  # returns normally after Ctrl-C too; interruption is detected from the trial states
    except BaseException:
        tracker.finish_parent(state.parent_run_id, "FAILED")
        raise
    elapsed = time.monotonic() - started
    timed_out = spec.time_limit_s is not None and elapsed >= spec.time_limit_s * 0.99
    names = spec.space.names + [k for k in spec.space.bundle_keys if k not in spec.space.names]
    res = results_mod.collect(state.experiment_path, names, _early_stop_status(spec),
                              optuna_links(state.study_url, state.study_name), time_limit_reached=timed_out)
    trials_path, history_path = results_mod.write(res, sweep_dir)
    counts = res.counts()
    unfinished = counts.get("interrupted", 0) + counts.get("pending", 0)
    interrupted = unfinished > 0 or (len(res.trials) < spec.trials and not timed_out)
    if not interrupted:
        orphans = fail_orphan_optuna_trials(state.study_url, state.study_name, set(res.statuses))
        if orphans:
            print(f"note: {orphans} Optuna trial(s) of trials lost with a killed driver were marked FAIL",
                  file=sys.stderr)
    tracker.reconcile_children(state.parent_run_id, res.statuses)
    _write_report(sweep_dir)
    tracker.finish_parent(state.parent_run_id, "KILLED" if interrupted else "FINISHED",
                          artifacts=[trials_path, history_path], counts=counts)
    _print_summary(res, spec, sweep_dir, elapsed)
    if interrupted:
        print(f"sweep interrupted ({len(res.trials)}/{spec.trials} trials started, {unfinished} unfinished); "
              f"continue with: orchestrator resume {sweep_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if timed_out:
        print(f"note: the time limit ({spec.time_limit_s:g}s) ended the sweep; trials cut short have status "
              f"'stopped'", file=sys.stderr)
    return EXIT_FAILED if counts.get("failed", 0) else EXIT_OK


def _print_summary(res: results_mod.SweepResults, spec: SweepSpec, sweep_dir: Path, elapsed: float) -> None:
    trials = res.trials
    print(f"\n{spec.name}: {len(trials)} trials in {elapsed:.0f}s: "
          + ", ".join(f"{n} {k}" for k, n in sorted(res.counts().items())))
    if len(trials):
        cols = ["trial_id", "status"] + [c for c in trials.columns if c.startswith("param.")]
        cols += [m for m in spec.metrics if m in trials.columns] + ["seconds"]
        shown = trials[cols].rename(columns=lambda c: c.removeprefix("param."))
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {sweep_dir / results_mod.TRIALS_FILE}, {sweep_dir / results_mod.HISTORY_FILE}; "
          f"study: {sweep_dir / STUDY_FILE}; browse: orchestrator ui {sweep_dir}")


def _parent_params(spec: SweepSpec, set_pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "spec": spec.path.name, "preset": spec.preset, "sampler": spec.sampler, "trials": spec.trials,
        "concurrency": spec.concurrency, "objectives": ",".join(f"{o.metric}:{o.mode}" for o in spec.objectives),
        "space": ",".join(spec.space.names), "resources.cpu": spec.cpu, "resources.gpu": spec.gpu,
        "retries": spec.retries, "scheduler": spec.scheduler.type if spec.scheduler else "none",
    }
    if set_pairs:
        params["overrides"] = " ".join(set_pairs)
    params.update({f"base.{k}": v for k, v in spec.base.items()})
    return params


def _parent_tags(spec: SweepSpec, sweep_dir: Path, options: SweepOptions) -> dict[str, str]:
    tags = {"git_commit": git_commit(REPO), "sweep_dir": str(sweep_dir), "ray_address": options.address or "local",
            "mlflow.note.content": spec.description}
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    return tags
