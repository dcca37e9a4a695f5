"""`orchestrator validate` lists what each row trains (profile, epochs, m or K, crops, batch size)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.paper_results import PAPER_ROWS
from orchestrator.cli import main

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


@pytest.mark.parametrize("spec,profile", [("paper_table.yaml", "reference"), ("paper_table_corrected.yaml", "corrected")])
def test_validate_lists_every_paper_row_as_the_paper_trains_it(spec, profile, capsys) -> None:
    assert main(["validate", str(SPACES / spec)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(":")[0].strip(): line for line in lines if line.strip().startswith("row=")}
    batch = {"pgd": 128, "free": 100}
    for paper in PAPER_ROWS:
        objective, adversary, views = paper.key()
        attack = f"m {paper.replay_steps}" if adversary == "free" else "PGD-5"
        size = 512 if objective == "simclr" else batch[adversary]
        line = rows[f"row={paper.row}"]
        assert f"({objective}+{adversary}+{views}), profile {profile}, epochs {paper.epochs}, {attack}, " \
               f"crops {paper.num_crops}, batch {size}" in line, line


def test_validate_shows_the_equal_budget_epochs_per_row(write_spec, capsys) -> None:
    path = write_spec("""
        name: budget
        preset: tiny
        objectives: [{metric: clean_acc, mode: max}]
        budget: {trials: 2}
        sampler: grid
        base: {budget_epochs: 6}
        space:
          row:
            choice:
              pgd: {method: robust-emp-ssl}
              free: {method: cf-amc-ssl, replay_steps: 3, fidelity: reference}
        """)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "row=pgd: robust-emp-ssl (emp+pgd+crop), profile corrected, epochs 6 (budget_epochs 6), PGD-2" in out
    assert "row=free: cf-amc-ssl (emp+free+crop), profile reference, epochs 2 (budget_epochs 6), m 3" in out
