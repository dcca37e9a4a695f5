"""Pareto dominance, non-dominated sorting, crowding distance, hypervolume and the knee point.

Array functions take ``points``, an ``(n, k)`` float array (n candidates, k objectives), and
``modes``, a length-k sequence of ``"max"``/``"min"``. Internally every objective is turned into a
minimisation (``max`` columns are negated); results never depend on the order of the columns.

Definitions (the same everywhere in this module):

- *Dominance*: ``p`` dominates ``q`` when ``p`` is at least as good as ``q`` in every objective and
  strictly better in at least one. Exact ties are therefore never dominance: **duplicated points
  are all on the front** (each duplicate gets the same rank), and a point that ties another in
  one objective and is worse in another is dominated.
- *Non-finite rows* (NaN or +-inf in any objective) are excluded, with a `NonFiniteRowsWarning`:
  they are never on the front, get rank ``-1`` and add nothing to a hypervolume.
- *Hypervolume*: the measure of the region dominated by the points and bounded by ``reference``
  (in the objectives' own units and directions: for a ``max`` objective the reference is a lower
  bound, e.g. 0 for an accuracy in [0, 1]; for ``min`` an upper bound). A point that is not
  strictly better than the reference in every objective adds nothing. Exact for every k: a sweep
  over sorted points for k = 2 (O(n log n)) and slicing along the last objective down to the
  2-D case for k >= 3 (HSO; O(n^2 log n) for k = 3, exponential in k for larger k, fine for the
  fronts of a sweep).
- *Knee point*: normalise the front to [0, 1] per objective (0 = the front's best value, 1 = its
  worst; an objective with a single value on the front maps to 0), then take the front point with
  the smallest sum of normalised values, i.e. the largest distance to the hyperplane
  ``sum(f) = 1`` on the ideal side. For k = 2 that hyperplane is exactly the line through the two
  extremes of the front, so this is the usual "farthest from the line between the extremes"
  knee. Ties go to the lowest index.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from .results import FEASIBLE_COLUMN, FRONT_STATUS, Objective, check_objectives

MODES = ("max", "min")


class NonFiniteRowsWarning(UserWarning):
    """Some rows had a NaN or infinite objective value and were excluded."""


# --- inputs -------------------------------------------------------------------------------------
def as_points(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str]) -> np.ndarray:
    """Check `points` ``(n, k)`` against `modes` (length k); return a float64 copy of shape (n, k)."""
    array = np.asarray(points, dtype=float)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, len(modes))
    if array.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, k); got shape {array.shape}")
    modes = list(modes)
    if array.shape[1] != len(modes):
        raise ValueError(f"points have {array.shape[1]} objectives but {len(modes)} modes were given")
    if not modes:
        raise ValueError("at least one objective is needed")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    return array.copy()


def to_minimisation(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """``(n, k)`` -> ``(n, k)`` with every ``max`` column negated (so smaller is better everywhere)."""
    sign = np.array([-1.0 if m == "max" else 1.0 for m in modes])
    return np.asarray(points, dtype=float) * sign


def finite_rows(points: np.ndarray, warn: bool = True) -> np.ndarray:
    """Boolean mask ``(n,)`` of rows whose objectives are all finite; warn once if any are not."""
    mask = np.all(np.isfinite(points), axis=1) if points.size else np.ones(len(points), dtype=bool)
    if warn and not mask.all():
        bad = np.flatnonzero(~mask)
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        warnings.warn(f"{len(bad)} of {len(points)} rows have a NaN or infinite objective and are excluded "
                      f"(rows {shown})", NonFiniteRowsWarning, stacklevel=3)
    return mask


# --- dominance --------------------------------------------------------------------------------------
def dominates(p: np.ndarray, q: np.ndarray, modes: Sequence[str]) -> bool:
    """Whether point ``p`` (k,) dominates point ``q`` (k,) (see the module docstring)."""
    a, b = to_minimisation(np.asarray(p, float)[None], modes)[0], to_minimisation(np.asarray(q, float)[None], modes)[0]
    return bool(np.all(a <= b) and np.any(a < b))


def _front_min(pts: np.ndarray) -> np.ndarray:
    """Non-dominated mask ``(n,)`` of finite minimisation points ``(n, k)``.

    Points are visited in lexicographic order: a dominator is always lexicographically smaller
    than what it dominates, so each point only needs checking against the front found so far
    (anything dominated by a dominated point is dominated by a front point too).
    O(n log n + n * |front| * k).
    """
    n = len(pts)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort(pts.T[::-1])  # by column 0, then 1, ...
    front: list[int] = []
    for i in order:
        q = pts[i]
        if front:
            f = pts[front]
            if np.any(np.all(f <= q, axis=1) & np.any(f < q, axis=1)):
                continue
        front.append(int(i))
        mask[i] = True
    return mask


def pareto_front(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str]) -> np.ndarray:
    """Boolean mask ``(n,)``: True for the non-dominated rows of `points` ``(n, k)``.

    Duplicated points are all on the front; non-finite rows are excluded (False) with a warning.
    """
    pts = as_points(points, modes)
    ok = finite_rows(pts)
    mask = np.zeros(len(pts), dtype=bool)
    mask[ok] = _front_min(to_minimisation(pts[ok], modes))
    return mask


def non_dominated_ranks(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str]) -> np.ndarray:
    """Int array ``(n,)`` of Pareto ranks: 0 = the front, 1 = the front once rank 0 is removed, ...

    Deb et al.'s fast non-dominated sort (NSGA-II, 2002): count each point's dominators, then peel
    fronts by decrementing the counts of what each front dominates. O(k n^2) time, the dominance
    matrix is built in row blocks (O(n^2) booleans). Non-finite rows get -1 (with a warning);
    duplicates share a rank.
    """
    pts = as_points(points, modes)
    ok = finite_rows(pts)
    ranks = np.full(len(pts), -1, dtype=int)
    ranks[ok] = _ranks_min(to_minimisation(pts[ok], modes))
    return ranks


def _ranks_min(pts: np.ndarray, block: int = 512) -> np.ndarray:
    n = len(pts)
    if n == 0:
        return np.zeros(0, dtype=int)
    dom = np.zeros((n, n), dtype=bool)  # dom[i, j]: i dominates j
    for start in range(0, n, block):
        a = pts[start:start + block, None, :]
        dom[start:start + block] = np.all(a <= pts[None], axis=2) & np.any(a < pts[None], axis=2)
    count = dom.sum(axis=0)  # number of dominators of each point
    ranks = np.full(n, -1, dtype=int)
    current = np.flatnonzero(count == 0)
    rank = 0
    while current.size:
        ranks[current] = rank
        count = count - dom[current].sum(axis=0)
        count[ranks >= 0] = -1  # already ranked
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding_distances(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str],
                       ranks: np.ndarray | None = None) -> np.ndarray:
    """Float array ``(n,)``: each row's NSGA-II crowding distance within its non-dominated rank.

    Deb et al. (2002): within one rank, for every objective the rows are sorted by it; the two
    extremes get ``inf`` and every other row adds the gap between its neighbours, divided by the
    rank's range in that objective (an objective with one value in the rank adds nothing). A larger
    distance is a less crowded, more informative row; a rank of one or two rows is all ``inf``.
    `ranks` (``non_dominated_ranks``'s, computed when not given) saves sorting twice; non-finite
    rows (rank -1) get NaN.
    """
    pts = as_points(points, modes)
    ranks = non_dominated_ranks(pts, modes) if ranks is None else np.asarray(ranks, dtype=int)
    out = np.full(len(pts), np.nan)
    for rank in np.unique(ranks[ranks >= 0]):
        members = np.flatnonzero(ranks == rank)
        distance = np.zeros(len(members))
        if len(members) <= 2:
            out[members] = np.inf
            continue
        for j in range(pts.shape[1]):
            values = pts[members, j]
            order = np.argsort(values, kind="stable")
            distance[order[0]] = distance[order[-1]] = np.inf
            span = values[order[-1]] - values[order[0]]
            if span > 0:
                gaps = (values[order[2:]] - values[order[:-2]]) / span
                distance[order[1:-1]] += gaps
        out[members] = distance
    return out


# --- hypervolume ------------------------------------------------------------------------------------
def hypervolume(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str],
                reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by `points` ``(n, k)`` and bounded by `reference` ``(k,)``.

    `reference` is in the objectives' own units: a lower bound for ``max`` objectives, an upper
    bound for ``min``. Points not strictly better than it in every objective add nothing;
    non-finite rows are excluded with a warning. Empty input -> 0.0.
    """
    pts = as_points(points, modes)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (len(modes),):
        raise ValueError(f"reference must have {len(modes)} values (one per objective); got shape {ref.shape}")
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"reference must be finite, got {ref.tolist()}")
    pts = pts[finite_rows(pts)]
    mins = to_minimisation(pts, modes)
    rmin = to_minimisation(ref[None], modes)[0]
    return _hv_min(mins, rmin)


def _hv_min(pts: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation points ``(n, k)`` below `ref` ``(k,)`` (any k >= 1)."""
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    pts = np.unique(pts[_front_min(pts)], axis=0)
    k = pts.shape[1]
    if k == 1:
        return float(ref[0] - pts[:, 0].min())
    if k == 2:
        return _hv2(pts, ref)
    # Slice along the last objective: between consecutive distinct values of it, the dominated
    # region's cross-section is the (k-1)-D hypervolume of the points at or below the slice.
    order = np.argsort(pts[:, -1], kind="stable")
    pts = pts[order]
    levels = np.append(pts[:, -1], ref[-1])
    total = 0.0
    for i in range(len(pts)):
        height = levels[i + 1] - levels[i]
        if height > 0:
            total += _hv_min(pts[:i + 1, :-1], ref[:-1]) * height
    return float(total)


def _hv2(pts: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume of mutually non-dominated minimisation points (staircase sum)."""
    pts = pts[np.argsort(pts[:, 0], kind="stable")]  # f0 ascending, so f1 descending on a front
    total, prev_y = 0.0, ref[1]
    for x, y in pts:
        total += (ref[0] - x) * (prev_y - y)
        prev_y = y
    return float(total)


def hypervolume_by_trial(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str],
                         reference: Sequence[float], counts: np.ndarray | Sequence[bool] | None = None) -> np.ndarray:
    """Float array ``(n,)``: the hypervolume of rows ``0..i`` (in the given order) for every i.

    `counts` ``(n,)`` (default all True) marks the rows allowed on the front (e.g. finished
    trials); a row with False, or with a non-finite objective (warned once), leaves the
    hypervolume unchanged at its step, so the curve has one value per trial.
    """
    pts = as_points(points, modes)
    use = np.ones(len(pts), dtype=bool) if counts is None else np.asarray(counts, dtype=bool)
    if use.shape != (len(pts),):
        raise ValueError(f"counts must have one entry per row ({len(pts)}); got shape {use.shape}")
    use = use & finite_rows(pts)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (len(modes),) or not np.all(np.isfinite(ref)):
        raise ValueError(f"reference must be {len(modes)} finite values, got {np.asarray(reference).tolist()}")
    mins, rmin = to_minimisation(pts, modes), to_minimisation(ref[None], modes)[0]
    out = np.zeros(len(pts))
    front = np.zeros((0, pts.shape[1]))
    value = 0.0
    for i in range(len(pts)):
        if use[i]:
            q = mins[i]
            dominated = np.any(np.all(front <= q, axis=1) & np.any(front < q, axis=1)) if len(front) else False
            duplicate = bool(len(front)) and bool(np.any(np.all(front == q, axis=1)))
            if not dominated and not duplicate:
                keep = ~(np.all(q <= front, axis=1) & np.any(q < front, axis=1)) if len(front) else np.zeros(0, bool)
                front = np.vstack([front[keep], q[None]])
                value = _hv_min(front, rmin)
        out[i] = value
    return out


# --- knee ---------------------------------------------------------------------------------------------
def knee_point(points: np.ndarray | Sequence[Sequence[float]], modes: Sequence[str]) -> int | None:
    """Row index of the knee of the front of `points` ``(n, k)`` (definition in the module docstring).

    Returns None when no row is finite. Ties go to the lowest row index.
    """
    pts = as_points(points, modes)
    front = np.flatnonzero(pareto_front(pts, modes))
    if front.size == 0:
        return None
    f = to_minimisation(pts[front], modes)
    low, high = f.min(axis=0), f.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    normalised = (f - low) / span
    return int(front[int(np.argmin(normalised.sum(axis=1)))])


# --- trials tables ------------------------------------------------------------------------------------
# Table-level helpers: `trials` is a trials table (analysis/results.py), `objectives` a sequence of
# `Objective`. Only feasible trials with status "finished" may be on a front: early-stopped, stopped,
# failed, interrupted and pending trials never are, whatever their metrics, nor a finished trial that
# breaks one of the spec's constraints (``feasible`` False in a sweep with `constraints`).
def infeasible(trials: pd.DataFrame) -> pd.Series:
    """Boolean mask (index of `trials`): the finished trials marked ``feasible`` False (all False when
    the table has no ``feasible`` column, i.e. the sweep had no constraints)."""
    if FEASIBLE_COLUMN not in trials.columns:
        return pd.Series(False, index=trials.index)
    return (trials["status"] == FRONT_STATUS) & (trials[FEASIBLE_COLUMN].astype("boolean") == False)  # noqa: E712



def objective_points(trials: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    """``(n, k)`` float array of the objectives' columns of `trials` (NaN where missing)."""
    check_objectives(trials, objectives)
    return trials[[o.metric for o in objectives]].to_numpy(dtype=float) if len(trials) else np.zeros((0, len(objectives)))


def eligible(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The finished, feasible trials with finite values for every objective (original index and order
    kept).

    Finished trials with a NaN/infinite objective are dropped with a `NonFiniteRowsWarning`
    naming them; infeasible ones (`infeasible`) are dropped silently (the report lists them).
    """
    check_objectives(trials, objectives)
    finished = trials[(trials["status"] == FRONT_STATUS) & ~infeasible(trials)]
    pts = objective_points(finished, objectives)
    ok = np.all(np.isfinite(pts), axis=1)
    if not ok.all():
        bad = finished.loc[~ok, "trial_id"].astype(str).tolist()
        shown = ", ".join(bad[:10]) + (", ..." if len(bad) > 10 else "")
        warnings.warn(f"{len(bad)} finished trial(s) have a NaN or infinite objective "
                      f"({', '.join(o.metric for o in objectives)}) and are excluded: {shown}",
                      NonFiniteRowsWarning, stacklevel=2)
    return finished[ok]


def rank_trials(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """`eligible` trials plus ``pareto_rank`` (0 = front) and ``on_front`` columns; order kept."""
    out = eligible(trials, objectives).copy()
    modes = [o.mode for o in objectives]
    out["pareto_rank"] = _ranks_min(to_minimisation(objective_points(out, objectives), modes))
    out["on_front"] = out["pareto_rank"] == 0
    return out


def front(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The Pareto-optimal finished trials, best first in the first objective (ties: table order)."""
    ranked = rank_trials(trials, objectives)
    out = ranked[ranked["on_front"]]
    first = objectives[0]
    return out.sort_values(first.metric, ascending=first.mode == "min", kind="stable")


def knee_trial(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.Series | None:
    """The knee (module docstring) of the finished trials' front, or None when there is none."""
    ok = eligible(trials, objectives)
    index = knee_point(objective_points(ok, objectives), [o.mode for o in objectives])
    return None if index is None else ok.iloc[index]


def best_per_objective(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """One row per objective: the finished trial with the best value of it (ties: table order),
    with an ``objective`` column (``metric:mode``)."""
    ok = eligible(trials, objectives)
    rows = []
    for objective in objectives:
        if len(ok) == 0:
            continue
        values = ok[objective.metric].to_numpy(dtype=float)
        position = int(np.argmax(values) if objective.mode == "max" else np.argmin(values))
        rows.append(ok.iloc[position].to_frame().T.assign(objective=str(objective)))
    if not rows:
        return pd.DataFrame(columns=["objective", *trials.columns])
    out = pd.concat(rows, ignore_index=True)
    return out[["objective"] + [c for c in out.columns if c != "objective"]]


def default_reference(trials: pd.DataFrame, objectives: Sequence[Objective]) -> list[float]:
    """A hypervolume reference point ``(k,)`` from the finished trials.

    ``max`` objectives: 0 when every value is >= 0 (accuracies in [0, 1]: the hypervolume is then
    the area under the front in accuracy units and comparable across sweeps); otherwise 10 % of the
    range below the worst value. ``min`` objectives: 10 % of the range above the worst value (10 %
    of its magnitude, or 1, when all values are equal); this depends on the sweep, so the report
    prints the point it used.
    """
    ok = eligible(trials, objectives)
    out = []
    for objective in objectives:
        values = ok[objective.metric].to_numpy(dtype=float)
        if len(values) == 0:
            out.append(0.0)
            continue
        low, high = float(values.min()), float(values.max())
        margin = 0.1 * (high - low) if high > low else (0.1 * abs(high) or 1.0)
        if objective.mode == "max":
            out.append(0.0 if low >= 0 else low - margin)
        else:
            out.append(high + margin)
    return out


def completion_order(trials: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """`trials` in the order they completed, and how that order was found.

    By ``ended_at`` when the table has it (trials without one last), else by ``optuna_number``
    (the order Optuna suggested them: the completion order when trials ran one at a time), else
    the table's order. Ties keep the table order.
    """
    for column, how in (("ended_at", "by end time"), ("optuna_number", "by Optuna trial number")):
        if column in trials.columns and trials[column].notna().any():
            return trials.sort_values(column, kind="stable", na_position="last"), how
    return trials, "in table order"


def hypervolume_over_trials(trials: pd.DataFrame, objectives: Sequence[Objective],
                            reference: Sequence[float]) -> pd.DataFrame:
    """How the front grew: one row per trial in completion order (`completion_order`).

    Columns: ``n`` (1-based), ``trial_id``, ``status``, ``counted`` (finished with finite
    objectives), ``hypervolume`` (of the counted trials so far). ``attrs["order"]`` says how the
    order was found.
    """
    ordered, how = completion_order(trials)
    ok_index = set(eligible(trials, objectives).index)
    counted = np.array([i in ok_index for i in ordered.index], dtype=bool)
    pts = objective_points(ordered, objectives)
    pts = np.where(counted[:, None], pts, 0.0)  # uncounted rows are skipped; keep them finite to avoid warnings
    values = hypervolume_by_trial(pts, [o.mode for o in objectives], reference, counts=counted)
    out = pd.DataFrame({"n": np.arange(1, len(ordered) + 1), "trial_id": ordered["trial_id"].to_numpy(),
                        "status": ordered["status"].to_numpy(), "counted": counted, "hypervolume": values})
    out.attrs["order"] = how
    return out
