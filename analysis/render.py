"""The report's pages: its content as format-neutral blocks (`report_blocks`), drawn as Markdown or a
self-contained HTML page, and the few lines printed to the terminal (`summary_text`). Everything shown
is computed once by `analysis.report.compute`.
"""

from __future__ import annotations

import html
import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from . import plots, seeds
from .pareto import infeasible
from .results import FRONT_STATUS, Objective, param_columns, swept_params
from .tracking import REPORT_ARTIFACT_PATH

if TYPE_CHECKING:
    from .report import ReportData

Block = tuple  # ("h1"|"h2"|"p"|"list"|"table"|"code"|"img", payload...)


def summary_text(data: ReportData) -> str:
    """A few lines for the terminal: counts, front size, hypervolume, knee, the paper comparison."""
    trials = data.sweep.trials
    counts = trials["status"].value_counts()
    lines = [f"{data.sweep.name}: {len(trials)} trials (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")",
             f"objectives: {', '.join(str(o) for o in data.objectives)}",
             f"Pareto front: {len(data.front)} of {len(data.ranked)} finished trials; hypervolume "
             f"{data.hypervolume:.6g} (reference {_vector(data.reference)})"]
    if data.knee is not None:
        images = data.knee.get("eval_images")
        lines.append(f"knee: trial {data.knee['trial_id']} (" + ", ".join(
            f"{o.metric}={with_error(data.knee[o.metric], images) if is_accuracy(o.metric) and images else format(data.knee[o.metric], '.4g')}"
            for o in data.objectives) + ")")
    if data.verified is not None:
        v = data.verified
        lines.append(f"verified front ({v.suite + ' ' if v.suite else ''}AutoAttack + Square + PGD, worst case): {len(v.verified_ids)} of "
                     f"{len(data.front)} searched-front trials" + (f"; fell off: {', '.join(v.dropped)}" if v.dropped
                                                                  else "") +
                     (f"; not verified: {', '.join(v.unverified)}" if v.unverified else ""))
    if data.comparison is not None:
        lines += ["", "measured vs paper (docs/METHOD.md section 5):", _plain_table(data.comparison)]
    return "\n".join(lines) + "\n"


def _vector(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


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

    if data.verified is not None:
        blocks += _verified_blocks(data)
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
        blocks.append(("p", "The paper's table (docs/METHOD.md section 5; accuracies in %, time in minutes of "
                            "pre-training) beside the mean of this sweep's finished trials of the same method "
                            "(matched on objective, adversary and views)."))
        blocks.append(("table", _rounded(data.comparison, decimals=2)))

    others = trials[trials["status"] != FRONT_STATUS]
    if len(others):
        blocks.append(("h2", "Trials that did not count"))
        columns = [c for c in ("trial_id", "status", "epochs_done", "error") if c in others.columns]
        blocks.append(("table", _rounded(others[columns + knobs].rename(columns=_short))))
    broke = trials[infeasible(trials)]
    if len(broke):
        blocks.append(("h2", "Infeasible trials"))
        given = [c for c in (sweep.spec.get("constraints") or []) if isinstance(c, dict) and "metric" in c]
        rules = "; ".join(_constraint_text(c) for c in given)
        blocks.append(("p", f"Finished, but outside the spec's constraints{f' ({rules})' if rules else ''}: never "
                            f"on the front, not in the hypervolume or the best-per-objective table."))
        metrics = [m for m in dict.fromkeys([o.metric for o in data.objectives] + [str(c["metric"]) for c in given])
                   if m in broke.columns]
        blocks.append(("table", _rounded(broke[["trial_id", *metrics] + knobs].rename(columns=_short))))

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
    if state is not None and state.preset:
        extra.append(f"--preset {state.preset}")
    if state is not None and state.overrides:
        extra.append("--set " + " --set ".join(state.overrides))
    if extra:
        blocks.append(("p", "Command-line overrides: `" + " ".join(extra) + "`"))
    blocks.append(("code", sweep.spec_text or "(no spec.yaml in the sweep directory)", "yaml"))

    blocks.append(("h2", "MLflow"))
    if sweep.parent_run_id and log_to_mlflow:
        blocks.append(("p", f"These files are logged under `{REPORT_ARTIFACT_PATH}/` on the sweep's parent run "
                            f"`{sweep.parent_run_id}` ({sweep.tracking_uri})."))
    elif sweep.parent_run_id:
        blocks.append(("p", f"Parent run `{sweep.parent_run_id}` ({sweep.tracking_uri}); not logged there "
                            f"(log_to_mlflow=False)."))
    else:
        blocks.append(("p", "The sweep recorded no MLflow parent run."))
    return blocks


def _verified_blocks(data: ReportData) -> list[Block]:
    """The "Front after verification" section: searched vs verified values side by side, the audit."""
    v = data.verified
    assert v is not None
    text = (f"Each searched-front trial was re-evaluated from its final checkpoint with the `{v.suite}` AutoAttack "
            f"suite, Square and PGD{f' on {v.images} test images' if v.images else ''}, and audited for gradient "
            f"masking (`trainable/audit.py`). Its robust objectives become the worst case over those attacks "
            f"(robust only if every attack fails), estimated on all its test images: robust_acc minus the share "
            f"of the verified images that PGD left robust and another attack broke. "
            f"{len(v.verified_ids)} of {len(data.front)} trials stay on the front.")
    if v.dropped:
        text += " Fell off after verification: " + ", ".join(f"`{t}`" for t in v.dropped) + "."
    if v.unverified:
        text += " Not verified: " + ", ".join(f"`{t}`" for t in v.unverified) + "."
    table = v.table.drop(columns=["status"])
    table["audit_passed"] = ["-" if p is None else ("pass" if p else "FAIL") for p in table["audit_passed"]]
    blocks: list[Block] = [("h2", "Front after verification"), ("p", text), ("table", _rounded(table))]
    blocks += [("p", f"Note: {n}.") for n in v.notes]
    return blocks


def _seed_blocks(data: ReportData) -> list[Block]:
    """The "Mean over seeds" section: one row per configuration, mean +- std of each summary metric."""
    summary, objectives = data.seeds, data.objectives
    assert summary is not None  # the section is shown only when seeds vary
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
    table = _rounded(out.rename(columns=_short))
    if "eval_images" in frame.columns:  # accuracies with their binomial standard error over the test images
        for o in objectives:
            if is_accuracy(o.metric):
                table[_short(o.metric)] = [with_error(p, n) for p, n in zip(frame[o.metric], frame["eval_images"])]
    return table


def is_accuracy(metric: str) -> bool:
    """Metrics that are fractions of test images classified correctly (clean or under an attack)."""
    return metric.endswith("_acc") or "_acc@" in metric


def with_error(accuracy: Any, images: Any) -> str:
    """``0.648 ± 0.021``: an accuracy and its binomial standard error sqrt(p (1 - p) / n) on n images."""
    try:
        p, n = float(accuracy), float(images)
    except (TypeError, ValueError):
        return "-"
    if math.isnan(p):
        return "-"
    if not n > 0 or math.isnan(n):
        return f"{p:.3f}"
    return f"{p:.3f} ± {math.sqrt(max(0.0, p * (1 - p)) / n):.3f}"


def _constraint_text(constraint: dict[str, Any]) -> str:
    """``clean_acc >= 0.74`` for a spec's ``{metric: clean_acc, min: 0.74}`` (both bounds: joined by and)."""
    metric = constraint["metric"]
    return " and ".join(([f"{metric} >= {constraint['min']}"] if "min" in constraint else [])
                        + ([f"{metric} <= {constraint['max']}"] if "max" in constraint else []))


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
