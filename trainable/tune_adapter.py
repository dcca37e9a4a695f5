"""Ray Tune function trainable around `trainable.loop.train` (the only trainable file importing Ray).

Per trial: build the TrialConfig from the preset, the sweep's base settings and the Tune config
(the sampled parameters), continue from `tune.get_checkpoint()` when Tune restarts the trial
(FailureConfig retry or `orchestrator resume`), and `tune.report` every epoch, with a checkpoint
every `TrialSettings.checkpoint_every` epochs and on the last one. Everything is rebuilt per call
(config, seeds, data, model), so Ray may reuse one worker process for many trials (``reuse_actors``).

Every report carries all of `settings.metric_names`: metrics of epochs that were not evaluated are
NaN (Ray Tune requires the objectives in every result). Two extra keys: ``final`` is 1.0 on the
trial's last epoch and 0.0 before (trials stopped early by a scheduler never report 1.0), and
``node_id`` is the Ray node the trial ran on.

Deterministic failures (the loss diverged, an invalid setting, missing data) leave a marker file
in the trial's directory in Ray Tune's storage (``<experiment>/trial_<id>/deterministic_failure.txt``,
written through Tune's storage file system, so every node and every later `orchestrator resume`
sees it, also on NFS or S3) and a retry fails at once instead of training again.

Per-trial time limit (`TrialSettings.trial_time_limit_s`): a watchdog thread ends the trial's worker
process once an attempt has run that long (a hung trial never reports, so nothing inside the loop
could stop it); the marker then says `TrialTimedOut` and Tune's retry fails at once.

TEST HOOK (tests only): when the environment variable ``CFAMC_TEST_CRASH_ONCE_DIR`` names a
directory, every trial raises `InjectedCrash` once, right after its first checkpointed epoch, and
records that in ``<dir>/<trial_id>``; its retry then resumes from that checkpoint. Unset (the
default), nothing happens.

TEST HOOK (tests only): when ``CFAMC_TEST_PROGRESS_DIR`` names a directory, every trial attempt
appends JSON lines to ``<dir>/<trial_id>.jsonl``: ``{"event": "start", "pid", "node_id",
"from_checkpoint", "epochs"}`` when the attempt starts and ``{"event": "epoch", "epoch", "pid", "node_id",
"checkpoint"}`` after each epoch's report (its checkpoint, if any, is then persisted), so a fault-injection test can find the
trial's worker process and kill it mid-epoch. Unset (the default), nothing is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import ray
from ray import tune

from .checkpoint import CheckpointError
from .config import ConfigError, TrialConfig, merge_settings, preset
from .data import DatasetError
from .loop import TrainingDiverged, train

CRASH_HOOK_ENV = "CFAMC_TEST_CRASH_ONCE_DIR"
PROGRESS_HOOK_ENV = "CFAMC_TEST_PROGRESS_DIR"
FAILED_MARKER = "deterministic_failure.txt"
# In every checkpoint: each epoch reported up to it, one JSON object per line. Ray Tune's result file can
# lack an epoch after a restore (Tune copies it back from storage, where the last line may not have
# reached yet); the sweep's results fill such a gap from here (`orchestrator.results`).
REPORTS_FILE = "reports.jsonl"
TIMED_OUT = "TrialTimedOut"  # the error name of a trial stopped by its time limit (results: `timed_out`)
DETERMINISTIC_ERRORS = (TrainingDiverged, ConfigError, DatasetError, CheckpointError)


class InjectedCrash(RuntimeError):
    """Raised by the test hook (CFAMC_TEST_CRASH_ONCE_DIR) only."""


class DeterministicFailure(RuntimeError):
    """A retried trial whose previous attempt failed in a way a retry cannot fix."""


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares (passed with `tune.with_parameters`)."""

    preset: str
    base: Mapping[str, Any]  # overrides of the preset shared by all trials
    labels: tuple[str, ...] = ()  # Tune config keys that are not trial settings (bundle names)
    metric_names: tuple[str, ...] = field(default_factory=tuple)  # present (maybe NaN) in every report
    checkpoint_every: int = 1  # epochs between checkpoints; the last epoch always has one
    trial_time_limit_s: float | None = None  # an attempt running longer is ended (TIMED_OUT)
    # bundle parameter -> bundle name -> torch threads, for rows that ask for their own CPUs
    row_threads: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def build_config(config: Mapping[str, Any], settings: TrialSettings) -> TrialConfig:
    """The trial's TrialConfig: preset, then the sweep's base settings, then the sampled values."""
    sampled = {k: v for k, v in config.items() if k not in settings.labels}
    values = dict(settings.base)
    for param, rows in settings.row_threads.items():
        if config.get(param) in rows:
            values["threads"] = rows[config[param]]
    if "method" in sampled:  # a sampled method re-derives its parts unless they are sampled too
        for part in ("objective", "adversary", "views"):
            if part not in sampled and part not in settings.base:
                values[part] = None
    return preset(settings.preset, **merge_settings(values, sampled))


def run_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """The Ray Tune function trainable."""
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # one line per checkpoint
    context = tune.get_context()
    marker = _Marker(context)
    previous = marker.read()
    if previous is not None:
        raise DeterministicFailure(f"not retried: {previous}")
    watchdog = _start_watchdog(settings.trial_time_limit_s, marker) if settings.trial_time_limit_s else None
    try:
        trial_config = build_config(config, settings)
        _run(trial_config, settings, context.get_trial_id())
    except DETERMINISTIC_ERRORS as exc:
        marker.write(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()  # a reused worker process must not be ended by this trial's limit


class _Marker:
    """The deterministic-failure marker of a trial, in Ray Tune's storage (seen by every node and resume)."""

    def __init__(self, context: Any) -> None:
        storage = context.get_storage()
        self.fs = storage.storage_filesystem
        self.dir = storage.trial_fs_path
        self.path = f"{self.dir}/{FAILED_MARKER}"

    def read(self) -> str | None:
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(self.path) as fh:
            return fh.readall().decode(errors="replace").strip()

    def write(self, text: str) -> None:
        self.fs.create_dir(self.dir, recursive=True)
        with self.fs.open_output_stream(self.path) as fh:
            fh.write(text.replace("\n", " ").encode() + b"\n")


def _start_watchdog(limit_s: float, marker: _Marker) -> threading.Timer:
    """End this worker process after `limit_s` seconds (marker first): a hung trial cannot stop itself."""

    def expire() -> None:
        try:
            marker.write(f"{TIMED_OUT}: the trial ran past its time limit of {limit_s:g}s")
        finally:
            logging.getLogger(__name__).error("trial ran past its time limit of %gs; ending it", limit_s)
            os._exit(1)

    timer = threading.Timer(limit_s, expire)
    timer.daemon = True
    timer.start()
    return timer


def _run(config: TrialConfig, settings: TrialSettings, trial_id: str) -> None:
    node_id = ray.get_runtime_context().get_node_id()
    crash_dir = os.environ.get(CRASH_HOOK_ENV)
    progress_dir = os.environ.get(PROGRESS_HOOK_ENV)
    reported = 0
    reports: list[dict[str, Any]] = []  # every epoch's report so far, saved with each checkpoint
    checkpoint = tune.get_checkpoint()
    if progress_dir:
        _record_progress(Path(progress_dir), trial_id, event="start", node_id=node_id,
                         from_checkpoint=checkpoint is not None, epochs=config.epochs)

    def report(metrics: dict[str, float], write_checkpoint: Callable[[Path], Path]) -> None:
        nonlocal reported, reports
        epoch = int(metrics.get("epoch", 0))
        saved = epoch >= config.epochs or epoch % max(1, settings.checkpoint_every) == 0
        full = _full_metrics(metrics, config, settings, node_id)
        reports = [r for r in reports if int(r.get("epoch", 0)) < epoch] + [full]
        if saved:
            with tempfile.TemporaryDirectory(prefix="cfamc-ckpt-") as tmp:
                write_checkpoint(Path(tmp))
                write_reports(Path(tmp), reports)
                tune.report(full, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(full)
        reported += 1
        if progress_dir:
            _record_progress(Path(progress_dir), trial_id, event="epoch", epoch=epoch, node_id=node_id,
                             checkpoint=saved)
        if crash_dir and saved:
            _maybe_crash(Path(crash_dir), trial_id)

    if checkpoint is None:
        final = train(config, reporter=report)
    else:
        with tempfile.TemporaryDirectory(prefix="cfamc-resume-") as tmp:
            checkpoint.to_directory(tmp)
            reports = read_reports(Path(tmp))
            final = train(config, reporter=report, resume_from=Path(tmp))
    if reported == 0:  # resumed from the last epoch's checkpoint: report the final result once more
        tune.report(_full_metrics(final, config, settings, node_id))


def write_reports(directory: Path, reports: list[dict[str, Any]]) -> None:
    """`REPORTS_FILE` in a checkpoint directory: one JSON object per reported epoch."""
    (directory / REPORTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in reports))


def read_reports(directory: Path) -> list[dict[str, Any]]:
    """The reports a checkpoint directory carries (none for a checkpoint written before they were kept)."""
    path = directory / REPORTS_FILE
    return parse_reports(path.read_text()) if path.exists() else []


def parse_reports(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _full_metrics(metrics: Mapping[str, float], config: TrialConfig, settings: TrialSettings,
                  node_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {name: math.nan for name in settings.metric_names}
    out.update(metrics)
    out["final"] = 1.0 if int(metrics.get("epoch", 0)) >= config.epochs else 0.0
    out["node_id"] = node_id
    return out


def _maybe_crash(directory: Path, trial_id: str) -> None:
    """The test hook: crash once per trial (after the first checkpointed epoch)."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / trial_id
    if not marker.exists():
        marker.write_text("crashed once\n")
        raise InjectedCrash(f"test hook {CRASH_HOOK_ENV}: injected crash of trial {trial_id}")


def _record_progress(directory: Path, trial_id: str, **fields: Any) -> None:
    """The test hook CFAMC_TEST_PROGRESS_DIR: one JSON line per attempt start and per reported epoch."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{trial_id}.jsonl", "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
