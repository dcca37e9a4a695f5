"""The front after verification: the searched front's trials with their robust objectives replaced by
the verified values of ``<sweep_dir>/verified.parquet`` (written by ``orchestrator report --verify``
and at the end of a sweep), and the Pareto front among them.

A robust objective (`orchestrator.layout.VERIFIED_METRICS`) takes ``verified_worst_acc``: robust only
if PGD, the strong attack and Square all fail on the image. Other objectives keep their values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from orchestrator.layout import FRONT_STATUS, VERIFIED_FILE, VERIFIED_METRICS

from .pareto import front
from .results import Objective


@dataclass
class Verified:
    """Searched vs verified front: ``table`` has one row per searched-front trial."""

    table: pd.DataFrame  # trial_id, <objective> (searched), <objective> verified, audit_passed, audit_failures
    verified_ids: list[str]
    dropped: list[str]  # on the searched front, not on the verified one
    unverified: list[str]  # on the searched front without a verification (stale or failed)
    suite: str = ""
    notes: list[str] = field(default_factory=list)


def verified_name(metric: str) -> str:
    return f"{metric} verified"


def load_verified(sweep_dir: Path | None, searched: pd.DataFrame, objectives: Sequence[Objective]) -> Verified | None:
    """Compare the searched front with the verified one; None when the sweep has no verified.parquet."""
    if sweep_dir is None or not (Path(sweep_dir) / VERIFIED_FILE).is_file():
        return None
    done = pd.read_parquet(Path(sweep_dir) / VERIFIED_FILE)
    by_id = {str(r["trial_id"]): r for _, r in done.iterrows()}
    rows, unverified = [], []
    for _, trial in searched.iterrows():
        tid = str(trial["trial_id"])
        check = by_id.get(tid)
        worst = float(check["verified_worst_acc"]) if check is not None and "verified_worst_acc" in check \
            and pd.notna(check["verified_worst_acc"]) else math.nan
        row: dict[str, Any] = {"trial_id": tid, "status": FRONT_STATUS}
        for o in objectives:
            row[o.metric] = float(trial[o.metric])
            row[verified_name(o.metric)] = worst if o.metric in VERIFIED_METRICS else float(trial[o.metric])
        if check is None or math.isnan(worst):
            unverified.append(tid)
            error = check.get("verify_error") if check is not None else None
            row["audit_passed"] = None
            row["audit_failures"] = f"not verified: {error}" if isinstance(error, str) else "not verified"
        else:
            row["audit_passed"] = bool(check["audit_passed"])
            row["audit_failures"] = check.get("audit_failures") or ""
        rows.append(row)
    columns = ["trial_id", "status"] + [c for o in objectives for c in (o.metric, verified_name(o.metric))] \
        + ["audit_passed", "audit_failures"]
    table = pd.DataFrame(rows, columns=columns)  # the columns named even when the searched front is empty
    ok = table[~table["trial_id"].isin(unverified)]
    renamed = ok[["trial_id", "status"] + [verified_name(o.metric) for o in objectives]].rename(
        columns={verified_name(o.metric): o.metric for o in objectives})
    ids = [str(t) for t in front(renamed, objectives)["trial_id"]] if len(renamed) else []
    table["on verified front"] = table["trial_id"].isin(ids)
    dropped = [t for t in table["trial_id"] if t not in ids and t not in unverified]
    suite = str(done["verify_suite"].iloc[0]) if "verify_suite" in done.columns and len(done) else ""
    notes = []
    if not any(o.metric in VERIFIED_METRICS for o in objectives):
        notes.append(f"no objective is one of {', '.join(VERIFIED_METRICS)}: verification leaves every value as "
                     f"searched")
    return Verified(table, ids, dropped, unverified, suite, notes)
