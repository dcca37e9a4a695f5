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
    spec = write_spec(tiny_spec.replace("train_images: 100, eval_images: 50", "train_images: 60, eval_images: 30"))
    out = workdir / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--num-cpus", "2", "-q"]) == 0
    trials = pd.read_parquet(out / "trials.parquet")
    verified = pd.read_parquet(out / "verified.parquet")
    front = pd.read_csv(out / "report" / "pareto.csv")
    assert set(verified["trial_id"]) == set(front["trial_id"])
    assert set(verified["verify_suite"]) == {"cheap"}
    merged = verified.merge(trials, on="trial_id")
    # the audit rebuilt each trial's own probe: its PGD is the trial's robust_acc; the worst case is below it
    assert (merged["verified_pgd_acc"] == merged["robust_acc"]).all()
    assert (merged["verified_worst_acc"] <= merged["verified_pgd_acc"]).all()
    assert (merged["verified_strong_acc"] >= merged["verified_worst_acc"]).all()
    report = (out / "report" / "report.md").read_text()
    assert "## Front after verification" in report and "robust_acc verified" in report
    assert "verified front (cheap AutoAttack" in capsys.readouterr().out

    first = verified.set_index("trial_id")
    assert main(["report", str(out), "--verify", "--verify-suite", "apgd-ce", "--square-queries", "50",
                 "--no-mlflow"]) == 0
    again = pd.read_parquet(out / "verified.parquet").set_index("trial_id")
    assert set(again["verify_suite"]) == {"apgd-ce"}
    assert (again["verified_pgd_acc"] == first["verified_pgd_acc"]).all()  # same probe, same PGD
    assert "verified front (apgd-ce AutoAttack" in capsys.readouterr().out
