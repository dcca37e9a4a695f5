"""Every sweep spec the docs show is one `orchestrator validate` accepts, and the docs refer to nothing
outside the repository.

A YAML block in README.md or docs/*.md is checked unless the line before its opening fence is
``<!-- not a spec -->`` (a fragment or a deliberate counter-example).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.spec import parse_spec
from tests.specs import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SKIP_MARK = "<!-- not a spec -->"
FENCE = re.compile(r"^```yaml\s*$")


def yaml_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every checked ```yaml block in `path`."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            start = i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if not (start > 0 and lines[start - 1].strip() == SKIP_MARK):
                blocks.append((start + 1, "\n".join(lines[start + 1:end]) + "\n"))
            i = end
        i += 1
    return blocks


BLOCKS = [(path, line, text) for path in DOCS for line, text in yaml_blocks(path)]


def test_the_docs_show_specs() -> None:
    assert any(path.name == "README.md" for path, _, _ in BLOCKS)  # the README's spec reference is checked


@pytest.mark.parametrize("path,line,text", BLOCKS, ids=[f"{p.name}:{n}" for p, n, _ in BLOCKS])
def test_yaml_block_is_a_valid_spec(path: Path, line: int, text: str) -> None:
    spec = parse_spec(text, f"{path.name}:{line}")
    assert spec.trials >= 1 and spec.space.params


def test_the_readme_example_warns_about_nothing() -> None:
    """The reference example declares its conditional parameter after the bundle that switches the
    adversary: no declaration-order warning."""
    readme = [text for path, _, text in BLOCKS if path.name == "README.md" and "when:" in text]
    assert readme and all(not parse_spec(text).warnings for text in readme)


def test_a_condition_before_the_bundle_that_changes_it_is_warned_about() -> None:
    text = (REPO / "README.md").read_text()
    spec = next(t for p, _, t in BLOCKS if p.name == "README.md" and "when:" in t)
    row = spec[spec.index("  row:"):spec.index("  epsilon:")]
    reordered = spec.replace(row, "") + row  # `row` now after `replay_steps ... when: {adversary: free}`
    warnings = parse_spec(reordered, "reordered.yaml").warnings
    assert any("space.replay_steps.when.adversary" in w and "'row'" in w for w in warnings), warnings
    assert "declaration order" in text or "order they are declared" in text


def test_nothing_refers_to_files_outside_the_repository() -> None:
    pattern = re.compile(r"\.\./shared|METHOD_SPEC|STACK_NOTES|DESIGN\.md|README_SECTION|[Ii]ssue #\d")
    tracked = [p for p in REPO.rglob("*") if p.suffix in (".py", ".md", ".yaml", ".toml") and p.is_file()
               and not any(part.startswith(".") or part in ("runs", "build") for part in p.relative_to(REPO).parts)]
    hits = [f"{p.relative_to(REPO)}:{n}" for p in tracked if p != Path(__file__)
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
