"""The evaluation's other probes: the robust probe (fitted on PGD examples of the frozen encoder) and the
n-crop probe (the method's SGD recipe), clean and under attack. Seconds on a CPU: the tiny preset."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trainable.evaluate as ev
from trainable.config import preset
from trainable.loop import Trial

EPS = 8 / 255


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainable/conftest.py


@pytest.fixture(scope="module")
def trial() -> Trial:
    """A tiny randomly initialised encoder (frozen, eval mode) with its probe and test images."""
    t = Trial(preset("tiny", epochs=0, train_images=60, eval_images=40, probe_epochs=2, eval_pgd_steps=3))
    t.model.eval().requires_grad_(False)
    return t


def _data(trial: Trial) -> tuple[torch.Tensor, ...]:
    return trial._eval_tensors()


def test_robust_probe_trains_on_adversarial_examples(trial, monkeypatch) -> None:
    x_train, y_train, _, _ = _data(trial)
    seen = []
    attack = ev.probe_attack

    def recording(encoder, head, images, labels, epsilon, alpha, steps):
        x_adv = attack(encoder, head, images, labels, epsilon, alpha, steps)
        with torch.no_grad():  # the loss at the probe's weights of this very step, clean and attacked
            clean = F.cross_entropy(head(encoder.features(images)), labels).item()
            adv = F.cross_entropy(head(encoder.features(x_adv)), labels).item()
        seen.append((images.clone(), x_adv.clone(), clean, adv, head.weight.detach().clone()))
        return x_adv

    monkeypatch.setattr(ev, "probe_attack", recording)
    ev.train_robust_probe(trial.model, x_train, y_train, 10, epochs=2, lr=3e-4, batch_size=32, epsilon=EPS,
                          alpha=0.01, steps=5, generator=torch.Generator().manual_seed(0))
    assert len(seen) == 2 * 2  # every minibatch of every epoch (60 images, batch 32) is attacked
    for x, x_adv, clean, adv, _ in seen:
        delta = x_adv - x
        assert delta.abs().amax() > 0.5 * EPS  # a real perturbation, not the clean batch
        assert delta.abs().amax() <= EPS + 1e-6  # inside the epsilon ball
        assert x_adv.min() >= 0 and x_adv.max() <= 1  # and the pixel box
        assert adv > clean  # it is adversarial to the probe as it is at that step
    assert not torch.equal(seen[0][4], seen[-1][4])  # the probe moved between the attacks


def test_robust_probe_is_the_standard_probe_plus_the_attack(trial) -> None:
    """With a zero budget the robust probe is the standard probe (same recipe, same draws); with a budget it is
    not: the only difference between the two is the attack on the inputs."""
    x_train, y_train, _, _ = _data(trial)
    kwargs = dict(epochs=3, lr=3e-4, batch_size=32, alpha=0.01, steps=3)
    standard = ev.train_probe(ev.extract_features(trial.model, x_train), y_train, 10, 3, 3e-4, 32,
                              torch.Generator().manual_seed(5))
    zero = ev.train_robust_probe(trial.model, x_train, y_train, 10, epsilon=0.0,
                                 generator=torch.Generator().manual_seed(5), **kwargs)
    robust = ev.train_robust_probe(trial.model, x_train, y_train, 10, epsilon=EPS,
                                   generator=torch.Generator().manual_seed(5), **kwargs)
    assert torch.allclose(zero.weight, standard.weight, atol=1e-5)
    assert torch.allclose(zero.bias, standard.bias, atol=1e-5)
    assert (robust.weight - standard.weight).abs().max() > 1e-3


def test_ncrop_probe_uses_the_methods_sgd_recipe(trial, monkeypatch) -> None:
    cfg = preset("tiny", ncrop_eval=2)
    assert cfg.ncrop_probe == "sgd"  # the method's recipe is the default n-crop probe
    head = torch.nn.Linear(8, 3)
    opt, sched, epochs, batch = ev.ncrop_probe_optimizer(head, cfg)
    assert isinstance(opt, torch.optim.SGD) and isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.03, 0.9, 5e-5, False)
    assert sched.T_max == 100 and epochs == 100 and batch == 100

    made = []
    original = ev.ncrop_probe_optimizer
    monkeypatch.setattr(ev, "ncrop_probe_optimizer", lambda h, c: made.append(original(h, c)) or made[-1])
    batches: list[int] = []
    new_head = ev.new_head

    def counted(*args):
        h = new_head(*args)
        h.register_forward_hook(lambda m, inp, out: batches.append(len(inp[0])))
        return h

    monkeypatch.setattr(ev, "new_head", counted)
    feats, labels = torch.randn(250, 8), torch.arange(250) % 3
    ev.train_ncrop_probe(feats, labels, 3, cfg.replace(ncrop_probe_epochs=4), torch.Generator().manual_seed(0))
    opt, sched, _, _ = made[0]
    assert batches == [100] * (2 * 4)  # batch 100, the incomplete last batch dropped, 4 epochs
    assert sched.last_epoch == 4 and opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to 0

    adam, none, epochs, batch = ev.ncrop_probe_optimizer(head, cfg.replace(ncrop_probe="adam"))
    assert isinstance(adam, torch.optim.Adam) and none is None
    assert (adam.param_groups[0]["lr"], epochs, batch) == (cfg.probe_lr, cfg.probe_epochs, cfg.probe_batch_size)


def test_ncrop_robust_set_is_a_subset_of_the_clean_one(trial) -> None:
    x_train, y_train, x_test, y_test = _data(trial)
    recipe = ev.recipe_for("emp", "crop")
    feats = ev.ncrop_features(trial.model, x_train, 2, recipe, torch.Generator().manual_seed(1))
    head = ev.train_probe(feats, y_train, 10, 20, 1e-2, 64, torch.Generator().manual_seed(2)).requires_grad_(False)
    clean, robust = ev.ncrop_flags(trial.model, head, x_test, y_test, 2, recipe, torch.Generator().manual_seed(3),
                                   EPS, 0.01, 3, batch_views=16)
    assert clean.shape == robust.shape == (len(x_test),)
    assert not (robust & ~clean).any() and robust.sum() <= clean.sum()
    assert clean.sum() > 0  # not vacuous
    same, unattacked = ev.ncrop_flags(trial.model, head, x_test, y_test, 2, recipe,
                                      torch.Generator().manual_seed(3), 0.0, 0.01, 3, batch_views=16)
    assert torch.equal(same, clean) and torch.equal(unattacked, clean)  # same views; a zero budget moves nothing


def test_evaluate_reports_the_probes_and_leaves_the_other_metrics_alone(trial) -> None:
    x_train, y_train, x_test, y_test = _data(trial)
    base = preset("tiny", epochs=0, train_images=60, eval_images=40, probe_epochs=2, eval_pgd_steps=3)
    plain = ev.evaluate(trial.model, base, x_train, y_train, x_test, y_test, 10, seed=7)
    cfg = base.replace(robust_probe=True, robust_probe_steps=2, ncrop_eval=2, ncrop_probe_epochs=5)
    both = ev.evaluate(trial.model, cfg, x_train, y_train, x_test, y_test, 10, seed=7)
    names = set(cfg.metric_names()) - {"train_loss", "epoch", "train_seconds", "samples_per_second"}
    assert names <= set(both)
    assert {"robust_probe_clean_acc", "robust_probe_robust_acc", "ncrop_acc", "ncrop_robust_acc"} <= names
    for key, value in plain.items():
        assert both[key] == value, key  # the standard probe's metrics do not depend on the other probes
    assert 0.0 <= both["ncrop_robust_acc"] <= both["ncrop_acc"] <= 1.0
    assert 0.0 <= both["robust_probe_robust_acc"] <= 1.0 and 0.0 <= both["robust_probe_clean_acc"] <= 1.0
