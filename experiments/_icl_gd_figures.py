"""Figures and tables of the icl-gd experiment, drawn from its run folders."""

import json

import numpy as np
import plotly.graph_objects as go

from workbench.core.results import Analysis
from workbench.theory import lsa_gd

from ._base import SeedRun, curves

BLUE, ORANGE, GREY, GREEN = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c"


def _band(fig: go.Figure, steps, values, name: str, color: str) -> None:
    mean, lo, hi = values.mean(0), values.min(0), values.max(0)
    fig.add_scatter(x=np.r_[steps, steps[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", line_width=0,
                    fillcolor=color, opacity=0.2, hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=steps, y=mean, name=name, line_color=color)


def _hline(fig: go.Figure, y: float, name: str, color: str, dash: str) -> None:
    fig.add_scatter(x=[0, 1], y=[y, y], xaxis="x2", name=name, mode="lines", line=dict(color=color, dash=dash))


def loss_figure(runs: list[SeedRun], extras: list[dict]) -> go.Figure:
    steps, loss = curves(runs, "eval", "loss")
    fig = go.Figure()
    _band(fig, steps, loss, f"trained LSA (mean, min–max over {len(runs)} seeds)", BLUE)
    _hline(fig, np.mean([e["gd_loss"] for e in extras]), "one GD step, line-searched η*", ORANGE, "dash")
    _hline(fig, extras[0]["theory_gd_loss"], "one GD step, closed form at optimal η", GREEN, "dot")
    _hline(fig, np.mean([e["ols_loss"] for e in extras]), "OLS", GREY, "dashdot")
    fig.update_layout(
        title="Test loss during training", xaxis_title="training step", yaxis_title="0.5 · MSE (eval prompts)",
        xaxis2=dict(overlaying="x", range=[0, 1], visible=False), template="plotly_white",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def cosine_figure(runs: list[SeedRun]) -> go.Figure:
    steps, cos = curves(runs, "eval", "pred_cosine_gd")
    fig = go.Figure()
    _band(fig, steps, cos, "cos(LSA predictions, GD predictions)", BLUE)
    fig.update_layout(title="Agreement with GD during training", xaxis_title="training step",
                      yaxis_title="prediction cosine", template="plotly_white", yaxis_range=[-0.05, 1.05])
    return fig


def agreement_figure(extras: list[dict]) -> go.Figure:
    model, ref = np.array(extras[0]["pred_model"]), np.array(extras[0]["pred_gd"])
    lim = float(np.abs(np.r_[model, ref]).max()) * 1.05
    fig = go.Figure()
    fig.add_scatter(x=ref, y=model, mode="markers", marker=dict(size=4, color=BLUE, opacity=0.6),
                    name=f"{len(model)} eval prompts (seed {0})")
    fig.add_scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", line=dict(color=GREY, dash="dash"), name="y = x")
    fig.update_layout(title="Predictions: trained LSA vs one GD step", xaxis_title="GD(η*) prediction",
                      yaxis_title="LSA prediction", template="plotly_white", width=520, height=480)
    return fig


def theory_figure(config, extras: list[dict], s2: float, m4: float) -> go.Figure:
    """`s2`, `m4`: the second and fourth moments of one input coordinate."""
    eta_opt = lsa_gd.optimal_eta(config.d, config.n_points, s2, m4)
    etas = np.linspace(0, 2 * eta_opt, 200)
    fig = go.Figure()
    fig.add_scatter(x=etas, y=lsa_gd.expected_gd_loss(etas, config.d, config.n_points, s2, m4),
                    name="E loss of one GD step (closed form)", line_color=GREEN)
    fig.add_scatter(x=[e["effective_eta"] for e in extras], y=[e["loss"] for e in extras], mode="markers",
                    marker=dict(size=10, color=BLUE, symbol="x"), name="trained LSA (effective η, test loss)")
    fig.add_scatter(x=[e["eta_star"] for e in extras], y=[e["gd_loss"] for e in extras], mode="markers",
                    marker=dict(size=8, color=ORANGE), name="GD at line-searched η*")
    fig.update_layout(title="Loss of one GD step vs its step size", xaxis_title="step size η",
                      yaxis_title="0.5 · MSE", template="plotly_white", legend=dict(orientation="h", y=-0.25))
    return fig


def _table(seeds_extras: list[tuple[str, dict]]) -> str:
    lines = ["| seed | η* (line search) | effective η of LSA | LSA loss | GD(η*) loss | OLS loss | zero predictor |",
             "|---|---|---|---|---|---|---|"]
    for seed, e in seeds_extras:
        lines.append(f"| {seed} | {e['eta_star']:.3f} | {e['effective_eta']:.3f} | {e['loss']:.4f} | "
                     f"{e['gd_loss']:.4f} | {e['ols_loss']:.2e} | {e['zero_loss']:.4f} |")
    return "\n".join(lines)


def analyse(config, runs: list[SeedRun], s2: float, m4: float) -> Analysis:
    """The page's figures and per-seed table; `s2`, `m4` as in `theory_figure`."""
    extras = [run.read_json("extras") for run in runs]
    figures = {
        "loss": loss_figure(runs, extras),
        "theory": theory_figure(config, extras, s2, m4),
        "agreement": agreement_figure(extras),
        "cosine": cosine_figure(runs),
    }
    captions = {
        "loss": "The trained layer's test loss falls onto the loss of one GD step with the optimal step size "
                "(OLS, which solves the d = N system exactly, is the floor no single GD step reaches).",
        "theory": "Closed-form expected loss of one GD step from theory/lsa_gd.py; the trained models sit at "
                  "its minimum. The effective η is read off the learned weights (projection onto Prop. 1).",
        "agreement": "Per-prompt predictions of the trained layer against one GD step.",
        "cosine": "Cosine between the layer's and GD's predictions on the fixed eval prompts during training.",
    }
    table = _table([(str(run.seed), e) for run, e in zip(runs, extras)])
    return Analysis(figures={k: json.loads(f.to_json()) for k, f in figures.items()},
                    markdown="## Per-seed numbers\n\n" + table + "\n", captions=captions)
