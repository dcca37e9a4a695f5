"""Run and resume sweeps: Ray Tune + multi-objective Optuna + MLflow, all state in one directory.

The directory's contents are `orchestrator.layout`'s; where each part lives (``--storage``,
``--tracking-uri``) and the checks before a sweep starts are `orchestrator.sweep_dir`'s; Ray is
`orchestrator.cluster`'s, the Optuna side `orchestrator.search`'s, MLflow `orchestrator.tracking`'s.
This module starts, resumes and finishes a sweep around one `ray.tune.Tuner`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from trainable.config import parse_overrides
from trainable.tune_adapter import TrialSettings, run_trial

from . import results as results_mod
from .cluster import check_shared_storage, connect_ray, disconnect_ray, resources_request
from .integrity import check_sweep, repair_study, time_limited
from .layout import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    FEASIBLE_COLUMN,
    HISTORY_FILE,
    MLFLOW_DB,
    OBJECTIVES_PARAM,
    SPEC_COPY,
    STATE_FILE,
    STUDY_PASSWORD_ENV,
    TRIALS_FILE,
    SweepError,
    SweepState,
    first_line,
    format_objectives,
    is_feasible,
    is_uri,
    local_file,
    relative_path,
    relative_url,
    with_password,
)
from .schedulers import make_scheduler
from .search import ParetoOptunaSearch, make_searcher, optuna_links
from .spec import SweepSpec, load_spec
from .study_storage import (
    check_study_url,
    default_study_url,
    masked,
    remember_password,
    split_password,
    storage_problem,
)
from .sweep_dir import (
    artifact_dir,
    claim_experiment_path,
    claim_sweep_dir,
    default_sweep_dir,
    experiment_path,
    preflight,
    release,
)
from .tracking import (
    MlflowTrialCallback,
    Tracker,
    default_tracking_uri,
    git_commit,
    package_versions,
    probe_tracking,
)
from .verify import VerifySettings
from .warm_start import warm_trials

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent


@dataclass
class SweepOptions:
    """Command-line choices of where and how a sweep runs."""

    out: Path | None = None
    address: str | None = None  # None: start a local Ray instance; 'auto' or 'ray://host:10001': join
    storage: str | None = None  # Ray's storage_path (shared path or URI); default <sweep dir>
    tracking_uri: str | None = None  # default sqlite in the sweep dir
    study_storage: str | None = None  # the Optuna study's URL; default the spec's, else sqlite in the sweep dir
    num_cpus: int | None = None  # CPUs of the local Ray instance (default: all)
    verbose: int = 1  # Ray Tune's progress output: 0 silent, 1 status table, 2 every result
    verify: str | None = None  # --verify: AutoAttack suite replacing the spec's verify.suite; "none": do not verify


def trial_settings(spec: SweepSpec) -> TrialSettings:
    """The settings every trial shares: base, threads = the trial's CPUs, eval_every=1 under a scheduler
    (asha or pareto-asha)."""
    base = dict(spec.base)
    base.setdefault("threads", max(1, int(spec.cpu)))
    if spec.scheduler is not None:
        base["eval_every"] = 1
    if base.get("data_dir") and not Path(base["data_dir"]).is_absolute() and "://" not in base["data_dir"]:
        base["data_dir"] = str(Path(base["data_dir"]).resolve())  # trials run in their own directories
    metrics = tuple(spec.base_config().metric_names())
    row_threads = {} if "threads" in spec.base else {  # a row's own CPUs are its threads, as the spec's are
        p.name: {group: max(1, int(r["cpu"])) for group, r in p.resources.items() if "cpu" in r}
        for p in spec.space.params if p.resources}
    return TrialSettings(preset=spec.preset, base=base, labels=spec.space.labels, metric_names=metrics,
                         checkpoint_every=spec.execution.checkpoint_every,
                         trial_time_limit_s=spec.trial_time_limit_s, row_threads=row_threads)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _build_trainable(spec: SweepSpec) -> tuple[Any, TrialSettings]:
    settings = trial_settings(spec)
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings), resources_request(spec))
    return trainable, settings


def _reporter(spec: SweepSpec) -> Any:
    metrics = {"epoch": "epoch", **{m: m for m in spec.metrics}}
    return tune.CLIReporter(parameter_columns=spec.space.names[:6], metric_columns=metrics,
                            max_report_frequency=30, sort_by_metric=False)


def _early_stop_status(spec: SweepSpec) -> str:
    return "early_stopped" if spec.scheduler is not None else "stopped"


def start_sweep(spec_path: Path, preset: str | None, set_pairs: list[str], options: SweepOptions,
                budget: dict[str, str] | None = None, warm_start: Path | None = None) -> int:
    """Validate, connect, create the sweep directory, run; return the exit code. `budget` holds the
    ``--trials``/``--concurrency``/``--time-limit`` flags; `warm_start` an earlier sweep's directory."""
    budget = dict(budget or {})
    spec = load_spec(spec_path, preset, parse_overrides(set_pairs), require_data=True, budget=budget)
    warm = warm_trials(warm_start, spec) if warm_start is not None else []
    sweep_dir = (options.out or default_sweep_dir(spec.name)).resolve()
    if sweep_dir.exists() and any(sweep_dir.iterdir()):
        hint = " (continue it with `orchestrator resume`)" if (sweep_dir / STATE_FILE).exists() else ""
        raise SweepError(f"--out {sweep_dir}: already exists and is not empty{hint}")
    preflight(sweep_dir, experiment_path(sweep_dir, options.storage),
              options.tracking_uri or default_tracking_uri(sweep_dir))
    if options.tracking_uri:
        probe_tracking(options.tracking_uri)
    given = options.study_storage or spec.execution.study_storage
    study_url = check_study_url(given, "--study-storage" if options.study_storage else
                                f"{spec.path}: execution.study_storage") if given else None
    claimed: list[Path] = []  # created here; removed again when the sweep does not get going
    try:
        sweep_dir = claim_sweep_dir(sweep_dir, spec_path, options.out is not None, claimed)
        claim_experiment_path(experiment_path(sweep_dir, options.storage), options.storage, claimed)
        study_url = with_password(study_url or default_study_url(sweep_dir), os.environ.get(STUDY_PASSWORD_ENV))
        study_file = local_file(study_url)
        if study_file and not Path(study_file).exists():
            claimed.append(Path(study_file))  # a new SQLite or journal file: removed if the sweep does not start
        _check_study_storage(study_url)
        options.study_storage, password = split_password(study_url)
        remember_password(password)
        connect_ray(options.address, options.num_cpus)
        check_shared_storage(options.address, options.storage is not None)
    except BaseException:
        disconnect_ray()
        release(claimed)
        raise
    try:
        try:
            trainable, settings = _build_trainable(spec)  # checks resources against the cluster first
            state = _new_state(spec, sweep_dir, preset, set_pairs, options)
            state.budget = budget
            state.warm_start = str(warm_start.resolve()) if warm_start is not None else None
            _quiet_tune_output()
            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial tables"
            tracking_uri = state.tracking(sweep_dir)
            tracker = _open_tracker(tracking_uri, spec.name, sweep_dir)
        except BaseException:
            if (sweep_dir / MLFLOW_DB).exists():  # a store this sweep began to create
                claimed.append(sweep_dir / MLFLOW_DB)
            release(claimed)
            raise
        print(f"sweep directory: {sweep_dir}", flush=True)
        state.mlflow_experiment_id = tracker.experiment_id
        state.parent_run_id = tracker.start_parent(sweep_dir.name, _parent_params(spec, set_pairs),
                                                   _parent_tags(spec, sweep_dir, options), sweep_dir / SPEC_COPY)
        state.sweeps.append(_run_entry("sweep", options))
        state.save(sweep_dir)
        tuner = _new_tuner(spec, state, sweep_dir, trainable, settings, options, warm)
        return _fit_and_finish(tuner, spec, state, tracker, sweep_dir, options)
    finally:
        disconnect_ray()


def _open_tracker(tracking_uri: str, name: str, sweep_dir: Path) -> Tracker:
    """The sweep's MLflow experiment; a store that cannot be opened is one line (exit code 2)."""
    try:
        return Tracker(tracking_uri, name, artifact_dir(tracking_uri, sweep_dir), sweep_dir)
    except Exception as exc:  # noqa: BLE001 - MlflowException, connection errors: the store is unusable
        raise SweepError(f"MLflow tracking store {tracking_uri}: {first_line(exc)}") from None


def resume_sweep(sweep_dir: Path, options: SweepOptions, retry_failed: bool = True) -> int:
    """Continue a sweep from its directory: finished trials kept, unfinished ones from their checkpoints."""
    sweep_dir = sweep_dir.resolve()
    state = SweepState.load(sweep_dir)
    state.check_spec(sweep_dir)
    spec = load_spec(sweep_dir / SPEC_COPY, state.preset, parse_overrides(state.overrides), budget=state.budget)
    if options.out is not None and options.out.resolve() != sweep_dir:
        raise SweepError("--out cannot be combined with resume; the sweep continues in its own directory")
    if options.storage is not None or options.tracking_uri is not None or options.study_storage is not None:
        raise SweepError("--storage, --tracking-uri and --study-storage are fixed when a sweep starts; resume uses "
                         "the stored ones")
    experiment = state.experiment_dir(sweep_dir)
    tracking_uri = state.tracking(sweep_dir)
    preflight(sweep_dir, experiment, tracking_uri, label="sweep directory")
    _check_study_storage(state.study(sweep_dir))
    connect_ray(options.address, options.num_cpus)
    try:
        check_shared_storage(options.address, is_uri(state.experiment_path)
                             or Path(state.experiment_path).is_absolute())
        if not tune.Tuner.can_restore(experiment):
            raise SweepError(f"{sweep_dir}: Ray Tune's experiment at {experiment} cannot be restored "
                             f"(no experiment state was saved)")
        trainable, _settings = _build_trainable(spec)
        print(f"sweep directory: {sweep_dir} (resuming)", flush=True)
        probe_tracking(tracking_uri)
        tracker = _open_tracker(tracking_uri, spec.name, sweep_dir)
        tracker.resume_parent(state.parent_run_id)
        state.sweeps.append(_run_entry("resume", options))
        state.save(sweep_dir)
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True,
                                   resume_errored=retry_failed)
        _rebind_restored(tuner, state.study(sweep_dir), tracking_uri, _resumed_trials(experiment, retry_failed))
        return _fit_and_finish(tuner, spec, state, tracker, sweep_dir, options)
    finally:
        disconnect_ray()


def _check_study_storage(url: str) -> None:
    """The study storage opens (tables created) before Ray starts; else one line, exit code 2."""
    problem = storage_problem(url)
    if problem:
        raise SweepError(problem)


def _resumed_trials(experiment: str, retry_failed: bool) -> set[str]:
    """The Tune trials a resumed fit runs again: unfinished ones, and errored ones when retried."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment)
    return {t.trial_id for t in analysis.trials
            if t.status not in ("TERMINATED", "ERROR") or (retry_failed and t.status == "ERROR")}


def _rebind_restored(tuner: Any, study_url: str, tracking_uri: str, resumed: set[str]) -> None:
    """Point what `Tuner.restore` unpickled at where the sweep directory is now: the searcher's study
    (its pickled storage URL is the one of the run that saved it) and the MLflow callback's store; and
    re-register with the searcher the trials this fit continues or retries."""
    local = getattr(tuner, "_local_tuner", None)  # None under Ray Client: the tuner runs on the head node
    searcher = getattr(getattr(local, "_tune_config", None), "search_alg", None)
    while searcher is not None and not isinstance(searcher, ParetoOptunaSearch):
        searcher = getattr(searcher, "searcher", None)
    callbacks = getattr(getattr(local, "_run_config", None), "callbacks", None) or []
    if searcher is None:
        log.warning("the restored searcher cannot be re-bound here; it uses the study URL it was saved with")
    else:
        searcher.rebind(study_url, resumed)
    for callback in callbacks:
        if isinstance(callback, MlflowTrialCallback):
            callback.rebind(tracking_uri)


def _new_state(spec: SweepSpec, sweep_dir: Path, preset: str | None, set_pairs: list[str],
               options: SweepOptions) -> SweepState:
    """The state of a new sweep; paths inside the sweep directory are stored relative to it."""
    return SweepState(
        name=spec.name, preset=preset, overrides=list(set_pairs),
        experiment_path=relative_path(sweep_dir, experiment_path(sweep_dir, options.storage)),
        tracking_uri=relative_url(sweep_dir, options.tracking_uri or default_tracking_uri(sweep_dir)),
        mlflow_experiment_id="", parent_run_id="", study_name=spec.name,
        study_url=relative_url(sweep_dir, options.study_storage or default_study_url(sweep_dir)),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        spec_sha256=hashlib.sha256((sweep_dir / SPEC_COPY).read_bytes()).hexdigest(),
    )


def _run_entry(kind: str, options: SweepOptions) -> dict[str, Any]:
    return {"kind": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "address": options.address or "local"}


def _new_tuner(spec: SweepSpec, state: SweepState, sweep_dir: Path, trainable: Any, settings: TrialSettings,
               options: SweepOptions, warm: list[optuna.trial.FrozenTrial] | None = None) -> Any:
    searcher = make_searcher(spec.space, spec.metrics, spec.modes, spec.sampler, spec.sampler_options,
                             state.study_name, state.study(sweep_dir), spec.concurrency,
                             enqueue=spec.enqueue, warm=warm or [], constraints=spec.constraints)
    scheduler = make_scheduler(spec.scheduler)
    callback = MlflowTrialCallback(state.tracking(sweep_dir), state.mlflow_experiment_id, state.parent_run_id,
                                   settings, early_stop_status=_early_stop_status(spec))
    parent, name = state.experiment_dir(sweep_dir).rsplit("/", 1)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(  # no metric/mode here: it would make the search single-objective
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.concurrency),
            scheduler=scheduler, num_samples=spec.trials, time_budget_s=spec.time_limit_s,
            trial_dirname_creator=_trial_dirname, reuse_actors=spec.execution.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=parent,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.execution.num_to_keep),
            callbacks=[callback], progress_reporter=_reporter(spec), verbose=options.verbose,
        ),
    )


def _snapshot_period(spec: SweepSpec) -> None:
    """Ray Tune's experiment snapshot period (read when `Tuner.fit` builds its controller)."""
    if spec.execution.snapshot_every_s is None:
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "auto")
    else:
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = spec.execution.checkpoint_period


def _quiet_tune_output() -> None:
    """Ray's classic status table (it honours our CLIReporter columns) without snapshot-rate warnings."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _write_report(sweep_dir: Path) -> None:
    """The Pareto report of the sweep; a sweep with nothing to report says why."""
    from analysis.report import MlflowLogError, ReportError, write_report

    try:
        report = write_report(sweep_dir)
        print(f"report: {report}")
        summary = report.parent / "summary.txt"
        verdicts = [ln for ln in summary.read_text().splitlines() if ln.startswith("verified front")] \
            if summary.is_file() else []
        for line in verdicts:  # what the end-of-sweep verification concluded, next to the report
            print(line)
    except ReportError as exc:
        print(f"note: no report: {exc}", file=sys.stderr)
    except MlflowLogError as exc:  # MLflow down: the sweep still finishes; `resume` logs the report again
        print(f"warning: {exc}", file=sys.stderr)


def _verify(sweep_dir: Path, spec: SweepSpec, options: SweepOptions) -> None:
    """Re-verify the front (`orchestrator.verify`) before the report, as the spec's ``verify:`` (or
    --verify) says; a sweep that cannot says why."""
    settings = spec.verify
    if options.verify == "none" or (settings is None and options.verify is None):
        return
    settings = settings or VerifySettings()
    if options.verify:
        settings = replace(settings, suite=options.verify)
    from .verify import verify_front

    print(f"verifying the Pareto front ({settings.describe()}) ...", file=sys.stderr)
    try:
        verify_front(sweep_dir, settings.suite, settings.square_queries, images=settings.images)
    except Exception as exc:  # noqa: BLE001 - the sweep's results and report must survive a failed verification
        print(f"note: front not verified: {first_line(exc)}", file=sys.stderr)


def _fit_and_finish(tuner: Any, spec: SweepSpec, state: SweepState, tracker: Tracker, sweep_dir: Path,
                    options: SweepOptions) -> int:
    _quiet_tune_output()
    _snapshot_period(spec)
    started = time.monotonic()
    forced = False  # a second Ctrl-C: Tune stops at once; what it saved is still written out
    try:
        tuner.fit()  # returns normally after Ctrl-C too; interruption is detected from the trial states
    except KeyboardInterrupt:
        forced = True
        print("interrupted again: writing what Ray Tune saved (Ctrl-C once more to abandon that)",
              file=sys.stderr, flush=True)
    except BaseException:
        tracker.finish_parent(state.parent_run_id, "FAILED")
        raise
    elapsed = time.monotonic() - started
    # the records are written whole, even if Ctrl-C is pressed again; an interrupted sweep holds Ctrl-C
    # until its resume hint is printed (a second Ctrl-C must not lose the hint or the parent's status)
    previous = _hold_interrupts()
    interrupted = True
    try:
        before = sum(float(e.get("seconds", 0.0)) for e in state.sweeps[:-1])  # earlier runs of this sweep
        state.sweeps[-1]["seconds"] = round(elapsed, 3)
        state.save(sweep_dir)
        timed_out = spec.time_limit_s is not None and before + elapsed >= spec.time_limit_s * 0.99
        names = spec.space.names + [k for k in spec.space.bundle_keys if k not in spec.space.names]
        study_url = state.study(sweep_dir)
        res = results_mod.collect(state.experiment_dir(sweep_dir), names, _early_stop_status(spec),
                                  optuna_links(study_url, state.study_name), trial_settings(spec),
                                  time_limit_reached=timed_out, cut_short=time_limited(study_url, state.study_name))
        if spec.constraints and len(res.trials):  # a trial breaking a constraint is never on a front
            res.trials[FEASIBLE_COLUMN] = [is_feasible(spec.constraints, row) for row in res.trials.to_dict("records")]
        for note in repair_study(study_url, state.study_name, res.trials, spec.metrics, spec.constraints):
            print(f"note: {note}", file=sys.stderr)
        links = optuna_links(study_url, state.study_name)
        if len(res.trials):
            res.trials["optuna_number"] = res.trials["trial_id"].map(lambda t: links.get(t, (None, None))[0]).astype("Int64")
            res.trials["optuna_state"] = res.trials["trial_id"].map(lambda t: links.get(t, (None, None))[1])
        trials_path, history_path = results_mod.write(res, sweep_dir)
        counts = res.counts()
        unfinished = counts.get("interrupted", 0) + counts.get("pending", 0)
        interrupted = forced or unfinished > 0 or (len(res.trials) < spec.trials and not timed_out)
        _tracking_safely(tracker.reconcile_children, state.parent_run_id, res.statuses, _trial_params(res.trials))
        _tracking_safely(tracker.backfill, state.parent_run_id, res.history, res.statuses)
    except BaseException:
        _restore_interrupts(previous)
        raise
    try:
        if not interrupted:
            _restore_interrupts(previous)  # a long verification can still be stopped with Ctrl-C
            _verify(sweep_dir, spec, options)
        _write_report(sweep_dir)
        _tracking_safely(tracker.finish_parent, state.parent_run_id, "KILLED" if interrupted else "FINISHED",
                         [trials_path, history_path], counts)
        _print_summary(res, spec, sweep_dir, elapsed, masked(study_url))
        verdict = check_sweep(sweep_dir)
        print(verdict.summary(), file=sys.stderr if not verdict.ok else sys.stdout)
        if interrupted:
            print(f"sweep interrupted ({len(res.trials)}/{spec.trials} trials started, {unfinished} unfinished); "
                  f"continue with: orchestrator resume {sweep_dir}", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
    finally:
        if interrupted:
            _restore_interrupts(previous)
    if timed_out:
        print(f"note: the time limit ({spec.time_limit_s:g}s) ended the sweep; trials cut short have status "
              f"'stopped'", file=sys.stderr)
    return EXIT_FAILED if counts.get("failed", 0) or counts.get("timed_out", 0) or not verdict.ok else EXIT_OK


def _trial_params(trials: Any) -> dict[str, dict[str, Any]]:
    """Trial id -> its sampled parameters (``param.<name>`` columns), for a child run MLflow lacks."""
    cols = [c for c in trials.columns if c.startswith("param.")] if len(trials) else []
    return {row["trial_id"]: {c.removeprefix("param."): row[c] for c in cols
                              if row[c] is not None and not (isinstance(row[c], float) and row[c] != row[c])}
            for row in (trials.to_dict("records") if len(trials) else [])}


def _tracking_safely(func: Any, *args: Any) -> None:
    """An MLflow call at the end of a sweep; an unreachable store is logged (`check` lists what it lacks)."""
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - the results are in Parquet; MLflow catches up on resume
        print(f"warning: MLflow tracking failed ({type(exc).__name__}: {first_line(exc)}); the results are in "
              f"Parquet and `orchestrator resume` logs what MLflow lacks", file=sys.stderr)


def _hold_interrupts() -> Any:
    """Ignore SIGINT (in the main thread) while the result tables and the records are written."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.SIG_IGN)


def _restore_interrupts(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def _print_summary(res: results_mod.SweepResults, spec: SweepSpec, sweep_dir: Path, elapsed: float,
                   study: str) -> None:
    trials = res.trials
    print(f"\n{spec.name}: {len(trials)} trials in {elapsed:.0f}s: "
          + ", ".join(f"{n} {k}" for k, n in sorted(res.counts().items())))
    if len(trials):
        cols = ["trial_id", "status"] + [c for c in trials.columns if c.startswith("param.")]
        cols += [m for m in spec.metrics if m in trials.columns] + ["seconds"]
        shown = trials[cols].rename(columns=lambda c: c.removeprefix("param."))
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"results: {sweep_dir / TRIALS_FILE}, {sweep_dir / HISTORY_FILE}; "
          f"study: {study}; browse: orchestrator ui {sweep_dir}")


def _parent_params(spec: SweepSpec, set_pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "spec": spec.path.name, "preset": spec.preset, "sampler": spec.sampler, "trials": spec.trials,
        "concurrency": spec.concurrency, OBJECTIVES_PARAM: format_objectives(spec.objectives),
        "space": ",".join(spec.space.names), "resources.cpu": spec.cpu, "resources.gpu": spec.gpu,
        "retries": spec.retries, "scheduler": spec.scheduler.type if spec.scheduler else "none",
        "execution.checkpoint_every": spec.execution.checkpoint_every,
        "execution.keep_checkpoints": spec.execution.keep_checkpoints,
        "execution.snapshot_every_s": spec.execution.checkpoint_period,
        "execution.reuse_actors": spec.execution.reuse_actors,
    }
    if set_pairs:
        params["overrides"] = " ".join(set_pairs)
    if spec.time_limit_s is not None:
        params["time_limit_s"] = spec.time_limit_s
    if spec.enqueue:
        params["enqueue"] = len(spec.enqueue)
    if spec.constraints:
        params["constraints"] = ", ".join(str(c) for c in spec.constraints)
    params.update({f"base.{k}": v for k, v in spec.base.items()})
    return params


def _parent_tags(spec: SweepSpec, sweep_dir: Path, options: SweepOptions) -> dict[str, str]:
    tags = {"git_commit": git_commit(REPO), "sweep_dir": str(sweep_dir), "ray_address": options.address or "local",
            "mlflow.note.content": spec.description}
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    return tags
