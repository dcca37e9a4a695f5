"""The Optuna samplers a spec can name (``sampler: {type: tpe, seed: 0}``), their options, and how
each is built. The spec checker validates against `SAMPLERS`; the sweep builds with `make_sampler`.

Constraints: TPE, NSGA-II and GP sample with each finished trial's constraint values (Optuna's
``trial.constraints``, which the searcher sets before it tells an outcome); random and grid ignore them.

Concurrency: Ray Tune asks for `concurrency` suggestions before the first result comes back, so
the first `concurrency` trials of any model-based sampler are random whatever its startup count.
`make_sampler` therefore defaults TPE's and GP's ``n_startup_trials`` to max(10, concurrency),
runs TPE with the constant liar (running trials count as bad results, so parallel suggestions
spread out) when more than one trial runs at a time, and defaults NSGA-II's ``population_size``
to max(50, concurrency); `concurrency_warnings` names explicit settings below the concurrency.
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


def _startup(options: Mapping[str, Any], concurrency: int) -> int:
    return int(options.get("n_startup_trials", max(10, concurrency)))


def _tpe(options: Mapping[str, Any], grid: Mapping[str, list[Any]], concurrency: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        return optuna.samplers.TPESampler(seed=options.get("seed", 0), n_startup_trials=_startup(options, concurrency),
                                          constant_liar=concurrency > 1)


def _gp(options: Mapping[str, Any], grid: Mapping[str, list[Any]], concurrency: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(seed=options.get("seed", 0), n_startup_trials=_startup(options, concurrency))


def _nsga2(options: Mapping[str, Any], grid: Mapping[str, list[Any]], concurrency: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=options.get("seed", 0),
                                         population_size=int(options.get("population_size", max(50, concurrency))))


@dataclass(frozen=True)
class SamplerKind:
    """One sampler type: the options a spec may give it (``seed`` always) and its factory."""

    options: tuple[str, ...]
    # (options, grid, concurrency) -> sampler
    build: Callable[[Mapping[str, Any], Mapping[str, list[Any]], int], optuna.samplers.BaseSampler]
    needs_choices: bool = False  # every parameter must be a `choice` (or a bundle)
    constraints: bool = False  # samples with the trials' constraint values (Optuna's `trial.constraints`)


SAMPLERS: dict[str, SamplerKind] = {
    "tpe": SamplerKind(("seed", "n_startup_trials"), _tpe, constraints=True),
    "nsga2": SamplerKind(("seed", "population_size"), _nsga2, constraints=True),
    "random": SamplerKind(("seed",), lambda o, g, c: optuna.samplers.RandomSampler(seed=o.get("seed", 0))),
    "grid": SamplerKind(("seed",), lambda o, g, c: TuneGridSampler(dict(g), seed=o.get("seed", 0)),
                        needs_choices=True),
    "gp": SamplerKind(("seed", "n_startup_trials"), _gp, constraints=True),
}


def make_sampler(kind: str, options: Mapping[str, Any], grid: Mapping[str, list[Any]],
                 concurrency: int = 1) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of type `kind` (a key of `SAMPLERS`, checked by the spec) with its `options`;
    `grid` is the space's grid (used by ``grid`` only); `concurrency` sets the defaults above."""
    return SAMPLERS[kind].build(options, grid, concurrency)


def concurrency_warnings(kind: str, options: Mapping[str, Any], concurrency: int) -> list[tuple[str, str]]:
    """(key, message) for explicit sampler settings that the concurrency makes ineffective."""
    out = []
    startup = options.get("n_startup_trials")
    if kind in ("tpe", "gp") and startup is not None and concurrency > 1 and int(startup) < concurrency:
        out.append(("sampler.n_startup_trials", f"{startup} is below budget.concurrency={concurrency}: the first "
                    f"{concurrency} trials are suggested before any result, so they are random anyway"))
    population = options.get("population_size")
    if kind == "nsga2" and population is not None and int(population) < concurrency:
        out.append(("sampler.population_size", f"{population} is below budget.concurrency={concurrency}: a "
                    f"generation is suggested before its parents finish; use at least {concurrency}"))
    return out
