"""The Optuna side of a sweep: the multi-objective searcher Ray Tune drives, and the study's records.

`ParetoOptunaSearch` tells Optuna each Tune outcome (COMPLETE with the objectives' values only for a
trial that ran its full budget; PRUNED for one stopped early; FAIL for an error) and links each
Optuna trial to its Tune trial (user attribute ``tune_trial_id``). The samplers are in
`orchestrator.samplers`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from .layout import CONSTRAINTS_ATTR, FINAL_KEY, TUNE_TRIAL_ATTR, Constraint, constraint_values, first_line
from .samplers import make_sampler
from .space import SearchSpace
from .study_store import is_transient, load_study, study_storage, with_retry

log = logging.getLogger(__name__)
OPTUNA_CONSTRAINTS_KEY = "constraints"  # the system attribute where Optuna's samplers keep a trial's constraints


class ParetoOptunaSearch(OptunaSearch):
    """OptunaSearch that keeps the Pareto front clean and links Optuna trials to Tune trials.

    - A trial stopped before its last epoch (ASHA) is told PRUNED, never COMPLETE with partial
      metrics (a partial result would pollute the front); an errored one FAIL.
    - Each Optuna trial carries the user attribute ``tune_trial_id``.
    - It caps concurrency itself (`set_max_concurrency` answers True, so Tune's `ConcurrencyLimiter`
      passes every call through): a trial a resume re-runs is counted as live and its outcome is
      told, where the limiter would drop a trial it did not suggest in this run.
    - A FAILED trial that a resume retries and finishes is added as a new COMPLETE trial (Optuna
      cannot change a finished trial) with ``retried_from`` = the old trial's number.
    - `rebind` (before a resumed fit) points the restored searcher at the study where the sweep
      directory is now and names the trials Tune will run again.
    - A study that stays locked past the storage's retries is logged and, for a suggestion, asked
      again later (no traceback from inside Tune); an untold outcome is told by the sweep's repair.
      An Optuna trial already asked when its tagging met the lock is kept and given to the next
      suggestion (asking afresh would leave it RUNNING and, under the grid sampler, lose its point).
    """

    def __init__(self, *args: Any, study_url: str = "", constraints: Sequence[Constraint] = (),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._study_url = study_url
        self._constraints = tuple(constraints)
        self._max_live: int | None = None
        self._live: set[str] = set()
        self._rebind: tuple[str, set[str]] | None = None
        self._untagged: optuna.Trial | None = None  # asked, but its tune_trial_id met a locked study

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self._max_live = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if self._max_live is not None and len(self._live) >= self._max_live:
            return None
        new = trial_id not in self._ot_trials
        if new and self._untagged is not None:  # the trial asked last time, not a new one
            self._ot_trials[trial_id], self._untagged = self._untagged, None
        try:
            config = super().suggest(trial_id)
            if new and trial_id in self._ot_trials:
                with_retry(self._ot_trials[trial_id].set_user_attr, TUNE_TRIAL_ATTR, trial_id, what="set_user_attr")
        except Exception as exc:  # noqa: BLE001 - a locked study: no trial now, Tune asks again
            if not is_transient(exc):
                raise
            if new and trial_id in self._ot_trials:
                self._untagged = self._ot_trials.pop(trial_id)  # Tune asks again with another id
            log.error("the Optuna study stayed locked (%s); no new trial now, asking again later", first_line(exc))
            return None
        if config is not None:
            self._live.add(trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._completed_trials:
            self._live.add(trial_id)  # a trial Tune runs again after a resume counts against the cap
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            log.warning("Optuna knows no trial for Tune trial %s; not recorded in the study", trial_id)
            return
        state, values = outcome_state(result, error, self.metric)
        study = self._ot_study
        assert study is not None  # set up by OptunaSearch before the first suggestion
        try:
            current = with_retry(study._storage.get_trial, ot_trial._trial_id, what="get_trial")
            constraints = constraint_values(self._constraints, result or {}) if self._constraints else None
            if current.state.is_finished():
                if state == TrialState.COMPLETE and current.state != TrialState.COMPLETE and values is not None:
                    self._supersede(current, values, trial_id, None if constraints is None else
                                    {c.metric: v for c, v in zip(self._constraints, constraints)})
            else:
                if constraints is not None and state != TrialState.FAIL:
                    set_constraints(study, current._trial_id, self._constraints, constraints)
                with_retry(study.tell, current.number, values, state=state, what="tell")
        except Exception as exc:  # noqa: BLE001 - a study problem must not stop the sweep
            log.error("Optuna could not record trial %s (%s: %s); the sweep's repair tells it again at the "
                      "end and `orchestrator check` lists it until then", trial_id, type(exc).__name__,
                      first_line(exc))
        self._completed_trials.add(trial_id)

    def _supersede(self, old: optuna.trial.FrozenTrial, values: list[Any], trial_id: str,
                   constraints: Mapping[str, float] | None = None) -> None:
        assert self._ot_study is not None
        supersede(self._ot_study, old, values, trial_id, constraints)

    # --- pickling and resume ----------------------------------------------------------------------
    # Tune pickles the searcher twice: with the Tuner (tuner.pkl) and as its state (Searcher.save). An
    # RDBStorage unpickles by connecting to its URL and creating the tables there, so a pickled storage
    # would reconnect to (or create an empty study at) the place the sweep directory was when it was
    # saved. Neither pickle holds the storage, the study or Optuna trial objects: only the study URL and
    # the Optuna trial ids, and the study is connected when the run knows where it is (`rebind`).
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_storage", "_ot_study", "_rebind")}
        state["_ot_trials"] = {tid: _TrialRef(t._trial_id) for tid, t in self._ot_trials.items()}
        state["_untagged"] = None  # left RUNNING; the sweep's repair marks it FAIL (orphaned)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._storage, self._ot_study, self._rebind = None, None, None
        self._untagged = None

    def save(self, checkpoint_path: str) -> None:
        kept = self.__dict__.copy()
        self.__dict__.update(self.__getstate__(), _storage=None, _ot_study=None, _rebind=None)
        try:
            super().save(checkpoint_path)  # Ray's pickle of the searcher's attributes
        finally:
            self.__dict__.clear()
            self.__dict__.update(kept)

    def rebind(self, study_url: str, resumed: set[str]) -> None:
        """Before a resumed fit: the study's URL now, and the Tune trials this run continues or retries."""
        self._rebind = (study_url, set(resumed))
        self._connect(study_url)

    def restore(self, checkpoint_path: str) -> None:
        rebind, max_live = self._rebind, self._max_live
        super().restore(checkpoint_path)  # what `save` wrote: no storage, study or Optuna trial objects
        self._rebind, self._max_live = None, max_live
        url = rebind[0] if rebind is not None else self._study_url
        self._connect(url)
        if rebind is not None:
            self._live = set(rebind[1])
            self._completed_trials -= rebind[1]

    def _connect(self, url: str) -> None:
        self._study_url = url
        self._storage = study_storage(url)
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,  # type: ignore[assignment]
                                           sampler=self._sampler)


@dataclass(frozen=True)
class _TrialRef:
    """An Optuna trial by id, as the searcher keeps trials across a pickle (no study, no storage)."""

    _trial_id: int


def outcome_state(result: dict | None, error: bool, metrics: Any) -> tuple[TrialState, list[Any] | None]:
    """The Optuna state (and values) of a Tune outcome: COMPLETE only for a trial that ran its full
    budget with finite objectives; PRUNED when stopped before its last epoch; FAIL for an error."""
    if error or not result:
        return TrialState.FAIL, None
    if result.get(FINAL_KEY) != 1.0:
        return TrialState.PRUNED, None
    metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
    values: list[Any] = [result.get(m) for m in metrics]
    bad = [m for m, v in zip(metrics, values) if v is None or not math.isfinite(float(v))]
    if bad:
        log.warning("a trial finished without a finite %s; told to Optuna as FAIL", bad)
        return TrialState.FAIL, None
    return TrialState.COMPLETE, [float(v) for v in values]


def supersede(study: optuna.Study, old: optuna.trial.FrozenTrial, values: list[Any], trial_id: str,
              constraints: Mapping[str, float] | None = None) -> None:
    """Add a COMPLETE trial for Tune trial `trial_id` whose Optuna trial `old` was FAIL/PRUNED (unless
    the study already holds a COMPLETE one for it: an outcome is never told twice); `constraints`, when
    the spec has them (metric -> value), are stored as `set_constraints` stores them."""
    done = with_retry(study.get_trials, deepcopy=False, states=(TrialState.COMPLETE,), what="get_trials")
    if any(t.user_attrs.get(TUNE_TRIAL_ATTR) == trial_id for t in done):
        return
    new = optuna.trial.create_trial(params=old.params, distributions=old.distributions, values=values,
                                    user_attrs={**old.user_attrs, TUNE_TRIAL_ATTR: trial_id, "retried_from": old.number,
                                                **({CONSTRAINTS_ATTR: list(constraints.values())} if constraints else {})},
                                    constraints=dict(constraints) if constraints else None)
    with_retry(study.add_trial, new, what="add_trial")


def set_constraints(study: optuna.Study, trial_id: int, constraints: Sequence[Constraint],
                    values: Sequence[float]) -> None:
    """Before a trial's outcome is told: its constraint values as the samplers read them (Optuna's
    ``Trial.set_constraint``, one per metric) and as the user attribute ``constraints`` (a list)."""
    storage = study._storage
    for constraint, value in zip(constraints, values):
        with_retry(storage.set_trial_system_attr, trial_id, f"{OPTUNA_CONSTRAINTS_KEY}:{constraint.metric}",
                   float(value), what="set_constraint")
    with_retry(storage.set_trial_user_attr, trial_id, CONSTRAINTS_ATTR, [float(v) for v in values],
               what="set_user_attr")


def make_searcher(space: SearchSpace, metrics: list[str], modes: list[str], sampler: str,
                  sampler_options: dict[str, Any], study_name: str, study_url: str,
                  concurrency: int = 1, enqueue: Sequence[Mapping[str, Any]] = (),
                  warm: Sequence[optuna.trial.FrozenTrial] = (),
                  constraints: Sequence[Constraint] = ()) -> ParetoOptunaSearch:
    """The searcher of a sweep: its study `study_name` at `study_url` (created or continued); the
    sampler's defaults follow the `concurrency` (`orchestrator.samplers`). A new study first gets the
    `warm` trials (an earlier sweep's, `orchestrator.warm_start`), then the `enqueue` points, which
    Optuna hands out before it samples; `constraints` go to the samplers that take them."""
    searcher = ParetoOptunaSearch(space, metric=metrics, mode=modes,
                                  sampler=make_sampler(sampler, sampler_options, space.grid(), concurrency),
                                  study_name=study_name, storage=study_storage(study_url), study_url=study_url,
                                  constraints=constraints)
    study = searcher._ot_study
    assert study is not None  # created by OptunaSearch (the space is given)
    for trial in warm:
        with_retry(study.add_trial, trial, what="add_trial")
    for point in enqueue:
        with_retry(study.enqueue_trial, dict(point), what="enqueue_trial")
    return searcher


def optuna_links(study_url: str, study_name: str) -> dict[str, tuple[int, str]]:
    """Tune trial id -> (Optuna trial number, state name), from the study on disk."""
    try:
        study = load_study(study_url, study_name)
    except KeyError:
        return {}
    out: dict[str, tuple[int, str]] = {}
    for t in study.get_trials(deepcopy=False):
        tid = t.user_attrs.get(TUNE_TRIAL_ATTR)
        if tid is not None:  # a retried trial's newer Optuna trial wins
            out[tid] = (t.number, t.state.name)
    return out

