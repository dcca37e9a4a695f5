"""The contract between `trainable.loop.train` and whoever watches a trial (CLI bar, Ray Tune).

`train` calls the reporter once per epoch, after the epoch's training (and its evaluation, on
evaluated epochs). `metrics` always holds `epoch`, `train_loss`, `train_seconds`,
`samples_per_second`; evaluated epochs (every `eval_every`, and always the last) add
`clean_acc`, `robust_acc` and `robust_acc@{eps}` for each eval epsilon. `write_checkpoint(d)`
writes the complete trial state atomically to `d / CHECKPOINT_FILE`; a later
`train(config, resume_from=d)` continues exactly from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

CHECKPOINT_FILE = "checkpoint.pt"


class Reporter(Protocol):
    def __call__(self, metrics: dict[str, float], write_checkpoint: Callable[[Path], Path]) -> None: ...
