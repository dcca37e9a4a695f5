"""The paper's table as data, and measured rows beside it for a `paper_table` sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.compare import method_parts, paper_comparison
from analysis.paper_results import PAPER_ROWS
from analysis.results import ResultsError, load_sweep
from orchestrator.cli import main
from orchestrator.spec import load_spec, trial_configs
from trainable.config import METHODS, TrialConfig

SPEC_FILE = Path(__file__).resolve().parents[2] / "search_spaces" / "paper_table.yaml"
CORRECTED_FILE = SPEC_FILE.with_name("paper_table_corrected.yaml")


def bundles() -> dict[str, dict]:
    return yaml.safe_load(SPEC_FILE.read_text())["space"]["row"]["choice"]


def resolved_rows(path: Path = SPEC_FILE) -> dict[str, TrialConfig]:
    """Each row's TrialConfig as the sweep builds it (paper preset, base, bundle)."""
    return {chosen["row"]: config for chosen, config in trial_configs(load_spec(path).space)}


def test_paper_rows_match_the_paper_table_spec() -> None:
    spec = bundles()
    assert [r.row for r in PAPER_ROWS] == list(spec)
    assert len({r.key() for r in PAPER_ROWS}) == len(PAPER_ROWS)  # the match key singles out each row
    reference, corrected = resolved_rows(), resolved_rows(CORRECTED_FILE)
    for row in PAPER_ROWS:
        settings, config = spec[row.row], reference[row.row]
        objective, adversary, views = METHODS[settings["method"]]
        assert (objective, adversary, settings.get("views", views)) == row.key(), row.row
        # epochs are not typed in the spec: the paper preset derives the table's from the method
        assert "epochs" not in settings
        assert (config.num_crops, config.epochs, settings.get("replay_steps")) == (
            row.num_crops, row.epochs, row.replay_steps), row.row
        assert config.profile == "reference" and config.accumulate_attack_grads and config.faithful_schedule
        # the corrected spec: the same rows, only the profile differs
        other = corrected[row.row]
        assert other.profile == "corrected" and not other.accumulate_attack_grads and not other.faithful_schedule
        assert other.to_dict() | QUIRK_VALUES == config.to_dict() | QUIRK_VALUES, row.row
    cf = PAPER_ROWS[-1]
    assert cf.accuracy["cifar10"] == (75.88, 55.97, 33.34) and cf.minutes == 97


QUIRK_VALUES = {"fidelity": "", "accumulate_attack_grads": None, "faithful_schedule": None}


def paper_trials() -> pd.DataFrame:
    """One finished trial per bundle (measured = paper - 1 point, as fractions), plus a failed retry; each
    with the resolved ``config.*`` settings the orchestrator records."""
    rows = []
    configs = resolved_rows()
    for i, (name, settings) in enumerate(bundles().items()):
        paper = PAPER_ROWS[i].accuracy["cifar10"]
        objective, adversary, views = METHODS[settings["method"]]
        resolved = {"objective": objective, "adversary": adversary, "views": settings.get("views", views),
                    "dataset": "cifar10", "epochs": configs[name].epochs, "fidelity": configs[name].fidelity}
        row = {"trial_id": f"p{i}", "status": "finished", "param.row": name,
               "param.objective": None, "param.adversary": None, **{f"param.{k}": v for k, v in settings.items()},
               **{f"config.{k}": v for k, v in resolved.items()},
               "clean_acc": (paper[0] - 1) / 100, "robust_acc@4/255": (paper[1] - 1) / 100,
               "robust_acc@8/255": (paper[2] - 1) / 100, "train_seconds": 60.0 * (i + 1), "seconds": 61.0 * (i + 1)}
        row["robust_acc"] = row["robust_acc@8/255"]
        rows.append(row)
    rows.append({**rows[-1], "trial_id": "p7", "status": "failed", "clean_acc": np.nan})
    frame = pd.DataFrame(rows)
    frame["param.replay_steps"] = frame["param.replay_steps"].astype("Int64")
    return frame


def test_paper_comparison_and_report(tmp_path: Path, make_sweep) -> None:
    sweep_dir = make_sweep(tmp_path / "paper", paper_trials(), spec=SPEC_FILE.read_text())
    sweep = load_sweep(sweep_dir)
    assert sweep.name == "paper_table"
    assert method_parts(sweep.trials.iloc[0]) == ("emp", "pgd", "patch")
    table = paper_comparison(sweep)
    assert list(table["method"]) == [r.label for r in PAPER_ROWS] and (table["dataset"] == "cifar10").all()
    assert (table["trials"] == 1).all()  # the failed retry does not count
    np.testing.assert_allclose(table["clean ours"], table["clean paper"] - 1)
    np.testing.assert_allclose(table["PGD 8/255 ours"], table["PGD 8/255 paper"] - 1)
    np.testing.assert_allclose(table["minutes ours"], np.arange(1, 8))
    assert table["epochs ours"].tolist() == [str(r.epochs) for r in PAPER_ROWS]
    assert (table["profile ours"] == "reference").all()

    assert main(["report", str(sweep_dir), "--no-mlflow"]) == 0
    text = (sweep_dir / "report" / "report.md").read_text()
    assert "## Measured vs the paper" in text and "| Crop-based EMP-FreeAdv = CF-AMC-SSL | cifar10 | 1 | 75.88 | 74.88 |" in text
    assert (sweep_dir / "report" / "paper_comparison.csv").is_file()


def test_rows_without_trials_and_other_datasets(tmp_path: Path, make_sweep) -> None:
    trials = paper_trials().iloc[[6]]
    trials = trials.assign(**{"param.dataset": "cifar100", "config.dataset": "cifar100"})
    sweep = load_sweep(make_sweep(tmp_path / "paper", trials, spec=SPEC_FILE.read_text()))
    table = paper_comparison(sweep).set_index("method")
    assert table.loc["Crop-based EMP-FreeAdv = CF-AMC-SSL", "clean paper"] == pytest.approx(50.74)  # CIFAR-100 row
    assert table["trials"].sum() == 1 and np.isnan(table.loc["Patch-based SimCLR", "clean ours"])


def test_a_sweep_without_resolved_settings_reports_without_the_comparison(tmp_path: Path, make_sweep) -> None:
    """Sweep directories written before trials carried their ``config.*`` settings still get a report;
    it says in one line why the paper comparison is missing."""
    old = paper_trials().drop(columns=[c for c in paper_trials().columns if c.startswith("config.")])
    sweep_dir = make_sweep(tmp_path / "old", old, spec=SPEC_FILE.read_text())
    with pytest.raises(ResultsError, match=r"no config\.objective, .* column .*the paper comparison needs them"):
        paper_comparison(load_sweep(sweep_dir))
    assert main(["report", str(sweep_dir), "--no-mlflow"]) == 0
    text = (sweep_dir / "report" / "report.md").read_text()
    assert "no paper comparison" in text and "## Measured vs the paper" not in text
