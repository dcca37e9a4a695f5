"""The Optuna side of a sweep: the multi-objective searcher Ray Tune drives, and the study's records.

`ParetoOptunaSearch` tells Optuna each Tune outcome (COMPLETE with the objectives' values only for a
trial that ran its full budget; PRUNED for one stopped early; FAIL for an error) and links each
Optuna trial to its Tune trial (user attribute ``tune_trial_id``). The samplers are in
`orchestrator.samplers`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from .layout import FINAL_KEY, TUNE_TRIAL_ATTR
from .samplers import make_sampler
from .space import SearchSpace
from .study_storage import open_storage

log = logging.getLogger(__name__)


class ParetoOptunaSearch(OptunaSearch):
    """OptunaSearch that keeps the Pareto front clean and links Optuna trials to Tune trials.

    - A trial stopped before its last epoch (ASHA, time limit) is told PRUNED, never COMPLETE with
      partial metrics (a partial result would pollute the front); an errored one FAIL.
    - Each Optuna trial carries the user attribute ``tune_trial_id``.
    - A FAILED trial that a resume retries and finishes is added as a new COMPLETE trial (Optuna
      cannot change a finished trial) with ``retried_from`` = the old trial's number.
    - The experiment snapshot Ray Tune writes (`save`) holds the sampler and the Tune-to-Optuna trial
      ids only, not the study with its cached trials or the storage (its URL may carry a password):
      its size stays flat as the study grows; `restore` reattaches them to the study the resumed
      searcher opened. Finished trials are dropped from memory once told.
    """

    _SNAPSHOT_SKIP = ("_ot_study", "_storage", "_ot_trials")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ot_id_map: dict[str, int] = {}  # told trials: Tune trial id -> Optuna storage trial id

    def save(self, checkpoint_path: str) -> None:
        import pickle

        state = {k: v for k, v in self.__dict__.items() if k not in self._SNAPSHOT_SKIP}
        state["_ot_ids"] = self._ot_ids()
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(state, fh)

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as fh:
            state = pickle.load(fh)
        if not isinstance(state, dict) or "_ot_ids" not in state:  # a snapshot of the full searcher
            super().restore(checkpoint_path)
            return
        ids = state.pop("_ot_ids")
        self.__dict__.update(state)
        self._ot_id_map = dict(ids)
        study = self._ot_study
        assert study is not None
        study.sampler = self._sampler  # the sampler's state (its random generator) as of the snapshot
        self._ot_trials = {tid: optuna.trial.Trial(study, number) for tid, number in ids.items()
                           if tid not in self._completed_trials}

    def _ot_ids(self) -> dict[str, int]:
        """Tune trial id -> Optuna's storage trial id, for every trial this searcher has asked for."""
        ids = dict(self._ot_id_map)
        ids.update({tid: t._trial_id for tid, t in self._ot_trials.items()})
        return ids

    def suggest(self, trial_id: str) -> dict | None:
        new = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if new and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None and trial_id in self._ot_id_map:
            assert self._ot_study is not None
            ot_trial = optuna.trial.Trial(self._ot_study, self._ot_id_map[trial_id])
        if ot_trial is None:
            log.warning("Optuna knows no trial for Tune trial %s; not recorded in the study", trial_id)
            return
        try:
            self._complete(trial_id, ot_trial, result, error)
        finally:  # told: keep only its id (a resume may retry it), not the trial object
            self._ot_id_map[trial_id] = ot_trial._trial_id
            self._ot_trials.pop(trial_id, None)

    def _complete(self, trial_id: str, ot_trial: Any, result: dict | None, error: bool) -> None:
        values = None
        if error or not result:
            state = TrialState.FAIL
        elif result.get(FINAL_KEY) != 1.0:
            state = TrialState.PRUNED
        else:
            values = [result.get(m) for m in self.metric]
            bad = [m for m, v in zip(self.metric, values) if v is None or not math.isfinite(float(v))]
            state = TrialState.COMPLETE
            if bad:
                log.warning("trial %s finished without a finite %s; told to Optuna as FAIL", trial_id, bad)
                state, values = TrialState.FAIL, None
        study = self._ot_study
        assert study is not None  # set up by OptunaSearch before the first suggestion
        current = study._storage.get_trial(ot_trial._trial_id)
        if current.state.is_finished():
            if state == TrialState.COMPLETE and current.state != TrialState.COMPLETE and values is not None:
                self._supersede(current, values, trial_id)
            self._completed_trials.add(trial_id)
            return
        try:
            study.tell(ot_trial, values, state=state)
        except Exception as exc:  # noqa: BLE001 - a study problem must not stop the sweep
            log.warning("Optuna tell failed for trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)

    def _supersede(self, old: optuna.trial.FrozenTrial, values: list[Any], trial_id: str) -> None:
        new = optuna.trial.create_trial(params=old.params, distributions=old.distributions, values=values,
                                        user_attrs={**old.user_attrs, TUNE_TRIAL_ATTR: trial_id,
                                                    "retried_from": old.number})
        assert self._ot_study is not None
        self._ot_study.add_trial(new)


def make_searcher(space: SearchSpace, metrics: list[str], modes: list[str], sampler: str,
                  sampler_options: dict[str, Any], study_name: str, study_url: str,
                  concurrency: int = 1) -> ParetoOptunaSearch:
    """The searcher of a sweep: its study `study_name` at `study_url` (created or continued)."""
    return ParetoOptunaSearch(space, metric=metrics, mode=modes,
                              sampler=make_sampler(sampler, sampler_options, space.grid(), concurrency),
                              study_name=study_name, storage=open_storage(study_url))


def optuna_links(study_url: str, study_name: str) -> dict[str, tuple[int, str]]:
    """Tune trial id -> (Optuna trial number, state name), from the study on disk."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(study_url))
    except KeyError:
        return {}
    out: dict[str, tuple[int, str]] = {}
    for t in study.get_trials(deepcopy=False):
        tid = t.user_attrs.get(TUNE_TRIAL_ATTR)
        if tid is not None:  # a retried trial's newer Optuna trial wins
            out[tid] = (t.number, t.state.name)
    return out


def fail_orphan_optuna_trials(study_url: str, study_name: str, known: set[str]) -> int:
    """Optuna trials still RUNNING whose Tune trial is unknown (lost with a killed driver) -> FAIL."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(study_url))
    count = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(TUNE_TRIAL_ATTR) not in known:
            study._storage.set_trial_user_attr(t._trial_id, "orphaned", True)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            count += 1
    return count
