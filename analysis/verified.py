"""The front after verification: the searched front's trials with their robust objectives replaced by
the verified values of ``<sweep_dir>/verified.parquet`` (written by ``orchestrator report --verify``
and at the end of a sweep), and the Pareto front among them.

A robust objective (`orchestrator.layout.VERIFIED_METRICS`) takes the worst case over the sweep's PGD,
the strong attack and Square (robust only if every attack fails on the image), estimated on all the
trial's test images: its ``robust_acc`` minus the share of the verified images that PGD left robust but
another attack broke (``verified_pgd_acc - verified_worst_acc``). When every test image was verified this
is exactly ``verified_worst_acc``; when a subset was (the spec's ``verify.images``), the front is not
reshuffled by which images the subset happened to hold. Other objectives keep their values.
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
    images: int = 0  # test images each trial's verification attacked (the largest, if they differ)


def verified_name(metric: str) -> str:
    return f"{metric} verified"


def _worst_case(trial: pd.Series, check: pd.Series | None) -> float:
    """The trial's worst-case robust accuracy over every attack, on all its test images (module docstring)."""
    if check is None or pd.isna(check.get("verified_worst_acc")):
        return math.nan
    worst = float(check["verified_worst_acc"])
    pgd, searched = check.get("verified_pgd_acc"), trial.get("robust_acc")
    if pd.isna(pgd) or searched is None or pd.isna(searched):
        return worst
    return max(0.0, float(searched) - (float(pgd) - worst))


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
        worst = _worst_case(trial, check)
        row: dict[str, Any] = {"trial_id": tid, "status": FRONT_STATUS}
        for o in objectives:
            row[o.metric] = float(trial[o.metric])
            row[verified_name(o.metric)] = min(worst, float(trial[o.metric])) if o.metric in VERIFIED_METRICS \
                else float(trial[o.metric])
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
    counts = done["verified_images"].dropna() if "verified_images" in done.columns else pd.Series(dtype=float)
    images = int(counts.max()) if len(counts) else 0
    return Verified(table, ids, dropped, unverified, suite, notes, images)
