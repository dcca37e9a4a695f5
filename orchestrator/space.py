"""A sweep's search space: the YAML grammar of ``space:``, its parameters, and the picklable Optuna
define-by-run callable built from them.

The grammar (`parse_space`), one entry per parameter, in declaration order::

    epsilon: {float: [0, 16/255]}                       # a range; `log: true`, `step: 0.5`
    replay_steps: {int: [1, 5], when: {adversary: free}}  # a conditional parameter
    num_crops: {choice: [4, 8, 16]}                     # a categorical
    row: {choice: {name-a: {settings...}, name-b: {settings...}}}   # a bundle of settings

`SearchSpace` is a plain class (not a closure) so Ray Tune can pickle it into its searcher
checkpoint. Parameters are suggested in declaration order; a parameter with a ``when`` condition
is suggested only when the condition holds for the values chosen so far (falling back to the
trial's base settings, with ``objective``/``adversary``/``views`` derived from ``method``), so a
condition sees only the parameters and bundles declared before it (`parse_space` warns when a
later one can change what it looks at). A *bundle* is a categorical over named groups of
settings: Optuna sees the group's name, and the trial receives the group's settings.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import optuna

from trainable.config import METHODS, ConfigError, TrialConfig, field_names, merge_settings

from .checks import FIELD_TYPES, Checker, short, show, unknown

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
    resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # bundle name -> {cpu, gpu}

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a float or int range."""
        if self.low is None or self.high is None:
            raise TypeError(f"{self.name} is a {self.kind} parameter, not a range")
        return self.low, self.high

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution this parameter is suggested from."""
        if self.kind == "float":
            low, high = self.bounds
            return optuna.distributions.FloatDistribution(float(low), float(high), log=self.log,
                                                          step=None if self.step is None else float(self.step))
        if self.kind == "int":
            low, high = self.bounds
            return optuna.distributions.IntDistribution(int(low), int(high), log=self.log,
                                                        step=1 if self.step is None else int(self.step))
        if self.kind == "choice":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        return optuna.distributions.CategoricalDistribution(list(self.bundles))

    def describe(self) -> str:
        """One line for `orchestrator validate`: kind, range or choices, condition."""
        log = " log" if self.log else ""
        shown = {"float": lambda: f"float [{self.low:g}, {self.high:g}]{log}",
                 "int": lambda: f"int [{self.low}, {self.high}]{log}",
                 "choice": lambda: f"choice {list(self.choices)}",
                 "bundle": lambda: f"bundle of {len(self.bundles)}: {', '.join(self.bundles)}"}[self.kind]()
        when = f" when {dict((k, list(v)) for k, v in self.when.items())}" if self.when else ""
        return shown + when

    def value_problem(self, value: Any) -> str | None:
        """Why `value` is not one this parameter can take (None when it can)."""
        if self.kind == "bundle":
            return None if isinstance(value, str) and value in self.bundles else \
                f"{show(value)} is not one of its bundles {', '.join(self.bundles)}"
        if self.kind == "choice":
            return None if value in self.choices else f"{show(value)} is not one of its choices {list(self.choices)}"
        low, high = self.bounds
        if not low <= value <= high:
            return f"{short(value)} is outside its range [{short(low)}, {short(high)}]"
        return None

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
            low, high = p.bounds
            return trial.suggest_float(p.name, float(low), float(high), log=p.log,
                                       step=None if p.step is None else float(p.step))
        if p.kind == "int":
            low, high = p.bounds
            return trial.suggest_int(p.name, int(low), int(high), log=p.log,
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

    def resources_for(self, config: Mapping[str, Any]) -> Mapping[str, float]:
        """The resources (cpu, gpu; either may be missing) the bundle chosen in `config` asks for, or {}."""
        for p in self.params:
            if p.resources and config.get(p.name) in p.resources:
                return p.resources[config[p.name]]
        return {}

    def check_point(self, check: Checker, key: str, value: Any) -> dict[str, Any]:
        """An `enqueue` entry as Optuna's fixed parameters: a mapping of parameter values (bundles by
        name) or a bundle name alone; each value coerced to its parameter's type and checked."""
        if isinstance(value, str):
            owners = [p.name for p in self.params if p.kind == "bundle" and value in p.bundles]
            if not owners:
                bundles = [f"{p.name}: {', '.join(p.bundles)}" for p in self.params if p.kind == "bundle"]
                raise check.fail(key, f"{value!r} is not the name of a bundle; "
                                      f"{'bundles: ' + '; '.join(bundles) if bundles else 'the space has no bundles'}")
            if len(owners) > 1:
                raise check.fail(key, f"{value!r} is a bundle of {' and '.join(owners)}; write {{{owners[0]}: {value}}}")
            return {owners[0]: value}
        if not isinstance(value, dict) or not value:
            raise check.fail(key, f"expected a mapping of parameter values or a bundle name, got {show(value)}")
        by_name = {p.name: p for p in self.params}
        point: dict[str, Any] = {}
        for name, given in value.items():
            p = by_name.get(str(name))
            if p is None:
                raise check.fail(f"{key}.{name}", unknown(name, self.names, what="space parameter"))
            where = f"{key}.{name}"
            if p.kind == "float":
                v: Any = check.number(where, given)
            elif p.kind == "int":
                v = check.integer(where, given, -(2 ** 62))
            elif p.kind == "choice":
                v = check.setting(where, p.name, given)
            else:
                v = given
            problem = p.value_problem(v)
            if problem:
                raise check.fail(where, problem)
            point[p.name] = v
        self._warn_unused(check, key, point)
        return point

    def _warn_unused(self, check: Checker, key: str, point: Mapping[str, Any]) -> None:
        """Warn about a value of `point` for a parameter whose `when` is known to fail for the point (Optuna
        would never ask for it); a condition on a parameter the point leaves to the sampler is not judged."""
        chosen: dict[str, Any] = {}
        for p in self.params:
            if p.name in point:
                chosen[p.name] = point[p.name]
                if p.kind == "bundle":
                    chosen.update(p.bundles[point[p.name]])
        swept = {k for p in self.params if p.name not in point for k in _changes(p)}
        for p in self.params:
            if p.name in point and p.when and not (set(p.when) & swept) and not is_active(p, chosen, self.base):
                check.warn(f"{key}.{p.name}", f"is not used: its condition {dict((k, list(v)) for k, v in p.when.items())} "
                                              f"does not hold for this point")

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


# --- the grammar -----------------------------------------------------------------------------------------
CORNER_LIMIT = 512  # combinations of choices/bounds checked for validity


def parse_space(check: Checker, value: Any, base_values: dict[str, Any], needs_choices: bool) -> SearchSpace:
    """The ``space:`` section as a `SearchSpace`; `needs_choices`: the sampler (grid) takes only
    ``choice`` parameters and bundles, without ``when``. Every combination of choices and range
    bounds (up to `CORNER_LIMIT`) must make a valid trial."""
    if not isinstance(value, dict) or not value:
        raise check.fail("space", f"expected a non-empty mapping of parameter -> {{float|int|choice: ...}}, "
                                  f"got {show(value)}")
    parser = _Grammar(check, base_values)
    params: list[Param] = []
    for name, decl in value.items():
        param = parser.param(f"space.{name}", str(name), decl)
        if needs_choices and param.kind not in ("choice", "bundle"):
            raise check.fail(f"space.{name}", "the grid sampler needs `choice` parameters (list the values)")
        if needs_choices and param.when:
            raise check.fail(f"space.{name}.when", "conditional parameters are not supported by the grid "
                                                   "sampler; use a bundle `choice: {row-name: {...}}` instead")
        parser.seen.add(param.name)
        if param.kind == "bundle":
            parser.seen.update(k for s in param.bundles.values() for k in s)
        params.append(param)
    bundle_keys = [k for p in params for s in p.bundles.values() for k in s]
    for p in params:
        if p.name in bundle_keys:
            raise check.fail(f"space.{p.name}", "is also set by a bundle; set it in one place only")
    with_resources = [p.name for p in params if p.resources]
    if len(with_resources) > 1:
        raise check.fail(f"space.{with_resources[1]}", f"only one bundle parameter may give its rows resources; "
                                                       f"{with_resources[0]!r} already does")
    _warn_late_conditions(check, params)
    space = SearchSpace(params, base_values)
    _check_combinations(check, space, base_values)
    return space


def _changes(param: Param) -> set[str]:
    """The settings a parameter can change: its own name, a bundle's settings, `method`'s parts."""
    keys = {param.name} | {k for s in param.bundles.values() for k in s}
    if "method" in keys:
        keys.update(DERIVED)
    return keys


def _warn_late_conditions(check: Checker, params: list[Param]) -> None:
    """A `when` is evaluated when its parameter is suggested: a later parameter or bundle that can
    change what it looks at is not seen yet (declaration order matters)."""
    for i, p in enumerate(params):
        for key in p.when:
            later = [q.name for q in params[i + 1:] if key in _changes(q)]
            if later:
                check.warn(f"space.{p.name}.when.{key}", f"is evaluated when {p.name!r} is suggested, before "
                           f"{', '.join(repr(n) for n in later)} (declared later) can change {key!r}; declare "
                           f"{later[0]!r} before {p.name!r} if the condition should see it")


def _check_combinations(check: Checker, space: SearchSpace, base_values: dict[str, Any]) -> None:
    for chosen in space.corner_settings(CORNER_LIMIT):
        values = {k: v for k, v in chosen.items() if k in FIELD_TYPES}
        try:
            TrialConfig.from_dict(merge_settings(base_values, values))
        except ConfigError as exc:
            shown = ", ".join(f"{k}={short(v)}" for k, v in chosen.items())
            raise check.fail("space", f"the combination {{{shown}}} is not a valid trial: {exc}") from None


class _Grammar:
    """Parses parameter declarations; `seen` holds the names declared so far (for `when`)."""

    def __init__(self, check: Checker, base_values: dict[str, Any]) -> None:
        self.check = check
        self.base_values = base_values
        self.seen: set[str] = set()

    def param(self, key: str, name: str, decl: Any) -> Param:
        check = self.check
        check.keys(key, decl, ("float", "int", "choice", "log", "step", "when"))
        kinds = [k for k in ("float", "int", "choice") if k in decl]
        if len(kinds) != 1:
            raise check.fail(key, "give exactly one of float: [low, high], int: [low, high], choice: [values]")
        kind = kinds[0]
        if kind == "choice" and isinstance(decl["choice"], dict):
            kind = "bundle"
        is_field = name in FIELD_TYPES
        if kind != "bundle" and not is_field:
            raise check.fail(key, unknown(name, field_names(), what="trial setting") +
                             " (only a bundle `choice: {name: {settings}}` may have a free name)")
        if kind == "bundle" and is_field:
            raise check.fail(key, f"{name!r} is a trial setting; a bundle of settings needs its own name, e.g. `row`")
        if is_field and FIELD_TYPES[name].startswith("tuple"):
            raise check.fail(key, f"{name} is a list setting and cannot be swept; set it in base")
        when = self.when(f"{key}.when", decl.get("when", {}))
        if kind in ("float", "int"):
            return self.range(key, name, kind, decl, when)
        for k in ("log", "step"):
            if k in decl:
                raise check.fail(f"{key}.{k}", "only applies to float and int ranges")
        if kind == "choice":
            return self.choice(key, name, decl["choice"], when)
        return self.bundle(key, name, decl["choice"], when)

    def range(self, key: str, name: str, kind: str, decl: dict, when: dict[str, tuple[Any, ...]]) -> Param:
        check = self.check
        field_type = FIELD_TYPES[name]
        if field_type != kind:
            hint = "use int: [low, high] or choice" if field_type == "int" else "use choice: [values]"
            if field_type == "float":
                hint = "use float: [low, high]"
            raise check.fail(f"{key}.{kind}", f"{name} is a {field_type.replace('| None', 'or null')} setting; {hint}")
        bounds = decl[kind]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise check.fail(f"{key}.{kind}", f"expected [low, high], got {show(bounds)}")
        low: float
        high: float
        if kind == "int":
            low, high = (check.integer(f"{key}.{kind}[{i}]", b, -(2 ** 62)) for i, b in enumerate(bounds))
        else:
            low, high = (check.number(f"{key}.{kind}[{i}]", b) for i, b in enumerate(bounds))
        if low > high:
            raise check.fail(f"{key}.{kind}", f"low {bounds[0]} is above high {bounds[1]}; write [low, high]")
        if low == high:
            raise check.fail(f"{key}.{kind}", f"empty range [{bounds[0]}, {bounds[1]}]; low must be below high "
                                              f"(set a single value in base instead)")
        log = check.boolean(f"{key}.log", decl.get("log", False))
        if log and low <= 0:
            raise check.fail(f"{key}.log", f"a log range needs low > 0, got {bounds[0]}")
        step = None
        if "step" in decl:
            step = check.integer(f"{key}.step", decl["step"], 1) if kind == "int" else check.number(f"{key}.step",
                                                                                                  decl["step"])
            if step <= 0:
                raise check.fail(f"{key}.step", f"must be > 0, got {decl['step']}")
            if log:
                raise check.fail(f"{key}.step", "cannot be combined with log: true")
        for i, bound in enumerate((low, high)):
            check.trial_config(f"{key}.{kind}[{i}]", merge_settings(self.base_values, {name: bound}))
        return Param(name, kind, low, high, log=log, step=step, when=when)

    def choice(self, key: str, name: str, values: Any, when: dict[str, tuple[Any, ...]]) -> Param:
        check = self.check
        if not isinstance(values, list) or not values:
            raise check.fail(f"{key}.choice", f"expected a non-empty list of values, got {show(values)}")
        choices: list[Any] = []
        for i, v in enumerate(values):
            if isinstance(v, (list, dict)):
                raise check.fail(f"{key}.choice[{i}]", f"expected a single value, got {show(v)}")
            value = check.setting(f"{key}.choice[{i}]", name, v)
            if value in choices:
                raise check.fail(f"{key}.choice[{i}]", f"{show(v)} is listed twice")
            check.trial_config(f"{key}.choice[{i}]", {**self.base_values, name: value})
            choices.append(value)
        return Param(name, "choice", choices=tuple(choices), when=when)

    def bundle(self, key: str, name: str, groups: dict, when: dict[str, tuple[Any, ...]]) -> Param:
        check = self.check
        if not groups:
            raise check.fail(f"{key}.choice", "expected at least one named group of settings")
        bundles: dict[str, dict[str, Any]] = {}
        resources: dict[str, dict[str, float]] = {}
        for group, settings in groups.items():
            gkey = f"{key}.choice.{group}"
            if not isinstance(group, str):
                raise check.fail(gkey, f"a group name must be text, got {show(group)}")
            if not isinstance(settings, dict) or not settings:
                raise check.fail(gkey, f"expected a non-empty mapping of trial settings, got {show(settings)}")
            if "resources" in settings:  # what a trial of this row asks of Ray, instead of the spec's `resources`
                settings = dict(settings)
                resources[group] = check.resources(f"{gkey}.resources", settings.pop("resources"))
                if not settings:
                    raise check.fail(gkey, "expected at least one trial setting besides resources")
            values = {}
            for k, v in settings.items():
                values[str(k)] = check.setting(f"{gkey}.{k}", str(k), v)
                if k in self.seen:
                    raise check.fail(f"{gkey}.{k}", "is also a parameter declared earlier; set it in one place only")
            if "method" in values:
                for part in DERIVED:
                    values.setdefault(part, None)
            check.trial_config(gkey, {**self.base_values, **values})
            bundles[group] = values
        return Param(name, "bundle", bundles=bundles, when=when, resources=resources)

    def when(self, key: str, value: Any) -> dict[str, tuple[Any, ...]]:
        check = self.check
        if not isinstance(value, dict):
            raise check.fail(key, f"expected a mapping such as {{adversary: free}}, got {show(value)}")
        out: dict[str, tuple[Any, ...]] = {}
        for k, v in value.items():
            k = str(k)
            if k not in FIELD_TYPES and k not in self.seen:
                raise check.fail(f"{key}.{k}", unknown(k, field_names() + sorted(self.seen),
                                                       what="setting or parameter"))
            items = v if isinstance(v, list) else [v]
            if not items:
                raise check.fail(f"{key}.{k}", "expected a value or a non-empty list of values")
            if k in FIELD_TYPES:
                items = [check.setting(f"{key}.{k}", k, item) for item in items]
            out[k] = tuple(items)
        return out
