"""The driver's settings: the spec's `execution:` section, sampler defaults scaled to the concurrency,
the multi-node storage guard, GPUs judged with the autoscaler's node types, the searcher's
experiment snapshot (flat, no study, resumable), a bundle row's own resources, and the budget from
the command line."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from orchestrator.checks import SpecError
from orchestrator.cluster import shared_storage_problem, trial_resources
from orchestrator.layout import SweepError
from orchestrator.samplers import concurrency_warnings, make_sampler
from orchestrator.spec import parse_spec
from tests.specs import tiny_spec


def _spec(extra: str = "", **changes):
    return parse_spec(tiny_spec(extra=extra, **changes), "spec.yaml")


def test_execution_defaults_and_errors() -> None:
    default = _spec().execution
    assert (default.checkpoint_every, default.keep_checkpoints, default.reuse_actors) == (1, 2, True)
    assert default.num_to_keep == 2 and default.checkpoint_period == "auto" and default.study_storage is None
    custom = _spec("execution: {checkpoint_every: 5, keep_checkpoints: 0, snapshot_every_s: 30, "
                   "reuse_actors: false, study_storage: 'journal:///tmp/s.log'}\n").execution
    assert custom.num_to_keep is None and custom.checkpoint_period == "30" and not custom.reuse_actors
    for bad, key in [("{checkpoint_every: 0}", "execution.checkpoint_every"),
                     ("{keep_checkpoints: -1}", "execution.keep_checkpoints"),
                     ("{snapshot_every_s: 0}", "execution.snapshot_every_s"),
                     ("{reuse_actors: maybe}", "execution.reuse_actors"),
                     ("{study_storage: 'redis://x'}", "execution.study_storage"),
                     ("{snapshot_every: 3}", "execution")]:
        with pytest.raises(SpecError) as err:
            _spec(f"execution: {bad}\n")
        assert f"spec.yaml: {key}" in str(err.value) and "\n" not in str(err.value), bad


def test_samplers_scale_to_the_concurrency() -> None:
    tpe = make_sampler("tpe", {"seed": 0}, {}, 64)
    assert tpe._n_startup_trials == 64 and tpe._constant_liar
    assert not make_sampler("tpe", {}, {}, 1)._constant_liar
    assert make_sampler("tpe", {"n_startup_trials": 5}, {}, 64)._n_startup_trials == 5
    assert make_sampler("nsga2", {}, {}, 64)._population_size == 64
    assert make_sampler("nsga2", {}, {}, 2)._population_size == 50
    keys = [k for k, _ in concurrency_warnings("tpe", {"n_startup_trials": 10}, 64)]
    assert keys == ["sampler.n_startup_trials"]
    assert [k for k, _ in concurrency_warnings("nsga2", {"population_size": 8}, 16)] == ["sampler.population_size"]
    assert concurrency_warnings("tpe", {}, 64) == [] and concurrency_warnings("random", {}, 64) == []
    spec = _spec(sampler="{type: tpe, n_startup_trials: 2}", concurrency=4)
    assert any("sampler.n_startup_trials" in w for w in spec.warnings)


def test_multi_node_cluster_needs_shared_storage() -> None:
    problem = shared_storage_problem("auto", shared=False, nodes=3)
    assert problem is not None and "--storage" in problem and "\n" not in problem
    assert shared_storage_problem("auto", shared=True, nodes=3) is None
    assert shared_storage_problem("auto", shared=False, nodes=1) is None
    assert shared_storage_problem(None, shared=False, nodes=3) is None


def test_gpus_judged_by_live_nodes_and_autoscaler_node_types(capsys) -> None:
    gpu = parse_spec(tiny_spec().replace("resources: {cpu: 1}", "resources: {cpu: 1, gpu: 0.5}"), "spec.yaml")
    cpu_node = [{"CPU": 4.0}]
    assert trial_resources(gpu, node_types=None, nodes=cpu_node) == {"cpu": 1.0}
    assert "no GPUs" in capsys.readouterr().err
    # no GPU node up yet, but the autoscaler can start one: the request is kept and the trials wait
    assert trial_resources(gpu, node_types=[{"CPU": 8.0, "GPU": 1.0}], nodes=cpu_node) == {"cpu": 1.0, "gpu": 0.5}
    assert "autoscaler" in capsys.readouterr().err
    two = parse_spec(tiny_spec().replace("resources: {cpu: 1}", "resources: {cpu: 1, gpu: 2}"), "spec.yaml")
    with pytest.raises(SweepError):
        trial_resources(two, node_types=[{"CPU": 8.0, "GPU": 1.0}], nodes=cpu_node)


def test_searcher_snapshot_holds_no_study_and_resumes(tmp_path: Path) -> None:
    import optuna

    from orchestrator.search import make_searcher
    from orchestrator.study_storage import open_storage

    spec = _spec()
    url = f"sqlite:///{tmp_path / 'optuna.db'}"

    def searcher():
        return make_searcher(spec.space, spec.metrics, spec.modes, "tpe", {"seed": 0}, "s", url, 2)

    first = searcher()
    sizes = []
    for n in range(40):
        tid = f"t{n}"
        assert first.suggest(tid) is not None
        if n < 39:
            first.on_trial_complete(tid, {"clean_acc": 0.5, "robust_acc": 0.1 * (n % 7), "final": 1.0})
        if n in (9, 39):
            first.save(str(tmp_path / "snap.pkl"))
            sizes.append((tmp_path / "snap.pkl").stat().st_size)
    state = pickle.loads((tmp_path / "snap.pkl").read_bytes())
    assert state.get("_ot_study") is None and state.get("_storage") is None  # no study, no cached trials
    assert sizes[1] < sizes[0] + 30 * 200, sizes  # a few bytes per trial (its ids), not its record
    second = searcher()  # what `orchestrator resume` builds, then re-binds and restores into
    second.rebind(url, {"t39"})
    second.restore(str(tmp_path / "snap.pkl"))
    second.on_trial_complete("t39", {"clean_acc": 0.7, "robust_acc": 0.3, "final": 1.0})
    assert second.suggest("t40") is not None
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 40 and {t.user_attrs["tune_trial_id"] for t in done} == {f"t{n}" for n in range(40)}


ROWS = ("  row:\n    choice:\n      cheap: {method: cf-amc-ssl}\n"
        "      costly: {method: robust-emp-ssl, resources: {cpu: 3}}\n"
        "      gpu: {method: emp-ssl, resources: {gpu: 0.5}}")


def test_a_bundle_row_asks_for_its_own_resources_and_threads(capsys) -> None:
    from orchestrator.cluster import RowResources, resources_request
    from orchestrator.sweep import trial_settings
    from trainable.tune_adapter import build_config

    spec = _spec(space=ROWS)
    request = resources_request(spec, node_types=None, nodes=[{"CPU": 4.0, "GPU": 1.0}])
    assert isinstance(request, RowResources) and pickle.loads(pickle.dumps(request)) == request
    assert request({"row": "costly"}).required_resources == {"CPU": 3.0}
    assert request({"row": "cheap"}).required_resources == {"CPU": 1.0}  # the spec's resources: no GPU asked
    assert request({"row": "gpu"}).required_resources == {"CPU": 1.0, "GPU": 0.5}
    assert request({}).required_resources == {"CPU": 1.0}
    settings = trial_settings(spec)
    assert build_config({"row": "costly", "method": "robust-emp-ssl"}, settings).threads == 3
    assert build_config({"row": "cheap", "method": "cf-amc-ssl"}, settings).threads == 1
    # no GPU in the cluster: the row's GPU is dropped with a warning, never requested
    cpu_only = resources_request(spec, node_types=None, nodes=[{"CPU": 4.0}])
    assert cpu_only({"row": "gpu"}).required_resources == {"CPU": 1.0}
    assert "space.row.choice.gpu.resources asks for 0.5 GPU" in capsys.readouterr().err
    with pytest.raises(SweepError, match=r"^space\.row\.choice\.costly\.resources\.cpu: a trial asks for 3 CPUs"):
        resources_request(spec, node_types=None, nodes=[{"CPU": 2.0}])
    # without rows that carry resources the request stays the spec's dict
    assert resources_request(_spec(), node_types=None, nodes=[{"CPU": 4.0}]) == {"cpu": 1.0}


def test_command_line_budget_replaces_the_spec_budget() -> None:
    spec = parse_spec(tiny_spec(), "spec.yaml", budget={"trials": "2", "concurrency": "1", "time_limit": "90s"})
    assert (spec.trials, spec.concurrency, spec.time_limit_s) == (2, 1, 90.0)
    assert parse_spec(tiny_spec(), "spec.yaml", budget={"time_limit": "600"}).time_limit_s == 600.0
    grid = tiny_spec(trials=None, sampler="grid", space="  num_crops: {choice: [2, 4]}")
    assert parse_spec(grid, "spec.yaml", budget={"trials": "1"}).trials == 1
    with pytest.raises(SpecError, match=r"^spec\.yaml: --trials: 3 trials, but the grid has only 2 points$"):
        parse_spec(grid, "spec.yaml", budget={"trials": "3"})
    no_trials = tiny_spec(trials=None)  # budget.trials may come from --trials alone
    assert parse_spec(no_trials, "spec.yaml", budget={"trials": "4"}).trials == 4
