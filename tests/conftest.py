"""Fixtures every test package shares: the repository root, a working directory per test, the tiny
spec (`tests/specs.py`) and a writer for spec files."""

from __future__ import annotations

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
