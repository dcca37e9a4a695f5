"""Sweep specs: read a YAML file (``yaml.safe_load`` only), check every part, build a `SweepSpec`.

Every problem raises `SpecError` with ONE line: ``<file>: <key.path>: <what is wrong and what is
allowed>``. The format is documented in ``orchestrator/README_SECTION.md``; the shipped examples
are in ``search_spaces/``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from trainable.config import (PRESETS, ConfigError, TrialConfig, closest, coerce_value, field_names,
                               first_line, large_epsilon_warning, one_line, parse_number)

from .space import Param, SearchSpace

TOP_KEYS = ("name", "description", "preset", "objectives", "budget", "sampler", "scheduler", "resources",
            "retries", "base", "space")
SAMPLERS: dict[str, tuple[str, ...]] = {  # sampler type -> its allowed options
    "tpe": ("type", "seed", "n_startup_trials"),
    "nsga2": ("type", "seed", "population_size"),
    "random": ("type", "seed"),
    "grid": ("type", "seed"),
    "gp": ("type", "seed", "n_startup_trials"),
}
SCHEDULERS = ("asha",)
MODES = ("max", "min")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CORNER_LIMIT = 512  # combinations of choices/bounds checked by `validate`
_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(TrialConfig)}


class SpecError(ValueError):
    """A bad sweep spec; the message is one line naming the file and the key path."""


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str  # max | min


@dataclass(frozen=True)
class Scheduler:
    type: str
    metric: str
    mode: str
    grace_period: int
    reduction_factor: float
    max_t: int


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
    warnings: list[str] = field(default_factory=list)  # "<file>: <key>: ..." lines: valid but suspicious

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives]

    def base_config(self) -> TrialConfig:
        """Preset + base settings as a TrialConfig."""
        return TrialConfig.from_dict({**PRESETS[self.preset], **self.base})


# --- entry points ------------------------------------------------------------------------------------
def load_spec(path: str | Path, preset: str | None = None, overrides: Mapping[str, Any] | None = None,
              require_data: bool = False) -> SweepSpec:
    """Read and check the spec at `path`; `preset` and `overrides` (``--set``) take precedence.

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
    spec = parse_spec(text, path, preset, overrides, require_data)
    for warning in spec.warnings:
        print(f"warning: {one_line(warning)}", file=sys.stderr)
    return spec


def parse_spec(text: str, path: str | Path = "<spec>", preset: str | None = None,
               overrides: Mapping[str, Any] | None = None, require_data: bool = False) -> SweepSpec:
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
    return _Checker(path, require_data).check(raw, preset, dict(overrides or {}))


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
class _Checker:
    """Checks one spec; every `fail` names the file and key path."""

    def __init__(self, path: Path, require_data: bool = False) -> None:
        self.path = path
        self.require_data = require_data
        self.warnings: list[str] = []

    def warn(self, key: str, message: str) -> None:
        line = f"{self.path}: {key}: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(one_line(f"{self.path}: {key}: {message}"))

    # --- generic helpers -------------------------------------------------------------------------
    def keys(self, key: str, value: Any, allowed: tuple[str, ...] | list[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping with keys {', '.join(allowed)}; got {_show(value)}")
        for k in value:
            if k not in allowed:
                raise self.fail(f"{key}.{k}" if key else str(k), _unknown(k, list(allowed)))
        for k in required:
            if k not in value:
                raise self.fail(f"{key}.{k}" if key else str(k), "is required")
        return value

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer >= {minimum}, got {_show(value)}")
        if value < minimum:
            raise self.fail(key, f"{value} is below the minimum {minimum}")
        return value

    def number(self, key: str, value: Any) -> float:
        try:
            number = parse_number(value)
        except ConfigError:
            raise self.fail(key, f"expected a number such as 0.03 or 8/255, got {_show(value)}") from None
        if math.isnan(number) or math.isinf(number):
            raise self.fail(key, f"expected a finite number, got {_show(value)}")
        return number

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_show(value)}")
        return value

    # --- the spec ----------------------------------------------------------------------------------
    def check(self, raw: dict, preset_override: str | None, overrides: dict[str, Any]) -> SweepSpec:
        self.keys("", raw, TOP_KEYS)
        for k in ("name", "objectives", "budget", "space"):
            if k not in raw:
                raise self.fail(k, "is required")
        name = raw["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.fail("name", f"expected a short name of letters, digits, '_', '.', '-', got {_show(name)}")
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected text, got {_show(description)}")

        preset = preset_override if preset_override is not None else raw.get("preset", "demo")
        if not isinstance(preset, str) or preset not in PRESETS:
            where = "--preset" if preset_override is not None else "preset"
            raise self.fail(where, f"unknown preset {_show(preset)}{_hint(preset, list(PRESETS))}; "
                                   f"allowed: {', '.join(PRESETS)}")
        base = self.base(raw.get("base", {}), preset, overrides)
        base_values = {**PRESETS[preset], **base}
        base_config = self.trial_config("base", base_values)

        objectives = self.objectives(raw["objectives"], base_config)
        sampler, sampler_options = self.sampler(raw.get("sampler", "tpe"))
        space = self.space(raw["space"], base_values, sampler)
        scheduler = self.scheduler(raw.get("scheduler"), base_config, space, base, objectives)
        trials, concurrency, time_limit = self.budget(raw["budget"], sampler, space)
        cpu, gpu = self.resources(raw.get("resources", {}))
        retries = self.integer("retries", raw.get("retries", 1), 0)
        self.check_combinations(space, base_values)
        self.check_data(space, base_values, base)
        self.epsilon_warnings(base_config, space)
        return SweepSpec(
            path=self.path, name=name, description=description, preset=preset, objectives=objectives,
            trials=trials, concurrency=concurrency, time_limit_s=time_limit, sampler=sampler,
            sampler_options=sampler_options, scheduler=scheduler, cpu=cpu, gpu=gpu, retries=retries,
            base=base, space=space, raw=raw, warnings=list(self.warnings),
        )

    def trial_config(self, key: str, values: Mapping[str, Any]) -> TrialConfig:
        """Build a TrialConfig; a ConfigError becomes a SpecError on `key` (``base.<setting>`` for base)."""
        try:
            return TrialConfig.from_dict(values)
        except ConfigError as exc:
            message = str(exc)
            setting, _, rest = message.partition(": ")
            if key == "base" and rest and setting in _FIELD_TYPES:
                raise self.fail(f"base.{setting}", rest) from None
            raise self.fail(key, message) from None

    def setting(self, key: str, name: str, value: Any) -> Any:
        """Coerce one trial setting (fractions -> floats, ...); `key` is its key path."""
        if name not in _FIELD_TYPES:
            raise self.fail(key, _unknown(name, field_names(), what="trial setting"))
        try:
            return coerce_value(name, value, _FIELD_TYPES[name])
        except ConfigError as exc:
            raise self.fail(key, str(exc).partition(": ")[2] or str(exc)) from None

    def base(self, value: Any, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail("base", f"expected a mapping of trial settings, got {_show(value)}")
        base = {k: self.setting(f"base.{k}", str(k), v) for k, v in value.items()}
        for k, v in overrides.items():
            if k not in _FIELD_TYPES:
                raise self.fail(f"--set {k}", _unknown(k, field_names(), what="trial setting"))
            base[k] = v
        if "method" in base:  # a method in base re-derives its parts unless they are given too
            for part in ("objective", "adversary", "views"):
                base.setdefault(part, None)
        return base

    def objectives(self, value: Any, base_config: TrialConfig) -> list[Objective]:
        if not isinstance(value, list) or not value:
            raise self.fail("objectives", f"expected a non-empty list of {{metric: NAME, mode: max|min}}, "
                                          f"got {_show(value)}")
        out: list[Objective] = []
        for i, item in enumerate(value):
            key = f"objectives[{i}]"
            self.keys(key, item, ("metric", "mode"), required=("metric", "mode"))
            metric, mode = item["metric"], item["mode"]
            if metric not in base_config.metric_names():
                raise self.fail(f"{key}.metric", _unknown_metric(metric, base_config))
            if mode not in MODES:
                raise self.fail(f"{key}.mode", f"expected max or min, got {_show(mode)}")
            if metric in [o.metric for o in out]:
                raise self.fail(f"{key}.metric", f"{metric!r} is listed twice")
            out.append(Objective(metric, mode))
        return out

    def budget(self, value: Any, sampler: str, space: SearchSpace) -> tuple[int, int, float | None]:
        self.keys("budget", value, ("trials", "concurrency", "time_limit"),
                  required=() if sampler == "grid" else ("trials",))
        if sampler == "grid":
            size = space.grid_size()
            trials = self.integer("budget.trials", value.get("trials", size), 1)
            if trials > size:
                raise self.fail("budget.trials", f"{trials} trials, but the grid has only {size} points")
        else:
            trials = self.integer("budget.trials", value["trials"], 1)
        concurrency = self.integer("budget.concurrency", value.get("concurrency", 1), 1)
        limit = value.get("time_limit")
        return trials, concurrency, None if limit is None else self.duration("budget.time_limit", limit)

    def duration(self, key: str, value: Any) -> float:
        """Seconds, or text such as 90s, 30m, 2h."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[smh]\s*", value):
            v = value.strip()
            seconds = float(v[:-1]) * {"s": 1, "m": 60, "h": 3600}[v[-1]]
        else:
            raise self.fail(key, f"expected seconds or a duration such as 90s, 30m, 2h; got {_show(value)}")
        if not seconds > 0 or math.isinf(seconds):
            raise self.fail(key, f"must be a positive, finite duration, got {_show(value)}")
        return seconds

    def sampler(self, value: Any) -> tuple[str, dict[str, Any]]:
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, dict):
            raise self.fail("sampler", f"expected one of {', '.join(SAMPLERS)} or a mapping with `type`; "
                                       f"got {_show(value)}")
        kind = value.get("type")
        if not isinstance(kind, str) or kind not in SAMPLERS:
            raise self.fail("sampler" if "type" not in value or len(value) == 1 else "sampler.type",
                            f"unknown sampler {_show(kind)}{_hint(str(kind), list(SAMPLERS))}; "
                            f"allowed: {', '.join(SAMPLERS)}")
        self.keys("sampler", value, SAMPLERS[kind])
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
                  required=("type", "metric"))
        if value["type"] not in SCHEDULERS:
            raise self.fail("scheduler.type", f"unknown scheduler {_show(value['type'])}; allowed: "
                                              f"{', '.join(SCHEDULERS)}")
        metric = value["metric"]
        if metric not in base_config.metric_names():
            raise self.fail("scheduler.metric", _unknown_metric(metric, base_config))
        mode = value.get("mode")
        if mode is None:
            mode = {o.metric: o.mode for o in objectives}.get(metric)
            if mode is None:
                raise self.fail("scheduler.mode", f"required (max or min) because {metric!r} is not an objective")
        if mode not in MODES:
            raise self.fail("scheduler.mode", f"expected max or min, got {_show(mode)}")
        if base.get("eval_every", 1) != 1 and "eval_every" in base:
            raise self.fail("base.eval_every", f"must be 1 with the ASHA scheduler (it compares trials after "
                                               f"every epoch); got {base['eval_every']}")
        if "eval_every" in space.names:
            raise self.fail("space.eval_every", "cannot be swept with the ASHA scheduler (it is fixed to 1)")
        epochs = [base_config.epochs]
        for p in space.params:
            if p.name == "epochs":
                epochs.append(int(p.high) if p.kind == "int" else max(int(c) for c in p.candidates()))
            for settings in p.bundles.values():
                if "epochs" in settings:
                    epochs.append(int(settings["epochs"]))
        max_t = self.integer("scheduler.max_t", value.get("max_t", max(epochs)), 1)
        grace = self.integer("scheduler.grace_period", value.get("grace_period", 1), 1)
        if grace > max_t:
            raise self.fail("scheduler.grace_period", f"{grace} is above max_t={max_t} (the most epochs a trial runs)")
        factor = self.number("scheduler.reduction_factor", value.get("reduction_factor", 2))
        if factor <= 1:
            raise self.fail("scheduler.reduction_factor", f"must be > 1, got {factor}")
        return Scheduler("asha", metric, mode, grace, factor, max_t)

    def resources(self, value: Any) -> tuple[float, float]:
        self.keys("resources", value, ("cpu", "gpu"))
        cpu = self.number("resources.cpu", value.get("cpu", 1))
        if cpu <= 0:
            raise self.fail("resources.cpu", f"must be > 0, got {cpu}")
        gpu = self.number("resources.gpu", value.get("gpu", 0))
        if gpu < 0 or (gpu > 1 and not gpu.is_integer()):
            raise self.fail("resources.gpu", f"expected a fraction in [0, 1] or a whole number of GPUs, got {gpu}")
        return cpu, gpu

    # --- the space ---------------------------------------------------------------------------------
    def space(self, value: Any, base_values: dict[str, Any], sampler: str) -> SearchSpace:
        if not isinstance(value, dict) or not value:
            raise self.fail("space", f"expected a non-empty mapping of parameter -> {{float|int|choice: ...}}, "
                                     f"got {_show(value)}")
        params: list[Param] = []
        seen: set[str] = set()
        for name, decl in value.items():
            param = self.param(f"space.{name}", str(name), decl, base_values, seen)
            if sampler == "grid" and param.kind not in ("choice", "bundle"):
                raise self.fail(f"space.{name}", "the grid sampler needs `choice` parameters (list the values)")
            if sampler == "grid" and param.when:
                raise self.fail(f"space.{name}.when", "conditional parameters are not supported by the grid "
                                                      "sampler; use a bundle `choice: {row-name: {...}}` instead")
            seen.add(param.name)
            if param.kind == "bundle":
                seen.update(k for s in param.bundles.values() for k in s)
            params.append(param)
        bundle_keys = [k for p in params for s in p.bundles.values() for k in s]
        for p in params:
            if p.name in bundle_keys:
                raise self.fail(f"space.{p.name}", "is also set by a bundle; set it in one place only")
        return SearchSpace(params, base_values)

    def param(self, key: str, name: str, decl: Any, base_values: dict[str, Any], seen: set[str]) -> Param:
        allowed = ("float", "int", "choice", "log", "step", "when")
        self.keys(key, decl, allowed)
        kinds = [k for k in ("float", "int", "choice") if k in decl]
        if len(kinds) != 1:
            raise self.fail(key, "give exactly one of float: [low, high], int: [low, high], choice: [values]")
        kind = kinds[0]
        if kind == "choice" and isinstance(decl["choice"], dict):
            kind = "bundle"
        is_field = name in _FIELD_TYPES
        if kind != "bundle" and not is_field:
            raise self.fail(key, _unknown(name, field_names(), what="trial setting") +
                            " (only a bundle `choice: {name: {settings}}` may have a free name)")
        if kind == "bundle" and is_field:
            raise self.fail(key, f"{name!r} is a trial setting; a bundle of settings needs its own name, e.g. `row`")
        if is_field and _FIELD_TYPES[name].startswith("tuple"):
            raise self.fail(key, f"{name} is a list setting and cannot be swept; set it in base")
        when = self.when(f"{key}.when", decl.get("when", {}), seen)
        if kind in ("float", "int"):
            return self.range_param(key, name, kind, decl, base_values, when)
        for k in ("log", "step"):
            if k in decl:
                raise self.fail(f"{key}.{k}", "only applies to float and int ranges")
        if kind == "choice":
            return self.choice_param(key, name, decl["choice"], base_values, when)
        return self.bundle_param(key, name, decl["choice"], base_values, when, seen)

    def range_param(self, key: str, name: str, kind: str, decl: dict, base_values: dict[str, Any],
                    when: dict[str, tuple[Any, ...]]) -> Param:
        field_type = _FIELD_TYPES[name]
        if field_type != kind:
            hint = "use int: [low, high] or choice" if field_type == "int" else "use choice: [values]"
            if field_type == "float":
                hint = "use float: [low, high]"
            raise self.fail(f"{key}.{kind}", f"{name} is a {field_type.replace('| None', 'or null')} setting; {hint}")
        bounds = decl[kind]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise self.fail(f"{key}.{kind}", f"expected [low, high], got {_show(bounds)}")
        if kind == "int":
            low, high = (self.integer(f"{key}.{kind}[{i}]", b, -(2 ** 62)) for i, b in enumerate(bounds))
        else:
            low, high = (self.number(f"{key}.{kind}[{i}]", b) for i, b in enumerate(bounds))
        if low > high:
            raise self.fail(f"{key}.{kind}", f"low {bounds[0]} is above high {bounds[1]}; write [low, high]")
        if low == high:
            raise self.fail(f"{key}.{kind}", f"empty range [{bounds[0]}, {bounds[1]}]; low must be below high "
                                             f"(set a single value in base instead)")
        log = self.boolean(f"{key}.log", decl.get("log", False))
        if log and low <= 0:
            raise self.fail(f"{key}.log", f"a log range needs low > 0, got {bounds[0]}")
        step = None
        if "step" in decl:
            step = self.integer(f"{key}.step", decl["step"], 1) if kind == "int" else self.number(f"{key}.step",
                                                                                                 decl["step"])
            if step <= 0:
                raise self.fail(f"{key}.step", f"must be > 0, got {decl['step']}")
            if log:
                raise self.fail(f"{key}.step", "cannot be combined with log: true")
        for i, bound in enumerate((low, high)):
            self.trial_config(f"{key}.{kind}[{i}]", {**base_values, name: bound})
        return Param(name, kind, low, high, log=log, step=step, when=when)

    def choice_param(self, key: str, name: str, values: Any, base_values: dict[str, Any],
                     when: dict[str, tuple[Any, ...]]) -> Param:
        if not isinstance(values, list) or not values:
            raise self.fail(f"{key}.choice", f"expected a non-empty list of values, got {_show(values)}")
        choices = []
        for i, v in enumerate(values):
            if isinstance(v, (list, dict)):
                raise self.fail(f"{key}.choice[{i}]", f"expected a single value, got {_show(v)}")
            value = self.setting(f"{key}.choice[{i}]", name, v)
            if value in choices:
                raise self.fail(f"{key}.choice[{i}]", f"{_show(v)} is listed twice")
            self.trial_config(f"{key}.choice[{i}]", {**base_values, name: value})
            choices.append(value)
        return Param(name, "choice", choices=tuple(choices), when=when)

    def bundle_param(self, key: str, name: str, groups: dict, base_values: dict[str, Any],
                     when: dict[str, tuple[Any, ...]], seen: set[str]) -> Param:
        if not groups:
            raise self.fail(f"{key}.choice", "expected at least one named group of settings")
        bundles: dict[str, dict[str, Any]] = {}
        for group, settings in groups.items():
            gkey = f"{key}.choice.{group}"
            if not isinstance(group, str):
                raise self.fail(gkey, f"a group name must be text, got {_show(group)}")
            if not isinstance(settings, dict) or not settings:
                raise self.fail(gkey, f"expected a non-empty mapping of trial settings, got {_show(settings)}")
            values = {}
            for k, v in settings.items():
                values[str(k)] = self.setting(f"{gkey}.{k}", str(k), v)
                if k in seen:
                    raise self.fail(f"{gkey}.{k}", "is also a parameter declared earlier; set it in one place only")
            if "method" in values:
                for part in ("objective", "adversary", "views"):
                    values.setdefault(part, None)
            self.trial_config(gkey, {**base_values, **values})
            bundles[group] = values
        return Param(name, "bundle", bundles=bundles, when=when)

    def when(self, key: str, value: Any, seen: set[str]) -> dict[str, tuple[Any, ...]]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping such as {{adversary: free}}, got {_show(value)}")
        out: dict[str, tuple[Any, ...]] = {}
        for k, v in value.items():
            k = str(k)
            if k not in _FIELD_TYPES and k not in seen:
                raise self.fail(f"{key}.{k}", _unknown(k, field_names() + sorted(seen), what="setting or parameter"))
            items = v if isinstance(v, list) else [v]
            if not items:
                raise self.fail(f"{key}.{k}", "expected a value or a non-empty list of values")
            if k in _FIELD_TYPES:
                items = [self.setting(f"{key}.{k}", k, item) for item in items]
            out[k] = tuple(items)
        return out

    def check_combinations(self, space: SearchSpace, base_values: dict[str, Any]) -> None:
        """Every combination of choices and range bounds (up to CORNER_LIMIT) must be a valid trial."""
        for chosen in space.corner_settings(CORNER_LIMIT):
            values = {k: v for k, v in chosen.items() if k in _FIELD_TYPES}
            try:
                TrialConfig.from_dict({**base_values, **values})
            except ConfigError as exc:
                shown = ", ".join(f"{k}={_short(v)}" for k, v in chosen.items())
                raise self.fail("space", f"the combination {{{shown}}} is not a valid trial: {exc}") from None


    def check_data(self, space: SearchSpace, base_values: dict[str, Any], base: dict[str, Any]) -> None:
        """The data files of every dataset/data_dir the trials use exist (nothing is read)."""
        first = (base_values.get("dataset"), base_values.get("data_dir"))
        where = "base.data_dir" if "data_dir" in base else "base.dataset" if "dataset" in base else "preset"
        pairs = {first: where}
        if "dataset" in space.names + space.bundle_keys or "data_dir" in space.names + space.bundle_keys:
            for chosen in space.corner_settings(CORNER_LIMIT):
                pairs.setdefault((chosen.get("dataset", first[0]), chosen.get("data_dir", first[1])), "space")
        for (dataset, data_dir), key in pairs.items():
            if dataset in ("cifar10", "cifar100") and data_dir is None and not self.require_data:
                self.warn(key, f"{dataset} needs data_dir (a directory holding its python-pickle batches); "
                               f"give it with --set data_dir=DIR when running")
                continue
            problem = data_problem(dataset, data_dir)
            if problem:
                raise self.fail(key, problem)

    def epsilon_warnings(self, base_config: TrialConfig, space: SearchSpace) -> None:
        """Perturbation budgets above 64/255 are allowed but rarely meant (8 written for 8/255)."""
        for warning in base_config.warnings():
            self.warn(f"base.{warning.partition(': ')[0]}", warning.partition(": ")[2])
        keys = ("epsilon", "eval_epsilon")
        for p in space.params:
            values = []
            if p.name in keys:
                values = [(f"space.{p.name}", p.name, v) for v in ([p.high] if p.kind in ("float", "int") else p.choices)]
            for group, settings in p.bundles.items():
                values += [(f"space.{p.name}.choice.{group}.{k}", k, settings[k]) for k in keys if k in settings]
            for key, name, value in values:
                warning = large_epsilon_warning(name, value)
                if warning:
                    self.warn(key, warning.partition(": ")[2])


def data_problem(dataset: Any, data_dir: Any) -> str | None:
    """Why the files of `dataset` in `data_dir` are not where a trial will look, or None; checks that the
    expected files exist without reading them (``embedded`` and ``synthetic`` ship with the package)."""
    if dataset not in ("cifar10", "cifar100", "fashion-mnist") or (isinstance(data_dir, str) and "://" in data_dir):
        return None
    from trainable import data

    try:
        if dataset == "fashion-mnist":
            for split in data.SPLITS:
                data.fashion_mnist_paths(data_dir or data.FASHION_MNIST_DIR, split)
            return None
        folder = data._cifar_folder(dataset, data_dir)
        _, train_files, test_files, _ = data._CIFAR_LAYOUTS[dataset]
        missing = [f for f in train_files + test_files if not (folder / f).is_file()]
        if missing:
            return f"{dataset}: {folder} is missing {', '.join(missing)}; expected {data._cifar_expected(dataset)}"
    except data.DatasetError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:  # a path the OS refuses (too long, NUL byte, ...)
        return f"{dataset}: data_dir {data_dir!r} cannot be used ({first_line(exc)})"
    return None


# --- message helpers ---------------------------------------------------------------------------------------
def _unknown(key: Any, allowed: list[str], what: str = "key") -> str:
    return f"unknown {what} {key!r}{_hint(str(key), allowed)}; allowed: {', '.join(allowed)}"


def _hint(value: str, allowed: list[str]) -> str:
    close = closest(value, allowed)
    return f" (did you mean {close!r}?)" if close else ""


def _unknown_metric(metric: Any, config: TrialConfig) -> str:
    names = config.metric_names()
    allowed = f"allowed: {', '.join(names)}"
    if metric == "ncrop_acc":
        return f"metric 'ncrop_acc' is reported only with ncrop_eval > 0 (set it in base); {allowed}"
    if metric == "autoattack_acc":
        return f"metric 'autoattack_acc' is reported only with autoattack: true (set it in base); {allowed}"
    if isinstance(metric, str) and metric.startswith("robust_acc@"):
        return (f"metric {metric!r} is not reported: the trials evaluate robust accuracy at eval_epsilons "
                f"{', '.join(n.partition('@')[2] for n in names if '@' in n)} only (add {metric[11:]} to "
                f"base.eval_epsilons); {allowed}")
    return f"unknown metric {metric!r}{_hint(str(metric), names)}; {allowed}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
