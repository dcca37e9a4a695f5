"""The front re-verified: at the end of a sweep (cheap AutoAttack suite) and by `report --verify`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main

pytestmark = pytest.mark.slow
pytest.importorskip("pyautoattack")


def test_sweep_ends_with_the_verified_front_and_report_verify_redoes_it(write_spec, workdir: Path, tiny_spec: str,
                                                                       capsys) -> None:
    """The spec's ``verify:`` sets the suite, Square's queries and the images attacked; `report --verify`
    re-verifies with another suite and the same probe."""
    spec = write_spec(tiny_spec.replace("train_images: 100, eval_images: 50", "train_images: 60, eval_images: 30")
                      .replace("verify: none", "verify: {suite: cheap, square_queries: 100, images: 20}"))
    out = workdir / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"]) == 0
    printed = capsys.readouterr()
    assert "verifying the Pareto front (cheap AutoAttack + Square (100 queries) + masking audit, 20 test images)" \
        in printed.err
    trials = pd.read_parquet(out / "trials.parquet")
    verified = pd.read_parquet(out / "verified.parquet")
    front = pd.read_csv(out / "report" / "pareto.csv")
    assert set(verified["trial_id"]) == set(front["trial_id"])
    assert set(verified["verify_suite"]) == {"cheap"}
    assert set(verified["verified_images"]) == {20.0}
    assert (verified["verified_worst_acc"] <= verified["verified_pgd_acc"]).all()
    assert (verified["verified_strong_acc"] >= verified["verified_worst_acc"]).all()
    report = (out / "report" / "report.md").read_text()
    assert "## Front after verification" in report and "robust_acc verified" in report
    assert "verified front (cheap AutoAttack" in printed.out

    # all the test images this time: the audit rebuilt each trial's own probe, so its PGD is the trial's robust_acc
    assert main(["report", str(out), "--verify", "--verify-suite", "apgd-ce", "--square-queries", "50",
                 "--no-mlflow"]) == 0
    again = pd.read_parquet(out / "verified.parquet").merge(trials, on="trial_id")
    assert set(again["verify_suite"]) == {"apgd-ce"} and set(again["verified_images"]) == {30.0}
    assert (again["verified_pgd_acc"] == again["robust_acc"]).all()
    assert (again["verified_worst_acc"] <= again["verified_pgd_acc"]).all()
    assert "verified front (apgd-ce AutoAttack" in capsys.readouterr().out
