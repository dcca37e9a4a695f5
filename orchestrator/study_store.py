"""The Optuna study's storage with SQLite's transient "database is locked" retried.

Several processes write one study (the driver's searcher, `orchestrator check`/`report`, a user's
notebook); SQLite then answers "database is locked" (or "busy") once its own busy timeout has passed.
`RetryingRDBStorage` retries every storage call with exponential backoff for up to
``CFAMC_STUDY_RETRY_S`` seconds (default 60) and logs each wait; past that the error is raised, and
the caller records it visibly (the searcher logs it and the sweep's final repair tells the trial
again; `orchestrator check` lists what is still wrong). Other errors (disk full, a bad URL) are
raised at once.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from typing import Any, Callable

import optuna
from optuna.storages import RDBStorage

log = logging.getLogger(__name__)

RETRY_ENV = "CFAMC_STUDY_RETRY_S"
DEFAULT_RETRY_S = 60.0
TRANSIENT = ("database is locked", "database is busy", "database table is locked")


def retry_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(RETRY_ENV, DEFAULT_RETRY_S)))
    except ValueError:
        return DEFAULT_RETRY_S


def is_transient(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy" anywhere in the exception's chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if any(t in str(seen).lower() for t in TRANSIENT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def with_retry(func: Callable[..., Any], *args: Any, what: str = "study", **kwargs: Any) -> Any:
    """`func(*args, **kwargs)`, retried with backoff while the error is transient (`is_transient`)."""
    deadline = time.monotonic() + retry_seconds()
    delay = 0.2
    while True:
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is SQLite's transient lock
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("Optuna %s: %s; retrying in %.1fs", what, "database is locked", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _retrying(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return with_retry(method, self, *args, what=method.__name__, **kwargs)

    return wrapper


class RetryingRDBStorage(RDBStorage):
    """`optuna.storages.RDBStorage` whose public calls are retried while the database is locked."""


for _name, _member in list(vars(RDBStorage).items()):
    if inspect.isfunction(_member) and not _name.startswith("_"):
        setattr(RetryingRDBStorage, _name, _retrying(_member))


def study_storage(url: str) -> Any:
    """The storage of a study URL: ``journal:///FILE`` (Optuna's journal file) or ``sqlite:///...``,
    ``postgresql://...``, ``mysql://...`` (`orchestrator.study_storage`), retried while locked."""
    from .study_storage import engine_kwargs, journal_storage, kind

    if kind(url) == "journal":
        return journal_storage(url)
    return with_retry(RetryingRDBStorage, url, engine_kwargs=engine_kwargs(url), what="connect")


def load_study(url: str, name: str) -> optuna.Study:
    """The study `name` at `url` (KeyError when it does not exist)."""
    return optuna.load_study(study_name=name, storage=study_storage(url))
