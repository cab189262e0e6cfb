"""Figures and tables of the scan-snap experiment, written by `run` into each seed's folder and
gathered by `analyse`. `published` is the authors' Fig. 6 table, `log` their Fig. 4 log."""

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.results import Analysis

from ._base import SeedRun

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]


def loss_figure(fig4, log: dict) -> go.Figure:
    loss = np.asarray(fig4.loss)
    steps = np.arange(loss.shape[1])
    fig = go.Figure()
    fig.add_scatter(x=np.r_[steps, steps[::-1]], y=np.r_[loss.max(0), loss.min(0)[::-1]], fill="toself",
                    line_width=0, fillcolor=COLORS[0], opacity=0.2, hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=steps, y=loss.mean(0), name=f"ours (mean, min–max over {loss.shape[0]} seeds)", line_color=COLORS[0])
    fig.add_scatter(x=list(log), y=list(log.values()), mode="markers", name="authors' figure_4.log (seed 2)",
                    marker=dict(color=COLORS[1], size=9, symbol="x"))
    fig.update_layout(xaxis_title="iteration", yaxis_title="cross-entropy loss", yaxis_type="log")
    return fig


def attention_figure(fig4, iters=(0, 2, 4, 6, 8, 10)) -> go.Figure:
    """c_n of class 0 (tokens: 10 common then 10 distinct) at the authors' Fig. 4 iterations and the last."""
    att = np.asarray(fig4.attention)[0, :, 0]  # inner seed 0, class 0: [steps + 1, support]
    rows = list(iters) + [att.shape[0] - 1]
    fig = go.Figure(go.Heatmap(z=att[rows], x=[f"CT{i}" for i in range(10)] + [f"DT{i}" for i in range(att.shape[1] - 10)],
                               y=[f"iter {t}" for t in rows[:-1]] + [f"final ({rows[-1]})"], colorscale="Viridis"))
    fig.update_layout(xaxis_title="token (common | distinct, by rising P(l | n))", yaxis_autorange="reversed")
    return fig


def freeze_figure(freeze_sgd, reduced) -> go.Figure:
    ent = np.asarray(freeze_sgd.entropy)
    n = ent.shape[0] // 2
    fig = go.Figure()
    for i, (label, rows) in enumerate((("η_Y/η_Z = 1", slice(0, n)), ("η_Y/η_Z = 10", slice(n, 2 * n)))):
        fig.add_scatter(y=ent[rows].mean(0), name=f"SGD, L = 128 ({label}, mean of {n})", line_color=COLORS[i])
        fig.add_scatter(y=np.asarray(reduced.entropy)[i], name=f"reduced dynamics, L → ∞ ({label})",
                        line=dict(color=COLORS[i], dash="dash"))
    fig.update_layout(xaxis_title="iteration", yaxis_title="entropy of c_n on distinct tokens")
    return fig


def sweep_figure(table: list[dict], published: dict) -> go.Figure:
    num_lasts = sorted({row["num_last"] for row in table})
    fig = make_subplots(rows=1, cols=len(num_lasts), subplot_titles=[f"num_last = {nl}" for nl in num_lasts],
                        shared_yaxes=True)
    lzs = sorted({row["lr_z"] for row in table})
    for c, nl in enumerate(num_lasts, start=1):
        for i, lz in enumerate(lzs):
            rows = sorted((r for r in table if r["num_last"] == nl and r["lr_z"] == lz), key=lambda r: r["ratio"])
            color = COLORS[i % len(COLORS)]
            fig.add_scatter(x=[r["ratio"] for r in rows], y=[r["mean"] for r in rows], name=f"η_Z = {lz:g} (ours)",
                            error_y=dict(array=[r["std"] for r in rows]), line_color=color, legendgroup=str(lz),
                            showlegend=c == 1, row=1, col=c)
            pub = [(r, published[(lz, r)]) for r in (row["ratio"] for row in rows) if nl == 1 and (lz, r) in published]
            if pub:
                fig.add_scatter(x=[p[0] for p in pub], y=[p[1][0] for p in pub], error_y=dict(array=[p[1][1] for p in pub]),
                                mode="markers", marker=dict(symbol="x", color=color, size=9), name=f"η_Z = {lz:g} (paper)",
                                legendgroup=str(lz), showlegend=c == 1, row=1, col=c)
        fig.update_xaxes(title_text="η_Y / η_Z", type="log", row=1, col=c)
    fig.update_yaxes(title_text="average entropy of c_n (distinct tokens)", row=1, col=1)
    return fig


def write_figures(run: SeedRun, fig4, table, freeze_sgd, reduced, log: dict, published: dict) -> None:
    run.write_figure("fig4_loss", loss_figure(fig4, log))
    run.write_figure("fig4_attention", attention_figure(fig4))
    run.write_figure("snap", freeze_figure(freeze_sgd, reduced))
    run.write_figure("fig6_entropy", sweep_figure(table, published))


def analyse(config, runs: list[SeedRun], published: dict) -> Analysis:
    names = ["fig4_loss", "fig4_attention", "snap", "fig6_entropy"]
    figures = {n: runs[0].read_figure(n) for n in names}
    captions = {
        "fig4_loss": "Fig. 4 config (num_last = 2, zero init, η_Y = η_Z = 1, batch 128, L = 128) against the authors' log.",
        "fig4_attention": "Scan: c_n of class 0 moves from the common tokens to the distinct ones, most to the frequent ones.",
        "snap": "Snap: the distinct-token entropy freezes; a larger η_Y/η_Z freezes earlier and higher. Dashed: the "
                "deterministic long-sequence dynamics (workbench/kernels/scan_snap_reduced.py).",
        "fig6_entropy": f"Fig. 6: entropy after {config.fig6_steps} steps (mean ± std over {config.fig6_seeds} seeds); "
                        "crosses are the authors' values (num_last = 1 only; the other rows are kept back).",
    }
    tables = [run.read_json("fig6_table") for run in runs]
    lines = ["| num_last | η_Z | η_Y/η_Z | ours (mean ± std) | paper (mean ± std) |", "|---|---|---|---|---|"]
    for i, row in enumerate(tables[0]):
        mean = np.mean([t[i]["mean"] for t in tables])
        pub = published.get((row["lr_z"], row["ratio"])) if row["num_last"] == 1 else None
        paper = f"{pub[0]:.3f} ± {pub[1]:.3f}" if pub else "kept back"
        lines.append(f"| {row['num_last']} | {row['lr_z']:g} | {row['ratio']:g} | {mean:.3f} ± {row['std']:.3f} | {paper} |")
    return Analysis(figures=figures, markdown="## Fig. 6 table\n\n" + "\n".join(lines) + "\n", captions=captions)
