"""Shared helpers for the orchestrator tests: tiny spec files, a working directory per test."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
SPACES = REPO / "search_spaces"

TINY_SPEC = """\
name: tiny
preset: tiny
objectives:
  - {metric: clean_acc, mode: max}
  - {metric: robust_acc, mode: max}
budget: {trials: 3, concurrency: 2}
sampler: {type: random, seed: 1}
resources: {cpu: 1}
base: {epochs: 2, train_images: 100, eval_images: 50, probe_epochs: 2}
space:
  epsilon: {float: [0, 16/255]}
"""


@pytest.fixture
def tiny_spec() -> str:
    """A valid 3-trial spec on the tiny preset (YAML text)."""
    return TINY_SPEC


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside its own temporary directory (the default runs/ dir lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_spec(workdir: Path) -> Callable[[str, str], Path]:
    """Write YAML text (dedented) to a spec file in the working directory; return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
