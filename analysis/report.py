"""The sweep report: ``<sweep_dir>/report/`` with the Pareto table, plots and a Markdown or HTML page.

Files written (``report/``):

- ``pareto.csv`` and ``pareto.parquet``: the Pareto-optimal finished trials (all their columns,
  plus ``pareto_rank`` and ``knee``), best first in the first objective;
- ``pareto.png`` (first two objectives; only with >= 2 objectives), ``knobs.png``,
  ``hypervolume.png`` and ``pareto.html`` (interactive, plotly.js embedded);
- ``paper_comparison.csv`` for a ``paper_table`` sweep;
- ``summary.txt``: the few lines ``orchestrator report`` prints;
- ``report.md`` or ``report.html``: the front with its params, the knee, the hypervolume and its
  reference point, the best trial per objective, trials that did not count, how long the sweep
  took, the paper comparison, and the spec used.

Then, when the sweep recorded an MLflow parent run (``sweep.json``), these files are logged as
artifacts under ``report/`` on that run, with the metrics ``report_hypervolume`` and
``report_front_size``.

The report is computed here (`compute`, once) and drawn by `analysis.render` (pages) and
`analysis.plots` (figures); MLflow is `analysis.tracking`'s.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from orchestrator.layout import REPORT_DIR, UserError

from . import plots, seeds
from .compare import is_paper_sweep, paper_comparison
from .pareto import (
    NonFiniteRowsWarning,
    best_per_objective,
    default_reference,
    front,
    hypervolume,
    hypervolume_over_trials,
    knee_trial,
    objective_points,
    rank_trials,
)
from .render import render_html, render_markdown, report_blocks, summary_text
from .results import Objective, ResultsError, Sweep, check_objectives, load_sweep, parse_objectives
from .tracking import MlflowLogError, log_report, with_run_times
from .verified import Verified, load_verified

log = logging.getLogger(__name__)

FORMATS = ("md", "html")
__all__ = ["FORMATS", "MlflowLogError", "ReportData", "ReportError", "compute", "write_report"]


class ReportError(ResultsError):
    """A report that cannot be written (missing/empty sweep, unknown objective, ...): one line."""


@dataclass
class ReportData:
    """Everything the report shows, computed once (`compute`)."""

    sweep: Sweep
    objectives: list[Objective]
    ranked: pd.DataFrame  # finished trials with finite objectives + pareto_rank, on_front
    front: pd.DataFrame
    knee: pd.Series | None
    reference: list[float]
    hypervolume: float
    curve: pd.DataFrame
    best: pd.DataFrame
    timing: dict[str, Any]
    comparison: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)
    seeds: pd.DataFrame | None = None  # per configuration over seeds (analysis.seeds.over_seeds), if seeds vary
    curves: pd.DataFrame | None = None  # per configuration and epoch over seeds, if trials ran several epochs
    verified: Verified | None = None  # the front after verification, when the sweep has verified.parquet


# --- entry points ---------------------------------------------------------------------------------------
def write_report(sweep_dir: str | Path, objectives: str | Sequence[str] | Sequence[Objective] | None = None,
                 fmt: str = "md", log_to_mlflow: bool = True, reference: Sequence[float] | None = None) -> Path:
    """Write ``<sweep_dir>/report/`` (module docstring) and return the path of ``report.md``/``report.html``.

    `objectives` default to the spec's (``spec.yaml``); ``"clean_acc:max,robust_acc:max"`` or a
    list overrides them. `reference` is the hypervolume reference point (one value per objective,
    default `analysis.pareto.default_reference`). Raises `ReportError` (a ValueError) with one line
    for a missing or empty sweep directory, unknown objectives or a bad format, and
    `MlflowLogError` when the files were written but logging them on the parent run failed.
    """
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")
    try:
        sweep = load_sweep(sweep_dir)
        chosen = parse_objectives(objectives) if objectives else sweep.objectives
        if not chosen:
            raise ReportError(f"{sweep_dir}: no objectives: spec.yaml has none; give them, e.g. clean_acc:max,robust_acc:max")
        check_objectives(sweep.trials, chosen, where=f"sweep {sweep_dir}")
        if reference is not None and (len(reference) != len(chosen) or not all(math.isfinite(r) for r in reference)):
            raise ReportError(f"the reference point must be {len(chosen)} finite values (one per objective), "
                              f"got {list(reference)}")
        data = compute(sweep, chosen, reference, mlflow_times=log_to_mlflow)
    except ReportError:
        raise
    except UserError as exc:
        raise ReportError(str(exc)) from None
    out = Path(sweep_dir) / REPORT_DIR
    out.mkdir(exist_ok=True)
    with warnings.catch_warnings():  # `compute` already warned once about NaN trials; the plots would repeat it
        warnings.simplefilter("ignore", NonFiniteRowsWarning)
        path, files = _write_files(data, out, fmt, log_to_mlflow)
    if log_to_mlflow:
        metrics = {"report_hypervolume": data.hypervolume, "report_front_size": len(data.front)}
        if data.verified is not None:
            metrics.update(report_verified_front_size=len(data.verified.verified_ids),
                           report_verified_dropped=len(data.verified.dropped))
        log_report(sweep, files, metrics)
    return path


# --- computing ------------------------------------------------------------------------------------------
def compute(sweep: Sweep, objectives: Sequence[Objective], reference: Sequence[float] | None = None,
            mlflow_times: bool = False) -> ReportData:
    """Front, knee, hypervolume (+ over trials), best trials, timing and the paper comparison.

    Warnings about finished trials with NaN objectives are emitted once and kept as notes.
    """
    objectives = list(objectives)
    trials = sweep.trials
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonFiniteRowsWarning)
        ranked = rank_trials(trials, objectives)
        on_front = front(trials, objectives)
        knee = knee_trial(trials, objectives)
        ref = list(reference) if reference is not None else default_reference(trials, objectives)
        value = hypervolume(objective_points(ranked, objectives), [o.mode for o in objectives], ref)
        timed = with_run_times(sweep, mlflow_times)
        curve = hypervolume_over_trials(timed, objectives, ref)
        best = best_per_objective(trials, objectives)
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, NonFiniteRowsWarning)))
    for note in notes:
        warnings.warn(note, NonFiniteRowsWarning, stacklevel=2)
    for w in caught:
        if not issubclass(w.category, NonFiniteRowsWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    comparison = None
    if is_paper_sweep(sweep):
        try:
            comparison = paper_comparison(sweep)
        except ResultsError as exc:  # e.g. a sweep written before trials carried their settings
            notes.append(f"no paper comparison: {exc}")
    by_seed = seeds.over_seeds(trials, objectives) if seeds.has_seeds(trials) else None
    curves = seeds.curves_over_seeds(trials, sweep.history, seeds.curve_metrics(sweep.history))
    verified = load_verified(sweep.sweep_dir, on_front, objectives)
    return ReportData(sweep, objectives, ranked, on_front, knee, ref, value, curve, best, _timing(timed), comparison,
                      notes, by_seed, curves if len(curves) else None, verified)


def _timing(trials: pd.DataFrame) -> dict[str, Any]:
    seconds = trials["seconds"].to_numpy(dtype=float) if "seconds" in trials.columns else np.zeros(0)
    out: dict[str, Any] = {"trial_seconds": float(np.nansum(seconds)) if len(seconds) else math.nan,
                           "timed_trials": int(np.isfinite(seconds).sum()), "wall_seconds": math.nan, "start": None,
                           "end": None, "times_from": trials.attrs.get("times_from", "trials table")}
    if {"started_at", "ended_at"} <= set(trials.columns):
        start, end = pd.to_datetime(trials["started_at"]).min(), pd.to_datetime(trials["ended_at"]).max()
        if pd.notna(start) and pd.notna(end):
            out.update(wall_seconds=float((end - start).total_seconds()), start=start, end=end)
    return out


# --- writing --------------------------------------------------------------------------------------------
def _write_files(data: ReportData, out: Path, fmt: str, log_to_mlflow: bool) -> tuple[Path, list[Path]]:
    """Write the report's files into `out`; return the report page and every file written.

    Files an earlier report wrote that this one does not (``pareto.png`` of a one-objective
    report, ``paper_comparison.csv``) are removed so the directory describes one report.
    """
    sweep, objectives = data.sweep, data.objectives
    for stale in ("pareto.png", "paper_comparison.csv", "verified.csv", "seeds.csv", "seed_means.png", "learning_curves.png",
                  "learning_curves.csv"):
        (out / stale).unlink(missing_ok=True)
    table = data.front.copy()
    table["knee"] = table.index == (data.knee.name if data.knee is not None else None)
    table = table.drop(columns=["on_front"]).reset_index(drop=True)
    table.to_csv(out / "pareto.csv", index=False)
    _parquet_safe(table).to_parquet(out / "pareto.parquet", index=False)
    images = []
    if len(objectives) >= 2:
        images.append(plots.pareto_png(sweep.trials, objectives, out / "pareto.png"))
    images.append(plots.knobs_png(sweep.trials, objectives, out / "knobs.png"))
    images.append(plots.hypervolume_png(data.curve, out / "hypervolume.png", data.reference))
    title = f"sweep {sweep.name} ({sweep.sweep_dir.name if sweep.sweep_dir else sweep.source})"
    plots.interactive_html(sweep.trials, objectives, out / "pareto.html", curve=data.curve, title=title)
    if data.comparison is not None:
        data.comparison.to_csv(out / "paper_comparison.csv", index=False)
    knobs = seeds.configuration_knobs(sweep.trials)
    extra: list[Path] = []
    if data.verified is not None:
        data.verified.table.to_csv(out / "verified.csv", index=False)
        extra.append(out / "verified.csv")
    if data.seeds is not None:
        data.seeds.to_csv(out / "seeds.csv", index=False)
        extra.append(out / "seeds.csv")
        if len(objectives) >= 2 and len(data.seeds):
            images.append(plots.seed_means_png(data.seeds, objectives, knobs, out / "seed_means.png"))
    if data.curves is not None:
        data.curves.to_csv(out / "learning_curves.csv", index=False)
        extra.append(out / "learning_curves.csv")
        images.append(plots.learning_curves_png(data.curves, knobs, seeds.curve_metrics(sweep.history),
                                                out / "learning_curves.png"))
    (out / "summary.txt").write_text(summary_text(data))
    blocks = report_blocks(data, images, log_to_mlflow)
    if fmt == "md":
        path = out / "report.md"
        path.write_text(render_markdown(blocks))
    else:
        path = out / "report.html"
        figures = plots.figures_html(plots.plotly_figures(sweep.trials, objectives, data.curve))
        path.write_text(render_html(blocks, title, figures))
    files = [out / n for n in ("pareto.csv", "pareto.parquet", "pareto.html", "summary.txt")] + extra + images + [path]
    if data.comparison is not None:
        files.append(out / "paper_comparison.csv")
    return path, files


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns of mixed types (e.g. a bundle knob that is None in some rows) as text."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1:
                out[column] = out[column].map(lambda v: None if v is None else str(v))
    return out


