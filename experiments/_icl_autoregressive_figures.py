"""Figures and tables of the icl-autoregressive experiment, drawn from its run folders."""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.results import Analysis

from ._base import SeedRun, curves

BLUE, ORANGE, GREY, GREEN, RED = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#d62728"


def _band(fig: go.Figure, x, values, name: str, color: str) -> None:
    values, x = np.asarray(values), np.asarray(x)
    fig.add_scatter(x=np.r_[x, x[::-1]], y=np.r_[values.max(0), values.min(0)[::-1]], fill="toself", line_width=0,
                    fillcolor=color, opacity=0.2, hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=x, y=values.mean(0), name=name, line_color=color, mode="lines+markers")


def error_figure(extras: list[dict], dist: str) -> go.Figure:
    ts = extras[0]["positions"]
    rows = [e[dist] for e in extras]
    fig = go.Figure()
    _band(fig, ts, [r["model"] for r in rows], f"trained layer (mean, min–max over {len(extras)} seeds)", BLUE)
    if f"{dist}_random" in extras[0]:
        _band(fig, ts, [e[f"{dist}_random"]["model"] for e in extras], "trained layer from a dense random init", RED)
    fig.add_scatter(x=ts, y=np.mean([r["gd"] for r in rows], 0), name="one GD step, fitted η*", mode="markers",
                    marker=dict(color=GREEN, symbol="x", size=8))
    fig.add_scatter(x=ts, y=np.mean([r["ols"] for r in rows], 0), name="OLS on the pairs so far", mode="lines",
                    line=dict(color=GREY, dash="dot"))
    limit = np.mean([r["limit_model_eta"] for r in rows])
    fig.add_scatter(x=[ts[0], ts[-1]], y=[limit] * 2, name="t → ∞ limit at the layer's η (theory/ar_gd.py)",
                    mode="lines", line=dict(color=ORANGE, dash="dash"))
    if dist == "gaussian":
        fig.add_scatter(x=[ts[0], ts[-1]], y=[rows[0]["limit_best"]] * 2, name="t → ∞ limit at the best η (1/3)",
                        mode="lines", line=dict(color=GREY, dash="dashdot"))
    fig.update_layout(title=f"Relative error vs position, x_1 {dist}", xaxis_title="position t (pairs seen)",
                      yaxis_title="E|ŷ_{t+1} − x_{t+1}|² / E|x_{t+1}|²", yaxis_type="log", template="plotly_white",
                      legend=dict(orientation="h", y=-0.3))
    return fig


def weights_figure(extras: list[dict], dists) -> go.Figure:
    """Seed 0's identifiable blocks, scaled by their largest entry (the construction: I in one block)."""
    d = extras[0]["d"]
    fig = make_subplots(rows=len(dists), cols=2, horizontal_spacing=0.12, vertical_spacing=0.15,
                        subplot_titles=[f"{dist}: {name}" for dist in dists
                                        for name in ("W_PV[out, (x_i, x_{i−1})]", "W_KQ[key (x_i, x_{i−1}), query (x_t, x_{t−1})]")])
    labels = [f"x[{j}]" for j in range(d)] + [f"x_prev[{j}]" for j in range(d)]
    for row, dist in enumerate(dists, 1):
        pv, kq = np.array(extras[0][dist]["W_PV"])[:d, d:], np.array(extras[0][dist]["W_KQ"])[d:, d:]
        pv, kq = pv / np.abs(pv).max(), kq / np.abs(kq).max()
        fig.add_heatmap(z=pv, x=labels, y=[f"out[{j}]" for j in range(d)], colorscale="RdBu", zmid=0, zmin=-1.2,
                        zmax=1.2, row=row, col=1, showscale=row == 1)
        fig.add_heatmap(z=kq, x=labels, y=labels, colorscale="RdBu", zmid=0, zmin=-1.2, zmax=1.2, row=row, col=2,
                        showscale=False)
    for axis in fig.layout:
        if axis.startswith("yaxis"):
            fig.layout[axis].autorange = "reversed"
    fig.update_layout(title="Learned blocks (seed 0), scaled to max |entry| = 1: the GD construction is I in one block",
                      height=380 * len(dists), template="plotly_white")
    return fig


def loss_figure(runs: list[SeedRun], extras: list[dict], dists) -> go.Figure:
    fig = go.Figure()
    for name, color in zip(dists, (BLUE, GREEN, RED, ORANGE), strict=False):
        steps, loss = curves(runs, "eval", f"loss_{name}")
        _band(fig, steps, loss, f"{name}: AR loss of the trained layer", color)
    fig.update_layout(title="Eval AR loss during training (sum over coordinates, mean over positions)",
                      xaxis_title="training step", yaxis_title="E|ŷ − x|²", yaxis_type="log", template="plotly_white",
                      legend=dict(orientation="h", y=-0.3))
    return fig


def _table(extras: list[dict], dists) -> str:
    def ms(key, dist, i=None):
        vals = np.array([e[dist][key] if i is None else e[dist][key][i] for e in extras])
        return f"{vals.mean():.4f} ± {vals.std():.4f}"

    lines = ["| layer (x_1, init) | η* (fitted GD) | η of the layer | prediction cosine | construction cosine | model / GD error "
             "| rel. error at last t: model | GD(η*) | OLS | t → ∞ at the layer's η |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for dist in dists:
        lines.append(f"| {dist} | {ms('eta_star', dist)} | {ms('eta_eff', dist)} | {ms('pred_cosine', dist)} "
                     f"| {ms('construction_cosine', dist)} | {ms('model_over_gd', dist)} | {ms('model', dist, -1)} "
                     f"| {ms('gd', dist, -1)} | {ms('ols', dist, -1)} | {ms('limit_model_eta', dist)} |")
    return "\n".join(lines)


def _deviations(extras: list[dict], dists) -> str:
    """What the measured numbers say about the claim, written from them (nothing here is fixed in advance)."""
    lines = ["### Where the layer departs from one GD step", ""]
    for dist in dists:
        ratio = np.mean([e[dist]["model_over_gd"] for e in extras])
        cos = np.mean([e[dist]["construction_cosine"] for e in extras])
        if ratio < 0.95:
            lines.append(f"- x_1 {dist}: the layer's error is {100 * (1 - ratio):.1f}% below that of the best one GD "
                         f"step, while its weights stay close to the construction (cosine {cos:.3f}). The small "
                         "off-construction entries buy a better predictor: with real 2×2 rotation blocks in a fixed "
                         "basis the layer can use real-linear maps of each block (reflections) that Zheng et al.'s "
                         "complex-diagonal W and their analysis do not offer, so in this setting the trained layer is "
                         "not exactly one GD step.")
        elif ratio > 1.05:
            lines.append(f"- x_1 {dist}: the layer's error is {100 * (ratio - 1):.1f}% above the best one GD step "
                         "(not converged).")
        else:
            lines.append(f"- x_1 {dist}: the layer's error is within 5% of the best one GD step ({ratio:.3f}).")
    for dist in dists:
        if f"{dist}_random" in extras[0]:
            rnd = [e[f"{dist}_random"] for e in extras]
            cosines = ", ".join(f"{r['construction_cosine']:.2f}" for r in rnd)
            lines.append(f"- From a dense random init (x_1 {dist}) the layer ends at error ratio "
                         f"{np.mean([r['model_over_gd'] for r in rnd]):.3f} to one GD step with construction cosine "
                         f"{cosines} (per seed): a cosine far below 1 "
                         "at a similar loss is another solution, not the construction.")
    return "\n".join(lines)


def analyse(config, runs: list[SeedRun], dists, labels) -> Analysis:
    """`dists`: the x_1 distributions (structured init); `labels`: every trained layer."""
    extras = [r.read_json("extras") for r in runs]
    figs = {f"error_vs_t_{dist}": error_figure(extras, dist) for dist in dists}
    figs |= {"weights": weights_figure(extras, labels), "training": loss_figure(runs, extras, labels)}
    captions = {
        "error_vs_t_rademacher": "With x_1 ∈ {±1}^d the layer tracks one GD step, whose error falls towards (1 − η)².",
        "error_vs_t_gaussian": "With Gaussian x_1 one GD step cannot reach 0 (limit ≥ 1/3); OLS does.",
        "weights": "Blocks that reach the read-out (the others get no gradient), per trained layer.",
    }
    markdown = ("### One GD step, per layer (mean ± sd over seeds)\n\n" + _table(extras, labels) + "\n\n"
                + _deviations(extras, dists))
    return Analysis(figures={k: v.to_plotly_json() for k, v in figs.items()}, markdown=markdown, captions=captions)
