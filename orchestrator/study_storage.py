"""Where a sweep's Optuna study lives (``--study-storage URL`` or the spec's ``execution.study_storage``).

Accepted URLs (one line, exit code 2, for anything else):

- ``sqlite:///FILE`` - the default, ``<sweep dir>/optuna.db``; one machine's disk;
- ``postgresql://USER@HOST:PORT/DB`` (or ``postgresql+psycopg2://``) - a database server: the study
  survives the head node's disk and several drivers can share one;
- ``mysql://USER@HOST:PORT/DB`` (``mysql+pymysql://``; the driver is the user's to install);
- ``journal:///FILE`` - Optuna's `JournalStorage` in an append-only file with an ``O_EXCL`` lock
  file, the storage that is safe on NFS (SQLite's locking is not).

A relative FILE is relative to the current directory when given and stored relative to the sweep
directory when it is inside it (`orchestrator.layout.relative_url`). A password is never written to
``sweep.json``: `split_password` takes it out, and `SweepState.study` puts back the one in
``CFAMC_STUDY_PASSWORD`` (PostgreSQL also reads ``PGPASSWORD`` and ``~/.pgpass`` itself).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .layout import JOURNAL_PREFIX, STUDY_FILE, STUDY_PASSWORD_ENV, SweepError, first_line, local_file

SERVER_SCHEMES = ("postgresql", "mysql")
FORMS = ("sqlite:///FILE, postgresql://USER@HOST:PORT/DB, mysql://USER@HOST:PORT/DB or journal:///FILE "
         "(a journal file, safe on NFS)")


def default_study_url(sweep_dir: Path) -> str:
    """The study of a sweep that names none: SQLite in the sweep directory."""
    return f"sqlite:///{Path(sweep_dir) / STUDY_FILE}"


def kind(url: str) -> str:
    """'sqlite', 'postgresql', 'mysql' or 'journal' (the URL's scheme without its driver)."""
    if url.startswith(JOURNAL_PREFIX):
        return "journal"
    return url.partition("://")[0].partition("+")[0].lower()


def check_study_url(url: str, what: str = "--study-storage") -> str:
    """`url` with a relative local file made absolute (relative to the current directory); else one line."""
    url = url.strip()
    scheme = kind(url) if "://" in url else ""
    if scheme in SERVER_SCHEMES:
        parts = urlsplit(url)
        if not parts.hostname or not parts.path.strip("/"):
            raise SweepError(f"{what} {masked(url)}: expected {scheme}://USER@HOST:PORT/DATABASE")
        return url
    file = local_file(url)
    if scheme not in ("sqlite", "journal") or not file:
        raise SweepError(f"{what} {masked(url)}: expected {FORMS}")
    if Path(file).is_absolute():
        return url
    prefix = JOURNAL_PREFIX if scheme == "journal" else "sqlite:///"
    query = url.partition("?")[2]
    return f"{prefix}{Path(file).resolve()}" + (f"?{query}" if query and scheme == "sqlite" else "")


def split_password(url: str) -> tuple[str, str | None]:
    """(`url` without its password, the password or None)."""
    if kind(url) not in SERVER_SCHEMES:
        return url, None
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}")), parts.password


def masked(url: str) -> str:
    """`url` as it may be printed: a password replaced by ``***``."""
    bare, password = split_password(url)
    if password is None:
        return bare
    user, _, host = urlsplit(bare).netloc.rpartition("@")
    return urlunsplit(urlsplit(bare)._replace(netloc=f"{user}:***@{host}"))


def open_storage(url: str) -> Any:
    """The Optuna storage object of `url` (Optuna's string form knows no journal file); SQL storages
    retry SQLite's transient locks (`orchestrator.study_store`)."""
    from .study_store import study_storage

    return study_storage(url)


def journal_storage(url: str) -> Any:
    """Optuna's `JournalStorage` in the file of ``journal:///FILE``, locked with ``O_EXCL`` (NFS-safe)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = local_file(url)
    assert path is not None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def engine_kwargs(url: str) -> dict:
    """Server connections that are checked before use (a restarted server or a dropped idle connection
    is reconnected instead of failing the sweep) and fail fast when nothing answers."""
    if kind(url) == "postgresql":
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    if kind(url) == "mysql":
        return {"pool_pre_ping": True, "pool_recycle": 3600}
    return {}


def storage_problem(url: str) -> str | None:
    """None if the study storage at `url` can be opened (its tables created); else one line."""
    try:
        storage = open_storage(url)
        storage.get_all_studies()
    except Exception as exc:  # noqa: BLE001 - a driver, network or permission problem: one line for the user
        reason = first_line(exc)
        if isinstance(exc, ImportError) or "No module named" in reason:
            reason += " (install the database driver: pip install 'cf-amc-sweeps[servers]')"
        return f"cannot open the Optuna study storage {masked(url)}: {reason}"
    finally:
        if "storage" in locals() and hasattr(storage, "engine"):
            storage.engine.dispose()
    return None


def remember_password(password: str | None) -> None:
    """Keep a password given inside --study-storage for this process only (`SweepState.study` reads it)."""
    if password is not None:
        os.environ[STUDY_PASSWORD_ENV] = password
