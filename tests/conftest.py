"""Fixtures every test package shares: the repository root, a working directory per test, the tiny
spec (`tests/specs.py`) and a writer for spec files; and a guard that keeps tests independent of
their order."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from tests.specs import REPO
from tests.specs import tiny_spec as make_tiny_spec


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def tiny_spec() -> str:
    """The default tiny spec as YAML text (3 trials over epsilon, 2 at a time, 2 epochs)."""
    return make_tiny_spec()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside its own temporary directory (the default runs/ dir lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_spec(workdir: Path) -> Callable[..., Path]:
    """Write YAML text (dedented) to a spec file in the working directory; return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


# Variables Ray sets in this process together with a process-wide config it cannot undo: the first local
# `ray.init` turns token authentication on (RAY_AUTH_MODE=token and a cached RayConfig). Removing the
# variable afterwards leaves the two disagreeing, and the processes of a cluster started later from the
# test process (ray.cluster_utils.Cluster) then never run an actor ("cancelled before it started").
RAY_PROCESS_ENV = ("RAY_AUTH_MODE",)


@pytest.fixture(autouse=True)
def process_state_is_restored():
    """Each test leaves the process as it found it: torch's thread counts, grad mode and default
    dtype, the working directory, the environment, and no Ray left connected.

    What a test changed is put back (so later tests never inherit it) and the test fails with a
    line naming what leaked, so the leak is fixed where it is made.
    """
    torch = sys.modules.get("torch")
    before_torch = _torch_state(torch) if torch is not None else None
    cwd, env = os.getcwd(), dict(os.environ)
    yield
    leaks = []
    torch = sys.modules.get("torch")
    if torch is not None:
        now = _torch_state(torch)
        reference = before_torch or {"threads": now["threads"], "interop": now["interop"],
                                     "grad": True, "dtype": torch.float32}
        for key, value in reference.items():
            if now[key] != value:
                leaks.append(f"torch {key} {value} -> {now[key]}")
        if now["threads"] != reference["threads"]:
            torch.set_num_threads(reference["threads"])
        torch.set_grad_enabled(reference["grad"])
        torch.set_default_dtype(reference["dtype"])
    if os.getcwd() != cwd:
        leaks.append(f"working directory {cwd} -> {os.getcwd()}")
        os.chdir(cwd)
    changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
    if changed:
        kept = {k: os.environ[k] for k in RAY_PROCESS_ENV if k in os.environ}
        os.environ.clear()
        os.environ.update(env)
        os.environ.update(kept)
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        leaks.append("Ray still connected")
        ray.shutdown()
    if leaks:
        pytest.fail("the test changed process state it did not restore: " + "; ".join(leaks), pytrace=False)


def _torch_state(torch) -> dict:
    return {"threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "grad": torch.is_grad_enabled(), "dtype": torch.get_default_dtype()}
