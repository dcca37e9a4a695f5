"""The front after verification (`analysis.verified`): which value each objective takes, and which
trials stay on the front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.results import Objective
from analysis.verified import load_verified, verified_name

OBJECTIVES = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]


def _front() -> pd.DataFrame:
    """Three searched-front trials: a trades robustness for clean accuracy against b and c."""
    return pd.DataFrame({"trial_id": ["a", "b", "c"], "status": "finished",
                         "clean_acc": [0.70, 0.76, 0.78], "robust_acc": [0.646, 0.644, 0.30]})


def _verified(tmp_path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).assign(verify_suite="apgd-ce").to_parquet(tmp_path / "verified.parquet", index=False)
    return tmp_path


def test_a_subset_verification_subtracts_what_the_stronger_attacks_broke(tmp_path: Path) -> None:
    """On 200 of 500 images PGD happens to find a and b equally robust (0.64): a's verified value is its
    robust_acc on all images minus the share the stronger attacks broke on top of PGD, not the subset's
    0.64, so a stays on the front; c's stronger attacks break 0.05 more than PGD."""
    sweep = _verified(tmp_path, [
        {"trial_id": "a", "verified_pgd_acc": 0.64, "verified_worst_acc": 0.64, "audit_passed": True},
        {"trial_id": "b", "verified_pgd_acc": 0.64, "verified_worst_acc": 0.63, "audit_passed": True},
        {"trial_id": "c", "verified_pgd_acc": 0.31, "verified_worst_acc": 0.26, "audit_passed": False,
         "audit_failures": "weak evaluation: strong_vs_pgd"},
    ])
    v = load_verified(sweep, _front(), OBJECTIVES)
    assert v is not None
    table = v.table.set_index("trial_id")
    robust = table[verified_name("robust_acc")]
    assert robust["a"] == pytest.approx(0.646)
    assert robust["b"] == pytest.approx(0.634)
    assert robust["c"] == pytest.approx(0.25)
    assert (table[verified_name("clean_acc")] == table["clean_acc"]).all()  # not an attacked metric
    assert set(v.verified_ids) == {"a", "b", "c"} and v.dropped == []
    assert table.loc["c", "audit_failures"] == "weak evaluation: strong_vs_pgd"


def test_a_trial_whose_stronger_attack_breaks_it_falls_off_the_front(tmp_path: Path) -> None:
    """Verified on all its images (PGD there = robust_acc) a's worst case drops below b's: a is dominated
    by b after verification and named as fallen off; a trial without a verification is listed apart."""
    sweep = _verified(tmp_path, [
        {"trial_id": "a", "verified_pgd_acc": 0.646, "verified_worst_acc": 0.50, "audit_passed": False},
        {"trial_id": "b", "verified_pgd_acc": 0.644, "verified_worst_acc": 0.60, "audit_passed": True},
    ])
    v = load_verified(sweep, _front(), OBJECTIVES)
    assert v is not None
    robust = v.table.set_index("trial_id")[verified_name("robust_acc")]
    assert robust["a"] == pytest.approx(0.50) and robust["b"] == pytest.approx(0.60)
    assert v.dropped == ["a"] and v.unverified == ["c"] and v.verified_ids == ["b"]
