"""Evaluation settings: the strong-attack knobs validate in one line, and evaluation seeds depend on
the trial's seed only (never on `epochs` or the epoch evaluated)."""

from __future__ import annotations

import pytest

import trainable.loop as loop
from trainable.config import ConfigError, TrialConfig, preset
from trainable.evaluate import eval_seed


def test_strong_attack_settings_add_their_metrics() -> None:
    cfg = TrialConfig(autoattack=True, autoattack_suite="cheap", eval_restarts=2, square=True)
    assert {"autoattack_acc", "pgd_restarts_acc", "square_acc"} <= set(cfg.metric_names())
    assert "pgd_restarts_acc" not in TrialConfig().metric_names()


@pytest.mark.parametrize("changes, start", [
    (dict(autoattack_suite="fast"), "autoattack_suite: unknown value 'fast'"),
    (dict(eval_alpha=0), "eval_alpha: 0 leaves the evaluation PGD"),
    (dict(eval_restarts=-1), "eval_restarts: -1 is below the minimum 0"),
    (dict(square_queries=0), "square_queries: 0 is below the minimum 1"),
])
def test_bad_strong_attack_settings_fail_in_one_line(changes, start) -> None:
    with pytest.raises(ConfigError) as err:
        TrialConfig(**changes)
    assert str(err.value).startswith(start) and "\n" not in str(err.value)


def test_evaluation_seed_is_independent_of_epochs(monkeypatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(loop, "evaluate", lambda *a, seed, **k: seen.append(seed) or {})
    for epochs, epoch in ((1, 1), (5, 3), (5, 5)):
        trial = loop.Trial(preset("tiny", epochs=epochs, train_images=40, eval_images=20))
        trial.epoch = epoch
        trial.evaluate()
    assert seen == [eval_seed(0)] * 3
    assert eval_seed(0) != 0 and eval_seed(1) != eval_seed(0)
