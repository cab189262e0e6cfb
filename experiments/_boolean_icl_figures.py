"""Figures and tables of the boolean-icl experiment, drawn from its run folders."""

import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.results import Analysis

from ._base import SeedRun, curves
from ._pages import misses_section
from ._progress import COLORS

TITLES = {"conjunction": "conjunctions", "parity": "sparse parity", "teaching": "monotone conjunctions, teaching prefix"}
LEARNER_LABELS = {"elimination": "elimination", "nearest_neighbour": "nearest neighbour", "bayes": "Bayes (exact)"}


def _band(fig, x, values, name, color, row, col, legend=True):
    values = np.asarray(values)
    mean, lo, hi = values.mean(0), values.min(0), values.max(0)
    fig.add_scatter(x=np.r_[x, x[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", line_width=0, fillcolor=color,
                    opacity=0.2, hoverinfo="skip", showlegend=False, row=row, col=col)
    fig.add_scatter(x=x, y=mean, name=name, line_color=color, showlegend=legend, row=row, col=col)


def accuracy_figure(extras: list[dict], tasks: Sequence[str], late_from: int) -> go.Figure:
    """Per-position accuracy of each task's model (mean, min–max over seeds) beside its reference learners."""
    fig = make_subplots(rows=1, cols=len(tasks), shared_yaxes=True, subplot_titles=[TITLES[t] for t in tasks])
    for col, task in enumerate(tasks, 1):
        x = np.arange(len(extras[0][task]["model"]))
        _band(fig, x, [e[task]["model"] for e in extras], f"transformer ({TITLES[task]})", COLORS[0], 1, col)
        learners = [k for k in extras[0][task] if k in LEARNER_LABELS]
        for i, name in enumerate(learners):
            fig.add_scatter(x=x, y=np.mean([e[task][name] for e in extras], 0), mode="lines",
                            name=f"{LEARNER_LABELS[name]} ({TITLES[task]})",
                            line=dict(color=COLORS[i + 1], dash="dash"), row=1, col=col)
        fig.add_vline(x=late_from, line=dict(color="#444", dash="dot", width=1), row=1, col=col)
        fig.update_xaxes(title_text="position j (points seen)", row=1, col=col)
    fig.update_yaxes(title_text="accuracy on y_j", range=[0.3, 1.02], row=1, col=1)
    fig.update_layout(title="Accuracy at each position of the prompt (dotted: start of the late positions)",
                      template="plotly_white", legend=dict(orientation="h", y=-0.3), height=460)
    return fig


def training_figure(runs: Sequence[SeedRun], tasks: Sequence[str]) -> go.Figure:
    """Eval loss and late-position accuracy of every model over training."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i, task in enumerate(tasks):
        steps, loss = curves(runs, "eval", f"{task}/loss")
        _band(fig, steps, loss, f"{TITLES[task]}: loss", COLORS[i], 1, 1)
        steps, acc = curves(runs, "eval", f"{task}/late_accuracy")
        _band(fig, steps, acc, f"{TITLES[task]}: late accuracy", COLORS[i], 2, 1)
    steps, acc = curves(runs, "eval", "teaching/after_prefix_accuracy")
    _band(fig, steps, acc, "teaching: accuracy right after the prefix", COLORS[3], 2, 1)
    fig.update_yaxes(title_text="eval loss (nats)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    fig.update_layout(title=f"Training, mean and min–max over {len(runs)} seeds", template="plotly_white",
                      legend=dict(orientation="h", y=-0.2), height=600)
    return fig


def _table(runs: Sequence[SeedRun], extras: list[dict], late_from: int) -> str:
    late = lambda a: float(np.mean(a[late_from:]))
    lines = ["| seed | conjunction: model / elimination (late) | parity: model / Bayes (late) | teaching: model / "
             "elimination right after the prefix | conjunction model on the teaching prompts, right after the prefix |",
             "|---|---|---|---|---|"]
    for run, e in zip(runs, extras):
        c, p, t = e["conjunction"], e["parity"], e["teaching"]
        lines.append(f"| {run.seed} | {late(c['model']):.3f} / {late(c['elimination']):.3f} | "
                     f"{late(p['model']):.3f} / {late(p['bayes']):.3f} | {t['model@after_prefix']:.3f} / "
                     f"{t['elimination@after_prefix']:.3f} | {t['conjunction_model@after_prefix']:.3f} |")
    return "\n".join(lines)


DEVIATIONS = (
    "\n\n**Where this departs from the paper.** Scale: n = 10 variables instead of 28 and a small model (see the "
    "config) trained for minutes, not a 12-layer GPT-2. Input: each token carries the query x_j together with the "
    "previous example (x_{j-1}, y_{j-1}) instead of separate x and y tokens, which halves the sequence; the model "
    "is causal, so y_j is predicted from points 0..j-1 only. The teaching class is monotone conjunctions (each "
    "variable a literal with probability 0.3), whose teaching sequence is the positive point that is +1 exactly "
    "on the k literals followed by the k points that flip one literal each; its prefix length k + 1 varies per "
    "prompt, and the check reads each prompt at its own position k + 1.\n"
)


def _why(config, runs: Sequence[SeedRun], extras: list[dict]) -> dict[str, str]:
    """Measured context for each check that may miss: the model beside the learners, and the trend at the end."""
    late = lambda task, name: float(np.mean([np.mean(e[task][name][config.late_from:]) for e in extras]))

    def trend(metric: str) -> str:
        steps, values = curves(runs, "eval", metric)
        i = int(np.searchsorted(steps, 0.75 * steps[-1]))
        return f"{values[:, i].mean():.3f} at step {steps[i]} and {values[:, -1].mean():.3f} at step {steps[-1]}"

    scale = f"{config.n_layers} layers of width {config.d_model}, {config.steps} steps of {config.batch_size} prompts"
    return {
        "conjunction_late_accuracy": f"at this scale ({scale}) the model has not caught up with "
                                     f"elimination ({late('conjunction', 'elimination'):.3f} on the same positions; "
                                     f"nearest neighbour {late('conjunction', 'nearest_neighbour'):.3f}); its late "
                                     f"accuracy on the eval set of training was {trend('conjunction/late_accuracy')} (mean over seeds)",
        "parity_late_accuracy": f"the model does better than chance on sparse parities; the exact Bayes learner "
                                f"reaches {late('parity', 'bayes'):.3f} and nearest neighbour "
                                f"{late('parity', 'nearest_neighbour'):.3f}; late accuracy on the eval set of training "
                                f"{trend('parity/late_accuracy')}",
        "teaching_after_prefix_accuracy": f"at this scale ({scale}) the prefix is not yet read exactly; accuracy right "
                                          f"after it was {trend('teaching/after_prefix_accuracy')}",
    }


def analyse(config, runs: Sequence[SeedRun], tasks: Sequence[str]) -> Analysis:
    extras = [run.read_json("extras") for run in runs]
    figures = {"accuracy": json.loads(accuracy_figure(extras, tasks, config.late_from).to_json()),
               "training": json.loads(training_figure(runs, tasks).to_json())}
    captions = {
        "accuracy": "Accuracy on the label of point j given points 0..j-1, on fresh prompts, against the reference "
                    "learners of each class (elimination for conjunctions, the exact Bayes predictor for sparse "
                    "parities, nearest neighbour for all).",
        "training": "Eval loss and late-position accuracy of each task's model during training; for the teaching "
                    "task also the accuracy at the first point after the prefix.",
    }
    markdown = (misses_section(runs, _why(config, runs, extras)) + "## Per-seed numbers\n\n" + _table(runs, extras, config.late_from)
                + DEVIATIONS)
    return Analysis(figures=figures, captions=captions, markdown=markdown)
