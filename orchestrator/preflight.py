"""Checks before a sweep starts or resumes: every local directory it will write can be written and has
room, so a read-only or full file system is one clear line (exit code 2) before any trial starts.

The free-space minimum is ``CFAMC_MIN_FREE_MB`` megabytes (default 50): enough for the study, the
tracking store, the result tables and a few tiny-preset checkpoints; real sweeps need more, but a
file system below this will fail part-way for sure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

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
