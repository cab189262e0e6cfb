"""Figures and tables of the icl-zfb experiment, drawn from its run folders."""

import numpy as np
import plotly.graph_objects as go

from workbench.core.results import Analysis

from ._base import SeedRun, curves

BLUE, ORANGE, GREY, GREEN, RED = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#d62728"


def _band(fig: go.Figure, x, values, name: str, color: str) -> None:
    values = np.asarray(values)
    mean, lo, hi = values.mean(0), values.min(0), values.max(0)
    x = np.asarray(x)
    fig.add_scatter(x=np.r_[x, x[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", line_width=0, fillcolor=color,
                    opacity=0.2, hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=x, y=mean, name=name, line_color=color, mode="lines+markers")


def error_figure(extras: list[dict], label: str, title: str) -> go.Figure:
    ms = extras[0]["prompt_lengths"]
    rows = [e[label] for e in extras]
    fig = go.Figure()
    _band(fig, ms, [r["model"] for r in rows], f"trained LSA (mean, min–max over {len(extras)} seeds)", BLUE)
    fig.add_scatter(x=ms, y=rows[0]["formula"], name="closed form (theory/zfb.py)", mode="lines",
                    line=dict(color=ORANGE, dash="dash"))
    fig.add_scatter(x=ms, y=np.mean([r["theory"] for r in rows], 0), name="x_qᵀ Γ⁻¹ (1/M) Σ y_i x_i on the eval prompts",
                    mode="markers", marker=dict(color=GREEN, symbol="x", size=9))
    fig.add_scatter(x=ms, y=np.mean([r["ols"] for r in rows], 0), name="OLS (min-norm)", mode="lines",
                    line=dict(color=GREY, dash="dot"))
    fig.add_scatter(x=[ms[0], ms[-1]], y=[rows[0]["formula_limit"]] * 2, name="closed form, M → ∞", mode="lines",
                    line=dict(color=RED, dash="dashdot"))
    fig.update_layout(title=title, xaxis_title="test prompt length M", yaxis_title="E(ŷ − y)²", xaxis_type="log",
                      template="plotly_white", legend=dict(orientation="h", y=-0.3))
    return fig


def preconditioner_figure(extras: list[dict], spectrum: str) -> go.Figure:
    learned = np.array([e[f"{spectrum}_learned"] for e in extras])
    closed = np.array(extras[0][f"{spectrum}_gamma_inv"])
    d = closed.shape[0]
    idx = [f"({i},{j})" for i in range(d) for j in range(d)]
    fig = go.Figure()
    fig.add_bar(x=idx, y=closed.ravel(), name="Γ⁻¹ (closed form)", marker_color=ORANGE)
    fig.add_bar(x=idx, y=learned.mean(0).ravel(), name=f"learned W^PV_22 W^KQ_11 (mean over {len(extras)} seeds)",
                marker_color=BLUE, error_y=dict(type="data", array=learned.std(0).ravel()))
    fig.update_layout(title=f"Learned preconditioner vs Γ⁻¹ (Λ {spectrum})", xaxis_title="entry (i, j)",
                      yaxis_title="value", barmode="group", template="plotly_white", legend=dict(orientation="h", y=-0.3))
    return fig


def loss_figure(runs: list[SeedRun], extras: list[dict], spectra) -> go.Figure:
    fig = go.Figure()
    for spectrum, color in zip(spectra, (BLUE, GREEN), strict=False):
        steps, err = curves(runs, "eval", f"error_{spectrum}")
        _band(fig, steps, err, f"Λ {spectrum}: trained LSA at M = N", color)
        i = extras[0]["prompt_lengths"].index(extras[0]["n_points"])
        fig.add_scatter(x=[steps[0], steps[-1]], y=[extras[0][spectrum]["formula"][i]] * 2, mode="lines",
                        name=f"Λ {spectrum}: global minimum (closed form)", line=dict(color=color, dash="dash"))
    fig.update_layout(title="Test error during training", xaxis_title="training step", yaxis_title="E(ŷ − y)²",
                      yaxis_type="log", template="plotly_white", legend=dict(orientation="h", y=-0.3))
    return fig


def _table(extras: list[dict], spectra, shift: float) -> str:
    ms = extras[0]["prompt_lengths"]
    lines = ["| Λ | M | trained LSA (mean ± sd) | closed form | OLS |", "|---|---|---|---|---|"]
    for spectrum in spectra:
        for label, name in ((spectrum, spectrum), (f"{spectrum}_shift", f"{spectrum}, test x ~ N(0, {shift:g}Λ)")):
            for i, m in enumerate(ms):
                vals = np.array([e[label]["model"][i] for e in extras])
                lines.append(f"| {name} | {m} | {vals.mean():.4f} ± {vals.std():.4f} | {extras[0][label]['formula'][i]:.4f} "
                             f"| {np.mean([e[label]['ols'][i] for e in extras]):.4f} |")
    return "\n".join(lines)


def analyse(config, runs: list[SeedRun], spectra, shift: float) -> Analysis:
    extras = [r.read_json("extras") for r in runs]
    figs = {
        "error_vs_m_isotropic": error_figure(extras, "isotropic", "Error vs test prompt length, Λ = I"),
        "error_vs_m_diagonal": error_figure(extras, "diagonal", "Error vs test prompt length, Λ = diag(4, 2, 1, .5, .25)"),
        "covariate_shift": error_figure(extras, "diagonal_shift", f"Covariate shift: trained on Λ, tested on {shift:g}Λ"),
        "preconditioner_diagonal": preconditioner_figure(extras, "diagonal"),
        "training": loss_figure(runs, extras, spectra),
    }
    captions = {
        "error_vs_m_isotropic": "The trained layer's error follows the closed form in M and stays above OLS once M ≥ d.",
        "covariate_shift": "Under covariate shift the error approaches a non-zero limit while OLS reaches 0.",
        "preconditioner_diagonal": "Entries of the learned bilinear form next to Γ⁻¹; error bars: sd over seeds.",
    }
    markdown = "### Error vs M, all settings\n\n" + _table(extras, spectra, shift)
    return Analysis(figures={k: v.to_plotly_json() for k, v in figs.items()}, markdown=markdown, captions=captions)
