"""``orchestrator sweep --warm-start DIR``: the finished trials of an earlier sweep as Optuna trials for
the new study, so the sampler starts from what is already known.

The earlier sweep's space (its ``spec.yaml`` copy, with the ``--preset``/``--set`` it ran with) must
match the new one: the same parameters, each of the same kind, scale, step and condition, and a
bundle of the same name holding the same settings; ranges and choice lists may differ as long as every
earlier trial's value lies in the new space. Otherwise the warm start is refused in one line naming
the parameter. Values come from its ``trials.parquet`` (the new spec's objectives, by metric name);
each copied trial carries the user attribute ``warm_start_from`` (``<dir>:<trial id>``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from trainable.config import parse_overrides

from .layout import (
    FRONT_STATUS,
    PARAM_PREFIX,
    SPEC_COPY,
    TRIALS_FILE,
    WARM_START_ATTR,
    SweepError,
    SweepState,
    UserError,
    constraint_values,
    first_line,
)
from .space import Param, SearchSpace
from .spec import SweepSpec, parse_spec


def space_difference(new: SearchSpace, old: SearchSpace) -> str | None:
    """Why trials over `old` cannot join a study over `new` (one phrase naming the parameter), or None."""
    before = {p.name: p for p in old.params}
    for p in new.params:
        q = before.get(p.name)
        if q is None:
            return f"space.{p.name} is not in its space (it sweeps {', '.join(old.names)})"
        if (p.kind, p.log, p.step, dict(p.when)) != (q.kind, q.log, q.step, dict(q.when)):
            return f"space.{p.name} differs: {p.describe()} here, {q.describe()} there"
        for group in set(p.bundles) & set(q.bundles):
            if dict(p.bundles[group]) != dict(q.bundles[group]):
                return (f"space.{p.name}.choice.{group} differs: {dict(p.bundles[group])} here, "
                        f"{dict(q.bundles[group])} there")
    extra = [q.name for q in old.params if q.name not in new.names]
    if extra:
        return f"its space also sweeps {', '.join(repr(n) for n in extra)}, this spec's does not"
    return None


def _value(param: Param, raw: Any) -> Any:
    """A ``param.<name>`` cell as the parameter's own type (None when the parameter was inactive)."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if hasattr(raw, "item"):  # numpy scalars
        raw = raw.item()
    if param.kind == "int" and isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if param.kind == "float" and isinstance(raw, (int, float)):
        return float(raw)
    if param.kind == "choice":
        return next((c for c in param.choices if c == raw), raw)
    return raw


def warm_trials(sweep_dir: Path, spec: SweepSpec) -> list[optuna.trial.FrozenTrial]:
    """The finished trials of the sweep in `sweep_dir` as COMPLETE Optuna trials over `spec`'s space
    (module docstring); a `SweepError` (one line) when the spaces do not match or nothing can be copied."""
    where = f"--warm-start {sweep_dir}"
    try:
        state = SweepState.load(sweep_dir)
    except SweepError as exc:
        raise SweepError(f"--warm-start {exc}") from None
    try:
        old = parse_spec((sweep_dir / SPEC_COPY).read_text(), sweep_dir / SPEC_COPY, state.preset,
                         parse_overrides(state.overrides), budget=state.budget)
    except (OSError, UserError) as exc:
        raise SweepError(f"{where}: its spec cannot be read ({first_line(exc)})") from None
    problem = space_difference(spec.space, old.space)
    if problem:
        raise SweepError(f"{where}: the spaces do not match: {problem}")
    try:
        trials = pd.read_parquet(sweep_dir / TRIALS_FILE)
    except (OSError, ValueError) as exc:
        raise SweepError(f"{where}: no readable {TRIALS_FILE} ({first_line(exc)})") from None
    missing = [m for m in spec.metrics if m not in trials.columns]
    if missing:
        raise SweepError(f"{where}: its trials do not report {', '.join(missing)} (this spec's objectives)")
    out = []
    for row in trials[trials["status"] == FRONT_STATUS].to_dict("records"):
        values = [float(row[m]) for m in spec.metrics]
        if not all(math.isfinite(v) for v in values):
            continue
        params: dict[str, Any] = {}
        distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        for p in spec.space.params:
            value = _value(p, row.get(PARAM_PREFIX + p.name))
            if value is None:
                continue
            problem = p.value_problem(value)
            if problem:
                raise SweepError(f"{where}: trial {row['trial_id']} has {p.name}={value}, which this spec's "
                                 f"space.{p.name} cannot take: {problem}")
            params[p.name], distributions[p.name] = value, p.distribution()
        user: dict[str, Any] = {WARM_START_ATTR: f"{sweep_dir}:{row['trial_id']}"}
        constraints = None
        if spec.constraints:
            found = constraint_values(spec.constraints, row)
            constraints = {c.metric: v for c, v in zip(spec.constraints, found)}
            user["constraints"] = found
        try:
            out.append(optuna.trial.create_trial(params=params, distributions=distributions, values=values,
                                                 user_attrs=user, constraints=constraints))
        except ValueError as exc:  # a value off a stepped range, ...
            raise SweepError(f"{where}: trial {row['trial_id']} does not fit this spec's space "
                             f"({first_line(exc)})") from None
    if not out:
        raise SweepError(f"{where}: it has no finished trials with finite {', '.join(spec.metrics)} to start from")
    _warn_base_differences(where, old, spec)
    return out


def _warn_base_differences(where: str, old: SweepSpec, new: SweepSpec) -> None:
    """A warning when the earlier trials were trained with other shared settings than the new ones."""
    before, now = old.base_config().to_dict(), new.base_config().to_dict()
    changed = [k for k in now if before.get(k) != now[k] and k != "threads"]
    if changed:
        shown = ", ".join(f"{k} {before.get(k)!r} there, {now[k]!r} here" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        print(f"warning: {where}: its trials ran with other base settings ({shown}{more}); the sampler learns "
              f"from their results as if they were comparable", file=sys.stderr)
