"""Pareto front, ranks, crowding distance, hypervolume and knee against brute force and hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.pareto import (
    NonFiniteRowsWarning,
    crowding_distances,
    dominates,
    front,
    hypervolume,
    hypervolume_by_trial,
    hypervolume_over_trials,
    knee_point,
    knee_trial,
    non_dominated_ranks,
    pareto_front,
    rank_trials,
)
from analysis.results import Objective


# --- brute force --------------------------------------------------------------------------------------
def brute_dominates(p: np.ndarray, q: np.ndarray, modes: list[str]) -> bool:
    better_or_equal = all((a >= b) if m == "max" else (a <= b) for a, b, m in zip(p, q, modes))
    strictly = any((a > b) if m == "max" else (a < b) for a, b, m in zip(p, q, modes))
    return better_or_equal and strictly


def brute_front(points: np.ndarray, modes: list[str], among: list[int] | None = None) -> set[int]:
    """O(n^2) front of the finite rows (restricted to `among`)."""
    rows = [i for i in (range(len(points)) if among is None else among) if np.all(np.isfinite(points[i]))]
    return {i for i in rows if not any(brute_dominates(points[j], points[i], modes) for j in rows if j != i)}


def brute_ranks(points: np.ndarray, modes: list[str]) -> np.ndarray:
    """Peel fronts one by one; non-finite rows -1."""
    ranks = np.full(len(points), -1)
    left = [i for i in range(len(points)) if np.all(np.isfinite(points[i]))]
    rank = 0
    while left:
        layer = brute_front(points, modes, left)
        for i in layer:
            ranks[i] = rank
        left = [i for i in left if i not in layer]
        rank += 1
    return ranks


def union_volume(points: np.ndarray, modes: list[str], reference: np.ndarray) -> float:
    """Exact hypervolume by inclusion-exclusion over all subsets of boxes (few points only)."""
    sign = np.array([-1.0 if m == "max" else 1.0 for m in modes])
    pts, ref = points * sign, reference * sign
    pts = pts[np.all(pts < ref, axis=1)]
    total = 0.0
    for size in range(1, len(pts) + 1):
        for subset in itertools.combinations(range(len(pts)), size):
            corner = pts[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.clip(ref - corner, 0, None)))
    return total


def random_points(rng: np.random.Generator, n: int, k: int, nan_rows: int = 0) -> np.ndarray:
    """Integer-valued points in a small range (so ties and exact duplicates are common)."""
    pts = rng.integers(0, 5, size=(n, k)).astype(float)
    pts[rng.integers(0, n, 3)] = pts[0]  # duplicates of row 0
    for i in rng.choice(n, nan_rows, replace=False):
        pts[i, rng.integers(0, k)] = np.nan
    return pts


# --- front and ranks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_front_and_ranks_match_brute_force(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed * 10 + k)
    modes = [str(m) for m in rng.choice(["max", "min"], k)]
    pts = random_points(rng, 40, k, nan_rows=3)
    with pytest.warns(NonFiniteRowsWarning, match="3 of 40 rows"):
        mask = pareto_front(pts, modes)
    assert set(np.flatnonzero(mask)) == brute_front(pts, modes)
    with pytest.warns(NonFiniteRowsWarning):
        ranks = non_dominated_ranks(pts, modes)
    np.testing.assert_array_equal(ranks, brute_ranks(pts, modes))
    assert np.array_equal(ranks == 0, mask)


def test_duplicates_are_all_on_the_front_and_ties_dominate() -> None:
    pts = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 3.0], [1.0, 1.0]])
    modes = ["min", "min"]
    np.testing.assert_array_equal(pareto_front(pts, modes), [True, True, False, True, True])
    np.testing.assert_array_equal(non_dominated_ranks(pts, modes), [0, 0, 1, 0, 0])
    assert dominates(pts[0], pts[2], modes) and not dominates(pts[0], pts[1], modes)
    # The same points as maximisation: (1, 2) is now the only best in objective 2 besides (0, 3).
    np.testing.assert_array_equal(pareto_front(pts, ["max", "max"]), [False, False, True, True, False])


def test_order_and_column_order_do_not_matter() -> None:
    rng = np.random.default_rng(7)
    pts = random_points(rng, 30, 3)
    modes = ["max", "min", "max"]
    perm = rng.permutation(30)
    np.testing.assert_array_equal(pareto_front(pts[perm], modes), pareto_front(pts, modes)[perm])
    cols = [2, 0, 1]
    np.testing.assert_array_equal(non_dominated_ranks(pts[:, cols], [modes[c] for c in cols]),
                                  non_dominated_ranks(pts, modes))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=25),
       st.lists(st.sampled_from(["max", "min"]), min_size=3, max_size=3))
def test_front_property(rows: list[tuple[int, int, int]], modes: list[str]) -> None:
    pts = np.array(rows, dtype=float)
    mask = pareto_front(pts, modes)
    assert set(np.flatnonzero(mask)) == brute_front(pts, modes)
    assert mask.any()  # a finite, non-empty set always has a non-dominated point


def test_edge_cases_and_errors() -> None:
    assert pareto_front(np.zeros((0, 2)), ["max", "max"]).shape == (0,)
    assert non_dominated_ranks(np.zeros((0, 3)), ["max"] * 3).shape == (0,)
    assert hypervolume(np.zeros((0, 2)), ["max", "max"], [0, 0]) == 0.0
    assert knee_point(np.zeros((0, 2)), ["max", "max"]) is None
    with pytest.raises(ValueError, match="modes"):
        pareto_front(np.zeros((3, 2)), ["max"])
    with pytest.raises(ValueError, match="'max' or 'min'"):
        pareto_front(np.zeros((3, 2)), ["max", "up"])
    with pytest.raises(ValueError, match="reference"):
        hypervolume(np.zeros((3, 2)), ["max", "max"], [0.0])
    with pytest.warns(NonFiniteRowsWarning):
        assert not pareto_front(np.array([[np.nan, 1.0], [np.inf, 0.0]]), ["max", "max"]).any()


# --- hypervolume ----------------------------------------------------------------------------------------
def test_hypervolume_2d_hand_computed() -> None:
    mm = ["max", "max"]
    assert hypervolume([[0.5, 0.5]], mm, [0, 0]) == pytest.approx(0.25)
    # Staircase: 1.0 x 0.2 + 0.5 x (0.5 - 0.2) + 0.2 x (1.0 - 0.5) = 0.2 + 0.15 + 0.1
    front = [[1.0, 0.2], [0.2, 1.0], [0.5, 0.5]]
    assert hypervolume(front, mm, [0, 0]) == pytest.approx(0.45)
    # Dominated points, duplicates and points beyond the reference add nothing.
    assert hypervolume(front + [[0.4, 0.4], [0.5, 0.5], [-1.0, 5.0]], mm, [0, 0]) == pytest.approx(0.45)
    # Mixed modes: maximise accuracy, minimise seconds, reference (0, 100).
    assert hypervolume([[0.8, 50.0], [0.6, 20.0]], ["max", "min"], [0.0, 100.0]) == pytest.approx(
        0.8 * 50 + 0.6 * 30)
    # The same in minimisation form.
    assert hypervolume([[1.0, 3.0], [2.0, 1.0]], ["min", "min"], [4.0, 4.0]) == pytest.approx(3 * 1 + 2 * 2)


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_matches_inclusion_exclusion(k: int, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    modes = [str(m) for m in rng.choice(["max", "min"], k)]
    pts = rng.uniform(0, 1, size=(7, k))
    pts[3] = pts[1]  # a duplicate
    reference = np.array([0.0 if m == "max" else 1.0 for m in modes])
    assert hypervolume(pts, modes, reference) == pytest.approx(union_volume(pts, modes, reference), rel=1e-12)


def test_hypervolume_3d_matches_grid_estimate() -> None:
    rng = np.random.default_rng(3)
    modes = ["max", "max", "min"]
    pts = rng.uniform(0.05, 0.95, size=(12, 3))
    reference = np.array([0.0, 0.0, 1.0])
    exact = hypervolume(pts, modes, reference)
    g = (np.arange(60) + 0.5) / 60  # cell midpoints of a 60^3 grid over the unit cube
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    covered = np.zeros(len(grid), dtype=bool)
    for p in pts:
        covered |= (grid[:, 0] <= p[0]) & (grid[:, 1] <= p[1]) & (grid[:, 2] >= p[2])
    assert exact == pytest.approx(covered.mean(), abs=0.01)


def test_hypervolume_by_trial_grows_to_the_total() -> None:
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 1, size=(20, 3))
    modes = ["max", "max", "max"]
    counts = rng.uniform(size=20) > 0.3
    curve = hypervolume_by_trial(pts, modes, [0, 0, 0], counts=counts)
    assert np.all(np.diff(curve) >= -1e-15)
    assert np.all(np.diff(curve)[~counts[1:]] == 0)  # uncounted rows leave it unchanged
    for i in (0, 7, 19):
        assert curve[i] == pytest.approx(hypervolume(pts[: i + 1][counts[: i + 1]], modes, [0, 0, 0]))


# --- knee -----------------------------------------------------------------------------------------------
def test_knee_on_a_known_convex_front() -> None:
    # f2 = (1 - sqrt(f1))^2 (minimisation) is convex; the farthest point from the line f1 + f2 = 1
    # between its extremes (0, 1) and (1, 0) is where the slope is -1: f1 = f2 = 0.25.
    f1 = np.concatenate([np.linspace(0, 1, 41), [0.25]])
    pts = np.stack([f1, (1 - np.sqrt(f1)) ** 2], axis=1)
    pts = np.vstack([pts, pts[:10] + 0.3])  # dominated points do not move the knee
    knee = knee_point(pts, ["min", "min"])
    assert pts[knee] == pytest.approx([0.25, 0.25])
    assert knee == 10  # linspace hits 0.25 at index 10 before the appended duplicate: ties go to the lowest index
    # As accuracies to maximise, with a different scale per axis: the same trial.
    acc = np.stack([1 - pts[:, 0], 0.5 * (1 - pts[:, 1])], axis=1)
    assert knee_point(acc, ["max", "max"]) == knee


def test_knee_on_a_quarter_circle_in_three_objectives() -> None:
    # Points on the unit sphere's positive octant (maximise all): the knee is the most balanced one.
    rng = np.random.default_rng(0)
    v = np.abs(rng.normal(size=(200, 3)))
    v = np.vstack([v, np.ones(3)])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert knee_point(v, ["max"] * 3) == 200


# --- trials tables --------------------------------------------------------------------------------------
def test_only_finished_trials_reach_the_front() -> None:
    trials = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d", "e", "f"],
        "status": ["finished", "early_stopped", "failed", "finished", "stopped", "finished"],
        "clean_acc": [0.7, 0.99, 0.99, 0.5, 0.99, np.nan],
        "robust_acc": [0.3, 0.99, 0.99, 0.4, 0.99, 0.9],
        "optuna_number": [0, 1, 2, 3, 4, 5],
    })
    objectives = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
    with pytest.warns(NonFiniteRowsWarning, match="f"):
        ranked = rank_trials(trials, objectives)
    assert list(ranked["trial_id"]) == ["a", "d"] and ranked["on_front"].all()
    with pytest.warns(NonFiniteRowsWarning):
        assert list(front(trials, objectives)["trial_id"]) == ["a", "d"]
    with pytest.warns(NonFiniteRowsWarning):
        curve = hypervolume_over_trials(trials, objectives, [0, 0])
    assert list(curve["counted"]) == [True, False, False, True, False, False]
    assert curve["hypervolume"].tolist() == pytest.approx([0.21, 0.21, 0.21, 0.21 + 0.5 * 0.1, 0.26, 0.26])
    with pytest.warns(NonFiniteRowsWarning):
        assert knee_trial(trials, objectives)["trial_id"] in ("a", "d")


def test_crowding_distances() -> None:
    """Per rank: extremes inf, interior rows the sum of neighbour gaps over the rank's range; NaN rows NaN."""
    points = np.array([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5], [0.6, 0.45], [0.2, 0.2]])
    d = crowding_distances(points, ["max", "max"])
    assert np.isinf(d[[0, 1]]).all() and np.isinf(d[4])  # extremes of rank 0; alone in rank 1
    # rank 0 sorted on x: 0.1, 0.5, 0.6, 0.9; on y: 0.1, 0.45, 0.5, 0.9 (ranges 0.8)
    assert d[2] == pytest.approx((0.6 - 0.1) / 0.8 + (0.9 - 0.45) / 0.8)
    assert d[3] == pytest.approx((0.9 - 0.5) / 0.8 + (0.5 - 0.1) / 0.8)
    with pytest.warns(NonFiniteRowsWarning):
        assert np.isnan(crowding_distances([[0.1, math.nan], [0.2, 0.3]], ["max", "max"])[0])


def test_an_infeasible_trial_is_never_on_the_front(tmp_path) -> None:
    """`b` dominates every other trial but breaks a constraint (``feasible`` False): off the front, out
    of the knee, the best-per-objective table and the hypervolume; the plots show it as infeasible."""
    from analysis.pareto import best_per_objective, infeasible
    from analysis.plots import INFEASIBLE, classify, pareto_png

    trials = pd.DataFrame({
        "trial_id": ["a", "b", "c"], "status": ["finished"] * 3,
        "clean_acc": [0.7, 0.9, 0.5], "robust_acc": [0.3, 0.8, 0.4],
        "feasible": [True, False, True], "optuna_number": [0, 1, 2],
    })
    objectives = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
    assert infeasible(trials).tolist() == [False, True, False]
    assert set(front(trials, objectives)["trial_id"]) == {"a", "c"}
    assert "b" not in set(rank_trials(trials, objectives)["trial_id"])
    assert knee_trial(trials, objectives)["trial_id"] != "b"
    assert "b" not in set(best_per_objective(trials, objectives)["trial_id"])
    assert hypervolume_over_trials(trials, objectives, [0, 0])["counted"].tolist() == [True, False, True]
    assert classify(trials, objectives).set_index("trial_id").loc["b", "group"] == INFEASIBLE
    assert pareto_png(trials, objectives, tmp_path / "p.png").is_file()
    # without the column (a sweep without constraints) the same trial is the whole front
    assert list(front(trials.drop(columns="feasible"), objectives)["trial_id"]) == ["b"]
