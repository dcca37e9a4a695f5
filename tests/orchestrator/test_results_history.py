"""history.parquet ends where Ray Tune's last result does, whichever of Tune's two records lags."""

from __future__ import annotations

import pandas as pd

from orchestrator.results import _aligned_history


def _frame(epochs: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"epoch": [float(e) for e in epochs], "train_loss": [-float(e) for e in epochs],
                         "final": [0.0] * len(epochs), "training_iteration": epochs, "config/lr": [0.1] * len(epochs)})


def test_rows_past_a_restored_checkpoint_are_dropped() -> None:
    """Restored from epoch 2's checkpoint, then ended at once: epoch 3's row describes lost training."""
    last = {"epoch": 2.0, "train_loss": -2.0, "final": 0.0, "training_iteration": 2, "config": {"lr": 0.1}}
    history = _aligned_history("t1", _frame([1, 2, 3]), last, 2)
    assert history["epoch"].tolist() == [1, 2] and history["train_loss"].tolist() == [-1.0, -2.0]


def test_a_last_result_missing_from_the_file_is_added() -> None:
    """The worker was killed right after reporting epoch 3: Tune processed it, its file did not get it."""
    last = {"epoch": 3.0, "train_loss": -3.5, "final": 0.0, "training_iteration": 3, "config": {"lr": 0.1}}
    history = _aligned_history("t1", _frame([1, 2]), last, 3)
    assert history["epoch"].tolist() == [1, 2, 3] and history["train_loss"].tolist() == [-1.0, -2.0, -3.5]
    assert (history["trial_id"] == "t1").all()


def test_an_agreeing_history_is_unchanged() -> None:
    last = {"epoch": 2.0, "train_loss": -2.0, "final": 1.0, "training_iteration": 2}
    history = _aligned_history("t1", _frame([1, 2]), last, 2)
    assert history["epoch"].tolist() == [1, 2] and "config/lr" not in history.columns
