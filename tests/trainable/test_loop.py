"""The trial loop: reports, evaluation cadence, exact resume, NaN guard, frozen evaluation, safe checkpoints."""

import json
import pickle

import pytest
import torch

from orchestrator.cli import main
from trainable.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainable.config import preset
from trainable.loop import TrainingDiverged, Trial, train
from trainable.methods import TrainingMethod

TINY = dict(train_images=120, eval_images=60, batch_size=20, eval_pgd_steps=2, probe_epochs=2)


class Crash(Exception):
    pass


def test_reports_every_epoch_with_evaluation_at_cadence_and_end():
    cfg = preset("tiny", epochs=3, eval_every=2, ncrop_eval=2, **TINY)
    reports = []
    final = train(cfg, reporter=lambda m, write: reports.append(m))
    assert [r["epoch"] for r in reports] == [1.0, 2.0, 3.0]
    assert "clean_acc" not in reports[0]
    assert "clean_acc" in reports[1] and "clean_acc" in reports[2]
    for key in cfg.metric_names():
        assert key in final
    assert 0.0 <= final["clean_acc"] <= 1.0 and 0.0 <= final["robust_acc"] <= final["clean_acc"] + 1e-9
    assert final["robust_acc"] == final["robust_acc@8/255"]
    assert final["eval_images"] == 60 and final["eval_pgd_steps"] == 2
    assert 0.0 <= final["ncrop_acc"] <= 1.0


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path):
    cfg = preset("tiny", epochs=2, eval_every=1, **TINY)
    uninterrupted = train(cfg)

    def crash_after_first_epoch(metrics, write):
        write(tmp_path)
        raise Crash("simulated crash after epoch 1")

    with pytest.raises(Crash):
        train(cfg, reporter=crash_after_first_epoch)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    resumed = train(cfg, resume_from=tmp_path)
    for key in ("clean_acc", "robust_acc", "train_loss", "robust_acc@4/255"):
        assert resumed[key] == uninterrupted[key], key


def test_resume_state_holds_free_delta_and_refuses_other_config(tmp_path):
    cfg = preset("tiny", epochs=1, **TINY)
    train(cfg, reporter=lambda m, write: write(tmp_path))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["free_delta"]["delta"].shape == (cfg.num_crops * cfg.batch_size, 3, 32, 32)
    assert state["free_delta"]["delta"].abs().max() <= cfg.epsilon + 1e-7
    other = Trial(preset("tiny", epochs=1, **{**TINY, "lr": 0.1}))
    with pytest.raises(ValueError, match="lr"):
        other.load_state_dict(state)


def test_epochs_zero_evaluates_the_random_encoder():
    final = train(preset("tiny", epochs=0, **TINY))
    assert final["epoch"] == 0 and 0.0 <= final["clean_acc"] <= 1.0


def test_nan_loss_stops_the_trial_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(TrainingMethod, "step", lambda self, images: torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="nan in epoch 1"):
        train(preset("tiny", epochs=1, **TINY))


def test_zero_epsilon_evaluation_skips_pgd_and_equals_clean(monkeypatch):
    import trainable.evaluate as evaluate

    trial = Trial(preset("tiny", epochs=0, eval_epsilon=0.0, eval_epsilons=(0.0, 8 / 255), **TINY))
    calls = []
    real = evaluate.robust_accuracy
    monkeypatch.setattr(evaluate, "robust_accuracy", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    metrics = trial.evaluate()
    assert calls == [pytest.approx(8 / 255)]  # PGD ran only for the non-zero budget
    assert metrics["robust_acc"] == metrics["robust_acc@0/255"] == metrics["clean_acc"]


def test_evaluation_leaves_the_encoder_unchanged():
    trial = Trial(preset("tiny", epochs=1, **TINY))
    before = {k: v.clone() for k, v in trial.model.state_dict().items()}
    trial.evaluate()
    after = trial.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    assert all(p.grad is None for p in trial.model.parameters())
    assert trial.model.training  # mode restored


def test_checkpoint_with_pickled_code_or_truncation_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "epoch": 1, "x": Payload()}, evil)
    with pytest.raises(CheckpointError, match="corrupt or unsafe"):
        load_checkpoint(evil)
    good = tmp_path / "good.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 2}, good)
    assert load_checkpoint(good)["epoch"] == 2
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"model": 1, "epoch": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "pickle.pt")


def test_cli_train_prints_json_metrics_and_refuses_bad_settings(capsys):
    code = main(["train", "--preset", "tiny", "--no-progress", "--json",
                 "--set", "epochs=1", "--set", "train_images=60", "--set", "eval_images=40",
                 "--set", "eval_pgd_steps=1", "--set", "probe_epochs=1"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(out[-1])
    assert {"clean_acc", "robust_acc", "robust_acc@4/255"} <= metrics.keys()
    assert main(["train", "--preset", "tiny", "--set", "epsilo=8/255"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["orchestrator train: error: --set: unknown setting 'epsilo'; did you mean 'epsilon'?"]
    assert main(["train", "--preset", "tiny", "--set", "epsilon=8"]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--set", "dataset=fashion-mnist",
                 "--set", "data_dir=/nonexistent/fmnist"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("orchestrator train: error")]
    assert len(errors) == 1 and "/nonexistent/fmnist" in errors[0] and "Traceback" not in err
