"""Progress measures over training: attention scores and a head's ablation effect at every eval step,
and the figure that draws them on the step axis beside the loss, with the transition step marked.

`progress_measures` is pure and jit-able: call it inside the `eval_fn` of `workbench.train.train`
(which vmaps it over seeds and logs every entry to `metrics.jsonl` at each eval step):

```python
def evaluate(model, batch):
    return {"loss": loss(model, batch), **progress_measures(model, batch.tokens, targets, head=(1, 0))}
```

Names in the log: `prev_token.a{l}.h{h}`, `induction.a{l}.h{h}`, `sink.a{l}.h{h}` for every head and
`ablation.a{l}.h{h}` (mean ablation of the chosen head: the rise in the next-token loss).

**Transition step** (`transition_step`): the eval step where the loss, smoothed by a centred moving
average of `window` evals, falls fastest (most negative slope per step), at or after a step `after`
(an experiment passes the end of an earlier phase, e.g. the plateau, to skip the first drop from
the uniform predictor). Where two reference predictors bound the phases, `crossing_step` gives the
step from which the model stays closer to the second (e.g. KL to the bigram estimator below the KL
to the unigram estimator).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from jaxtyping import Array, Float, Int
from plotly.subplots import make_subplots

from workbench.interp import Loss, ablation, site_grid
from workbench.interp.attention import induction_score, prev_token_score, sink_mass
from workbench.models import Transformer, run_with_cache, sites

from ._base import SeedRun, curves

SCORES = {"prev_token": lambda p, x: prev_token_score(p), "induction": induction_score, "sink": lambda p, x: sink_mass(p)}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def head_label(layer: int, head: int) -> str:
    """A head's node name in `workbench.models.Circuit` terms: `a{layer}.h{head}`."""
    return f"a{layer}.h{head}"


def next_token_targets(tokens: Int[Array, "batch seq"]) -> Int[Array, "batch seq"]:
    """`tokens` shifted left by one, `-1` (skipped by `interp.Loss`) at the last position."""
    return jnp.concatenate([tokens[:, 1:], jnp.full((tokens.shape[0], 1), -1, tokens.dtype)], 1)


def attention_scores(model: Transformer, tokens: Int[Array, "batch seq"]) -> dict[str, Float[Array, ""]]:
    """Previous-token, induction and sink scores of every head, averaged over the batch."""
    c = model.config
    names = tuple(sites.attn(l, "pattern") for l in range(c.n_layers))
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, names))(tokens)
    out = {}
    for score, fn in SCORES.items():
        for l, name in enumerate(names):
            per_head = jax.vmap(fn)(cache[name], tokens).mean(0)  # [head]
            out.update({f"{score}.{head_label(l, h)}": per_head[h] for h in range(c.n_heads)})
    return out


def head_ablation_effect(
    model: Transformer, tokens: Int[Array, "batch seq"], targets: Int[Array, "batch seq"], head: tuple[int, int]
) -> Float[Array, ""]:
    """The rise in the next-token loss when head `(layer, head)` is mean-ablated (its `z` at every position)."""
    grid = site_grid(model.config, "z", tokens.shape[1], layers=(head[0],), by_pos=False)
    result = ablation(model, tokens, Loss(targets=targets), grid, "mean")
    return result.effect.values[0, head[1]]


def progress_measures(
    model: Transformer, tokens: Int[Array, "batch seq"], targets: Int[Array, "batch seq"], head: tuple[int, int]
) -> dict[str, Float[Array, ""]]:
    """Every head's attention scores and the ablation effect of `head`, as one flat dict of scalars."""
    return {**attention_scores(model, tokens), f"ablation.{head_label(*head)}": head_ablation_effect(model, tokens,
                                                                                                      targets, head)}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of `window` points (shrinking at the ends)."""
    half = window // 2
    return np.array([values[max(0, i - half): i + half + 1].mean() for i in range(len(values))])


def transition_step(steps: np.ndarray, loss: np.ndarray, *, window: int = 5, after: int | None = None) -> int | None:
    """The step of the steepest drop of the smoothed loss, at or after step `after` (None if no step is)."""
    steps = np.asarray(steps)
    s = smooth(np.asarray(loss, float), window)
    slope = np.gradient(s, steps.astype(float))
    ok = steps >= (steps[0] if after is None else after)
    if not ok.any():
        return None
    return int(steps[np.where(ok, slope, np.inf).argmin()])


def crossing_step(steps: np.ndarray, a: np.ndarray, b: np.ndarray, *, window: int = 5) -> int | None:
    """The first step from which the smoothed curve `a` stays below the smoothed `b` (None if it ends above)."""
    below = smooth(np.asarray(a, float), window) < smooth(np.asarray(b, float), window)
    if not below[-1]:
        return None
    above = np.flatnonzero(~below)
    return int(steps[above[-1] + 1]) if above.size else int(steps[0])


def steepest_rise(steps: np.ndarray, values: np.ndarray, *, window: int = 5) -> int:
    """The step where a progress measure, smoothed like the loss, rises fastest."""
    return int(steps[np.gradient(smooth(np.asarray(values, float), window), np.asarray(steps, float)).argmax()])


def _band(fig: go.Figure, steps, values: np.ndarray, name: str, color: str, row: int, legend: bool = True) -> None:
    mean, lo, hi = values.mean(0), values.min(0), values.max(0)
    fig.add_scatter(x=np.r_[steps, steps[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", line_width=0, fillcolor=color,
                    opacity=0.2, hoverinfo="skip", showlegend=False, row=row, col=1)
    fig.add_scatter(x=steps, y=mean, name=name, line_color=color, showlegend=legend, row=row, col=1)


def progress_figure(
    runs: Sequence[SeedRun],
    measures: Sequence[tuple[str, str]],
    *,
    references: dict[str, float],
    transitions: Sequence[int | None],
    loss: str = "loss",
    title: str = "Loss and progress measures during training",
) -> go.Figure:
    """Eval loss (top, with `references` as dashed lines) and progress `measures` (bottom, `(name, label)`),
    mean and min-max band over seeds, on a shared step axis; a vertical line at each seed's transition."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.55, 0.45])
    steps, values = curves(runs, "eval", loss)
    _band(fig, steps, values, f"model (mean, min–max over {len(runs)} seeds)", COLORS[0], 1)
    for i, (name, value) in enumerate(references.items()):
        fig.add_scatter(x=[steps[0], steps[-1]], y=[value, value], mode="lines", name=name, row=1, col=1,
                        line=dict(color=COLORS[(i + 1) % len(COLORS)], dash="dash"))
    for i, (name, label) in enumerate(measures):
        s, v = curves(runs, "eval", name)
        _band(fig, s, v, label, COLORS[(i + len(references) + 1) % len(COLORS)], 2)
    for j, t in enumerate(transitions):
        if t is not None:
            fig.add_vline(x=t, line=dict(color="#444", dash="dot", width=1),
                          annotation_text="transition" if j == 0 else None, annotation_position="top")
    fig.update_layout(title=title, template="plotly_white", legend=dict(orientation="h", y=-0.18), height=620)
    fig.update_yaxes(title_text="eval loss (nats)", row=1, col=1)
    fig.update_yaxes(title_text="progress measure", row=2, col=1)
    fig.update_xaxes(title_text="training step", row=2, col=1)
    return fig
