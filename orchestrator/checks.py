"""Checking values read from a sweep spec: the helpers the spec's sections and its space grammar share.

A `Checker` belongs to one spec file; every problem becomes a `SpecError` with ONE line
``<file>: <key.path>: <what is wrong and what is allowed>`` (`Checker.fail`), and every valid but
suspicious value a warning line of the same form (`Checker.warn`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Mapping

from trainable.config import ConfigError, TrialConfig, coerce_value, field_names, parse_number

from .layout import UserError, did_you_mean, one_line

FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(TrialConfig)}  # trial setting -> its type


class SpecError(UserError):
    """A bad sweep spec; the message is one line naming the file and the key path."""


class Checker:
    """Checks the values of one spec file; `fail` and `warn` name the file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []

    def warn(self, key: str, message: str) -> None:
        line = f"{self.path}: {key}: {message}"
        if line not in self.warnings:
            self.warnings.append(line)

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(one_line(f"{self.path}: {key}: {message}"))

    def keys(self, key: str, value: Any, allowed: tuple[str, ...] | list[str],
             required: tuple[str, ...] = ()) -> dict:
        """`value` as a mapping whose keys are all `allowed` and include every `required` one."""
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping with keys {', '.join(allowed)}; got {show(value)}")
        for k in value:
            if k not in allowed:
                raise self.fail(f"{key}.{k}" if key else str(k), unknown(k, list(allowed)))
        for k in required:
            if k not in value:
                raise self.fail(f"{key}.{k}" if key else str(k), "is required")
        return value

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer >= {minimum}, got {show(value)}")
        if value < minimum:
            raise self.fail(key, f"{value} is below the minimum {minimum}")
        return value

    def number(self, key: str, value: Any) -> float:
        """A finite number; fractions such as ``8/255`` are accepted."""
        try:
            number = parse_number(value)
        except ConfigError:
            raise self.fail(key, f"expected a number such as 0.03 or 8/255, got {show(value)}") from None
        if math.isnan(number) or math.isinf(number):
            raise self.fail(key, f"expected a finite number, got {show(value)}")
        return number

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {show(value)}")
        return value

    def duration(self, key: str, value: Any) -> float:
        """Seconds, or text such as 90s, 30m, 2h."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[smh]\s*", value):
            v = value.strip()
            seconds = float(v[:-1]) * {"s": 1, "m": 60, "h": 3600}[v[-1]]
        else:
            raise self.fail(key, f"expected seconds or a duration such as 90s, 30m, 2h; got {show(value)}")
        if not seconds > 0 or math.isinf(seconds):
            raise self.fail(key, f"must be a positive, finite duration, got {show(value)}")
        return seconds

    def resources(self, key: str, value: Any) -> dict[str, float]:
        """``{cpu: N, gpu: F}`` (either may be missing): cpu > 0, gpu a fraction in [0, 1] or whole GPUs."""
        self.keys(key, value, ("cpu", "gpu"))
        out: dict[str, float] = {}
        if "cpu" in value:
            out["cpu"] = self.number(f"{key}.cpu", value["cpu"])
            if out["cpu"] <= 0:
                raise self.fail(f"{key}.cpu", f"must be > 0, got {out['cpu']}")
        if "gpu" in value:
            gpu = out["gpu"] = self.number(f"{key}.gpu", value["gpu"])
            if gpu < 0 or (gpu > 1 and not gpu.is_integer()):
                raise self.fail(f"{key}.gpu", f"expected a fraction in [0, 1] or a whole number of GPUs, got {gpu}")
        return out

    def setting(self, key: str, name: str, value: Any) -> Any:
        """One trial setting coerced to its type (fractions -> floats, ...); `key` is its key path."""
        if name not in FIELD_TYPES:
            raise self.fail(key, unknown(name, field_names(), what="trial setting"))
        try:
            return coerce_value(name, value, FIELD_TYPES[name])
        except ConfigError as exc:
            raise self.fail(key, str(exc).partition(": ")[2] or str(exc)) from None

    def trial_config(self, key: str, values: Mapping[str, Any]) -> TrialConfig:
        """Build a TrialConfig; a ConfigError becomes a SpecError on `key` (``base.<setting>`` for base)."""
        try:
            return TrialConfig.from_dict(values)
        except ConfigError as exc:
            message = str(exc)
            setting, _, rest = message.partition(": ")
            if key == "base" and rest and setting in FIELD_TYPES:
                raise self.fail(f"base.{setting}", rest) from None
            raise self.fail(key, message) from None


# --- message helpers ---------------------------------------------------------------------------------------
def unknown(key: Any, allowed: list[str], what: str = "key") -> str:
    return f"unknown {what} {key!r}{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}"


def unknown_metric(metric: Any, config: TrialConfig) -> str:
    """Why `metric` is not one that trials of `config` report, with the metrics they do report."""
    names = config.metric_names()
    allowed = f"allowed: {', '.join(names)}"
    if metric in ("ncrop_acc", "ncrop_robust_acc"):
        return f"metric {metric!r} is reported only with ncrop_eval > 0 (set it in base); {allowed}"
    if metric in ("robust_probe_clean_acc", "robust_probe_robust_acc"):
        return f"metric {metric!r} is reported only with robust_probe: true (set it in base); {allowed}"
    if metric == "autoattack_acc":
        return f"metric 'autoattack_acc' is reported only with autoattack: true (set it in base); {allowed}"
    if isinstance(metric, str) and metric.startswith("robust_acc@"):
        return (f"metric {metric!r} is not reported: the trials evaluate robust accuracy at eval_epsilons "
                f"{', '.join(n.partition('@')[2] for n in names if '@' in n)} only (add {metric[11:]} to "
                f"base.eval_epsilons); {allowed}")
    return f"unknown metric {metric!r}{did_you_mean(str(metric), names)}; {allowed}"


def show(value: Any) -> str:
    """`value` as it appears in a message (repr, cut at 60 characters)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
