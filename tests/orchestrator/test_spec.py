"""Sweep specs: the shipped examples validate; every kind of bad spec is one line naming the file and
key, exit code 2, and no sweep directory is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.spec import SpecError, load_spec, parse_spec
from orchestrator.verify import VerifySettings

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
SHIPPED = sorted(SPACES.rglob("*.yaml"))


def test_shipped_specs_are_present() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"epsilon", "crops", "replay_steps", "loss_weights", "joint", "paper_table", "pareto_asha", "warm_start",
            "enqueue", "constraints", "row_resources"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(SPACES)))
def test_shipped_specs_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_shipped_specs_of_the_search_features_use_them() -> None:
    assert load_spec(SPACES / "enqueue.yaml").enqueue[0] == {"replay_steps": 3, "alpha": pytest.approx(2 / 255)}
    assert [c.metric for c in load_spec(SPACES / "constraints.yaml").constraints] == ["clean_acc", "train_seconds"]
    rows = load_spec(SPACES / "row_resources.yaml")
    assert rows.space.params[0].resources == {"robust-emp-ssl": {"cpu": 2.0}}
    assert rows.enqueue == [{"row": "cf-amc-ssl"}, {"row": "robust-emp-ssl"}]


def test_parse_full_spec(tiny_spec: str) -> None:
    spec = parse_spec(tiny_spec.replace("space:\n", "scheduler: {type: asha, metric: robust_acc}\nspace:\n")
                      + "  num_crops: {choice: [2, 4]}\n"
                      + "  replay_steps: {int: [1, 4], when: {adversary: free}}\n"
                      + "  lambda_inv: {float: [50, 400], log: true}\n", "t.yaml")
    assert spec.name == "tiny" and spec.preset == "tiny"
    assert spec.metrics == ["clean_acc", "robust_acc"] and spec.modes == ["max", "max"]
    assert (spec.trials, spec.concurrency, spec.time_limit_s) == (3, 2, None)
    assert spec.sampler == "random" and spec.sampler_options == {"seed": 1}
    assert spec.scheduler is not None and spec.scheduler.mode == "max" and spec.scheduler.max_t == 2
    eps = spec.space.params[0]
    assert (eps.kind, eps.low, eps.high) == ("float", 0.0, pytest.approx(16 / 255))
    assert spec.space.names == ["epsilon", "num_crops", "replay_steps", "lambda_inv"]
    assert spec.space.params[2].when == {"adversary": ("free",)}
    assert spec.base_config().epochs == 2


def test_pareto_asha_scheduler_ranks_on_the_objectives(tiny_spec: str, capsys: pytest.CaptureFixture[str],
                                                       write_spec) -> None:
    spec = parse_spec(tiny_spec.replace("space:\n", "scheduler: {type: pareto-asha, grace_period: 1, "
                                                     "reduction_factor: 2}\nspace:\n"), "t.yaml")
    s = spec.scheduler
    assert s is not None and s.type == "pareto-asha" and (s.metric, s.mode) == (None, None)
    assert [(o.metric, o.mode) for o in s.objectives] == [("clean_acc", "max"), ("robust_acc", "max")]
    assert (s.grace_period, s.reduction_factor, s.max_t) == (1, 2, 2)
    path = write_spec(tiny_spec.replace("space:\n", "scheduler: {type: pareto-asha}\nspace:\n"))
    assert main(["validate", str(path)]) == 0
    assert "Pareto-ASHA on clean_acc, robust_acc" in capsys.readouterr().out


def test_preset_and_set_overrides_apply_to_base(tmp_path: Path, tiny_spec: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(tiny_spec)
    spec = load_spec(path, preset="demo", overrides={"epochs": 3})
    assert spec.preset == "demo" and spec.base["epochs"] == 3 and spec.base_config().width == 16


def test_time_limit_and_bundles(tiny_spec: str) -> None:
    text = tiny_spec.replace("budget: {trials: 3, concurrency: 2}", "budget: {trials: 2, time_limit: 30m}")
    text = text.replace("sampler: {type: random, seed: 1}", "sampler: grid")
    text = text.replace("  epsilon: {float: [0, 16/255]}",
                        "  row:\n    choice:\n      a: {method: emp-ssl, num_crops: 4}\n"
                        "      b: {method: robust-simclr, num_crops: 2}")
    spec = parse_spec(text, "t.yaml")
    assert spec.time_limit_s == 1800
    assert spec.space.labels == ("row",)
    assert spec.space.params[0].bundles["b"]["method"] == "robust-simclr"


def test_verify_section(tiny_spec: str) -> None:
    """``verify:`` defaults to the cheap suite on every test image; none turns it off; a mapping sets each part."""
    assert parse_spec(tiny_spec.replace("verify: none\n", ""), "t.yaml").verify == VerifySettings("cheap", 1000, 0)
    assert parse_spec(tiny_spec, "t.yaml").verify is None
    assert parse_spec(tiny_spec.replace("verify: none", "verify: false"), "t.yaml").verify is None
    assert parse_spec(tiny_spec.replace("verify: none", "verify: standard"), "t.yaml").verify == \
        VerifySettings("standard", 1000, 0)
    parsed = parse_spec(tiny_spec.replace("verify: none", "verify: {suite: apgd-ce, square_queries: 300, images: 200}"),
                        "t.yaml").verify
    assert parsed == VerifySettings("apgd-ce", 300, 200)


# (spec text transform, key path expected in the message, another expected fragment)
BAD_SPECS = [
    ("unknown_top_key", lambda t: t + "objective: x\n", "objective", "did you mean 'objectives'"),
    ("unknown_space_key", lambda t: t.replace("epsilon: {float", "epsilonn: {float"), "space.epsilonn",
     "did you mean 'epsilon'"),
    ("unknown_param_key", lambda t: t.replace("16/255]}", "16/255], lg: true}"), "space.epsilon.lg",
     "did you mean 'log'"),
    ("unknown_base_key", lambda t: t.replace("base: {epochs: 2,", "base: {epoch: 2,"), "base.epoch",
     "did you mean 'epochs'"),
    ("wrong_type_trials", lambda t: t.replace("trials: 3", "trials: three"), "budget.trials", "integer"),
    ("wrong_type_bound", lambda t: t.replace("[0, 16/255]", "[0, lots]"), "space.epsilon.float[1]", "number"),
    ("wrong_type_base", lambda t: t.replace("epochs: 2,", "epochs: 2.5,"), "base.epochs", "integer"),
    ("empty_range", lambda t: t.replace("[0, 16/255]", "[8/255, 8/255]"), "space.epsilon.float", "empty range"),
    ("low_above_high", lambda t: t.replace("[0, 16/255]", "[16/255, 0]"), "space.epsilon.float", "above high"),
    ("bound_out_of_field_range", lambda t: t.replace("[0, 16/255]", "[0, 2]"), "space.epsilon.float[1]",
     "outside [0, 1]"),
    ("unknown_metric", lambda t: t.replace("metric: robust_acc,", "metric: robust_accuracy,"),
     "objectives[1].metric", "did you mean 'robust_acc'"),
    ("bad_mode", lambda t: t.replace("mode: max}\n  - {metric: robust", "mode: maximize}\n  - {metric: robust"),
     "objectives[0].mode", "max or min"),
    ("unknown_sampler", lambda t: t.replace("type: random", "type: tpee"), "sampler", "did you mean 'tpe'"),
    ("unknown_preset", lambda t: t.replace("preset: tiny", "preset: tinyy"), "preset", "allowed: paper, demo, tiny"),
    ("invalid_choice_value", lambda t: t + "  method: {choice: [cf-amc-ssl, emp-sssl]}\n", "space.method.choice[1]",
     "did you mean 'emp-ssl'"),
    ("invalid_combination", lambda t: t + "  method: {choice: [emp-ssl, simclr]}\n  num_crops: {choice: [4]}\n",
     "space", "SimCLR uses exactly 2 views"),
    ("log_with_zero", lambda t: t.replace("16/255]}", "16/255], log: true}"), "space.epsilon.log", "low > 0"),
    ("int_for_float_field", lambda t: t.replace("{float: [0, 16/255]}", "{int: [0, 1]}"), "space.epsilon.int",
     "float"),
    ("condition_on_unknown", lambda t: t + "  replay_steps: {int: [1, 3], when: {adversery: free}}\n",
     "space.replay_steps.when.adversery", "did you mean 'adversary'"),
    ("scheduler_metric", lambda t: t + "scheduler: {type: asha, metric: clean_accc}\n", "scheduler.metric",
     "did you mean 'clean_acc'"),
    ("scheduler_type", lambda t: t + "scheduler: {type: pareto-ash}\n", "scheduler.type",
     "did you mean 'pareto-asha'"),
    ("pareto_asha_metric", lambda t: t + "scheduler: {type: pareto-asha, metric: robust_acc}\n", "scheduler.metric",
     "not used by pareto-asha, which ranks trials on all the objectives (clean_acc, robust_acc)"),
    ("pareto_asha_mode", lambda t: t + "scheduler: {type: pareto-asha, mode: max}\n", "scheduler.mode",
     "use type: asha to stop on one metric"),
    ("pareto_asha_reduction_factor", lambda t: t + "scheduler: {type: pareto-asha, reduction_factor: 1}\n",
     "scheduler.reduction_factor", "must be > 1"),
    ("pareto_asha_grace_period", lambda t: t + "scheduler: {type: pareto-asha, grace_period: 3}\n",
     "scheduler.grace_period", "above max_t=2"),
    ("pareto_asha_eval_every", lambda t: t.replace("base: {epochs: 2,", "base: {epochs: 2, eval_every: 2,")
     + "scheduler: {type: pareto-asha}\n", "base.eval_every", "must be 1 with the pareto-asha scheduler"),
    ("asha_without_metric", lambda t: t + "scheduler: {type: asha}\n", "scheduler.metric",
     "is required with type: asha"),
    ("missing_objectives", lambda t: t.replace("objectives:", "objectivez:"), "objectivez", "objectives"),
    ("negative_gpu", lambda t: t.replace("resources: {cpu: 1}", "resources: {cpu: 1, gpu: -1}"), "resources.gpu",
     "fraction"),
    ("malformed_yaml", lambda t: t.replace("budget: {trials: 3, concurrency: 2}", "budget: {trials: 3, [concurrency"),
     "malformed YAML at line 7", "started at line 6"),
    ("not_a_mapping", lambda t: "- just\n- a list\n", "the spec must be a mapping", "list"),
    ("verify_unknown_suite", lambda t: t.replace("verify: none", "verify: chep"), "verify", "did you mean 'cheap'"),
    ("verify_unknown_key", lambda t: t.replace("verify: none", "verify: {suit: cheap}"), "verify.suit",
     "did you mean 'suite'"),
    ("verify_no_queries", lambda t: t.replace("verify: none", "verify: {square_queries: 0}"),
     "verify.square_queries", "below the minimum 1"),
]


@pytest.mark.parametrize("case", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_bad_spec_is_one_line_exit_2_no_sweep_dir(case, command: str, write_spec, workdir: Path, tiny_spec: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, transform, key, fragment = case
    path = write_spec(transform(tiny_spec), "bad.yaml")
    argv = [command, str(path)] + (["--out", str(workdir / "out")] if command == "sweep" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and key in err and fragment in err, err
    assert not (workdir / "out").exists() and not (workdir / "runs").exists()


def test_default_sweep_dir_not_created_on_bad_spec(write_spec, workdir: Path, tiny_spec: str, capsys) -> None:
    path = write_spec(tiny_spec.replace("trials: 3", "trials: 0"))
    assert main(["sweep", str(path)]) == 2
    assert "budget.trials: 0 is below the minimum 1" in capsys.readouterr().err
    assert not (workdir / "runs").exists()


def test_missing_file_and_bad_set(workdir: Path, write_spec, tiny_spec: str, capsys) -> None:
    assert main(["validate", "nope.yaml"]) == 2
    assert "nope.yaml: no such file" in capsys.readouterr().err
    path = write_spec(tiny_spec)
    assert main(["validate", str(path), "--set", "epsilonn=3"]) == 2
    assert "did you mean 'epsilon'" in capsys.readouterr().err
    assert main(["validate", str(path), "--set", "epsilon=2"]) == 2
    assert "base.epsilon: 2.0 is outside [0, 1]" in capsys.readouterr().err


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(SpecError, match=r"^x.yaml: name: is required$"):
        parse_spec("objectives: []\nbudget: {}\nspace: {}\n", "x.yaml")
