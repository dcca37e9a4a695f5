"""The Optuna samplers a spec can name (``sampler: {type: tpe, seed: 0}``), their options, and how
each is built. The spec checker validates against `SAMPLERS`; the sweep builds with `make_sampler`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import optuna


class TuneGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose `after_trial` never calls `study.stop()`: Ray Tune owns the budget (and
    `stop()` outside `study.optimize` raises)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


def _gp(options: Mapping[str, Any], grid: Mapping[str, list[Any]]) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(seed=options.get("seed", 0),
                                         n_startup_trials=options.get("n_startup_trials", 10))


@dataclass(frozen=True)
class SamplerKind:
    """One sampler type: the options a spec may give it (``seed`` always) and its factory."""

    options: tuple[str, ...]
    build: Callable[[Mapping[str, Any], Mapping[str, list[Any]]], optuna.samplers.BaseSampler]  # (options, grid)
    needs_choices: bool = False  # every parameter must be a `choice` (or a bundle)


SAMPLERS: dict[str, SamplerKind] = {
    "tpe": SamplerKind(("seed", "n_startup_trials"), lambda o, g: optuna.samplers.TPESampler(
        seed=o.get("seed", 0), n_startup_trials=o.get("n_startup_trials", 10))),
    "nsga2": SamplerKind(("seed", "population_size"), lambda o, g: optuna.samplers.NSGAIISampler(
        seed=o.get("seed", 0), population_size=o.get("population_size", 50))),
    "random": SamplerKind(("seed",), lambda o, g: optuna.samplers.RandomSampler(seed=o.get("seed", 0))),
    "grid": SamplerKind(("seed",), lambda o, g: TuneGridSampler(dict(g), seed=o.get("seed", 0)), needs_choices=True),
    "gp": SamplerKind(("seed", "n_startup_trials"), _gp),
}


def make_sampler(kind: str, options: Mapping[str, Any], grid: Mapping[str, list[Any]]) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of type `kind` (a key of `SAMPLERS`, checked by the spec) with its `options`;
    `grid` is the space's grid (used by ``grid`` only)."""
    return SAMPLERS[kind].build(options, grid)
