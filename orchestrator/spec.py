"""Sweep specs: read a YAML file (``yaml.safe_load`` only), check every part, build a `SweepSpec`.

Every problem raises `SpecError` with ONE line: ``<file>: <key.path>: <what is wrong and what is
allowed>``. The sections are checked here; the ``space:`` grammar lives with the space builder
(`orchestrator.space`), the samplers and their options in `orchestrator.samplers`. The format is
documented in the README ("The spec"); the shipped examples are in ``search_spaces/``.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from trainable.config import AUTOATTACK_SUITES, PRESETS, TrialConfig, field_names, large_epsilon_warning, merge_settings
from trainable.data import DATASETS, data_problem

from .checks import FIELD_TYPES, Checker, SpecError, short, show, unknown, unknown_metric
from .execution import Execution, check_execution
from .layout import MODES, Constraint, Objective, did_you_mean, first_line, one_line
from .samplers import SAMPLERS, concurrency_warnings
from .space import CORNER_LIMIT, SearchSpace, parse_space
from .verify import VerifySettings

TOP_KEYS = ("name", "description", "preset", "objectives", "budget", "sampler", "scheduler", "resources",
            "retries", "execution", "verify", "base", "space", "enqueue", "constraints")
BUDGET_FLAGS = {"trials": "--trials", "concurrency": "--concurrency", "time_limit": "--time-limit"}
CONSTRAINED_SAMPLERS = tuple(k for k, kind in SAMPLERS.items() if kind.constraints)  # take constraints_func
SCHEDULERS = ("asha", "pareto-asha")  # built by `orchestrator.schedulers`
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
__all__ = ["SpecError", "SweepSpec", "Objective", "Scheduler", "load_spec", "parse_spec"]


@dataclass(frozen=True)
class Scheduler:
    type: str  # asha: on `metric` alone; pareto-asha: on all of `objectives` (then metric and mode are None)
    metric: str | None
    mode: str | None
    grace_period: int
    reduction_factor: float
    max_t: int
    objectives: tuple[Objective, ...] = ()

    def describe(self) -> str:
        if self.type == "pareto-asha":
            return f"Pareto-ASHA on {', '.join(o.metric for o in self.objectives)}"
        return f"ASHA on {self.metric}"


@dataclass
class SweepSpec:
    """A checked sweep spec. `base` holds only the spec's (and --set) overrides of the preset."""

    path: Path
    name: str
    description: str
    preset: str
    objectives: list[Objective]
    trials: int
    concurrency: int
    time_limit_s: float | None
    sampler: str
    sampler_options: dict[str, Any]
    scheduler: Scheduler | None
    cpu: float
    gpu: float
    retries: int
    base: dict[str, Any]
    space: SearchSpace
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    execution: Execution = field(default_factory=Execution)  # how the driver runs it (`orchestrator.execution`)
    warnings: list[str] = field(default_factory=list)  # "<file>: <key>: ..." lines: valid but suspicious
    trial_time_limit_s: float | None = None  # budget.trial_time_limit: an attempt running longer is stopped
    verify: VerifySettings | None = field(default_factory=VerifySettings)  # None: the front is not re-verified
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # points Optuna evaluates first, in order
    constraints: list[Constraint] = field(default_factory=list)  # a trial breaking one is infeasible

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives]

    def base_config(self) -> TrialConfig:
        """Preset + base settings as a TrialConfig."""
        return TrialConfig.from_dict(merge_settings(PRESETS[self.preset], self.base))


def trial_configs(space: SearchSpace, limit: int = CORNER_LIMIT) -> list[tuple[dict[str, Any], TrialConfig]]:
    """(chosen values, resolved TrialConfig) for each combination of representative values of the
    space (choices, bundles, range bounds; at most `limit`), as `validate` lists the rows."""
    out = []
    for chosen in space.corner_settings(limit):
        values = {k: v for k, v in chosen.items() if k in FIELD_TYPES}
        out.append((chosen, TrialConfig.from_dict(merge_settings(space.base, values))))
    return out


def describe_training(config: TrialConfig) -> str:
    """One line of what a trial trains: method, profile, epochs, m or K, crops, batch size."""
    objective, adversary, views = config.resolved
    attack = {"free": f", m {config.replay_steps}", "pgd": f", PGD-{config.pgd_steps}"}.get(adversary, "")
    budget = f" (budget_epochs {config.budget_epochs})" if config.budget_epochs else ""
    return (f"{config.method or 'custom'} ({objective}+{adversary}+{views}), profile {config.profile}, "
            f"epochs {config.epochs}{budget}{attack}, crops {config.num_crops}, batch {config.batch_size}")


def training_rows(spec: SweepSpec, limit: int = 24) -> list[str]:
    """`validate`'s listing: what each row of the space trains (one line per distinct combination of
    bundles and choices, seeds left out; ranges show their bounds), at most `limit` lines."""
    rows = trial_configs(spec.space)
    lines: list[str] = []
    for chosen, config in rows:
        label = " ".join(f"{k}={short(v)}" for k, v in chosen.items() if k in spec.space.names and k != "seed")
        line = f"{label or 'base'}: {describe_training(config)}"
        if line not in lines:
            lines.append(line)
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more combinations"]
    if not rows:
        lines.append(f"base: {describe_training(spec.base_config())}")
    return lines


# --- entry points ------------------------------------------------------------------------------------
def load_spec(path: str | Path, preset: str | None = None, overrides: Mapping[str, Any] | None = None,
              require_data: bool = False, budget: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read and check the spec at `path`; `preset`, `overrides` (``--set``) and `budget` (``--trials``,
    ``--concurrency``, ``--time-limit`` as keys trials, concurrency, time_limit) take precedence.

    Warnings (valid but suspicious settings) are printed to stderr. A data_dir that is given but does not
    hold the dataset's files is always an error; `require_data` makes a CIFAR dataset without any data_dir
    one too (default: a warning, since shipped specs get their data_dir from ``--set`` when they run).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise SpecError(f"{path}: cannot be read: {reason}") from None
    spec = parse_spec(text, path, preset, overrides, require_data, budget)
    for warning in spec.warnings:
        print(f"warning: {one_line(warning)}", file=sys.stderr)
    return spec


def parse_spec(text: str, path: str | Path = "<spec>", preset: str | None = None,
               overrides: Mapping[str, Any] | None = None, require_data: bool = False,
               budget: Mapping[str, Any] | None = None) -> SweepSpec:
    """Parse YAML text into a checked `SweepSpec` (see `load_spec`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(text)  # plain data only: no YAML tag can name a Python object
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: {_yaml_problem(exc)}") from None
    except (ValueError, RecursionError) as exc:  # e.g. a NUL byte or absurd nesting
        raise SpecError(f"{path}: malformed YAML: {first_line(exc)}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a mapping with keys {', '.join(TOP_KEYS)}; "
                        f"got {type(raw).__name__}")
    return _SpecChecker(path, require_data).check(raw, preset, dict(overrides or {}), dict(budget or {}))


def _flag_value(text: Any) -> Any:
    """A command-line budget value as YAML would give it: whole numbers as int, other numbers as float."""
    if isinstance(text, str):
        stripped = text.strip()
        if re.fullmatch(r"[+-]?\d+", stripped):
            return int(stripped)
        if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", stripped):
            return float(stripped)
    return text


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or first_line(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    tag = re.search(r"constructor for the tag '([^']*)'", problem) if isinstance(exc, yaml.constructor.ConstructorError) else None
    if tag:  # !!python/object/apply:..., !!python/name:..., any custom tag: refused, nothing is constructed
        shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        return (f"YAML tag {shown!r}{where} is not allowed; a spec is plain YAML (mappings, lists, text, "
                f"numbers) and cannot name Python objects")
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    started = f" ({context} started at line {start.line + 1}, column {start.column + 1})" if context and start else ""
    return f"malformed YAML{where}: {problem}{started}"


# --- the checker ---------------------------------------------------------------------------------------
class _SpecChecker(Checker):
    """Checks the sections of one spec; every `fail` names the file and key path."""

    def __init__(self, path: Path, require_data: bool = False) -> None:
        super().__init__(path)
        self.require_data = require_data

    # --- the spec ----------------------------------------------------------------------------------
    def check(self, raw: dict, preset_override: str | None, overrides: dict[str, Any],
              budget: dict[str, Any] | None = None) -> SweepSpec:
        self.keys("", raw, TOP_KEYS)
        for k in ("name", "objectives", "budget", "space"):
            if k not in raw:
                raise self.fail(k, "is required")
        name = raw["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.fail("name", f"expected a short name of letters, digits, '_', '.', '-', got {show(name)}")
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected text, got {show(description)}")

        preset = preset_override if preset_override is not None else raw.get("preset", "demo")
        if not isinstance(preset, str) or preset not in PRESETS:
            where = "--preset" if preset_override is not None else "preset"
            raise self.fail(where, f"unknown preset {show(preset)}{did_you_mean(preset, list(PRESETS))}; "
                                   f"allowed: {', '.join(PRESETS)}")
        base = self.base(raw.get("base", {}), preset, overrides)
        base_values = merge_settings(PRESETS[preset], base)
        base_config = self.trial_config("base", base_values)

        objectives = self.objectives(raw["objectives"], base_config)
        sampler, sampler_options = self.sampler(raw.get("sampler", "tpe"))
        space = parse_space(self, raw["space"], base_values, SAMPLERS[sampler].needs_choices)
        scheduler = self.scheduler(raw.get("scheduler"), base_config, space, base, objectives)
        trials, concurrency, time_limit = self.budget(raw["budget"], sampler, space, budget or {})
        for key, message in concurrency_warnings(sampler, sampler_options, concurrency):
            self.warn(key, message)
        execution = check_execution(self, raw.get("execution"))
        cpu, gpu = self.trial_resources(raw.get("resources", {}))
        retries = self.integer("retries", raw.get("retries", 1), 0)
        trial_limit = raw["budget"].get("trial_time_limit")
        trial_limit_s = None if trial_limit is None else self.duration("budget.trial_time_limit", trial_limit)
        self.check_data(space, base_values, base)
        self.epsilon_warnings(base_config, space)
        verify = self.verify(raw.get("verify", {}))
        enqueue = self.enqueue(raw.get("enqueue"), space, sampler, trials)
        constraints = self.constraints(raw.get("constraints"), base_config, sampler)
        return SweepSpec(
            path=self.path, name=name, description=description, preset=preset, objectives=objectives,
            trials=trials, concurrency=concurrency, time_limit_s=time_limit, sampler=sampler,
            sampler_options=sampler_options, scheduler=scheduler, cpu=cpu, gpu=gpu, retries=retries,
            base=base, space=space, raw=raw, execution=execution, warnings=list(self.warnings),
            trial_time_limit_s=trial_limit_s, verify=verify, enqueue=enqueue, constraints=constraints,
        )

    def verify(self, value: Any) -> VerifySettings | None:
        """``verify:`` - none/false, a suite name, or {suite, square_queries, images}; default: cheap."""
        if value is False or (isinstance(value, str) and value.lower() == "none"):
            return None
        key = "verify" if isinstance(value, str) else "verify.suite"
        if isinstance(value, str):
            value = {"suite": value}
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail("verify", f"expected none, a suite name or a mapping with keys suite, "
                                      f"square_queries, images; got {show(value)}")
        self.keys("verify", value, ("suite", "square_queries", "images"))
        default = VerifySettings()
        suite = value.get("suite", default.suite)
        if suite not in AUTOATTACK_SUITES:
            suites = list(AUTOATTACK_SUITES)
            raise self.fail(key, f"unknown AutoAttack suite {show(suite)}{did_you_mean(str(suite), suites)}; "
                                 f"allowed: {', '.join(suites)} (or verify: none)")
        queries = self.integer("verify.square_queries", value.get("square_queries", default.square_queries), 1)
        images = self.integer("verify.images", value.get("images", default.images), 0)
        return VerifySettings(suite, queries, images)

    def base(self, value: Any, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail("base", f"expected a mapping of trial settings, got {show(value)}")
        base = {k: self.setting(f"base.{k}", str(k), v) for k, v in value.items()}
        for k, v in overrides.items():
            if k not in FIELD_TYPES:
                raise self.fail(f"--set {k}", unknown(k, field_names(), what="trial setting"))
            base[k] = v
        if "method" in base:  # a method in base re-derives its parts unless they are given too
            for part in ("objective", "adversary", "views"):
                base.setdefault(part, None)
        return base

    def objectives(self, value: Any, base_config: TrialConfig) -> list[Objective]:
        if not isinstance(value, list) or not value:
            raise self.fail("objectives", f"expected a non-empty list of {{metric: NAME, mode: max|min}}, "
                                          f"got {show(value)}")
        out: list[Objective] = []
        for i, item in enumerate(value):
            key = f"objectives[{i}]"
            self.keys(key, item, ("metric", "mode"), required=("metric", "mode"))
            metric, mode = item["metric"], item["mode"]
            if metric not in base_config.metric_names():
                raise self.fail(f"{key}.metric", unknown_metric(metric, base_config))
            if mode not in MODES:
                raise self.fail(f"{key}.mode", f"expected max or min, got {show(mode)}")
            if metric in [o.metric for o in out]:
                raise self.fail(f"{key}.metric", f"{metric!r} is listed twice")
            out.append(Objective(metric, mode))
        return out

    def budget(self, value: Any, sampler: str, space: SearchSpace,
               flags: Mapping[str, Any]) -> tuple[int, int, float | None]:
        """budget.trials, .concurrency, .time_limit; a command-line flag (`flags`) replaces its key."""
        self.keys("budget", value, ("trials", "concurrency", "time_limit", "trial_time_limit"),
                  required=() if sampler == "grid" or "trials" in flags else ("trials",))
        merged, where = dict(value), {k: f"budget.{k}" for k in BUDGET_FLAGS}
        for k, given in flags.items():
            if given is not None:
                merged[k], where[k] = _flag_value(given), BUDGET_FLAGS[k]
        if sampler == "grid":
            size = space.grid_size()
            trials = self.integer(where["trials"], merged.get("trials", size), 1)
            if trials > size:
                raise self.fail(where["trials"], f"{trials} trials, but the grid has only {size} points")
        else:
            trials = self.integer(where["trials"], merged["trials"], 1)
        concurrency = self.integer(where["concurrency"], merged.get("concurrency", 1), 1)
        limit = merged.get("time_limit")
        return trials, concurrency, None if limit is None else self.duration(where["time_limit"], limit)

    def enqueue(self, value: Any, space: SearchSpace, sampler: str, trials: int) -> list[dict[str, Any]]:
        """The points evaluated first: mappings of parameter values, or bundle names."""
        if value is None:
            return []
        if not isinstance(value, list) or not value:
            raise self.fail("enqueue", f"expected a non-empty list of points ({{param: value, ...}} or a bundle "
                                       f"name), got {show(value)}")
        if sampler == "grid":
            raise self.fail("enqueue", "the grid sampler evaluates every grid point itself; enqueue needs tpe, "
                                       "nsga2, random or gp")
        if len(value) > trials:
            raise self.fail("enqueue", f"{len(value)} points, more than budget.trials ({trials})")
        return [space.check_point(self, f"enqueue[{i}]", item) for i, item in enumerate(value)]

    def constraints(self, value: Any, base_config: TrialConfig, sampler: str) -> list[Constraint]:
        """``[{metric: NAME, min: LOW, max: HIGH}, ...]``: bounds a feasible trial's final metrics keep."""
        if value is None:
            return []
        if not isinstance(value, list) or not value:
            raise self.fail("constraints", f"expected a non-empty list of {{metric: NAME, min: LOW, max: HIGH}}, "
                                           f"got {show(value)}")
        out: list[Constraint] = []
        for i, item in enumerate(value):
            key = f"constraints[{i}]"
            self.keys(key, item, ("metric", "min", "max"), required=("metric",))
            metric = item["metric"]
            if metric not in base_config.metric_names():
                raise self.fail(f"{key}.metric", unknown_metric(metric, base_config))
            if metric in [c.metric for c in out]:
                raise self.fail(f"{key}.metric", f"{metric!r} is listed twice; give min and max in one entry")
            if "min" not in item and "max" not in item:
                raise self.fail(key, f"give min: LOW, max: HIGH or both for {metric!r}")
            low = self.number(f"{key}.min", item["min"]) if "min" in item else None
            high = self.number(f"{key}.max", item["max"]) if "max" in item else None
            if low is not None and high is not None and low > high:
                raise self.fail(key, f"min {low:g} is above max {high:g}; no trial could be feasible")
            out.append(Constraint(metric, low, high))
        if sampler not in CONSTRAINED_SAMPLERS:
            self.warn("constraints", f"the {sampler} sampler does not use constraints when it samples (only "
                                     f"{', '.join(CONSTRAINED_SAMPLERS)} do); infeasible trials are still marked "
                                     f"and kept off the front")
        return out

    def sampler(self, value: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            raise self.fail("sampler", f"expected one of {', '.join(SAMPLERS)} or a mapping with `type`; "
                                       f"got {show(value)}")
        kind = value.get("type")
        if not isinstance(kind, str) or kind not in SAMPLERS:
            raise self.fail("sampler" if "type" not in value or len(value) == 1 else "sampler.type",
                            f"unknown sampler {show(kind)}{did_you_mean(str(kind), list(SAMPLERS))}; "
                            f"allowed: {', '.join(SAMPLERS)}")
        self.keys("sampler", value, ("type", *SAMPLERS[kind].options))
        options = {k: v for k, v in value.items() if k != "type"}
        if "seed" in options:
            self.integer("sampler.seed", options["seed"], 0)
        if "n_startup_trials" in options:
            self.integer("sampler.n_startup_trials", options["n_startup_trials"], 0)
        if "population_size" in options:
            self.integer("sampler.population_size", options["population_size"], 2)
        return kind, options

    def scheduler(self, value: Any, base_config: TrialConfig, space: SearchSpace, base: dict[str, Any],
                  objectives: list[Objective]) -> Scheduler | None:
        if value is None:
            return None
        self.keys("scheduler", value, ("type", "metric", "mode", "grace_period", "reduction_factor", "max_t"),
                  required=("type",))
        kind = value["type"]
        if not isinstance(kind, str) or kind not in SCHEDULERS:
            raise self.fail("scheduler.type", f"unknown scheduler {show(kind)}{did_you_mean(str(kind), list(SCHEDULERS))}; "
                                              f"allowed: {', '.join(SCHEDULERS)}")
        metric, mode = value.get("metric"), value.get("mode")
        if kind == "pareto-asha":
            for key in ("metric", "mode"):
                if key in value:
                    raise self.fail(f"scheduler.{key}", f"not used by pareto-asha, which ranks trials on all the "
                                                        f"objectives ({', '.join(o.metric for o in objectives)}) with "
                                                        f"their modes; remove it, or use type: asha to stop on one metric")
        else:
            if "metric" not in value:
                raise self.fail("scheduler.metric", "is required with type: asha (or use type: pareto-asha to rank "
                                                    "trials on all the objectives)")
            if metric not in base_config.metric_names():
                raise self.fail("scheduler.metric", unknown_metric(metric, base_config))
            if mode is None:
                mode = {o.metric: o.mode for o in objectives}.get(metric)
                if mode is None:
                    raise self.fail("scheduler.mode", f"required (max or min) because {metric!r} is not an objective")
            if mode not in MODES:
                raise self.fail("scheduler.mode", f"expected max or min, got {show(mode)}")
        name = "the ASHA scheduler" if kind == "asha" else "the pareto-asha scheduler"
        if base.get("eval_every", 1) != 1 and "eval_every" in base:
            raise self.fail("base.eval_every", f"must be 1 with {name} (it compares trials after "
                                               f"every epoch); got {base['eval_every']}")
        if "eval_every" in space.names:
            raise self.fail("space.eval_every", f"cannot be swept with {name} (it is fixed to 1)")
        epochs = [base_config.epochs] + [config.epochs for _, config in trial_configs(space)]
        max_t = self.integer("scheduler.max_t", value.get("max_t", max(epochs)), 1)
        grace = self.integer("scheduler.grace_period", value.get("grace_period", 1), 1)
        if grace > max_t:
            raise self.fail("scheduler.grace_period", f"{grace} is above max_t={max_t} (the most epochs a trial runs)")
        factor = self.number("scheduler.reduction_factor", value.get("reduction_factor", 2))
        if factor <= 1:
            raise self.fail("scheduler.reduction_factor", f"must be > 1, got {factor}")
        if kind == "pareto-asha":
            return Scheduler(kind, None, None, grace, factor, max_t, tuple(objectives))
        return Scheduler(kind, metric, mode, grace, factor, max_t)

    def trial_resources(self, value: Any) -> tuple[float, float]:
        given = self.resources("resources", value)
        return given.get("cpu", 1.0), given.get("gpu", 0.0)

    def check_data(self, space: SearchSpace, base_values: dict[str, Any], base: dict[str, Any]) -> None:
        """The data files of every dataset/data_dir the trials use exist (nothing is read)."""
        first = (base_values.get("dataset"), base_values.get("data_dir"))
        where = "base.data_dir" if "data_dir" in base else "base.dataset" if "dataset" in base else "preset"
        pairs = {first: where}
        if "dataset" in space.names + space.bundle_keys or "data_dir" in space.names + space.bundle_keys:
            for chosen in space.corner_settings(CORNER_LIMIT):
                pairs.setdefault((chosen.get("dataset", first[0]), chosen.get("data_dir", first[1])), "space")
        for (dataset, data_dir), key in pairs.items():
            kind = DATASETS.get(str(dataset))
            if kind is not None and kind.needs_data_dir and data_dir is None and not self.require_data:
                self.warn(key, f"{dataset} needs data_dir (a directory holding its python-pickle batches); "
                               f"give it with --set data_dir=DIR when running")
                continue
            problem = data_problem(str(dataset), data_dir)
            if problem:
                raise self.fail(key, problem)

    def epsilon_warnings(self, base_config: TrialConfig, space: SearchSpace) -> None:
        """Perturbation budgets above 64/255 are allowed but rarely meant (8 written for 8/255)."""
        for warning in base_config.warnings():
            self.warn(f"base.{warning.partition(': ')[0]}", warning.partition(": ")[2])
        keys = ("epsilon", "eval_epsilon")
        for p in space.params:
            values: list[tuple[str, str, Any]] = []
            if p.name in keys:
                values = [(f"space.{p.name}", p.name, v) for v in ([p.high] if p.kind in ("float", "int") else p.choices)]
            for group, settings in p.bundles.items():
                values += [(f"space.{p.name}.choice.{group}.{k}", k, settings[k]) for k in keys if k in settings]
            for key, name, value in values:
                large = large_epsilon_warning(name, value)
                if large:
                    self.warn(key, large.partition(": ")[2])
