"""Plots of a sweep: the Pareto front of two objectives, each objective against each swept knob, and
the hypervolume over trials. Static PNGs (matplotlib, drawn on Agg canvases without pyplot, so no
global backend is touched) and one self-contained interactive HTML (plotly, with plotly.js
embedded so it opens offline) where hovering a point shows the trial's status, objectives and
params.

In every plot: finished trials on the front are red and (in the Pareto plot) joined by the
front's staircase; dominated finished trials are faded blue; trials that never count for the front
(early-stopped, stopped, failed, interrupted, pending, or with a NaN objective) are grey crosses.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .pareto import infeasible, knee_point, rank_trials, to_minimisation
from .results import PARAM_PREFIX, Objective, swept_params

FRONT, DOMINATED, NOT_COUNTED = "front", "dominated", "not counted"
INFEASIBLE = "infeasible"  # finished, but breaks one of the spec's constraints (never on the front)
COLOURS = {FRONT: "#d62728", DOMINATED: "#1f77b4", NOT_COUNTED: "#7f7f7f", INFEASIBLE: "#ff7f0e"}
MAX_LABELLED_KNOBS = 3
# Short knob names for point labels (tables and hover text use the full names).
ABBREVIATIONS = {"epsilon": "eps", "replay_steps": "m", "num_crops": "crops", "lambda_inv": "l_inv",
                 "lambda_tcr": "l_tcr", "batch_size": "bs", "pgd_steps": "pgd", "weight_decay": "wd",
                 "temperature": "T"}


# --- shared ---------------------------------------------------------------------------------------------
def classify(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """`trials` (order kept) plus ``group`` (front / dominated / infeasible / not counted), ``pareto_rank``
    (-1 when not counted) and ``knee`` (bool) for the front of `objectives`."""
    out = trials.copy()
    ranked = rank_trials(trials, objectives)
    out["pareto_rank"] = -1
    out.loc[ranked.index, "pareto_rank"] = ranked["pareto_rank"]
    out["group"] = np.where(out["pareto_rank"] == 0, FRONT, np.where(out["pareto_rank"] > 0, DOMINATED, NOT_COUNTED))
    out.loc[infeasible(out).to_numpy(), "group"] = INFEASIBLE
    out["knee"] = False
    if len(ranked):
        knee = knee_point(ranked[[o.metric for o in objectives]].to_numpy(float), [o.mode for o in objectives])
        if knee is not None:
            out.loc[ranked.index[knee], "knee"] = True
    return out


def format_value(name: str, value: Any) -> str:
    """A knob's value, short: epsilons/alphas as k/255 when exact, floats to 3 significant digits,
    missing values (None, NaN, NA) as ``-``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "-"
        short = name.removeprefix(PARAM_PREFIX)
        number = float(value)
        if ("epsilon" in short or short == "alpha") and number > 0 and abs(number * 255 - round(number * 255)) < 1e-6:
            return f"{int(round(number * 255))}/255"
        return f"{number:.3g}"
    return str(value)


def knob_label(row: pd.Series, knobs: Sequence[str]) -> str:
    """``eps=8/255 m=3`` for the given param columns of one trial (names shortened by `ABBREVIATIONS`)."""
    parts = []
    for k in knobs:
        name = k.removeprefix(PARAM_PREFIX)
        parts.append(f"{ABBREVIATIONS.get(name, name)}={format_value(k, row[k])}")
    return " ".join(parts)


def staircase(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """Vertices ``(m, 2)`` of the boundary of the region a 2-D front ``(n, 2)`` dominates."""
    if len(points) == 0:
        return np.zeros((0, 2))
    sign = np.array([-1.0 if m == "max" else 1.0 for m in modes])
    pts = np.unique(to_minimisation(points, modes), axis=0)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    vertices = [pts[0]]
    for prev, cur in zip(pts[:-1], pts[1:]):
        vertices += [np.array([cur[0], prev[1]]), cur]
    return np.array(vertices) * sign


def _hover(row: pd.Series, objectives: Sequence[Objective], params: Sequence[str]) -> str:
    lines = [f"<b>trial {html.escape(str(row['trial_id']))}</b> ({html.escape(str(row['status']))})"]
    if "sweep" in row.index:
        lines.append(f"sweep: {html.escape(str(row['sweep']))}")
    lines += [f"{html.escape(o.metric)}: {format_value(o.metric, row[o.metric])}" for o in objectives]
    lines += [f"{html.escape(p.removeprefix(PARAM_PREFIX))}: {html.escape(format_value(p, row[p]))}" for p in params]
    return "<br>".join(lines)


def _pair(objectives: Sequence[Objective], pair: tuple[int, int]) -> list[Objective]:
    if len(objectives) < 2:
        raise ValueError("a Pareto plot needs two objectives")
    return [objectives[pair[0]], objectives[pair[1]]]


def _axis_label(objective: Objective) -> str:
    return f"{objective.metric} ({'higher' if objective.mode == 'max' else 'lower'} is better)"


# --- static PNGs ----------------------------------------------------------------------------------------
def pareto_png(trials: pd.DataFrame, objectives: Sequence[Objective], path: str | Path,
               pair: tuple[int, int] = (0, 1), label_knobs: Sequence[str] | None = None) -> Path:
    """Scatter of objectives[pair[0]] (x) vs objectives[pair[1]] (y) with the 2-D front of that pair
    highlighted, joined and labelled with `label_knobs` (default: up to 3 swept params); the knee is
    a star. With more than two objectives, trials on the full front are ringed black."""
    xy = _pair(objectives, pair)
    shown = classify(trials, xy)
    full = classify(trials, objectives)["group"] == FRONT if len(objectives) > 2 else None
    knobs = list(label_knobs) if label_knobs is not None else swept_params(trials)[:MAX_LABELLED_KNOBS]
    fig = Figure(figsize=(8, 6), dpi=110)
    ax = fig.add_subplot()
    x, y = xy[0].metric, xy[1].metric
    for group, style in ((NOT_COUNTED, dict(marker="x", alpha=0.5, s=30)), (INFEASIBLE, dict(marker="X", alpha=0.6, s=40)),
                         (DOMINATED, dict(alpha=0.35, s=30)), (FRONT, dict(s=55, zorder=3))):
        part = shown[shown["group"] == group]
        if len(part):
            ax.scatter(part[x], part[y], color=COLOURS[group], label=f"{group} ({len(part)})", **style)
    on_front = shown[shown["group"] == FRONT]
    if len(on_front):
        stairs = staircase(on_front[[x, y]].to_numpy(float), [o.mode for o in xy])
        ax.plot(stairs[:, 0], stairs[:, 1], color=COLOURS[FRONT], lw=1.2, zorder=2)
        knee = shown[shown["knee"]]
        ax.scatter(knee[x], knee[y], marker="*", s=260, facecolor="none", edgecolor="black", zorder=4,
                   label="knee")
        if knobs:  # labels alternate above-right / below-right along the front to limit overlaps
            for i, (_, row) in enumerate(on_front.sort_values(x, kind="stable").iterrows()):
                ax.annotate(knob_label(row, knobs), (row[x], row[y]), textcoords="offset points",
                            xytext=(6, 6) if i % 2 == 0 else (6, -12), fontsize=7, color="#444444")
    if full is not None and full.any():
        ring = shown[full.to_numpy()]
        ax.scatter(ring[x], ring[y], s=110, facecolor="none", edgecolor="black", lw=0.8,
                   label=f"front of all {len(objectives)} objectives")
    ax.set_xlabel(_axis_label(xy[0]))
    ax.set_ylabel(_axis_label(xy[1]))
    ax.set_title(f"Pareto front: {x} vs {y}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def knobs_png(trials: pd.DataFrame, objectives: Sequence[Objective], path: str | Path,
              knobs: Sequence[str] | None = None) -> Path:
    """A grid: one row per objective, one column per swept knob (default `swept_params`); numeric knobs
    on a numeric axis (log when positive and spanning > 2 decades), others as categories."""
    knobs = list(knobs) if knobs is not None else swept_params(trials)
    shown = classify(trials, objectives)
    cols = max(len(knobs), 1)
    fig = Figure(figsize=(min(3.4 * cols, 20), 2.8 * len(objectives) + 0.4), dpi=100)
    axes = fig.subplots(len(objectives), cols, squeeze=False)
    if not knobs:
        for ax in axes[:, 0]:
            ax.text(0.5, 0.5, "no knob takes more than one value", ha="center", va="center", transform=ax.transAxes)
    for j, knob in enumerate(knobs):
        positions, ticks, log = _knob_axis(shown[knob])
        for i, objective in enumerate(objectives):
            ax = axes[i, j]
            for group, style in ((NOT_COUNTED, dict(marker="x", alpha=0.5, s=18)),
                                 (INFEASIBLE, dict(marker="X", alpha=0.6, s=22)), (DOMINATED, dict(alpha=0.4, s=18)),
                                 (FRONT, dict(s=30, zorder=3))):
                sel = (shown["group"] == group).to_numpy()
                if sel.any():
                    ax.scatter(positions[sel], shown.loc[sel, objective.metric], color=COLOURS[group], **style)
            if ticks is not None:
                ax.set_xticks(range(len(ticks)), ticks, rotation=30, fontsize=7, ha="right")
            if log:
                ax.set_xscale("log")
            if i == len(objectives) - 1:
                ax.set_xlabel(knob.removeprefix(PARAM_PREFIX))
            if j == 0:
                ax.set_ylabel(objective.metric, fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("objectives against each swept knob (red: Pareto front, grey x: not counted)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _knob_axis(values: pd.Series) -> tuple[np.ndarray, list[str] | None, bool]:
    """x positions ``(n,)`` for one knob's values, category tick labels (None if numeric), log scale."""
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().any() and numeric[values.notna()].notna().all() and not pd.api.types.is_bool_dtype(values):
        arr = numeric.to_numpy(float)
        finite = arr[np.isfinite(arr)]
        log = bool(len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100)
        return arr, None, log
    labels = values.map(lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    categories = sorted(labels.unique())
    index = {c: i for i, c in enumerate(categories)}
    jitter = (np.arange(len(labels)) % 5 - 2) * 0.04  # deterministic spread of equal values
    return labels.map(index).to_numpy(float) + jitter, categories, False


def hypervolume_png(curve: pd.DataFrame, path: str | Path, reference: Sequence[float] | None = None) -> Path:
    """The hypervolume after each trial (a `hypervolume_over_trials` table) as a step plot."""
    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.add_subplot()
    if len(curve):
        ax.step(curve["n"], curve["hypervolume"], where="post", color=COLOURS[FRONT])
        counted = curve[curve["counted"]]
        ax.scatter(counted["n"], counted["hypervolume"], s=14, color=COLOURS[FRONT], zorder=3, label="finished")
        skipped = curve[~curve["counted"]]
        if len(skipped):
            ax.scatter(skipped["n"], skipped["hypervolume"], marker="x", s=18, color=COLOURS[NOT_COUNTED],
                       label="not counted")
        ax.legend(fontsize=8)
    ax.set_xlabel(f"trials completed ({curve.attrs.get('order', 'in table order')})")
    ax.set_ylabel("hypervolume")
    title = "hypervolume of the front over trials"
    if reference is not None:
        title += f" (reference {', '.join(f'{r:.4g}' for r in reference)})"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def seed_means_png(summary: pd.DataFrame, objectives: Sequence[Objective], knobs: Sequence[str],
                   path: str | Path) -> Path:
    """Each configuration's mean over seeds (an `analysis.seeds.over_seeds` table) of objectives[0] (x)
    vs objectives[1] (y), with +-1 std error bars; configurations whose means are on the front are red."""
    x, y = objectives[0].metric, objectives[1].metric
    fig = Figure(figsize=(8, 6), dpi=110)
    ax = fig.add_subplot()
    for on_front, colour in ((False, COLOURS[DOMINATED]), (True, COLOURS[FRONT])):
        part = summary[summary["on_front"] == on_front]
        if len(part):
            ax.errorbar(part[x], part[y], xerr=part.get(f"{x}_std"), yerr=part.get(f"{y}_std"), fmt="o",
                        color=colour, ecolor=colour, alpha=0.85, capsize=3,
                        label=f"{'on' if on_front else 'off'} the front of the means ({len(part)})")
    for i, (_, row) in enumerate(summary.sort_values(x, kind="stable").iterrows()):
        ax.annotate(f"{knob_label(row, knobs)} (n={int(row['seeds'])})", (row[x], row[y]), textcoords="offset points",
                    xytext=(6, 6) if i % 2 == 0 else (6, -12), fontsize=7, color="#444444")
    ax.set_xlabel(_axis_label(objectives[0]) + ", mean +- std over seeds")
    ax.set_ylabel(_axis_label(objectives[1]) + ", mean +- std over seeds")
    ax.set_title(f"configurations averaged over seeds: {x} vs {y}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def learning_curves_png(curves: pd.DataFrame, knobs: Sequence[str], metrics: Sequence[str], path: str | Path) -> Path:
    """Mean (+-1 std band) over seeds of each metric after each epoch, per configuration (an
    `analysis.seeds.curves_over_seeds` table): one row per metric, against epochs and, when the
    history records it, against cumulative training seconds."""
    by_time = "train_seconds" in curves.columns
    fig = Figure(figsize=(12 if by_time else 6.5, 3.6 * len(metrics) + 0.4), dpi=100)
    axes = fig.subplots(len(metrics), 2 if by_time else 1, squeeze=False)
    groups = curves.groupby(list(knobs), sort=False, dropna=False) if knobs else [((), curves)]
    for _, part in groups:
        label = knob_label(part.iloc[0], knobs) if knobs else "all trials"
        part = part.sort_values("epoch")
        for i, metric in enumerate(metrics):
            mean, std = part[metric].to_numpy(float), part[f"{metric}_std"].fillna(0).to_numpy(float)
            for j, xcol in enumerate(("epoch", "train_seconds")[: 2 if by_time else 1]):
                ax = axes[i, j]
                xs = part[xcol].to_numpy(float)
                line = ax.plot(xs, mean, marker="o", ms=3, label=label)[0]
                ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.15)
                ax.set_xlabel("epoch" if xcol == "epoch" else "training seconds (mean over seeds)")
                ax.set_ylabel(metric)
                ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.suptitle("learning curves: mean over seeds, band = +-1 std", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


# --- interactive ----------------------------------------------------------------------------------------
def plotly_figures(trials: pd.DataFrame, objectives: Sequence[Objective], curve: pd.DataFrame | None = None,
                   pair: tuple[int, int] = (0, 1)) -> list[Any]:
    """Plotly figures: the Pareto plot of `pair` (when there are >= 2 objectives), objectives vs
    knobs, and (with `curve`) the hypervolume over trials. Hover text: status, objectives, params."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    params = [c for c in trials.columns if str(c).startswith(PARAM_PREFIX)]
    figures = []
    if len(objectives) >= 2:
        xy = _pair(objectives, pair)
        shown = classify(trials, xy)
        x, y = xy[0].metric, xy[1].metric
        fig = go.Figure()
        for group in (NOT_COUNTED, INFEASIBLE, DOMINATED, FRONT):
            part = shown[shown["group"] == group]
            if len(part):
                fig.add_trace(go.Scatter(
                    x=part[x], y=part[y], mode="markers", name=f"{group} ({len(part)})",
                    marker=dict(color=COLOURS[group], size=11 if group == FRONT else 8,
                                symbol={NOT_COUNTED: "x", INFEASIBLE: "x-thin-open"}.get(group, "circle"),
                                opacity=1.0 if group == FRONT else 0.45),
                    hovertext=[_hover(r, objectives, params) for _, r in part.iterrows()], hoverinfo="text"))
        on_front = shown[shown["group"] == FRONT]
        if len(on_front):
            stairs = staircase(on_front[[x, y]].to_numpy(float), [o.mode for o in xy])
            fig.add_trace(go.Scatter(x=stairs[:, 0], y=stairs[:, 1], mode="lines", name="front",
                                     line=dict(color=COLOURS[FRONT], width=1.5), hoverinfo="skip"))
            knee = shown[shown["knee"]]
            fig.add_trace(go.Scatter(x=knee[x], y=knee[y], mode="markers", name="knee",
                                     marker=dict(symbol="star-open", size=20, color="black"), hoverinfo="skip"))
        fig.update_layout(title=f"Pareto front: {x} vs {y}", xaxis_title=_axis_label(xy[0]),
                          yaxis_title=_axis_label(xy[1]), template="plotly_white", height=560)
        figures.append(fig)
    knobs = swept_params(trials)
    if knobs:
        shown = classify(trials, objectives)
        fig = make_subplots(rows=len(objectives), cols=len(knobs), shared_xaxes="columns",
                            column_titles=[k.removeprefix(PARAM_PREFIX) for k in knobs],
                            row_titles=[o.metric for o in objectives])
        hover = [_hover(r, objectives, params) for _, r in shown.iterrows()]
        for j, knob in enumerate(knobs):
            values = shown[knob].map(lambda v: v if isinstance(v, (int, float, np.number)) else str(v))
            for i, objective in enumerate(objectives):
                for group in (NOT_COUNTED, INFEASIBLE, DOMINATED, FRONT):
                    sel = (shown["group"] == group).to_numpy()
                    if sel.any():
                        fig.add_trace(go.Scatter(
                            x=values[sel], y=shown.loc[sel, objective.metric], mode="markers", name=group,
                            legendgroup=group, showlegend=(i == 0 and j == 0),
                            marker=dict(color=COLOURS[group], symbol={NOT_COUNTED: "x", INFEASIBLE: "x-thin-open"}.get(group, "circle"),
                                        opacity=1.0 if group == FRONT else 0.45),
                            hovertext=[h for h, s in zip(hover, sel) if s], hoverinfo="text"), row=i + 1, col=j + 1)
        fig.update_layout(title="objectives against each swept knob", template="plotly_white",
                          height=max(320, 260 * len(objectives)))
        figures.append(fig)
    if curve is not None and len(curve):
        fig = go.Figure(go.Scatter(x=curve["n"], y=curve["hypervolume"], mode="lines+markers", line_shape="hv",
                                   hovertext=[f"trial {t} ({s})<br>hypervolume {h:.4g}" for t, s, h in
                                              zip(curve["trial_id"], curve["status"], curve["hypervolume"])],
                                   hoverinfo="text", line=dict(color=COLOURS[FRONT])))
        fig.update_layout(title="hypervolume of the front over trials", template="plotly_white", height=380,
                          xaxis_title=f"trials completed ({curve.attrs.get('order', 'in table order')})",
                          yaxis_title="hypervolume")
        figures.append(fig)
    return figures


def figures_html(figures: Sequence[Any]) -> str:
    """HTML fragments of `figures`; plotly.js is embedded once, in the first (works offline)."""
    return "\n".join(fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures))


def interactive_html(trials: pd.DataFrame, objectives: Sequence[Objective], path: str | Path,
                     curve: pd.DataFrame | None = None, pair: tuple[int, int] = (0, 1), title: str = "sweep") -> Path:
    """Write one self-contained HTML page with the `plotly_figures`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = figures_html(plotly_figures(trials, objectives, curve, pair))
    path.write_text(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
                    f"<body style='font-family:sans-serif'>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
    return path

