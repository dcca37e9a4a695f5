"""TrialConfig: defaults from the spec, parsing, one-line errors, presets, device selection."""

import sys

import pytest
import torch

from trainable.config import (
    PRESETS,
    ConfigError,
    TrialConfig,
    metric_name_for_epsilon,
    parse_number,
    parse_overrides,
    preset,
)
from trainable.loop import Trial, resolve_device


def test_defaults_are_the_papers_cf_amc_ssl():
    c = TrialConfig()
    assert c.resolved == ("emp", "free", "crop")
    assert (c.num_crops, c.replay_steps, c.batch_size, c.epochs) == (16, 3, 100, 10)
    assert c.epsilon == pytest.approx(8 / 255) and c.alpha == 0.01
    assert (c.lambda_inv, c.lambda_tcr, c.tcr_eps, c.lr) == (200.0, 1.0, 0.2, 0.3)
    assert not c.accumulate_attack_grads and not c.faithful_schedule
    assert TrialConfig(method="robust-emp-ssl").resolved == ("emp", "pgd", "crop")
    assert TrialConfig(method="robust-emp-ssl").pgd_steps == 5
    assert TrialConfig(method="simclr", num_crops=2).effective_z_dim == 128


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.03", 0.03), (" 1e-4 ", 1e-4), (3, 3.0)])
def test_parse_number_accepts_fractions(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["eight", "8/0", True, None, "1/2/3"])
def test_parse_number_refuses_non_numbers(bad):
    with pytest.raises(ConfigError):
        parse_number(bad)


@pytest.mark.parametrize("overrides,message", [
    (dict(epsilon=8), "epsilon: 8.0 is outside [0, 1]"),
    (dict(num_crops=1), "num_crops: 1 crops; the EMP invariance term needs at least 2"),
    (dict(method="simclr", num_crops=4), "SimCLR uses exactly 2 views"),
    (dict(replay_steps=0), "replay_steps: 0 is below the minimum 1"),
    (dict(method="cf-amc"), "method: unknown value 'cf-amc' (did you mean 'cf-amc-ssl'?)"),
    (dict(dataset="cifar"), "dataset: unknown value 'cifar'"),
    (dict(epochs=1.5), "epochs: expected an integer"),
    (dict(lr=0), "lr: must be > 0"),
])
def test_bad_settings_give_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict(overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_key_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="unknown setting 'replay_step'; did you mean 'replay_steps'"):
        TrialConfig.from_dict({"replay_step": 3})


def test_overrides_are_typed_per_field():
    o = parse_overrides(["epsilon=4/255", "epochs=2", "faithful_schedule=yes", "eval_epsilons=2/255,8/255",
                         "data_dir=none"])
    assert o == {"epsilon": pytest.approx(4 / 255), "epochs": 2, "faithful_schedule": True,
                 "eval_epsilons": (pytest.approx(2 / 255), pytest.approx(8 / 255)), "data_dir": None}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(ConfigError, match="expected true or false"):
        parse_overrides(["faithful_schedule=maybe"])


def test_presets_are_valid_and_replace_rederives_method_parts():
    for name in PRESETS:
        assert isinstance(preset(name), TrialConfig)
    c = preset("demo").replace(method="robust-simclr", num_crops=2)
    assert c.resolved == ("simclr", "pgd", "crop")
    assert c.replace(views="patch").resolved == ("simclr", "pgd", "patch")
    assert TrialConfig.from_dict(c.to_dict()) == c


def test_metric_names():
    assert metric_name_for_epsilon(4 / 255) == "robust_acc@4/255"
    assert metric_name_for_epsilon(0.03) == "robust_acc@0.0300"
    names = preset("tiny", ncrop_eval=2).metric_names()
    assert {"clean_acc", "robust_acc", "robust_acc@4/255", "robust_acc@8/255", "ncrop_acc"} <= set(names)


def test_device_selection_is_explicit():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


def test_autoattack_without_its_package_fails_before_training(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r"need the package pyautoattack: pip install 'pyautoattack>=0\.2,<0\.3'"):
        Trial(preset("tiny", autoattack=True))

