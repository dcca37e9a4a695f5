"""The contract every part of the project shares, in the standard library only.

- the sweep directory: its file names, the state file `SweepState` (``sweep.json``), how a
  sweep's Ray Tune experiment, Optuna study and MLflow store are found from it;
- the trial tables: statuses, the ``param.`` (swept) and ``config.`` (resolved setting) column
  prefixes, the keys of Ray Tune's results that are bookkeeping rather than metrics;
- MLflow: the tags that link runs to trials and sweeps, metric names to and from MLflow;
- the user-error vocabulary and the exit codes of every command.

`orchestrator` writes the directory through these names and `analysis` reads it through them
(`analysis` imports nothing else of `orchestrator` or `trainable`). Paths inside ``sweep.json``
are stored relative to the sweep directory, so a sweep can be moved or copied.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

# --- exit codes and user errors ---------------------------------------------------------------------
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran, but what it ran failed (a trial, MLflow logging, a check)
EXIT_USAGE = 2  # bad input: nothing was started or changed
EXIT_INTERRUPTED = 130  # Ctrl-C; a sweep can be resumed


def one_line(text: Any) -> str:
    """`text` with line breaks and other control characters escaped, so a message stays one line."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def closest(value: Any, allowed: list[str]) -> str | None:
    """The allowed name closest to a misspelt ``value`` (None if none is close)."""
    close = difflib.get_close_matches(str(value), allowed, n=1)
    return close[0] if close else None


def did_you_mean(value: Any, allowed: list[str]) -> str:
    """`` (did you mean 'x'?)`` for a misspelt ``value``, or an empty string."""
    close = closest(value, allowed)
    return f" (did you mean {close!r}?)" if close else ""


class CommandError(Exception):
    """An error a command reports as one line, ending with `exit_code` (`orchestrator.cli.main`)."""

    exit_code = EXIT_FAILED
    label = "failed"  # "orchestrator <command>: <label>: <message>"

    def __init__(self, message: Any = "") -> None:
        super().__init__(one_line(message))


class UserError(CommandError, ValueError):
    """Bad input (a setting, a spec, a path, a sweep directory): nothing was started; exit code 2."""

    exit_code = EXIT_USAGE
    label = "error"


class RunFailed(CommandError, RuntimeError):
    """What the command ran failed (a diverged trial, MLflow refused the report); exit code 1."""


class SweepError(UserError):
    """A sweep that cannot start, resume or be read (bad directory, no Ray cluster, ...)."""


# --- the sweep directory ----------------------------------------------------------------------------
STATE_FILE = "sweep.json"  # `SweepState`: what resume, report, check and ui need
SPEC_COPY = "spec.yaml"  # the spec as given
STUDY_FILE = "optuna.db"  # the Optuna study (SQLite; unless --study-storage)
JOURNAL_PREFIX = "journal:///"  # a study in an Optuna journal file: journal:///FILE (`orchestrator.study_storage`)
STUDY_PASSWORD_ENV = "CFAMC_STUDY_PASSWORD"  # the study server's password: never stored in sweep.json
TUNE_DIR = "tune"  # Ray Tune's experiment (unless --storage)
TRIALS_FILE = "trials.parquet"  # one row per trial
HISTORY_FILE = "history.parquet"  # one row per trial and epoch
MLFLOW_DB = "mlflow.db"  # MLflow's store (unless --tracking-uri)
ARTIFACTS_DIR = "mlartifacts"  # MLflow's artifacts of that store
REPORT_DIR = "report"  # `orchestrator report`
VERIFIED_FILE = "verified.parquet"  # the front's trials re-evaluated with the strong attack + audit
# Objectives whose values verification replaces by the worst case over PGD and the strong attack.
VERIFIED_METRICS = ("robust_acc", "autoattack_acc", "pgd_restarts_acc")


@dataclass
class SweepState:
    """``<sweep_dir>/sweep.json``. Paths in the sweep directory are stored relative to it (`resolve`)."""

    name: str
    preset: str | None
    overrides: list[str]
    experiment_path: str  # Ray Tune's experiment: "tune" (relative), an absolute path or a URI
    tracking_uri: str  # "sqlite:///mlflow.db" (relative: in the sweep dir), another sqlite file, a server
    mlflow_experiment_id: str
    parent_run_id: str
    study_name: str
    study_url: str  # "sqlite:///optuna.db" (relative), journal:///FILE or a server URL without its password
    created: str
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # one entry per run/resume
    spec_sha256: str = ""  # of the spec copy: resume refuses an edited copy ("" in older sweeps: unchecked)
    budget: dict[str, str] = field(default_factory=dict)  # --trials/--concurrency/--time-limit as given
    warm_start: str | None = None  # the earlier sweep whose finished trials the study started with

    def save(self, sweep_dir: Path) -> None:
        """Write atomically (temporary file + rename)."""
        path = Path(sweep_dir) / STATE_FILE
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, sweep_dir: Path) -> "SweepState":
        path = Path(sweep_dir) / STATE_FILE
        if not path.is_file():
            raise SweepError(f"{sweep_dir}: not a sweep directory (no {STATE_FILE})")
        try:
            raw = json.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise SweepError(f"{path}: unreadable ({first_line(exc)})") from None

    def check_spec(self, sweep_dir: Path) -> None:
        """Refuse (one line) a spec copy edited since the sweep started."""
        import hashlib

        path = Path(sweep_dir) / SPEC_COPY
        if self.spec_sha256 and path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != self.spec_sha256:
            raise SweepError(f"{path}: edited since the sweep started (its SHA-256 differs from {STATE_FILE}'s "
                             f"spec_sha256); restore it to resume, or start a new sweep with the edited spec")

    # --- where things are ----------------------------------------------------------------------
    def experiment_dir(self, sweep_dir: Path) -> str:
        """Ray Tune's experiment path as Tune wants it: absolute path or URI."""
        return resolve_path(sweep_dir, self.experiment_path)

    def tracking(self, sweep_dir: Path) -> str:
        """The MLflow tracking URI with a relative SQLite file made absolute."""
        return resolve_url(sweep_dir, self.tracking_uri)

    def study(self, sweep_dir: Path) -> str:
        """The Optuna storage URL with a relative file made absolute and the password of
        ``CFAMC_STUDY_PASSWORD`` (if set) put back; open it with `orchestrator.study_storage.open_storage`."""
        return with_password(resolve_url(sweep_dir, self.study_url), os.environ.get(STUDY_PASSWORD_ENV))


def is_uri(path: str) -> bool:
    """True for ``s3://bucket/...``-like locations (anything with a scheme), False for file paths."""
    return "://" in path


def resolve_path(sweep_dir: Path, path: str) -> str:
    """A path stored in `SweepState`, absolute: relative ones are relative to the sweep directory."""
    if is_uri(path) or Path(path).is_absolute():
        return path
    return str((Path(sweep_dir) / path).resolve())


def sqlite_file(url: str) -> str | None:
    """The file of a ``sqlite:///FILE`` URL (relative or absolute, without its query), else None."""
    if not url.startswith("sqlite:///"):
        return None
    return url[len("sqlite:///"):].split("?", 1)[0]


def local_file(url: str) -> str | None:
    """The file of a ``sqlite:///FILE`` or ``journal:///FILE`` URL (relative or absolute), else None."""
    if url.startswith(JOURNAL_PREFIX):
        return url[len(JOURNAL_PREFIX):]
    return sqlite_file(url)


def _file_prefix(url: str) -> str:
    return JOURNAL_PREFIX if url.startswith(JOURNAL_PREFIX) else "sqlite:///"


def resolve_url(sweep_dir: Path, url: str) -> str:
    """``sqlite:///mlflow.db`` -> ``sqlite:////abs/sweep/mlflow.db`` (``journal:///`` alike); others unchanged."""
    file = local_file(url)
    if file is None or Path(file).is_absolute():
        return url
    query = url.partition("?")[2] if url.startswith("sqlite:") else ""
    absolute = f"{_file_prefix(url)}{(Path(sweep_dir) / file).resolve()}"
    return f"{absolute}?{query}" if query else absolute


def relative_url(sweep_dir: Path, url: str) -> str:
    """The inverse of `resolve_url` for a SQLite or journal file inside the sweep directory; others unchanged."""
    file = local_file(url)
    if file is None:
        return url
    try:
        inside = Path(file).resolve().relative_to(Path(sweep_dir).resolve())
    except ValueError:
        return url
    query = url.partition("?")[2] if url.startswith("sqlite:") else ""
    return f"{_file_prefix(url)}{inside}" + (f"?{query}" if query else "")


def with_password(url: str, password: str | None) -> str:
    """A server URL naming a user but no password, with `password` added; other URLs unchanged."""
    from urllib.parse import quote, urlsplit, urlunsplit

    if not password or "://" not in url or local_file(url) is not None:
        return url
    parts = urlsplit(url)
    if parts.username is None or parts.password is not None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def relative_path(sweep_dir: Path, path: str) -> str:
    """A path inside the sweep directory as stored in `SweepState` (relative); others unchanged."""
    if is_uri(path):
        return path
    try:
        return str(Path(path).resolve().relative_to(Path(sweep_dir).resolve()))
    except ValueError:
        return path


def relocated_artifact_uri(sweep_dir: Path, tracking_uri: str, artifact_uri: str) -> str:
    """A run's artifact URI in the sweep's own MLflow store, moved along with the sweep directory.

    MLflow stores each run's artifact location as an absolute ``file://`` URI; when `tracking_uri` (as
    stored in `SweepState`) is the sweep's own relative store and the URI points into an
    ``mlartifacts/`` directory elsewhere, the same place under this sweep's ``mlartifacts/`` is returned.
    Any other URI is returned unchanged.
    """
    from urllib.parse import unquote, urlparse

    if relative_url(sweep_dir, tracking_uri) != f"sqlite:///{MLFLOW_DB}" or not artifact_uri.startswith("file://"):
        return artifact_uri
    path = Path(unquote(urlparse(artifact_uri).path))
    here = (Path(sweep_dir) / ARTIFACTS_DIR).resolve()
    if ARTIFACTS_DIR not in path.parts or path.is_relative_to(here):
        return artifact_uri
    parts = path.parts
    inside = parts[len(parts) - 1 - parts[::-1].index(ARTIFACTS_DIR) + 1:]
    return here.joinpath(*inside).as_uri()


# --- objectives ----------------------------------------------------------------------------------------
MODES = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """One Pareto axis: a metric and whether larger (``max``) or smaller (``min``) is better."""

    metric: str
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"objective {self.metric!r}: mode must be max or min, got {self.mode!r}")

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"


def format_objectives(objectives: Sequence[Objective]) -> str:
    """``clean_acc:max,robust_acc:max`` (the parent run's `OBJECTIVES_PARAM`; `parse_objectives` reads it)."""
    return ",".join(str(o) for o in objectives)


def parse_objectives(text: str | Iterable[str] | Iterable[Objective]) -> list[Objective]:
    """``"clean_acc:max,robust_acc@4/255:max"`` (or a list of ``metric:mode`` / `Objective`) -> objectives.

    The mode is after the last ``:``; a metric listed twice is an error.
    """
    items: Iterable[Any] = [t for t in text.split(",") if t.strip()] if isinstance(text, str) else text
    out: list[Objective] = []
    for item in items:
        if isinstance(item, Objective):
            objective = item
        else:
            metric, sep, mode = str(item).strip().rpartition(":")
            if not sep or not metric:
                raise UserError(f"objective {str(item).strip()!r}: expected METRIC:max or METRIC:min, "
                                f"e.g. clean_acc:max")
            objective = Objective(metric.strip(), mode.strip())
        if objective.metric in [o.metric for o in out]:
            raise UserError(f"objective {objective.metric!r} is listed twice")
        out.append(objective)
    if not out:
        raise UserError("no objectives given; expected e.g. clean_acc:max,robust_acc:max")
    return out


# --- trial tables ------------------------------------------------------------------------------------
STATUSES = ("finished", "early_stopped", "stopped", "timed_out", "failed", "interrupted", "pending")
FRONT_STATUS = "finished"  # the only status whose trials may be on a Pareto front
PARAM_PREFIX = "param."  # a swept parameter (or a bundle's setting), as sampled
CONFIG_PREFIX = "config."  # every setting of the trial, resolved (preset + base + sampled)
# Columns of trials.parquet that are neither metrics nor settings.
TRIAL_COLUMNS = frozenset({
    "trial_id", "status", "sweep", "epochs_done", "seconds", "checkpoint", "node_id", "hostname", "pid", "error",
    "optuna_number", "optuna_state", "started_at", "ended_at", "run_id", "feasible",
})
FEASIBLE_COLUMN = "feasible"  # with the spec's `constraints`: False for a trial that breaks one (never on a front)
# Keys Ray Tune adds to every reported result; they are not a trial's metrics.
TUNE_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "experiment_tag", "final", "node_id",
})
FINAL_KEY = "final"  # 1.0 in the result of a trial's last epoch, 0.0 before

# --- Optuna --------------------------------------------------------------------------------------------
TUNE_TRIAL_ATTR = "tune_trial_id"  # user attribute of an Optuna trial: its Ray Tune trial
WARM_START_ATTR = "warm_start_from"  # user attribute of a trial copied from an earlier sweep: "<dir>:<trial id>"
CONSTRAINTS_ATTR = "constraints"  # user attribute: the trial's constraint values (<= 0 is feasible)
UNKNOWN_VIOLATION = 1e9  # the constraint value of a metric a trial did not report: infeasible


@dataclass(frozen=True)
class Constraint:
    """``{metric: NAME, min: LOW, max: HIGH}`` of the spec's `constraints` (either bound may be None)."""

    metric: str
    low: float | None = None
    high: float | None = None

    def value(self, metric_value: Any) -> float:
        """Optuna's constraint value: <= 0 when the bound(s) hold, the amount by which they fail otherwise."""
        try:
            x = float(metric_value)
        except (TypeError, ValueError):
            return UNKNOWN_VIOLATION
        if x != x or x in (float("inf"), float("-inf")):
            return UNKNOWN_VIOLATION
        below = self.low - x if self.low is not None else -float("inf")
        above = x - self.high if self.high is not None else -float("inf")
        return max(below, above)

    def __str__(self) -> str:
        parts = ([f"{self.metric} >= {self.low:g}"] if self.low is not None else []) + \
            ([f"{self.metric} <= {self.high:g}"] if self.high is not None else [])
        return " and ".join(parts)


def constraint_values(constraints: Sequence[Constraint], metrics: Any) -> list[float]:
    """One Optuna constraint value per constraint, from a mapping of metric values."""
    return [c.value(metrics.get(c.metric)) for c in constraints]


def is_feasible(constraints: Sequence[Constraint], metrics: Any) -> bool:
    """Whether every constraint holds for the metric values in `metrics`."""
    return all(v <= 0 for v in constraint_values(constraints, metrics))

# --- MLflow ----------------------------------------------------------------------------------------------
TRIAL_TAG = "tune_trial_id"  # on a child run: its Ray Tune trial
STATUS_TAG = "trial_status"  # on a child run: the trial's status (STATUSES)
PARENT_TAG = "mlflow.parentRunId"  # on a child run: the sweep's parent run
OBJECTIVES_PARAM = "objectives"  # on the parent run: "metric:mode,metric:mode"
# trials.parquet status -> the MLflow run status of the trial's child run
RUN_STATUS = {"finished": "FINISHED", "early_stopped": "FINISHED", "stopped": "FINISHED", "timed_out": "FAILED",
              "failed": "FAILED", "interrupted": "KILLED", "pending": "KILLED"}
# trials.parquet status -> the Optuna state of the trial (None: still RUNNING, the trial continues on resume).
# A trial cut short (scheduler, the sweep's time limit) is PRUNED; one that errored or ran past its own
# time limit is FAIL (it produced no objective worth learning from).
OPTUNA_STATE = {"finished": "COMPLETE", "early_stopped": "PRUNED", "stopped": "PRUNED", "timed_out": "FAIL",
                "failed": "FAIL", "interrupted": None, "pending": None}


# MLflow's HTTP client retries a request up to 7 times with a backoff factor of 2 (minutes against a
# server that is down, every tracking call of the driver blocking that long); our defaults, where unset
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def bound_mlflow_http_retries() -> None:
    """Put `MLFLOW_HTTP_DEFAULTS` into ``os.environ`` wherever the user has not set the variable, so a
    tracking server that is down costs a few seconds per call, not minutes (MLflow reads them per request)."""
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def mlflow_metric_name(name: str) -> str:
    """Our metric name as MLflow accepts it: ``robust_acc@4/255`` -> ``robust_acc_at_4/255``."""
    return re.sub(r"[^A-Za-z0-9_\-. /:]", "_", name.replace("@", "_at_"))


def metric_name_from_mlflow(name: str) -> str:
    """The inverse of `mlflow_metric_name` for our metric names: ``robust_acc_at_4/255`` -> ``robust_acc@4/255``."""
    return name.replace("_at_", "@")
