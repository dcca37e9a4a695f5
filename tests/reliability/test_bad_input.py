"""Bad input: every kind of bad spec, --set value, data directory and Ray address is refused by
`validate`, `sweep` and `train` with ONE line on stderr and exit code 2, before anything is created;
a property-based test feeds random specs to `validate` and accepts only exit 0 or a clean one-line exit 2."""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main
from tests.specs import REPO, tiny_spec

TINY_SPEC = tiny_spec(trials=2, epochs=1)



def _write(directory: Path, text: str, name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def _cifar_with_only_test_batch(root: Path) -> Path:
    (root / "cifar-10-batches-py").mkdir(parents=True)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not read by the check")
    return root


def _sub(old: str, new: str) -> Callable[[str, Path], str]:
    def transform(text: str, _tmp: Path) -> str:
        assert old in text, old
        return text.replace(old, new)
    return transform


def _base(extra: str) -> Callable[[str, Path], str]:
    return _sub("base: {epochs: 1,", f"base: {{{extra}, epochs: 1,")


def _space(line: str) -> Callable[[str, Path], str]:
    return lambda text, _tmp: text + f"  {line}\n"


# (id, spec transform (text, tmp dir) -> text, key path in the message, another expected fragment)
BAD_SPECS = [
    ("malformed_yaml", _sub("budget: {trials: 2, concurrency: 2}", "budget: {trials: 2, [concurrency"),
     "malformed YAML at line 7", "started at line 6"),
    ("tab_indented_yaml", _sub("  epsilon:", "\tepsilon:"), "malformed YAML", "line 12"),
    ("unknown_top_key", _sub("sampler:", "samplr:"), "samplr", "did you mean 'sampler'"),
    ("unknown_base_key", _base("epsilonn: 4/255"), "base.epsilonn", "did you mean 'epsilon'"),
    ("unknown_space_key", _space("replay_step: {int: [1, 3]}"), "space.replay_step", "did you mean 'replay_steps'"),
    ("unknown_budget_key", _sub("concurrency: 2}", "concurency: 2}"), "budget.concurency",
     "did you mean 'concurrency'"),
    ("wrong_type_concurrency", _sub("concurrency: 2", "concurrency: two"), "budget.concurrency", "integer"),
    ("wrong_type_log", _sub("16/255]}", "16/255], log: maybe}"), "space.epsilon.log", "true or false"),
    ("wrong_type_base_bool", _base("autoattack: sometimes"), "base.autoattack", "true or false"),
    ("wrong_type_space_not_mapping", _sub("  epsilon: {float: [0, 16/255]}", "  epsilon: 0.1"), "space.epsilon",
     "expected a mapping"),
    ("wrong_type_objectives", _sub("objectives:\n  - {metric: clean_acc, mode: max}\n  - {metric: robust_acc, "
                                   "mode: max}", "objectives: clean_acc"), "objectives", "non-empty list"),
    ("empty_range", _sub("[0, 16/255]", "[8/255, 8/255]"), "space.epsilon.float", "empty range"),
    ("inverted_range", _sub("[0, 16/255]", "[16/255, 0]"), "space.epsilon.float", "above high"),
    ("inverted_int_range", _space("replay_steps: {int: [4, 1]}"), "space.replay_steps.int", "above high"),
    ("empty_choice", _space("num_crops: {choice: []}"), "space.num_crops.choice", "non-empty list"),
    ("epsilon_written_as_8", _base("epsilon: 8"), "base.epsilon", "did you mean 8/255?"),
    ("epsilon_range_in_pixels", _sub("[0, 16/255]", "[0, 16]"), "space.epsilon.float[1]", "did you mean 16/255?"),
    ("epsilon_negative", _base("epsilon: -0.1"), "base.epsilon", "outside [0, 1]"),
    ("eval_epsilon_in_pixels", _base("eval_epsilon: 8"), "base.eval_epsilon", "did you mean 8/255?"),
    ("crops_below_2_for_emp", _base("num_crops: 1"), "base.num_crops", "needs at least 2"),
    ("crops_range_below_2_for_emp", _space("num_crops: {int: [1, 4]}"), "space.num_crops.int[0]",
     "needs at least 2"),
    ("replay_steps_0", _base("replay_steps: 0"), "base.replay_steps", "below the minimum 1"),
    ("replay_steps_range_0", _space("replay_steps: {int: [0, 3]}"), "space.replay_steps.int[0]",
     "below the minimum 1"),
    ("unknown_dataset", _base("dataset: imagenet"), "base.dataset", "allowed: cifar10"),
    ("unknown_method", _base("method: cf-amc"), "base.method", "did you mean 'cf-amc-ssl'"),
    ("unknown_method_in_choice", _space("method: {choice: [emp-ssl, simclrr]}"), "space.method.choice[1]",
     "did you mean 'simclr'"),
    ("unknown_sampler", _sub("type: random", "type: optuna"), "sampler", "allowed: tpe, nsga2"),
    ("unknown_metric", _sub("metric: robust_acc,", "metric: robust_accuracy,"), "objectives[1].metric",
     "did you mean 'robust_acc'"),
    ("metric_not_reported_ncrop", _sub("metric: robust_acc,", "metric: ncrop_acc,"), "objectives[1].metric",
     "only with ncrop_eval > 0"),
    ("metric_not_reported_epsilon", _sub("metric: robust_acc,", "metric: robust_acc@16/255,"),
     "objectives[1].metric", "add 16/255 to base.eval_epsilons"),
    ("data_dir_missing", _base("dataset: cifar10, data_dir: /nonexistent/cifar"), "base.data_dir",
     "/nonexistent/cifar does not exist"),
    ("data_dir_wrong_files", lambda t, tmp: _base(f"dataset: cifar10, data_dir: {tmp}")(t, tmp), "base.data_dir",
     "has no cifar-10-batches-py/"),
    ("data_dir_missing_batches", lambda t, tmp: _base(f"dataset: cifar10, data_dir: "
                                                      f"{_cifar_with_only_test_batch(tmp / 'c')}")(t, tmp),
     "base.data_dir", "is missing data_batch_1"),
    ("fashion_mnist_dir_without_idx", lambda t, tmp: _base(f"dataset: fashion-mnist, data_dir: {tmp}")(t, tmp),
     "base.data_dir", "has no train-images-idx3-ubyte.gz"),
    ("gpu_fraction_above_1", _sub("resources: {cpu: 1}", "resources: {cpu: 1, gpu: 1.5}"), "resources.gpu",
     "fraction in [0, 1]"),
    ("gpu_not_a_number", _sub("resources: {cpu: 1}", "resources: {cpu: 1, gpu: half}"), "resources.gpu",
     "expected a number"),
    ("cpu_zero", _sub("resources: {cpu: 1}", "resources: {cpu: 0}"), "resources.cpu", "must be > 0"),
    ("yaml_list_not_mapping", lambda t, tmp: "- name: tiny\n", "the spec must be a mapping", "list"),
    ("enqueue_not_a_list", lambda t, tmp: t + "enqueue: {epsilon: 0}\n", "enqueue", "non-empty list of points"),
    ("enqueue_unknown_param", lambda t, tmp: t + "enqueue: [{epsilonn: 0}]\n", "enqueue[0].epsilonn",
     "did you mean 'epsilon'"),
    ("enqueue_outside_range", lambda t, tmp: t + "enqueue: [{epsilon: 32/255}]\n", "enqueue[0].epsilon",
     "outside its range [0, 0.06275]"),
    ("enqueue_not_a_bundle", lambda t, tmp: t + "enqueue: [paper-row]\n", "enqueue[0]",
     "'paper-row' is not the name of a bundle; the space has no bundles"),
    ("enqueue_more_than_trials", lambda t, tmp: t + "enqueue: [{epsilon: 0}, {epsilon: 0}, {epsilon: 0}]\n",
     "enqueue", "3 points, more than budget.trials (2)"),
    ("enqueue_with_grid", lambda t, tmp: _sub("type: random", "type: grid")(t, tmp).replace(
        "{float: [0, 16/255]}", "{choice: [0, 8/255]}") + "enqueue: [{epsilon: 0}]\n", "enqueue",
     "the grid sampler evaluates every grid point itself"),
    ("constraint_unknown_metric", lambda t, tmp: t + "constraints: [{metric: clean_accuracy, min: 0.7}]\n",
     "constraints[0].metric", "did you mean 'clean_acc'"),
    ("constraint_without_bound", lambda t, tmp: t + "constraints: [{metric: clean_acc}]\n", "constraints[0]",
     "give min: LOW, max: HIGH or both"),
    ("constraint_min_above_max", lambda t, tmp: t + "constraints: [{metric: clean_acc, min: 0.8, max: 0.7}]\n",
     "constraints[0]", "min 0.8 is above max 0.7"),
    ("constraint_unknown_key", lambda t, tmp: t + "constraints: [{metric: clean_acc, minimum: 0.7}]\n",
     "constraints[0].minimum", "did you mean 'min'"),
    ("bundle_resources_cpu_zero", _sub("  epsilon: {float: [0, 16/255]}", "  row:\n    choice:\n      a: {method: "
                                       "emp-ssl, resources: {cpu: 0}}\n      b: {method: cf-amc-ssl}"),
     "space.row.choice.a.resources.cpu", "must be > 0"),
    ("bundle_resources_unknown_key", _sub("  epsilon: {float: [0, 16/255]}", "  row:\n    choice:\n      a: "
                                          "{method: emp-ssl, resources: {gpus: 1}}\n      b: {method: cf-amc-ssl}"),
     "space.row.choice.a.resources.gpus", "did you mean 'gpu'"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


@pytest.mark.parametrize("case", BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_bad_spec_is_refused_with_one_line(case, command: str, workdir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    name, transform, key, fragment = case
    path = _write(workdir, transform(TINY_SPEC, workdir), "bad.yaml")
    out = workdir / "out"
    argv = [command, str(path)] + (["--out", str(out), "--num-cpus", "1", "-q"] if command == "sweep" else [])
    code, _stdout, err = _run(argv, capsys)
    assert code == 2, (code, err)
    assert len(err) == 1, err
    assert err[0].startswith(f"orchestrator {command}: error: {path}: {key}"), err[0]
    assert fragment in err[0], err[0]
    assert not out.exists() and not (workdir / "runs").exists()  # a refused sweep creates nothing


@pytest.mark.parametrize("pairs,fragment", [
    (["epsilon=8"], "base.epsilon: 8.0 is outside [0, 1]; pixels are in [0, 1]; did you mean 8/255?"),
    (["epsilonn=0.1"], "--set: unknown setting 'epsilonn'; did you mean 'epsilon'?"),
    (["epochs=two"], "--set epochs: expected a number such as 0.03 or 8/255, got 'two'"),
    (["epochs"], "--set 'epochs': expected key=value"),
    (["num_crops=1"], "base.num_crops: 1 crops; the EMP invariance term needs at least 2"),
    (["dataset=cifar10", "data_dir=/nonexistent"], "base.data_dir: cifar10: /nonexistent does not exist"),
])
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_bad_set_values_are_refused(pairs: list[str], fragment: str, command: str, workdir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(workdir, TINY_SPEC)
    argv = [command, str(path)] + [a for p in pairs for a in ("--set", p)]
    argv += ["--out", str(workdir / "out")] if command == "sweep" else []
    code, _, err = _run(argv, capsys)
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert not (workdir / "out").exists() and not (workdir / "runs").exists()


@pytest.mark.parametrize("flags,fragment", [
    (["--trials", "0"], "{spec}: --trials: 0 is below the minimum 1"),
    (["--trials", "two"], "{spec}: --trials: expected an integer >= 1, got 'two'"),
    (["--concurrency", "0"], "{spec}: --concurrency: 0 is below the minimum 1"),
    (["--time-limit", "soon"], "{spec}: --time-limit: expected seconds or a duration such as 90s, 30m, 2h"),
    (["--trials", "1", "--set", "epsilon=0"], "{spec}: enqueue: 2 points, more than budget.trials (1)"),
    (["--warm-start", "{tmp}"], "--warm-start {tmp}: not a sweep directory"),
    (["--resume", "--trials", "4"], "--trials: resume continues with the budget and study the sweep started with"),
    (["--resume", "--warm-start", "{tmp}"], "--warm-start: resume continues with the budget and study"),
])
def test_bad_budget_and_warm_start_flags_are_refused(flags: list[str], fragment: str, workdir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(workdir, TINY_SPEC + "enqueue: [{epsilon: 0}, {epsilon: 8/255}]\n")
    flags = [f.format(tmp=workdir) for f in flags]
    code, _, err = _run(["sweep", str(path), "--out", str(workdir / "out"), "-q", *flags], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("orchestrator sweep: error: ") and fragment.format(spec=path, tmp=workdir) in err[0], err
    assert not (workdir / "out").exists() and not (workdir / "runs").exists()


def test_resume_refuses_budget_flags_in_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["resume", str(workdir), "--concurrency", "3", "--time-limit", "1h"], capsys)
    assert code == 2 and err == ["orchestrator resume: error: --concurrency, --time-limit: resume continues with "
                                 "the budget and study the sweep started with; drop them (start a new sweep to "
                                 "change them)"], err


def test_missing_unreadable_and_binary_spec_files(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage\x00")
    (workdir / "adir.yaml").mkdir()
    for name, fragment in [("nope.yaml", "no such file"), ("binary.yaml", "binary.yaml: "),
                           ("adir.yaml", "cannot be read")]:
        code, _, err = _run(["validate", str(workdir / name)], capsys)
        assert code == 2 and len(err) == 1 and fragment in err[0], (name, err)


def test_large_epsilon_warns_but_is_accepted(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """(64/255, 1] is legal but almost never meant: one warning line, exit 0; 64/255 itself is quiet."""
    path = _write(workdir, _sub("[0, 16/255]", "[0, 100/255]")(TINY_SPEC, workdir))
    code, out, err = _run(["validate", str(path)], capsys)
    assert code == 0 and "OK" in out
    assert err == [f"warning: {path}: space.epsilon: 0.3922 (= 100/255) is a very large perturbation budget "
                   f"(above 64/255); typical values are 4/255 to 16/255"]
    path = _write(workdir, _sub("[0, 16/255]", "[0, 64/255]")(TINY_SPEC, workdir))
    code, out, err = _run(["validate", str(path)], capsys)
    assert code == 0 and err == []
    code, out, err = _run(["validate", str(path), "--set", "epsilon=0.5"], capsys)
    assert code == 0 and len(err) == 1 and "base.epsilon: 0.5 (= 127.5/255) is a very large" in err[0]


def test_cifar_without_data_dir_is_a_warning_for_validate(workdir: Path, capsys) -> None:
    """Shipped specs such as paper_table get data_dir from --set when they run; validate only warns."""
    code, out, err = _run(["validate", str(REPO / "search_spaces" / "paper_table.yaml")], capsys)
    assert code == 0 and "OK" in out
    assert len(err) == 1 and "warning:" in err[0] and "cifar10 needs data_dir" in err[0]


# --- orchestrator train -------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,fragment", [
    (["--set", "epsilon=8"], "epsilon: 8.0 is outside [0, 1]; pixels are in [0, 1]; did you mean 8/255?"),
    (["--set", "epsilon=-1/255"], "epsilon: -0.00392156862745098 is outside [0, 1]"),
    (["--set", "replay_step=3"], "--set: unknown setting 'replay_step'; did you mean 'replay_steps'?"),
    (["--set", "replay_steps=0"], "replay_steps: 0 is below the minimum 1"),
    (["--set", "num_crops=1"], "num_crops: 1 crops; the EMP invariance term needs at least 2"),
    (["--set", "epochs=1.5"], "--set epochs: expected an integer, got '1.5'"),
    (["--set", "method=simclrr"], "method: unknown value 'simclrr' (did you mean 'simclr'?)"),
    (["--set", "dataset=cifar-10"], "dataset: unknown value 'cifar-10' (did you mean 'cifar10'?)"),
    (["--set", "dataset=cifar10", "--set", "data_dir=/nonexistent"], "cifar10: /nonexistent does not exist"),
    (["--set", "dataset=cifar10"], "cifar10: no data_dir given"),
    (["--set", "compile=perhaps"], "--set compile: expected true or false, got 'perhaps'"),
    (["--preset", "huge"], "preset: unknown value 'huge'; allowed: paper, demo, tiny"),
    (["--resume"], "--resume needs --checkpoint-dir"),
])
def test_train_refuses_bad_settings_with_one_line(argv: list[str], fragment: str, workdir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["train", "--preset", "tiny", "--no-progress", *argv], capsys)
    assert code == 2, err
    assert err == [f"orchestrator train: error: {fragment}"] or (len(err) == 1 and fragment in err[0]), err
    assert out == ""


def test_train_warns_about_a_large_epsilon_before_running(workdir: Path, capsys, monkeypatch) -> None:
    import trainable.loop

    def no_training(config, reporter=None, resume_from=None, progress=True):
        return {"clean_acc": 0.5}

    monkeypatch.setattr(trainable.loop, "train", no_training)
    code, out, err = _run(["train", "--preset", "tiny", "--set", "epsilon=0.5", "--no-progress"], capsys)
    assert code == 0 and "clean_acc" in out
    assert err[0].startswith("warning: epsilon: 0.5 (= 127.5/255) is a very large perturbation budget")


# --- Ray addresses ------------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}", "ray://nonexistent.invalid",
                                     "127.0.0.1:notaport"])
def test_unanswering_ray_address_fails_fast_with_one_line(address: str, workdir: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    address = address.format(port=_closed_port())
    path = _write(workdir, TINY_SPEC)
    started = time.monotonic()
    code, _, err = _run(["sweep", str(path), "--address", address, "--out", str(workdir / "out"), "-q"], capsys)
    assert time.monotonic() - started < 60
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("orchestrator sweep: error: ") and address in err[0], err
    assert ("nothing answers" in err[0]) or ("expected 'auto', HOST:PORT" in err[0]), err
    assert not (workdir / "out").exists() and not (workdir / "runs").exists()


def test_ray_probe_is_bounded_by_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that drops packets fails after RAY_PROBE_TIMEOUT_S, not after Ray's minutes of retries."""
    from orchestrator import cluster
    from orchestrator.layout import SweepError

    def blackhole(address, timeout):
        assert timeout == cluster.RAY_PROBE_TIMEOUT_S <= 10
        raise socket.timeout("timed out")

    monkeypatch.setattr(socket, "create_connection", blackhole)
    with pytest.raises(SweepError, match=r"^cannot join the Ray cluster at 10\.1\.2\.3:6379: nothing answers "
                                               r"at 10\.1\.2\.3:6379 \(timed out\)"):
        cluster.probe_ray("10.1.2.3:6379")
    assert cluster._ray_endpoint("ray://head") == ("head", 10001)
    assert cluster._ray_endpoint("head") == ("head", 6379)
    assert cluster._ray_endpoint("[::1]:7000") == ("::1", 7000)


# --- the real command in a subprocess: no traceback, one line ------------------------------------------------
@pytest.mark.parametrize("args,fragment", [
    (["validate", "{spec}", "--set", "epsilon=8"], "did you mean 8/255?"),
    (["validate", "{bad}"], "did you mean 'epsilon'"),
    (["sweep", "{spec}", "--address", "127.0.0.1:{port}", "--out", "{out}"], "nothing answers at 127.0.0.1:"),
])
def test_subprocess_refusal_is_one_line_without_traceback(args: list[str], fragment: str, tmp_path: Path) -> None:
    spec = _write(tmp_path, TINY_SPEC)
    bad = _write(tmp_path, _base("epsilonn: 4/255")(TINY_SPEC, tmp_path), "bad.yaml")
    argv = [a.format(spec=spec, bad=bad, out=tmp_path / "out", port=_closed_port()) for a in args]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert time.monotonic() - started < 60
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"orchestrator {argv[0]}: error: ") and fragment in lines[0], lines
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


# --- property-based: random specs are accepted or refused cleanly ---------------------------------------------
VALID = yaml.safe_load(TINY_SPEC)
KEYS = ["name", "description", "preset", "objectives", "budget", "sampler", "scheduler", "resources", "retries",
        "base", "space", "metric", "mode", "trials", "concurrency", "time_limit", "type", "seed", "cpu", "gpu",
        "float", "int", "choice", "log", "step", "when", "epsilon", "num_crops", "replay_steps", "method",
        "dataset", "data_dir", "adversary", "eval_epsilons", "epochs", "grace_period", "max_t", "asha", "tpe",
        "pareto-asha", "reduction_factor",
        "grid", "row", "x", "", "1", "__import__"]
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10, max_value=300),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["8/255", "1/0", "0/0", "1e400", "-1e400", "nan", "inf", "8 / 255", "/", "3/", "tiny", "demo",
                     "paper", "tpe", "grid", "random", "nsga2", "gp", "asha", "pareto-asha", "max", "min", "clean_acc",
                     "robust_acc", "robust_acc@4/255", "ncrop_acc", "cf-amc-ssl", "simclr", "emp-ssl", "free", "pgd",
                     "crop", "patch", "cifar10", "fashion-mnist", "embedded", "synthetic", "/nonexistent", "30m",
                     "0s", "2h", "-5m", "yes", "no", "", " ", "\x00", "é", "{", "]"]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), scalars.filter(lambda v: v == v)),
                                            inner, max_size=4)),
    max_leaves=12,
)


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_specs(draw: st.DrawFn) -> object:
    """The valid tiny spec with a few random replacements, insertions and deletions."""
    import copy

    spec = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(spec) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = spec
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(values)
        else:
            parent[path[-1]] = draw(values)
    return spec


def _dump(obj: object) -> str:
    try:
        return yaml.safe_dump(obj, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, TypeError):
        return repr(obj)


spec_texts = st.one_of(
    mutated_specs().map(_dump),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=8).map(_dump),
    values.map(_dump),
    st.text(max_size=200),
    st.sampled_from(["", "---", "...", "!!python/object/apply:os.system ['true']", "a: !!binary AAAA", "a: &x [*x]",
                     "a: *nope", "{{{{", "- - - -", "a: 1\na: 2\n", "? [1, 2]\n: 3\n"]),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(text=spec_texts)
def test_random_specs_are_accepted_or_refused_with_one_clean_line(text: str, tmp_path: Path) -> None:
    path = tmp_path / "random.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    lines = err.getvalue().strip().splitlines()
    assert "Traceback" not in err.getvalue()
    if code == 0:
        assert "OK" in out.getvalue() and all(line.startswith("warning: ") for line in lines), err.getvalue()
    else:
        assert code == 2, (code, err.getvalue())
        assert len(lines) == 1 and lines[0].startswith(f"orchestrator validate: error: {path}"), err.getvalue()
