"""Security: specs are plain YAML (no tag can import or run anything), checkpoints are read
weights-only, no loader in the code unpickles or evaluates, the MLflow UI listens on loopback unless told
otherwise, no secret from the environment reaches a sweep's files, and Ray's token authentication is left on."""

from __future__ import annotations

import ast
import json
import os
import pickle
import sqlite3
import textwrap
from pathlib import Path

import pytest
import torch

from orchestrator.cli import main
from tests.specs import REPO, tiny_spec

CODE_DIRS = ("orchestrator", "trainable", "analysis", "scripts")  # what reads users' files
TOOL_DIRS = CODE_DIRS + ("bench", "search_spaces")

TINY_SPEC = tiny_spec(trials=2, epochs=1, base="train_images: 40, eval_images: 20, probe_epochs: 1")



class Payload:
    """Unpickling this runs code: it creates `marker` (what an attacker's checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


# --- YAML ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("snippet", [
    'name: !!python/object/apply:os.system ["touch {marker}"]',
    'base: {{epochs: !!python/object/apply:subprocess.call [["touch", "{marker}"]]}}',
    'description: !!python/object/new:os.system ["touch {marker}"]',
    "preset: !!python/name:os.system",
    "sampler: !!python/module:os",
])
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_python_yaml_tags_are_refused_and_never_run(snippet: str, command: str, workdir: Path, capsys) -> None:
    marker = workdir / "pwned"
    key = snippet.split(":", 1)[0]
    text = "\n".join(line for line in TINY_SPEC.splitlines() if not line.startswith(f"{key}:"))
    path = workdir / "evil.yaml"
    path.write_text(snippet.format(marker=marker) + "\n" + text + "\n")
    argv = [command, str(path)] + (["--out", str(workdir / "out")] if command == "sweep" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: YAML tag '!!python/" in err[0] and "is not allowed" in err[0], err
    assert not marker.exists() and not (workdir / "out").exists()


# --- what the code loads -----------------------------------------------------------------------------------------
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                yield node, f.id
            elif isinstance(f, ast.Attribute):
                parts = [f.attr]
                value = f.value
                while isinstance(value, ast.Attribute):
                    parts.append(value.attr)
                    value = value.value
                parts.append(value.id if isinstance(value, ast.Name) else "<expr>")  # x().eval() is not eval
                yield node, ".".join(reversed(parts))


FORBIDDEN = {"eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads", "pickle.Unpickler",
             "cloudpickle.load", "cloudpickle.loads", "dill.load", "dill.loads", "marshal.load", "marshal.loads",
             "shelve.open", "yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all",
             "importlib.import_module", "pd.read_pickle", "pandas.read_pickle", "torch.jit.load", "jsonpickle.decode"}


def test_no_loader_in_the_code_can_run_what_it_reads() -> None:
    """Every torch.load is weights_only=True, np.load never allow_pickle=True; no pickle, unsafe YAML,
    eval/exec or dynamic import. (Ray's own params.pkl and experiment state are Ray's business.)"""
    problems = []
    files = [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py")]
    assert len(files) > 20
    for path in files:
        for node, name in _calls(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(REPO)}:{node.lineno}: {name}"
            kw = {k.arg: k.value for k in node.keywords}
            literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
            if name in FORBIDDEN and not (name in ("__import__", "importlib.import_module") and literal):
                problems.append(where)
            elif name == "torch.load" and not (isinstance(kw.get("weights_only"), ast.Constant)
                                               and kw["weights_only"].value is True):
                problems.append(where + " without weights_only=True")
            elif name in ("np.load", "numpy.load") and isinstance(kw.get("allow_pickle"), ast.Constant) \
                    and kw["allow_pickle"].value is not False:
                problems.append(where + " with allow_pickle")
    assert not problems, problems


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "epoch": 1, "extra": Payload(marker)}, path)
    return path


def test_load_checkpoint_refuses_a_pickled_payload(tmp_path: Path) -> None:
    from trainable.checkpoint import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    path = _evil_checkpoint(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError, match=r"is corrupt or unsafe and was not loaded: .*") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and not marker.exists()
    # the payload is real: an unsafe load runs it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_train_resume_refuses_a_pickled_checkpoint(workdir: Path, capsys) -> None:
    from trainable.reporting import CHECKPOINT_FILE

    marker = workdir / "pwned"
    _evil_checkpoint(workdir / "ck" / CHECKPOINT_FILE, marker)
    code = main(["train", "--preset", "tiny", "--set", "train_images=40", "--set", "eval_images=20",
                 "--checkpoint-dir", str(workdir / "ck"), "--resume", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith("orchestrator train: error: checkpoint ") and "unsafe and was not loaded" in err[-1]
    assert not marker.exists()


def test_cifar_batches_with_a_pickled_payload_are_refused(tmp_path: Path) -> None:
    from trainable.data import DatasetError, load_dataset

    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(DatasetError):
        load_dataset("cifar10", "test", str(tmp_path))
    assert not marker.exists()


# --- orchestrator ui ----------------------------------------------------------------------------------------
class _FakeServer:
    started: list[list[str]] = []

    def __init__(self, cmd, env=None, **kwargs) -> None:
        _FakeServer.started.append(list(cmd))

    def wait(self, timeout=None) -> int:
        return 0


@pytest.fixture
def fake_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import subprocess

    from orchestrator.layout import SweepState

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    SweepState(name="tiny", preset=None, overrides=[], experiment_path=str(sweep / "tune"),
               tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}", mlflow_experiment_id="1", parent_run_id="abc",
               study_name="tiny", study_url=f"sqlite:///{sweep / 'optuna.db'}", created="now").save(sweep)
    _FakeServer.started = []
    monkeypatch.setattr(subprocess, "Popen", _FakeServer)  # nothing is started or bound
    return sweep


def _host(cmd: list[str]) -> str:
    return cmd[cmd.index("--host") + 1]


def test_ui_binds_to_loopback_by_default_and_says_so(fake_sweep: Path, capsys) -> None:
    from orchestrator.cli import build_parser

    assert build_parser().parse_args(["ui", "x"]).host == "127.0.0.1"
    assert main(["ui", str(fake_sweep)]) == 0
    out, err = capsys.readouterr()
    assert _host(_FakeServer.started[0]) == "127.0.0.1"
    assert "http://127.0.0.1:5000/#/experiments/1/runs/abc" in out and "listening on 127.0.0.1 only" in out
    assert err == ""
    for host in ("localhost", "::1", "127.0.0.2"):
        assert main(["ui", str(fake_sweep), "--host", host]) == 0
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "myhost.example"])
def test_ui_on_a_network_interface_warns_that_it_has_no_authentication(host: str, fake_sweep: Path, capsys) -> None:
    assert main(["ui", str(fake_sweep), "--host", host, "--port", "5055"]) == 0
    out, err = capsys.readouterr()
    assert _host(_FakeServer.started[0]) == host
    assert err.strip().splitlines() == [f"warning: --host {host}: the MLflow UI has no authentication; anyone who "
                                        f"can reach this machine on port 5055 can read and change this sweep's runs"]
    assert "no authentication" in out


# --- secrets ------------------------------------------------------------------------------------------------
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY-5f2c",
    "MY_API_TOKEN": "tok-3b9f1c2d-secret-value-7a41",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-pw-9d8c7b6a5f4e",
    "HF_TOKEN": "hf_FakeTokenForTheLeakTest0123456789",
    "DATABASE_URL": "postgresql://admin:hunter2-db-pass@db.example:5432/x",
}


@pytest.mark.slow
def test_no_secret_from_the_environment_reaches_the_sweep_directory(workdir: Path, monkeypatch, capsys) -> None:
    """A tiny real sweep with secret-looking variables set: none of their values (or names) appears in any
    file of the sweep directory (MLflow's params/tags/metrics, spec, sweep.json, report, Parquet, Ray Tune's
    trial files, checkpoints) nor in the command's output. Also: the local Ray instance ran with token auth."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # Ray's default; restored (unset) after the test
    spec = workdir / "spec.yaml"
    spec.write_text(textwrap.dedent(TINY_SPEC))
    out = workdir / "sweep"
    code = main(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert os.environ.get("RAY_AUTH_MODE") == "token"  # set by ray.init for a new local cluster

    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"mlflow.db", "sweep.json", "spec.yaml", "trials.parquet"} <= names and len(files) > 10, names
    needles = [v.encode() for v in SECRETS.values()] + [k.encode() for k in SECRETS]
    leaks = [(str(p.relative_to(out)), n.decode()) for p in files for n in needles if n in p.read_bytes()]
    leaks += [("output", n.decode()) for n in needles if n in (captured.out + captured.err).encode()]
    assert not leaks, leaks

    db = sqlite3.connect(out / "mlflow.db")
    try:
        rows = [r for table in ("params", "tags", "experiment_tags") for r in db.execute(f"SELECT key, value FROM {table}")]
        rows += list(db.execute("SELECT key, CAST(value AS TEXT) FROM metrics"))
    finally:
        db.close()
    assert rows and any(k == "epsilon" for k, _ in rows)
    text = json.dumps(rows)
    assert not [s for s in list(SECRETS.values()) + list(SECRETS) if s in text]
    assert not [k for k, _ in rows if k.upper().startswith(("ENV", "AWS_", "HF_", "MLFLOW_TRACKING_"))]


def test_ray_token_authentication_is_never_turned_off() -> None:
    """Ray 2.60 turns token auth on for the local instances we start; no code or config of ours opts out."""
    hits = []
    paths = [p for d in TOOL_DIRS for p in (REPO / d).rglob("*") if p.is_file()
             and p.suffix in (".py", ".yaml", ".yml", ".json", ".sh", ".toml", ".cfg", ".ini", "")]
    paths += [REPO / "Makefile", REPO / "pyproject.toml"]
    for path in paths:
        if not path.exists() or "__pycache__" in path.parts:
            continue
        text = path.read_text(errors="replace")
        if "RAY_AUTH_MODE" in text or "AUTH_MODE" in text:
            hits.append(str(path.relative_to(REPO)))
    assert not hits, f"these files touch Ray's auth mode: {hits}"
