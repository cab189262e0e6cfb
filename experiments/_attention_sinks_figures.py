"""The `attention-sinks` page: each model's loss beside its sink share and copy accuracy over training,
the mean attention patterns at the end, and a per-seed table."""

import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.results import Analysis

from ._base import SeedRun
from ._pages import misses_section
from ._progress import progress_figure, steepest_rise, transition_step

WHY = {
    "softmax_copy_acc": "the copy at triggers was not learned within the budget (see the copy loss on the progress "
                        "figure); the sink checks then describe a model that does not yet need its head",
    "softmax_sink_dormant": "the softmax head spreads its attention at dormant queries instead of parking it on BOS "
                            "(see the mean pattern); a longer run or more data may be needed for the sink to form",
    "softmax_bos_value_ablation": "BOS's value carries information the model uses (the sink is not a pure no-op)",
    "linear_sink_dormant": "the linear-attention head also weights BOS more than uniform attention does: without "
                           "normalisation it can use BOS's value as a constant bias",
}


def _patterns_figure(extras: dict, models: Sequence[str]) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=[f"{m} attention" for m in models])
    for i, m in enumerate(models):
        p = np.asarray(extras["patterns"][m])
        p = p / np.maximum(p.sum(-1, keepdims=True), 1e-12)  # rows as shares (linear weights are unnormalised)
        fig.add_heatmap(z=p, colorscale="Blues", zmin=0, zmax=1, showscale=i == len(models) - 1, row=1, col=i + 1)
        fig.update_xaxes(title_text="key position", row=1, col=i + 1)
        fig.update_yaxes(title_text="query position", autorange="reversed", row=1, col=i + 1)
    fig.update_layout(title="Mean attention (share of |weights| per query) after training, seed "
                            f"{extras.get('seed', 0)}", template="plotly_white", height=420)
    return fig


def _table(runs: Sequence[SeedRun], extras: list[dict], models: Sequence[str]) -> str:
    cols = ("loss", "copy_acc", "sink_dormant", "sink_trigger", "bos_value_ablation", "sink_removal")
    head = "| seed | model | Bayes loss | " + " | ".join(cols) + " | sink rise step |\n"
    rows = [head, "|" + "---|" * (len(cols) + 4) + "\n"]
    for run, e in zip(runs, extras):
        for m in models:
            f = e["final"][m]
            steps, share = run.curve("eval", f"{m}/sink_dormant")
            rows.append(f"| {run.seed} | {m} | {e['references']['bayes']:.3f} | "
                        + " | ".join(f"{f[c]:.3f}" for c in cols) + f" | {steepest_rise(steps, share)} |\n")
    return "".join(rows)


NOTE = (
    "\n\n**Definitions.** *Dormant* queries are positions q ≥ 1 whose token is not a trigger (the head has nothing "
    "to copy); *sink share* is |pattern[q, 0]| / Σ_k |pattern[q, k]| (for softmax, the attention on BOS). "
    "*bos_value_ablation*: rise of the eval loss (nats) when BOS's value vector is zeroed; *sink_removal*: rise "
    "when BOS's column of the pattern is zeroed at q ≥ 1 (softmax rows renormalised, so the attention goes to the "
    "other tokens). The Bayes loss is the exact predictor of the source (bigram row, or the copy at triggers). "
    "*Sink rise step*: where the smoothed sink share rises fastest; the dotted line on each progress figure is the "
    "step of the steepest drop of the loss. Each seed draws its own bigram table.\n"
)


def analyse(config, runs: Sequence[SeedRun], models: Sequence[str]) -> Analysis:
    extras = [run.read_json("extras") for run in runs]
    refs = extras[0]["references"]
    figures, captions = {}, {}
    for m in models:
        transitions = [transition_step(*run.curve("eval", f"{m}/loss"), window=config.smooth_window) for run in runs]
        fig = progress_figure(runs, [(f"{m}/sink_dormant", "sink share, dormant queries"),
                                     (f"{m}/sink_trigger", "sink share, trigger queries"),
                                     (f"{m}/copy_acc", "copy accuracy at triggers")],
                              loss=f"{m}/loss", references={"Bayes (seed 0's eval set)": refs["bayes"]},
                              transitions=transitions, title=f"{m} attention: eval loss, sink share and copy accuracy")
        figures[m] = json.loads(fig.to_json())
        captions[m] = (f"One-layer {m}-attention model: eval loss against the Bayes loss (top); the share of its "
                       "attention on BOS at dormant and at trigger queries, and its copy accuracy (bottom); mean "
                       "and min–max over seeds, dotted: each seed's steepest loss drop.")
    figures["patterns"] = json.loads(_patterns_figure({**extras[0], "seed": runs[0].seed}, models).to_json())
    captions["patterns"] = ("Mean attention of each model on eval sequences at the end of training: a sink is a "
                            "dark first column.")
    markdown = misses_section(runs, WHY) + "## Per-seed numbers\n\n" + _table(runs, extras, models) + NOTE
    return Analysis(figures=figures, captions=captions, markdown=markdown)
