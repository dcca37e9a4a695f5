"""How the driver runs a sweep: the spec's ``execution:`` section (all optional).

```yaml
execution:
  study_storage: postgresql://sweeps@db.example:5432/optuna   # default: sqlite in the sweep dir
  checkpoint_every: 1      # epochs between a trial's checkpoints (its last epoch is always saved)
  keep_checkpoints: 2      # checkpoints kept per trial; 0 keeps all
  snapshot_every_s: auto   # seconds between Ray Tune's experiment snapshots, or auto
  reuse_actors: true       # one worker process per slot, reused by the next trial
```

What a driver crash can lose at the defaults: running trials continue from their newest kept
checkpoint (at most ``checkpoint_every`` epochs of work each); trials that started after the last
experiment snapshot (``auto``: at least 10 s apart, and at most 5 % of the driver's time) are
unknown to it and start again from scratch (their Optuna trials are marked FAIL). Ray Tune forces a
snapshot whenever a trial has written ``keep_checkpoints`` checkpoints since the last one (so a
snapshot never points at a deleted checkpoint): with 2, that is at most about one snapshot per
epoch of the fastest trial, whatever the concurrency (with 1 it was one per checkpoint of every
trial); ``keep_checkpoints: 0`` keeps every checkpoint and never forces one.

``reuse_actors`` is safe because the trainable rebuilds everything per trial: `trainable.loop.Trial`
seeds torch's global generator and its own data and view generators from the trial's seed, loads
its datasets and builds a fresh model and optimizer, and sets torch's threads to the trial's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import Checker

KEYS = ("study_storage", "checkpoint_every", "keep_checkpoints", "snapshot_every_s", "reuse_actors")


@dataclass(frozen=True)
class Execution:
    """The spec's ``execution:`` settings (see the module docstring for the defaults' reasons)."""

    study_storage: str | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    snapshot_every_s: float | None = None  # None: Ray Tune's "auto"
    reuse_actors: bool = True

    @property
    def num_to_keep(self) -> int | None:
        """Ray's ``CheckpointConfig(num_to_keep=...)``: None keeps all (and forces no snapshot)."""
        return self.keep_checkpoints or None

    @property
    def checkpoint_period(self) -> str:
        """Ray Tune's ``TUNE_GLOBAL_CHECKPOINT_S``."""
        return "auto" if self.snapshot_every_s is None else f"{self.snapshot_every_s:g}"


def check_execution(checker: Checker, value: Any) -> Execution:
    """The ``execution:`` section, checked (one line naming the key for anything wrong)."""
    if value is None:
        return Execution()
    checker.keys("execution", value, KEYS)
    storage = value.get("study_storage")
    if storage is not None:
        if not isinstance(storage, str) or not storage.strip():
            raise checker.fail("execution.study_storage", f"expected a storage URL, got {storage!r}")
        from .layout import SweepError
        from .study_storage import check_study_url

        try:
            check_study_url(storage, what="")
        except SweepError as exc:
            raise checker.fail("execution.study_storage", str(exc).strip()) from None
    every = checker.integer("execution.checkpoint_every", value.get("checkpoint_every", 1), 1)
    keep = checker.integer("execution.keep_checkpoints", value.get("keep_checkpoints", 2), 0)
    period = value.get("snapshot_every_s", "auto")
    seconds = None
    if period != "auto":
        seconds = checker.number("execution.snapshot_every_s", period)
        if seconds <= 0:
            raise checker.fail("execution.snapshot_every_s", f"must be > 0 seconds or auto, got {period!r}")
    reuse = checker.boolean("execution.reuse_actors", value.get("reuse_actors", True))
    return Execution(storage, every, keep, seconds, reuse)
