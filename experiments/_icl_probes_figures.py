"""The icl-probes page: R^2 per layer of each target (trained, fixed-w control, random init, shuffled
control), layer x position heatmaps, R^2 against the pairs seen, training curves and a per-seed table."""

import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.results import Analysis

from ._base import SeedRun, curves
from ._pages import misses_section

BLUE, ORANGE, GREY, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c", "#d62728", "#9467bd"
NAMES = {"w": "w (true weights)", "xty": "Xᵀy (moment of the pairs seen)", "wols": "w_OLS (least squares)"}
PAPER_LAYERS = {"xty": 7, "wols": 12}  # the paper's decodable layers (MLP probes, 16-layer model, d = 4)
PAPER_DEPTH = 16

WHY = {
    "icl_matches_ols": "at this budget (d_model 32, a few thousand steps) the model is still converging to "
                       "in-context least squares (see the training curves and SPD by position); the references' CPU "
                       "setting is d_model 64 and 5-10k steps, and the paper trains 500k steps",
    "wols_beats_random_init": "a linear probe at the x token finds almost none of w_OLS (or w, or Xᵀy) in this model,"
                              " whether or not its predictions match least squares (icl_matches_ols): the prediction "
                              "x_qᵀw can be formed inside attention's score-value product without writing w or Xᵀy "
                              "into the stream at the x token (the heatmap shows R² per position). The paper reads a "
                              "16-layer model trained 500k steps with MLP probes, which also read nonlinear codes "
                              "that a ridge probe misses",
    "wols_selectivity": "the shuffled control scores about 0 (the cross-validated penalty does not fit noise), so "
                        "selectivity is the R² itself; see wols_beats_random_init",
    "fixed_w_control_worse": "the trained model and the fixed-w control both score about 0 at the last x token, so "
                             "their difference is noise around 0; see wols_beats_random_init",
    "xty_not_after_wols": "NaN when Xᵀy never reaches the decode threshold at the last x token, so no order can "
                          "be read; see wols_beats_random_init",
    "wols_rises_with_depth": "w_OLS's R² drops between two layers (late layers turn the estimate into the "
                             "prediction w·x_query)",
}


def _band(fig: go.Figure, x, values, name: str, color: str, row: int, col: int, dash: str = "solid",
          legend: bool = True) -> None:
    """Mean over seeds with a min–max band."""
    values, x = np.asarray(values), np.asarray(x)
    fig.add_scatter(x=np.r_[x, x[::-1]], y=np.r_[values.max(0), values.min(0)[::-1]], fill="toself", line_width=0,
                    fillcolor=color, opacity=0.2, hoverinfo="skip", showlegend=False, row=row, col=col)
    fig.add_scatter(x=x, y=values.mean(0), name=name, line=dict(color=color, dash=dash), mode="lines+markers",
                    legendgroup=name, showlegend=legend, row=row, col=col)


def _last_token(extras: list[dict], model: str, key: str, target: str) -> np.ndarray:
    """`[seed, layer]` scores at the last x token."""
    t = extras[0]["targets"].index(target)
    return np.array([[layer[-1][t] for layer in e[model][key]] for e in extras])


def layer_figure(extras: list[dict]) -> go.Figure:
    targets, layers = extras[0]["targets"], extras[0]["layers"]
    fig = make_subplots(rows=1, cols=len(targets), shared_yaxes=True, subplot_titles=[NAMES[t] for t in targets])
    lines = (("trained", "r2", "trained model", BLUE, "solid"), ("fixed_w", "r2", "fixed-w control model", ORANGE,
             "dash"), ("random", "r2", "random init", GREY, "dot"),
             ("trained", "control_r2", "trained, shuffled control target", RED, "dot"))
    for col, target in enumerate(targets, start=1):
        for model, key, name, color, dash in lines:
            _band(fig, layers, _last_token(extras, model, key, target), name, color, 1, col, dash, legend=col == 1)
        fig.add_hline(y=extras[0]["decode_r2"], line=dict(color=GREEN, dash="dot"), row=1, col=col)
        if target in PAPER_LAYERS:
            depth = PAPER_LAYERS[target] / PAPER_DEPTH * (len(layers) - 1)
            fig.add_vline(x=depth, line=dict(color=PURPLE, dash="dash"), row=1, col=col)
        fig.update_xaxes(title_text="layer (0: embedding)", tickvals=layers, row=1, col=col)
    fig.update_yaxes(title_text="held-out R² at the last x token", range=[-0.1, 1.05], row=1, col=1)
    fig.update_layout(title="Ridge probes per layer (mean, min–max over seeds); green: decode threshold, purple: "
                            "the paper's layer scaled to our depth", template="plotly_white", height=430,
                      legend=dict(orientation="h", y=-0.25))
    return fig


def heatmap_figure(extras: list[dict]) -> go.Figure:
    targets, layers, pairs = extras[0]["targets"], extras[0]["layers"], extras[0]["seen_pairs"]
    r2 = np.mean([e["trained"]["r2"] for e in extras], 0)  # [layer, pos, target]
    fig = make_subplots(rows=1, cols=len(targets), shared_yaxes=True, subplot_titles=[NAMES[t] for t in targets])
    for col, _ in enumerate(targets, start=1):
        fig.add_heatmap(z=r2[:, :, col - 1], x=pairs, y=layers, colorscale="Viridis", zmin=0, zmax=1,
                        showscale=col == len(targets), colorbar=dict(title="R²"), row=1, col=col)
        fig.update_xaxes(title_text="pairs seen (token of x_k)", row=1, col=col)
    fig.update_yaxes(title_text="layer", tickvals=layers, row=1, col=1)
    fig.update_layout(title="Held-out R² of the trained model's probes per layer and prompt position (mean over "
                            "seeds)", template="plotly_white", height=400)
    return fig


def pairs_figure(extras: list[dict], d: int) -> go.Figure:
    targets, pairs = extras[0]["targets"], extras[0]["seen_pairs"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["probe R² at the last layer", "SPD(model, OLS) / d"])
    for t, color in zip(targets, (GREY, GREEN, BLUE), strict=True):
        i = targets.index(t)
        _band(fig, pairs, [[p[i] for p in e["trained"]["r2"][-1]] for e in extras], NAMES[t], color, 1, 1)
    _band(fig, list(range(len(extras[0]["spd_ols"]))), [e["spd_ols"] for e in extras], "SPD to OLS", PURPLE, 1, 2)
    fig.add_vline(x=d, line=dict(color=GREY, dash="dot"), row=1, col=1)
    fig.update_xaxes(title_text="pairs seen k", row=1, col=1)
    fig.update_xaxes(title_text="pairs seen k", row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title=f"By prompt position (dotted: k = d = {d})", template="plotly_white", height=400,
                      legend=dict(orientation="h", y=-0.25))
    return fig


def training_figure(runs: Sequence[SeedRun]) -> go.Figure:
    fig = make_subplots(rows=1, cols=1)
    controls = [SeedRun(r.seed, r.dir / "fixed-w") for r in runs]  # icl_probes.control_run
    for group, label, color in ((runs, "trained on fresh w", BLUE), (controls, "fixed-w control", ORANGE)):
        steps, loss = curves(group, "eval", "loss")
        _band(fig, steps, loss, label, color, 1, 1)
    fig.update_layout(title="Held-out loss / d during training (each model on its own task)", xaxis_title="step",
                      yaxis_title="loss / d", yaxis_type="log", template="plotly_white")
    return fig


def _ms(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def _tables(runs: Sequence[SeedRun], extras: list[dict]) -> str:
    targets, models = extras[0]["targets"], extras[0]["models"]
    rows = ["| target | model | R² last layer | shuffled control R² | selectivity | decodable from layer (per seed) "
            "|",
            "|---|---|---|---|---|---|"]
    for t in targets:
        for m in models:
            r2, ctrl = _last_token(extras, m, "r2", t)[:, -1], _last_token(extras, m, "control_r2", t)[:, -1]
            dec = ", ".join("never" if e[m]["decode_layer"][t] is None else str(e[m]["decode_layer"][t])
                            for e in extras)
            rows.append(f"| {NAMES[t]} | {m} | {_ms(r2)} | {_ms(ctrl)} | {_ms(r2 - ctrl)} | {dec} |")
    seeds = ["| seed | " + " | ".join(extras[0]["summary"]) + " |", "|---|" + "---|" * len(extras[0]["summary"])]
    seeds += [f"| {run.seed} | " + " | ".join(f"{v:.3f}" for v in e["summary"].values()) + " |"
              for run, e in zip(runs, extras, strict=True)]
    return ("## Probe scores at the last x token (mean ± sd over seeds)\n\n" + "\n".join(rows) +
            "\n\n## Per-seed numbers\n\n" + "\n".join(seeds) + "\n\n")


def note(config) -> str:
    paper = ", ".join(f"{NAMES[t].split(' ')[0]} from layer ~{layer} of {PAPER_DEPTH} (about "
                      f"{layer / PAPER_DEPTH * config.n_layers:.1f} of our {config.n_layers})"
                      for t, layer in PAPER_LAYERS.items())
    return (
        "## How this differs from the paper\n\n"
        f"The paper probes a 16-layer, d_model 512 model with MLP probes and reads {paper}, values as the references "
        f"state them. Here a {config.n_layers}-layer, d_model {config.d_model} model trains {config.steps} steps on "
        f"{config.n_points} noiseless pairs (d = 4) and is read by *ridge* (linear) probes, the penalty chosen by "
        "5-fold cross-validation and the score taken on held-out prompts. A linear probe is a lower bound on what "
        "the stream holds: a quantity stored nonlinearly scores low here and high under the paper's MLP probes.\n\n"
        "**Definitions.** Layer 0 is the stream before the first block (`blocks.0.hook_resid_pre`), layer l the "
        "stream after block l (`blocks.{l-1}.hook_resid_post`). At the token of x_k the model has seen k pairs; "
        "Xᵀy and w_OLS (min-norm, `pinv(X) y`) are those of the k pairs. In noiseless regression w_OLS = w once "
        "k ≥ d, so the two targets coincide at the last token and differ only at k < d, where w_OLS is the "
        "posterior mean of w (the best any reader of the prompt can do). *Shuffled control*: the same target with "
        "its prompts permuted (Hewitt and Liang); *selectivity* = R² - control R². *Fixed-w control*: the "
        "paper's control, a model of the same shape trained on prompts that all share one w, probed on the same "
        "fresh-w prompts. *Random init*: the probes on a freshly initialised model. A target is *decodable* from "
        f"the first layer whose R² at the last x token reaches {config.decode_r2}.\n"
    )


def analyse(config, runs: Sequence[SeedRun]) -> Analysis:
    extras = [run.read_json("extras") for run in runs]
    figs = {"r2_by_layer": layer_figure(extras), "heatmap": heatmap_figure(extras),
            "by_position": pairs_figure(extras, 4), "training": training_figure(runs)}
    captions = {
        "r2_by_layer": "Held-out R² of ridge probes at the token of the last x, per layer: the trained model against "
                       "the fixed-w control model, random init and the shuffled control target.",
        "heatmap": "The trained model's probe R² at every layer and every x token (the number of pairs seen).",
        "by_position": "Left: last-layer R² per position (at k < d, w is not determined by the prompt, so its R² is "
                       "bounded by w_OLS's). Right: the model's distance to OLS predictions per position.",
        "training": "Held-out loss of the two models during training.",
    }
    markdown = misses_section(runs, WHY) + _tables(runs, extras) + note(config)
    return Analysis(figures={k: json.loads(v.to_json()) for k, v in figs.items()}, markdown=markdown,
                    captions=captions)
