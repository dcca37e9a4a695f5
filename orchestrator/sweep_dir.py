"""The sweep directory on disk: where each part of a sweep lives, checks that every local directory it
will write can be written and has room (one line, exit code 2, before Ray or any trial starts), and
claiming a new directory exclusively so that two sweeps started at once never share one.

The names of the files inside are `orchestrator.layout`'s. The free-space minimum is
``CFAMC_MIN_FREE_MB`` megabytes (default 50): enough for the study, the tracking store, the result
tables and a few tiny-preset checkpoints; real sweeps need more, but a file system below this will
fail part-way for sure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .layout import ARTIFACTS_DIR, MLFLOW_DB, SPEC_COPY, TUNE_DIR, SweepError, is_uri, sqlite_file

MIN_FREE_ENV = "CFAMC_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 50.0
PROBE_BYTES = 64 * 1024  # a probe this size fails on a file system that is (almost) full
MB = 1024 * 1024


def min_free_bytes() -> int:
    raw = os.environ.get(MIN_FREE_ENV)
    if raw is None or not raw.strip():
        return int(DEFAULT_MIN_FREE_MB * MB)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ValueError(f"{MIN_FREE_ENV}={raw!r}: expected a number of megabytes >= 0")
    return int(value * MB)


def _existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (the directory a new path will be created in)."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def directory_problem(path: Path, what: str) -> str | None:
    """None if `path` (existing, or to be created) can be written and has room; else one line naming it.

    `what` names the option or role of the path in the message (e.g. '--out', '--storage').
    """
    path = Path(path)
    try:
        need = min_free_bytes()
    except ValueError as exc:
        return str(exc)
    where = _existing(path)
    if not where.is_dir():
        return f"{what} {path}: {where} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".cfamc-preflight-", dir=where)
    except OSError as exc:
        return f"{what} {path}: cannot create files in {where} ({exc.strerror or exc}); choose a writable directory"
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return f"{what} {path}: cannot write to {where} ({exc.strerror or exc}); free some space or choose another directory"
    finally:
        try:
            os.unlink(probe)
        except OSError:
            pass
    free = shutil.disk_usage(where).free
    if free < need:
        return (f"{what} {path}: only {free / MB:.1f} MB free on the file system of {where}; a sweep needs at least "
                f"{need / MB:g} MB ({MIN_FREE_ENV} sets the minimum)")
    return None


def default_sweep_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def experiment_path(sweep_dir: Path, storage: str | None) -> str:
    """Where Ray Tune keeps this sweep's experiment: <sweep dir>/tune or <storage>/<sweep dir name>."""
    if storage is None:
        return str(sweep_dir / TUNE_DIR)
    if is_uri(storage):
        return f"{storage.rstrip('/')}/{sweep_dir.name}"
    return str(Path(storage).resolve() / sweep_dir.name)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, absolute (None for servers and other stores)."""
    file = sqlite_file(uri)
    return None if file is None else Path(file).resolve()


def preflight(sweep_dir: Path, experiment_path: str, tracking_uri: str, label: str = "--out") -> None:
    """Before Ray starts: the sweep dir, a local --storage and a SQLite tracking store are writable and
    have room (`directory_problem`); else one line naming the path (exit code 2)."""
    checks = [(sweep_dir, label)]
    if not is_uri(experiment_path):
        checks.append((Path(experiment_path), "--storage"))
    db = sqlite_path(tracking_uri)
    if db is not None:
        checks.append((db.parent, "--tracking-uri"))
    for path, what in checks:
        problem = directory_problem(path, what)
        if problem:
            raise SweepError(problem)


def claim_sweep_dir(sweep_dir: Path, spec_path: Path, explicit: bool, claimed: list[Path]) -> Path:
    """Create the sweep dir and its spec copy exclusively, so two sweeps started at once never share one.

    An explicit --out that another sweep claimed first is refused; a default (timestamped) name that is
    taken gets a suffix (-2, -3, ...). What was created is appended to `claimed` (see `release`).
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


def claim_experiment_path(experiment_path: str, storage: str | None, claimed: list[Path]) -> None:
    """With a local --storage, create <storage>/<sweep dir name> exclusively: two sweeps whose directories
    share a name must not share Ray's experiment (trial dirs, checkpoints, experiment state)."""
    if storage is None or is_uri(experiment_path):
        return
    path = Path(experiment_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise SweepError(f"--storage {storage}: {path} already exists (another sweep directory named {path.name} "
                         f"uses this storage); choose another --out name") from None
    claimed.append(path)


def release(claimed: list[Path]) -> None:
    """Undo `claim_*` for a sweep that failed before it started: files removed, directories if empty."""
    for path in reversed(claimed):
        try:
            path.rmdir() if path.is_dir() else path.unlink()
        except OSError:
            pass


def artifact_dir(tracking_uri: str, sweep_dir: Path) -> Path | None:
    """Where a new MLflow experiment keeps artifacts: the sweep dir's mlartifacts/ for its own store; next
    to a shared SQLite store (sweeps sharing it must not write into each other's directories); the
    server's default for a tracking server."""
    db = sqlite_path(tracking_uri)
    if db is None:
        return None
    if db == (sweep_dir / MLFLOW_DB).resolve():
        return sweep_dir / ARTIFACTS_DIR
    return db.parent / ARTIFACTS_DIR
