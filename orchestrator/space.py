"""A sweep's search space: parameter declarations and the picklable Optuna define-by-run callable.

`SearchSpace` is a plain class (not a closure) so Ray Tune can pickle it into its searcher
checkpoint (STACK_NOTES.md section 3.4). Parameters are suggested in declaration order; a parameter
with a ``when`` condition is suggested only when the condition holds for the values chosen so far
(falling back to the trial's base settings, with ``objective``/``adversary``/``views`` derived from
``method``). A *bundle* parameter is a categorical over named groups of settings: Optuna sees the
group's name, and the trial receives the group's settings.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import optuna

from trainable.config import METHODS

KINDS = ("float", "int", "choice", "bundle")
DERIVED = ("objective", "adversary", "views")  # filled from `method` unless set explicitly


@dataclass(frozen=True)
class Param:
    """One declared parameter. `low`/`high` for float and int; `choices` for choice and bundle."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    bundles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # bundle name -> settings
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # key -> allowed values

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution this parameter is suggested from."""
        if self.kind == "float":
            return optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=self.log,
                                                          step=None if self.step is None else float(self.step))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log,
                                                        step=1 if self.step is None else int(self.step))
        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        return optuna.distributions.CategoricalDistribution(list(self.bundles))

    def candidates(self) -> list[Any]:
        """Representative values: every choice, or the two bounds of a range."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "bundle":
            return list(self.bundles)
        return [self.low, self.high]


def effective_value(key: str, chosen: Mapping[str, Any], base: Mapping[str, Any]) -> Any:
    """The value `key` has for a trial given the values chosen so far and the base settings."""
    if key in chosen:
        return chosen[key]
    if key in DERIVED and base.get(key) is None:
        method = chosen.get("method", base.get("method"))
        if method in METHODS:
            return METHODS[method][DERIVED.index(key)]
    return base.get(key)


def is_active(param: Param, chosen: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """True when every `when` condition of `param` holds."""
    return all(effective_value(key, chosen, base) in allowed for key, allowed in param.when.items())


class SearchSpace:
    """Picklable define-by-run space for `OptunaSearch`: call it with an `optuna.Trial`.

    Returns the settings of the chosen bundles (merged into the Tune trial config by Ray), or None.
    """

    def __init__(self, params: tuple[Param, ...] | list[Param], base: Mapping[str, Any]) -> None:
        self.params = tuple(params)
        self.base = dict(base)  # preset + base settings, used to evaluate `when` conditions

    def __call__(self, trial: optuna.Trial) -> dict[str, Any] | None:
        chosen: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for p in self.params:
            if not is_active(p, chosen, self.base):
                continue
            value = self._suggest(trial, p)
            chosen[p.name] = value
            if p.kind == "bundle":
                chosen.update(p.bundles[value])
                extra.update(p.bundles[value])
        return extra or None

    @staticmethod
    def _suggest(trial: optuna.Trial, p: Param) -> Any:
        if p.kind == "float":
            return trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log,
                                       step=None if p.step is None else float(p.step))
        if p.kind == "int":
            return trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log,
                                     step=1 if p.step is None else int(p.step))
        if p.kind == "choice":
            return trial.suggest_categorical(p.name, list(p.choices))
        return trial.suggest_categorical(p.name, list(p.bundles))

    # --- helpers for the sweep and for validation ----------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def bundle_keys(self) -> list[str]:
        """Settings set by bundles (they vary between trials like parameters)."""
        keys: list[str] = []
        for p in self.params:
            for settings in p.bundles.values():
                keys.extend(k for k in settings if k not in keys)
        return keys

    @property
    def labels(self) -> tuple[str, ...]:
        """Parameter names that are not trial settings (bundle names) and stay out of TrialConfig."""
        return tuple(p.name for p in self.params if p.kind == "bundle")

    def grid(self) -> dict[str, list[Any]]:
        """The search space of a grid sampler (every parameter must be a choice or bundle)."""
        return {p.name: p.candidates() for p in self.params}

    def grid_size(self) -> int:
        size = 1
        for p in self.params:
            size *= len(p.candidates())
        return size

    def corner_settings(self, limit: int) -> Iterator[dict[str, Any]]:
        """Trial settings (chosen values + bundle settings) for every combination of representative
        values (choices, range bounds), at most `limit` of them; inactive parameters are skipped."""
        count = 0
        for combo in itertools.product(*(p.candidates() for p in self.params)):
            chosen: dict[str, Any] = {}
            for p, value in zip(self.params, combo):
                if not is_active(p, chosen, self.base):
                    continue
                chosen[p.name] = value
                if p.kind == "bundle":
                    chosen.update(p.bundles[value])
            yield chosen
            count += 1
            if count >= limit:
                return
