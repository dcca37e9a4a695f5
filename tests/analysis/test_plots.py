"""Plot helpers: the front's staircase, labels, grouping; the figures themselves are checked by the report test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.plots import (
    FRONT,
    NOT_COUNTED,
    classify,
    format_value,
    interactive_html,
    knob_label,
    knobs_png,
    pareto_png,
    staircase,
)
from analysis.results import Objective

OBJECTIVES = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]


def test_staircase_bounds_the_dominated_region() -> None:
    front = np.array([[0.5, 0.5], [0.8, 0.2], [0.2, 0.9]])
    # Maximisation: from the best-x point (0.8, 0.2) up-left to the best-y point (0.2, 0.9).
    np.testing.assert_allclose(staircase(front, ["max", "max"]),
                               [[0.8, 0.2], [0.5, 0.2], [0.5, 0.5], [0.2, 0.5], [0.2, 0.9]])
    np.testing.assert_allclose(staircase(np.array([[1.0, 3.0], [2.0, 1.0]]), ["min", "min"]),
                               [[1.0, 3.0], [2.0, 3.0], [2.0, 1.0]])
    assert staircase(np.zeros((0, 2)), ["max", "max"]).shape == (0, 2)


def test_labels() -> None:
    assert format_value("param.epsilon", 8 / 255) == "8/255" and format_value("param.epsilon", 0.03) == "0.03"
    assert format_value("param.lr", 0.123456) == "0.123" and format_value("x", None) == "-"
    assert format_value("x", pd.NA) == "-" and format_value("x", float("nan")) == "-"
    row = pd.Series({"param.epsilon": 4 / 255, "param.replay_steps": 3, "param.method": "cf-amc-ssl"})
    assert knob_label(row, ["param.epsilon", "param.replay_steps", "param.method"]) == "eps=4/255 m=3 method=cf-amc-ssl"


def test_classify_groups(make_trials) -> None:
    trials = make_trials()
    shown = classify(trials, OBJECTIVES)
    assert shown.loc[0, "group"] == NOT_COUNTED and shown.loc[1, "group"] == NOT_COUNTED  # early-stopped, failed
    assert shown["knee"].sum() == 1 and shown.loc[shown["knee"], "group"].item() == FRONT
    assert list(shown.index) == list(trials.index)


def test_plots_with_categorical_knobs_and_no_knobs(tmp_path: Path, make_trials) -> None:
    trials = make_trials().assign(**{"param.views": ["crop", "patch"] * 6})
    assert knobs_png(trials, OBJECTIVES, tmp_path / "k.png").stat().st_size > 1000
    constant = trials.drop(columns=["param.epsilon", "param.replay_steps", "param.views"])
    assert pareto_png(constant, OBJECTIVES, tmp_path / "p.png").stat().st_size > 1000
    assert knobs_png(constant, OBJECTIVES, tmp_path / "k2.png").is_file()
    page = interactive_html(trials, OBJECTIVES, tmp_path / "p.html").read_text()
    assert "views: patch" in page
    with pytest.raises(ValueError, match="two objectives"):
        pareto_png(trials, OBJECTIVES[:1], tmp_path / "x.png")
