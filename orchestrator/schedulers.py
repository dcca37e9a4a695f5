"""Early stopping: the spec's ``scheduler:`` as a Ray Tune `TrialScheduler`.

``asha`` is Ray Tune's `ASHAScheduler` on one metric. ``pareto-asha`` is `ParetoASHAScheduler`:
asynchronous successive halving whose rung decision ranks trials on all the sweep's objectives
(MO-ASHA, Schmucker et al. 2021), so a trial that is poor on one objective but good on another is
not stopped for the first alone.

The rung rule, shared with `replay` (which feeds a recorded ``history.parquet`` through both rules):
rungs are at ``grace_period * reduction_factor**k`` epochs below ``max_t``. When a trial first
reaches a rung, it is ranked with every trial recorded there before it by non-dominated sorting
over the objectives (`analysis.pareto.non_dominated_ranks`), ties within a rank broken by crowding
distance (`analysis.pareto.crowding_distances`; the less crowded first). It continues when it is in
the top ``1/reduction_factor`` of those trials (itself included): fewer than ``n / reduction_factor``
of the ``n`` trials are ahead of it (a trial with the same rank and crowding distance is not
ahead). Otherwise it is stopped. With one objective this is ASHA's rule (stop below the rung's
``1 - 1/reduction_factor`` quantile) up to how the quantile is interpolated. A trial is recorded at
each rung it reaches, stopped or not, as Ray's ASHA does; a value that is NaN or missing is never
stopped for and never ahead of another.

A stopped trial ends before its last epoch, so the searcher tells Optuna PRUNED and it has status
``early_stopped``: never on the front (`orchestrator.search`, `orchestrator.results`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from analysis.pareto import crowding_distances, non_dominated_ranks

if TYPE_CHECKING:
    import pandas as pd

    from .spec import Scheduler

TIME_ATTR = "training_iteration"  # one per reported epoch (`trainable.tune_adapter`)


def make_scheduler(spec: Scheduler | None) -> TrialScheduler | None:
    """The Tune scheduler of a spec's ``scheduler:`` section (None: every trial runs its epochs)."""
    if spec is None:
        return None
    if spec.type == "pareto-asha":
        return ParetoASHAScheduler([o.metric for o in spec.objectives], [o.mode for o in spec.objectives],
                                   max_t=spec.max_t, grace_period=spec.grace_period,
                                   reduction_factor=spec.reduction_factor)
    return ASHAScheduler(metric=spec.metric, mode=spec.mode, time_attr=TIME_ATTR, max_t=spec.max_t,
                         grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)


def rung_milestones(grace_period: int, max_t: int, reduction_factor: float) -> list[float]:
    """The rungs' epochs, highest first, as Ray's ASHA places them (one bracket)."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return [grace_period * reduction_factor ** k for k in reversed(range(count))]


def ahead_count(values: Sequence[float], others: Iterable[Sequence[float]], modes: Sequence[str]) -> int:
    """How many of `others` (each one value per objective) rank ahead of `values` among all of them
    (non-dominated rank, then crowding distance; an equal row is not ahead); rows with a non-finite
    value are left out, and a non-finite `values` has none ahead."""
    rows = [tuple(float(v) for v in r) for r in others]
    rows = [r for r in rows if all(math.isfinite(v) for v in r)]
    if not all(math.isfinite(float(v)) for v in values):
        return 0
    points = np.array([tuple(float(v) for v in values), *rows], dtype=float).reshape(-1, len(modes))
    ranks = non_dominated_ranks(points, modes)
    crowding = crowding_distances(points, modes, ranks)
    mine_rank, mine_crowd = ranks[0], crowding[0]
    ahead = (ranks[1:] < mine_rank) | ((ranks[1:] == mine_rank) & (crowding[1:] > mine_crowd))
    ahead &= ~np.all(points[1:] == points[0], axis=1)  # an equal trial is never ahead
    return int(ahead.sum())


class ParetoASHAScheduler(FIFOScheduler):
    """Asynchronous successive halving on all objectives at once (module docstring: the rule).

    `metrics` and `modes` are the sweep's objectives; `max_t`, `grace_period` and `reduction_factor`
    mean what they mean for Ray's `ASHAScheduler` (time in `TIME_ATTR` units, one per epoch). A
    trial that reaches `max_t` is stopped there (its last epoch). The scheduler takes no `metric`
    from `tune.TuneConfig` (the search is multi-objective).
    """

    def __init__(self, metrics: Sequence[str], modes: Sequence[str], max_t: int = 100, grace_period: int = 1,
                 reduction_factor: float = 2, time_attr: str = TIME_ATTR) -> None:
        if not metrics or len(metrics) != len(modes) or any(m not in ("max", "min") for m in modes):
            raise ValueError(f"one mode (max or min) per metric is needed; got {list(metrics)}, {list(modes)}")
        if not (max_t >= grace_period > 0 and reduction_factor > 1):
            raise ValueError(f"need max_t >= grace_period > 0 and reduction_factor > 1; got max_t={max_t}, "
                             f"grace_period={grace_period}, reduction_factor={reduction_factor}")
        super().__init__()
        self.metrics, self.modes = list(metrics), list(modes)
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, reduction_factor
        self.time_attr = time_attr
        # (epoch, {trial id: objective values}) per rung, highest rung first
        self.rungs: list[tuple[float, dict[str, tuple[float, ...]]]] = [
            (m, {}) for m in rung_milestones(grace_period, max_t, reduction_factor)]
        self.stopped: dict[str, float] = {}  # trial id -> the rung it was stopped at

    # --- the rule -----------------------------------------------------------------------------------
    def values(self, result: Mapping[str, Any]) -> tuple[float, ...] | None:
        """The objectives' values in `result`, or None when one is missing (no decision then)."""
        if any(m not in result or result[m] is None for m in self.metrics):
            return None
        return tuple(float(result[m]) for m in self.metrics)

    def decide(self, trial_id: str, time: float, values: Sequence[float], record_stop: bool = True) -> str:
        """CONTINUE or STOP for a trial reporting `values` at `time` (records it at the rung it reached;
        `record_stop` False: a finished trial's place, not counted as stopped)."""
        for milestone, recorded in self.rungs:
            if time < milestone or trial_id in recorded:
                continue
            n = sum(all(math.isfinite(v) for v in r) for r in recorded.values()) + 1  # NaN rows: not counted
            stop = ahead_count(values, recorded.values(), self.modes) >= n / self.reduction_factor
            recorded[trial_id] = tuple(values)
            if stop:
                if record_stop:
                    self.stopped[trial_id] = milestone
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE

    # --- Tune's interface ---------------------------------------------------------------------------
    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        values = self.values(result)
        if self.time_attr not in result or values is None:
            return TrialScheduler.CONTINUE
        if result[self.time_attr] >= self.max_t:
            return TrialScheduler.STOP
        return self.decide(trial.trial_id, result[self.time_attr], values)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        values = self.values(result or {})
        if values is not None and self.time_attr in result:
            self.decide(trial.trial_id, result[self.time_attr], values, record_stop=False)  # its place in the rungs

    def debug_string(self) -> str:
        rungs = " | ".join(f"epoch {m:g}: {len(r)} trials" for m, r in self.rungs)
        return (f"Using Pareto-ASHA on {', '.join(self.metrics)}: {len(self.stopped)} stopped; "
                f"rungs {rungs}")


# --- replaying a recorded sweep -------------------------------------------------------------------------
class _Trial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def replay(history: pd.DataFrame, metrics: Sequence[str], modes: Sequence[str], asha_metric: str,
           asha_mode: str | None = None, grace_period: int = 1, reduction_factor: float = 2, max_t: int | None = None,
           order: Sequence[str] | None = None) -> pd.DataFrame:
    """Feed a recorded ``history.parquet`` (one row per trial and epoch) through Ray's `ASHAScheduler`
    on `asha_metric` alone (`asha_mode`: its objective's mode unless given) and through
    `ParetoASHAScheduler` on `metrics`, as if the trials had run one after another in `order`
    (default: their order in `history`).

    Returns one row per trial: ``trial_id``, ``epochs`` (recorded), ``asha_stop`` and
    ``pareto_stop`` (the epoch each rule would stop it at; NA: it would run all its recorded epochs).
    Rows whose values are NaN (epochs that were not evaluated) are skipped by both rules, as Tune's
    schedulers skip a result without their metric.
    """
    import pandas as pd

    max_t = int(max_t if max_t is not None else history["epoch"].max())
    trial_ids = list(order) if order is not None else list(dict.fromkeys(history["trial_id"]))
    asha_mode = asha_mode or dict(zip(metrics, modes)).get(asha_metric)
    if asha_mode is None:
        raise ValueError(f"the mode of {asha_metric!r} is needed: it is not one of the objectives {list(metrics)}")
    asha: Any = ASHAScheduler(metric=asha_metric, mode=asha_mode, time_attr=TIME_ATTR, max_t=max_t,  # fed stand-ins
                              grace_period=grace_period, reduction_factor=reduction_factor)
    pareto = ParetoASHAScheduler(metrics, modes, max_t=max_t, grace_period=grace_period,
                                 reduction_factor=reduction_factor)
    rows = []
    for trial_id in trial_ids:
        frame = history[history["trial_id"] == trial_id].sort_values("epoch")
        trial = _Trial(trial_id)
        asha.on_trial_add(None, trial)
        stops: dict[str, int | None] = {"asha_stop": None, "pareto_stop": None}
        for record in frame.to_dict("records"):
            epoch = int(record["epoch"])
            result = {TIME_ATTR: epoch, **{m: record.get(m) for m in metrics}}
            if asha_metric not in metrics:
                result[asha_metric] = record.get(asha_metric)
            for key, scheduler in (("asha_stop", asha), ("pareto_stop", pareto)):
                needed = [asha_metric] if key == "asha_stop" else list(metrics)
                if stops[key] is not None or any(not _finite(result.get(m)) for m in needed):
                    continue
                if epoch >= max_t:
                    continue  # the last epoch: a trial there has finished, whatever the rule says
                if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:
                    stops[key] = epoch
        rows.append({"trial_id": trial_id, "epochs": int(frame["epoch"].max()) if len(frame) else 0, **stops})
    out = pd.DataFrame(rows, columns=["trial_id", "epochs", "asha_stop", "pareto_stop"])
    for column in ("asha_stop", "pareto_stop"):
        out[column] = out[column].astype("Int64")
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
