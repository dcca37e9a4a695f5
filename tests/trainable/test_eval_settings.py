"""Evaluation settings: the strong-attack knobs validate in one line, and evaluation seeds depend on
the trial's seed only (never on `epochs` or the epoch evaluated)."""

from __future__ import annotations

import json

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


def test_train_audit_reuses_the_trials_probe_and_reports_every_check(capsys) -> None:
    pytest.importorskip("pyautoattack")
    from orchestrator.cli import main

    sets = ["epochs=0", "train_images=40", "eval_images=24", "probe_epochs=2", "eval_pgd_steps=3",
            "autoattack_suite=apgd-ce", "square_queries=20", "threads=1"]
    argv = ["train", "--preset", "tiny", "--audit", "--json", "--no-progress"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "masking audit on 24 images" in out
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["audit_pgd_acc"] == metrics["robust_acc"]  # the audit rebuilt the evaluation's probe
    assert metrics["audit_clean_acc"] == metrics["clean_acc"]
    for check in ("ladder", "chance", "strong_vs_pgd", "gradient_free_vs_whitebox"):
        assert metrics[f"audit_{check}"] in (0.0, 1.0)
