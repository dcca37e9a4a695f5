"""Evaluation settings: the strong-attack and probe knobs validate in one line (off by default), and evaluation seeds depend on
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


def test_probe_settings_are_off_by_default_and_add_their_metrics() -> None:
    for cfg in (TrialConfig(), preset("demo"), preset("paper"), preset("tiny")):
        assert not cfg.robust_probe and cfg.ncrop_eval == 0
        assert not {n for n in cfg.metric_names() if n.startswith(("robust_probe_", "ncrop_"))}
    cfg = TrialConfig(robust_probe=True, ncrop_eval=4)
    assert {"robust_probe_clean_acc", "robust_probe_robust_acc", "ncrop_acc", "ncrop_robust_acc"} <= set(
        cfg.metric_names())
    assert (cfg.ncrop_probe, cfg.ncrop_probe_lr, cfg.ncrop_probe_epochs) == ("sgd", 0.03, 100)
    assert (cfg.robust_probe_epsilon, cfg.robust_probe_alpha, cfg.robust_probe_steps) == (8 / 255, 0.01, 5)
    assert TrialConfig.from_dict({"robust_probe": "true", "robust_probe_epsilon": "4/255"}).robust_probe_epsilon \
        == 4 / 255


def test_an_objective_on_a_probe_metric_that_is_off_says_which_setting_reports_it() -> None:
    from orchestrator.checks import unknown_metric

    off = TrialConfig()
    assert "only with robust_probe: true" in unknown_metric("robust_probe_robust_acc", off)
    assert "only with ncrop_eval > 0" in unknown_metric("ncrop_robust_acc", off)
    assert "robust_probe_robust_acc" in TrialConfig(robust_probe=True).metric_names()


@pytest.mark.parametrize("changes, start", [
    (dict(ncrop_probe="lbfgs"), "ncrop_probe: unknown value 'lbfgs'"),
    (dict(ncrop_probe_lr=0), "ncrop_probe_lr: must be > 0"),
    (dict(ncrop_probe_epochs=0), "ncrop_probe_epochs: 0 is below the minimum 1"),
    (dict(robust_probe="yes"), "robust_probe: expected true or false"),
    (dict(robust_probe_epsilon=0), "robust_probe_epsilon: 0 makes the robust probe a clean one"),
    (dict(robust_probe_epsilon=8), "robust_probe_epsilon: 8.0 is outside [0, 1]; pixels are in [0, 1]; did you mean"),
    (dict(robust_probe_alpha=0), "robust_probe_alpha: 0 leaves"),
    (dict(robust_probe_steps=0), "robust_probe_steps: 0 is below the minimum 1"),
    (dict(robust_probe_epochs=-1), "robust_probe_epochs: -1 is below the minimum 0"),
    (dict(autoattack_suite="fast"), "autoattack_suite: unknown value 'fast'"),
    (dict(eval_alpha=0), "eval_alpha: 0 leaves the evaluation PGD"),
    (dict(eval_restarts=-1), "eval_restarts: -1 is below the minimum 0"),
    (dict(square_queries=0), "square_queries: 0 is below the minimum 1"),
])
def test_bad_evaluation_settings_fail_in_one_line(changes, start) -> None:
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
