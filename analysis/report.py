"""The sweep report: ``<sweep_dir>/report/`` with the Pareto table, plots and a Markdown or HTML page.

Files written (``report/``):

- ``pareto.csv`` and ``pareto.parquet``: the Pareto-optimal finished trials (all their columns,
  plus ``pareto_rank`` and ``knee``), best first in the first objective;
- ``pareto.png`` (first two objectives; only with >= 2 objectives), ``knobs.png``,
  ``hypervolume.png`` and ``pareto.html`` (interactive, plotly.js embedded);
- ``paper_comparison.csv`` for a ``paper_table`` sweep;
- ``summary.txt``: the few lines `report_command` prints;
- ``report.md`` or ``report.html``: the front with its params, the knee, the hypervolume and its
  reference point, the best trial per objective, trials that did not count, how long the sweep
  took, the paper comparison, and the spec used.

Then, when the sweep recorded an MLflow parent run (``sweep.json``), these files are logged as
artifacts under ``report/`` on that run, with the metrics ``report_hypervolume`` and
``report_front_size``.
"""

from __future__ import annotations

import html
import logging
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import plots, seeds
from .compare import is_paper_sweep, paper_comparison
from .pareto import (NonFiniteRowsWarning, best_per_objective, default_reference, front, hypervolume,
                     hypervolume_over_trials, knee_trial, objective_points, rank_trials)
from .results import (FRONT_STATUS, Objective, ResultsError, Sweep, check_objectives, load_sweep, param_columns,
                      parse_objectives, swept_params)

log = logging.getLogger(__name__)

REPORT_DIR = "report"
FORMATS = ("md", "html")
EXIT_OK, EXIT_MLFLOW_FAILED, EXIT_USAGE = 0, 1, 2
MLFLOW_ARTIFACT_PATH = "report"


class ReportError(ResultsError):
    """A report that cannot be written (missing/empty sweep, unknown objective, ...): one line."""


class MlflowLogError(ReportError):
    """The report was written but could not be logged on the sweep's MLflow parent run."""


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
    except ResultsError as exc:
        raise ReportError(str(exc)) from None
    out = Path(sweep_dir) / REPORT_DIR
    out.mkdir(exist_ok=True)
    with warnings.catch_warnings():  # `compute` already warned once about NaN trials; the plots would repeat it
        warnings.simplefilter("ignore", NonFiniteRowsWarning)
        path, files = _write_files(data, out, fmt, log_to_mlflow)
    if log_to_mlflow:
        log_report(data, files)
    return path


def report_command(sweep_dir: str | Path, objectives: str | None = None, fmt: str = "md",
                   log_to_mlflow: bool = True) -> int:
    """`orchestrator report SWEEP_DIR [--objectives clean_acc:max,...] [--format md|html]`.

    Prints the report's path and a summary (and the paper comparison for a ``paper_table``
    sweep). Returns 0, 2 for a bad sweep/objective/format (one line on stderr), 1 when the report
    was written but logging it to MLflow failed.
    """
    try:
        path = write_report(sweep_dir, objectives or None, fmt, log_to_mlflow)
    except MlflowLogError as exc:
        print(f"orchestrator report: error: {exc}", file=sys.stderr)
        return EXIT_MLFLOW_FAILED
    except ReportError as exc:
        print(f"orchestrator report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    summary = path.parent / "summary.txt"
    print(summary.read_text() if summary.is_file() else "", end="")
    print(f"report: {path}")
    return EXIT_OK


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
        timed = _with_times(sweep, mlflow_times)
        curve = hypervolume_over_trials(timed, objectives, ref)
        best = best_per_objective(trials, objectives)
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, NonFiniteRowsWarning)))
    for note in notes:
        warnings.warn(note, NonFiniteRowsWarning, stacklevel=2)
    for w in caught:
        if not issubclass(w.category, NonFiniteRowsWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    comparison = paper_comparison(sweep) if is_paper_sweep(sweep) else None
    by_seed = seeds.over_seeds(trials, objectives) if seeds.has_seeds(trials) else None
    curves = seeds.curves_over_seeds(trials, sweep.history, seeds.curve_metrics(sweep.history))
    return ReportData(sweep, objectives, ranked, on_front, knee, ref, value, curve, best, _timing(timed), comparison,
                      notes, by_seed, curves if len(curves) else None)


def _with_times(sweep: Sweep, mlflow_times: bool) -> pd.DataFrame:
    """The trials table with ``started_at``/``ended_at`` when known: from the table itself, else
    (with `mlflow_times`) from the start/end times of the sweep's MLflow child runs."""
    trials = sweep.trials
    if "ended_at" in trials.columns or not mlflow_times or not _has_store(sweep):
        return trials
    from mlflow import MlflowClient

    from .results import PARENT_TAG, TRIAL_TAG, _all_runs

    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    try:
        parent = client.get_run(sweep.parent_run_id)
        runs = _all_runs(client, [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{sweep.parent_run_id}'")
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; timing is then reported as unknown
        log.warning("could not read trial times from MLflow (%s); the wall span is not reported", exc)
        return trials
    times = {r.data.tags.get(TRIAL_TAG): (r.info.start_time, r.info.end_time) for r in runs}
    out = trials.copy()
    out["started_at"] = [_ms(times.get(t, (None, None))[0]) for t in out["trial_id"]]
    out["ended_at"] = [_ms(times.get(t, (None, None))[1]) for t in out["trial_id"]]
    out.attrs["times_from"] = "MLflow run times"
    return out


def _ms(value: int | None) -> pd.Timestamp:
    return pd.Timestamp(value, unit="ms", tz="UTC") if value else pd.NaT


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
    for stale in ("pareto.png", "paper_comparison.csv", "seeds.csv", "seed_means.png", "learning_curves.png",
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


def summary_text(data: ReportData) -> str:
    """A few lines for the terminal: counts, front size, hypervolume, knee, the paper comparison."""
    trials = data.sweep.trials
    counts = trials["status"].value_counts()
    lines = [f"{data.sweep.name}: {len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")",
             f"objectives: {', '.join(str(o) for o in data.objectives)}",
             f"Pareto front: {len(data.front)} of {len(data.ranked)} finished trials; hypervolume "
             f"{data.hypervolume:.6g} (reference {_vector(data.reference)})"]
    if data.knee is not None:
        lines.append(f"knee: trial {data.knee['trial_id']} (" + ", ".join(
            f"{o.metric}={data.knee[o.metric]:.4g}" for o in data.objectives) + ")")
    if data.comparison is not None:
        lines += ["", "measured vs paper (METHOD_SPEC.md section 5):", _plain_table(data.comparison)]
    return "\n".join(lines) + "\n"


def _vector(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


# --- the report's content -------------------------------------------------------------------------------
Block = tuple  # ("h1"|"h2"|"p"|"list"|"table"|"code"|"img", payload...)


def report_blocks(data: ReportData, images: Sequence[Path], log_to_mlflow: bool) -> list[Block]:
    """The report as format-neutral blocks (rendered by `render_markdown` / `render_html`)."""
    sweep, objectives = data.sweep, data.objectives
    trials = sweep.trials
    knobs = swept_params(trials)
    blocks: list[Block] = [("h1", f"Sweep report: {sweep.name}")]
    counts = ", ".join(f"{n} {s}" for s, n in trials["status"].value_counts().items())
    blocks.append(("list", [
        f"sweep: `{sweep.source}`",
        f"written: {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"trials: {len(trials)} ({counts}); only finished trials can be on the front",
        "objectives: " + ", ".join(f"`{o.metric}` ({o.mode})" for o in objectives),
    ]))
    for note in data.notes:
        blocks.append(("p", f"Note: {note}."))

    blocks.append(("h2", "Pareto front"))
    if len(data.front):
        blocks.append(("p", f"{len(data.front)} of {len(data.ranked)} finished trials are Pareto-optimal "
                            f"(no other finished trial is at least as good in every objective and better in one; "
                            f"identical trials are all kept). Best first in `{objectives[0].metric}`; "
                            f"the knee is marked *."))
        blocks.append(("table", _trial_table(data.front, objectives, knobs, data.knee)))
        fixed = [c for c in param_columns(trials) if c not in knobs]
        if fixed:
            values = ", ".join(f"{c.removeprefix('param.')}={plots.format_value(c, trials[c].dropna().iloc[0])}"
                               for c in fixed if trials[c].notna().any())
            blocks.append(("p", f"Same in every trial: {values}." if values else ""))
    else:
        blocks.append(("p", "No finished trial with finite objectives: the front is empty."))
    if data.knee is not None:
        blocks.append(("p", f"Knee: trial `{data.knee['trial_id']}`. After normalising each objective to [0, 1] "
                            f"over the front (0 = best), it has the smallest sum, i.e. it lies farthest from the "
                            f"line (hyperplane) through the front's extremes: the most balanced trade-off."))

    blocks.append(("h2", "Hypervolume"))
    blocks.append(("p", f"Hypervolume of the front: **{data.hypervolume:.6g}**, with reference point "
                        f"{_vector(data.reference)} ({', '.join(o.metric for o in objectives)}). It is the "
                        f"{'area' if len(objectives) == 2 else 'volume'} of objective space that the front "
                        f"dominates, bounded by the reference: 0 for max-objectives that are never negative "
                        f"(accuracies), 10 % of the range beyond the worst value otherwise (see "
                        f"`analysis.pareto.default_reference`). Order of trials in the curve: "
                        f"{data.curve.attrs.get('order', 'in table order')}."))

    if data.seeds is not None:
        blocks += _seed_blocks(data)

    blocks.append(("h2", "Best trial per objective"))
    if len(data.best):
        best = data.best.set_index("objective")
        blocks.append(("table", _trial_table(best.reset_index(), objectives, knobs, None, first="objective")))

    blocks.append(("h2", "Plots"))
    for image in images:
        blocks.append(("img", image.name, image.stem))
    if data.curves is not None:
        blocks.append(("p", "Learning curves (`learning_curves.png`, data in `learning_curves.csv`): the metrics after "
                            "each evaluated epoch, mean over seeds per configuration."))
    blocks.append(("p", "Interactive version (hover for a trial's params): [pareto.html](pareto.html)."))

    if data.comparison is not None:
        blocks.append(("h2", "Measured vs the paper"))
        blocks.append(("p", "The paper's table (METHOD_SPEC.md section 5; accuracies in %, time in minutes of "
                            "pre-training) beside the mean of this sweep's finished trials of the same method "
                            "(matched on objective, adversary and views)."))
        blocks.append(("table", _rounded(data.comparison, decimals=2)))

    others = trials[trials["status"] != FRONT_STATUS]
    if len(others):
        blocks.append(("h2", "Trials that did not count"))
        columns = [c for c in ("trial_id", "status", "epochs_done", "error") if c in others.columns]
        blocks.append(("table", _rounded(others[columns + knobs].rename(columns=_short))))

    blocks.append(("h2", "Time"))
    t = data.timing
    lines = [f"sum of trial times (`seconds`): {_duration(t['trial_seconds'])} over {t['timed_trials']} trials"]
    if math.isfinite(t["wall_seconds"]):
        lines.append(f"wall-clock span: {_duration(t['wall_seconds'])} ({t['start']:%Y-%m-%d %H:%M:%S} to "
                     f"{t['end']:%Y-%m-%d %H:%M:%S} UTC; from the {t['times_from']}); "
                     f"parallel speed-up {t['trial_seconds'] / max(t['wall_seconds'], 1e-9):.2f}x")
    else:
        lines.append("wall-clock span: not available (no trial start/end times in the results)")
    blocks.append(("list", lines))

    blocks.append(("h2", "Spec"))
    state = sweep.state
    extra = []
    if state.get("preset"):
        extra.append(f"--preset {state['preset']}")
    if state.get("overrides"):
        extra.append("--set " + " --set ".join(state["overrides"]))
    if extra:
        blocks.append(("p", "Command-line overrides: `" + " ".join(extra) + "`"))
    blocks.append(("code", sweep.spec_text or "(no spec.yaml in the sweep directory)", "yaml"))

    blocks.append(("h2", "MLflow"))
    if sweep.parent_run_id and log_to_mlflow:
        blocks.append(("p", f"These files are logged under `{MLFLOW_ARTIFACT_PATH}/` on the sweep's parent run "
                            f"`{sweep.parent_run_id}` ({sweep.tracking_uri})."))
    elif sweep.parent_run_id:
        blocks.append(("p", f"Parent run `{sweep.parent_run_id}` ({sweep.tracking_uri}); not logged there "
                            f"(log_to_mlflow=False)."))
    else:
        blocks.append(("p", "The sweep recorded no MLflow parent run."))
    return blocks


def _seed_blocks(data: ReportData) -> list[Block]:
    """The "Mean over seeds" section: one row per configuration, mean +- std of each summary metric."""
    summary, objectives = data.seeds, data.objectives
    knobs = seeds.configuration_knobs(data.sweep.trials)
    metrics = seeds.summary_metrics(data.sweep.trials, objectives)
    table = pd.DataFrame({_short(k): summary[k].map(lambda v, k=k: plots.format_value(k, v)) for k in knobs})
    table["seeds"] = summary["seeds"].astype(int)
    for m in metrics:
        decimals = 1 if m.endswith("seconds") else 3
        table[m] = [seeds.mean_pm_std(a, b, decimals) for a, b in zip(summary[m], summary[f"{m}_std"])]
    table["front"] = summary["on_front"].map(lambda v: "yes" if v else "")
    return [("h2", "Mean over seeds"),
            ("p", f"Finished trials grouped by configuration (every swept knob but `seed`): mean ± sample "
                  f"standard deviation over the seeds. `front`: the configuration's mean point is Pareto-optimal "
                  f"among the configurations' means in {', '.join(o.metric for o in objectives)}."),
            ("table", table)]


def _trial_table(frame: pd.DataFrame, objectives: Sequence[Objective], knobs: Sequence[str],
                 knee: pd.Series | None, first: str | None = None) -> pd.DataFrame:
    columns = ([first] if first else []) + ["trial_id"] + (["sweep"] if "sweep" in frame.columns else [])
    columns += [o.metric for o in objectives] + list(knobs)
    columns += [c for c in ("seconds",) if c in frame.columns]
    out = frame[columns].copy()
    if knee is not None and first is None:
        out["trial_id"] = [f"{t} *" if t == knee["trial_id"] else str(t) for t in out["trial_id"]]
    return _rounded(out.rename(columns=_short))


def _short(column: str) -> str:
    return str(column).removeprefix("param.")


def _rounded(frame: pd.DataFrame, decimals: int | None = None) -> pd.DataFrame:
    """Cells as text: floats by `plots.format_value` (3 significant digits, k/255 epsilons) or with
    a fixed number of `decimals`; NaN and None as ``-``."""
    def cell(column: str, value: Any) -> str:
        if value is None or value is pd.NA or value is pd.NaT:
            return "-"
        if isinstance(value, (float, np.floating)):
            if math.isnan(value):
                return "-"
            return f"{value:.{decimals}f}" if decimals is not None else plots.format_value(column, value)
        return str(value)

    out = frame.copy()
    for column in out.columns:
        out[column] = [cell(str(column), v) for v in out[column]]
    return out


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


# --- rendering ------------------------------------------------------------------------------------------
def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown text of `blocks`."""
    parts = []
    for kind, *payload in blocks:
        if kind == "h1":
            parts.append(f"# {payload[0]}")
        elif kind == "h2":
            parts.append(f"## {payload[0]}")
        elif kind == "p":
            if payload[0]:
                parts.append(payload[0])
        elif kind == "list":
            parts.append("\n".join(f"- {item}" for item in payload[0]))
        elif kind == "table":
            parts.append(_markdown_table(payload[0]))
        elif kind == "code":
            parts.append(f"```{payload[1]}\n{payload[0].rstrip()}\n```")
        elif kind == "img":
            parts.append(f"![{payload[1]}]({payload[0]})")
    return "\n\n".join(parts) + "\n"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _plain_table(frame: pd.DataFrame) -> str:
    return _rounded(frame, decimals=2).to_string(index=False)


def render_html(blocks: Sequence[Block], title: str, figures: str = "") -> str:
    """A self-contained HTML page of `blocks`; `figures` (plotly HTML) replaces the static images."""
    parts, placed = [], False
    for kind, *payload in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{html.escape(payload[0])}</{kind}>")
        elif kind == "p":
            if payload[0]:
                parts.append(f"<p>{_inline(payload[0])}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in payload[0]) + "</ul>")
        elif kind == "table":
            parts.append(payload[0].to_html(index=False, escape=True, border=0, classes="t"))
        elif kind == "code":
            parts.append(f"<pre>{html.escape(payload[0])}</pre>")
        elif kind == "img" and not figures:
            parts.append(f"<p><img src='{html.escape(payload[0])}' alt='{html.escape(payload[1])}'></p>")
        elif kind == "img" and not placed:  # the interactive figures stand in for all static images
            parts.append(figures)
            placed = True
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table.t{border-collapse:collapse}"
             "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;font-size:13px}pre{background:#f4f4f4;"
             "padding:8px}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _inline(text: str) -> str:
    """Escape text, then the few inline marks the blocks use: `code`, **bold**, [text](link)."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"<a href='\2'>\1</a>", out)


# --- MLflow -----------------------------------------------------------------------------------------------
def _has_store(sweep: Sweep) -> bool:
    """Whether the sweep has a parent run in a store that exists (a moved sweep's sqlite path may not)."""
    if not sweep.parent_run_id or not sweep.tracking_uri:
        return False
    if sweep.tracking_uri.startswith("sqlite:///"):
        db = Path(sweep.tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            return False
    return True


def log_report(data: ReportData, files: Sequence[Path]) -> bool:
    """Log `files` (the report's) under ``report/`` on the sweep's MLflow parent run.

    Returns False, with a warning, when the sweep recorded no parent run or its SQLite store is
    not where ``sweep.json`` says (a moved sweep directory: MLflow would silently create an empty
    store there); raises `MlflowLogError` when MLflow itself fails.
    """
    sweep = data.sweep
    if not sweep.parent_run_id:
        log.info("%s: no MLflow parent run recorded; the report is not logged to MLflow", sweep.source)
        return False
    if not _has_store(sweep):
        log.warning("%s: the MLflow store %s does not exist (was the sweep directory moved?); the report is "
                    "not logged to MLflow", sweep.source, sweep.tracking_uri)
        return False
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    try:
        client = MlflowClient(tracking_uri=sweep.tracking_uri)
        for path in files:
            client.log_artifact(sweep.parent_run_id, str(path), artifact_path=MLFLOW_ARTIFACT_PATH)
        now = int(time.time() * 1000)
        client.log_batch(sweep.parent_run_id, metrics=[
            Metric("report_hypervolume", float(data.hypervolume), now, 0),
            Metric("report_front_size", float(len(data.front)), now, 0)])
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; all are reported the same way
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MlflowLogError(f"report written to {Path(files[0]).parent}, but logging it on MLflow parent run {sweep.parent_run_id} "
                             f"({sweep.tracking_uri}) failed: {text}") from None
    return True
