"""Ablation values for the senders, the circuit metric over a batch, faithfulness, completeness, minimality.

A `CircuitTask` bundles what every discovery method shares: the model, the prompts, the metric
(`workbench.interp.metrics`, fields with one entry per prompt; `MSE()` is the L2 distance to the
clean output) and the senders' ablation values:

- `zero`: every ablated edge carries zeros;
- `mean`: the sender's mean output (per position) over a reference set of prompts, by default
  the task's own prompts;
- `resample`: the sender's output on the corrupted prompt paired with each clean one.

```python
task = circuit_task(model, xs, MSE(), "zero")
values = evaluate(task, masks)                  # [n_masks] mean metric over prompts
faithfulness(task, circuit)                     # (m(C) - m(empty)) / (m(M) - m(empty))
```
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from workbench.models import Circuit, Transformer

from ..metrics import AbstractMetric
from .edges import edge_layout, masked_forward, sender_outputs

AblationKind = Literal["zero", "mean", "resample"]
ABLATIONS: tuple[str, ...] = ("zero", "mean", "resample")


class CircuitTask(eqx.Module):
    """A model, prompts `xs [batch, seq(, d_input)]`, a per-prompt metric, the clean outputs and the
    senders' ablation values `ablated [batch, sender, seq, d_model]`."""

    model: Transformer
    xs: Array
    metric: AbstractMetric
    clean_out: Array
    ablated: Array

    @property
    def layout(self):
        return edge_layout(self.model.config)


def ablated_values(
    model: Transformer, xs: Array, kind: AblationKind, *, corrupted: Array | None = None,
    reference: Array | None = None,
) -> Float[Array, "batch sender seq d_model"]:
    """Each prompt's ablation value for every sender: zeros, the mean over `reference` (default `xs`), or
    the output on `corrupted` (paired row by row with `xs`)."""
    if kind not in ABLATIONS:
        raise ValueError(f"unknown ablation {kind!r}; choose zero, mean or resample")
    if kind == "resample":
        if corrupted is None or corrupted.shape != xs.shape:
            raise ValueError(f"resample ablation needs corrupted prompts of the clean ones' shape {xs.shape}")
        return _outputs(model, corrupted)
    if kind == "mean":
        ref = xs if reference is None else reference
        if ref.shape[1:] != xs.shape[1:]:
            raise ValueError(f"the mean ablation's reference prompts {ref.shape} must match the prompts {xs.shape}")
        return jnp.broadcast_to(_outputs(model, ref).mean(0), (xs.shape[0], *_outputs_shape(model, xs)))
    return jnp.zeros((xs.shape[0], *_outputs_shape(model, xs)))


def _outputs_shape(model: Transformer, xs: Array) -> tuple[int, int, int]:
    return len(edge_layout(model.config).senders), xs.shape[1], model.config.d_model


@eqx.filter_jit
def _outputs(model, xs):
    return jax.vmap(lambda x: sender_outputs(model, x))(xs)


@eqx.filter_jit
def _clean(model, xs):
    return jax.vmap(model)(xs)


def circuit_task(
    model: Transformer, xs: Array, metric: AbstractMetric, ablation: AblationKind = "zero", *,
    corrupted: Array | None = None, reference: Array | None = None,
) -> CircuitTask:
    """The `CircuitTask` of `model` on `xs` under `metric` and `ablation` (see `ablated_values`)."""
    ablated = ablated_values(model, xs, ablation, corrupted=corrupted, reference=reference)
    return CircuitTask(model, xs, metric, _clean(model, xs), ablated)


def task_metric(task: CircuitTask, mask: Float[Array, " edge"]) -> Float[Array, ""]:
    """The mean metric over the task's prompts of the circuit `mask` (differentiable in the mask)."""

    def one(x, ablated, m, clean_out):
        return m(masked_forward(task.model, x, mask, ablated)[0], clean_out)

    return jax.vmap(one)(task.xs, task.ablated, task.metric, task.clean_out).mean()


@eqx.filter_jit
def _evaluate(task, masks, chunk):
    fn = lambda m: task_metric(task, m)
    return jax.vmap(fn)(masks) if chunk is None else jax.lax.map(fn, masks, batch_size=chunk)


def evaluate(task: CircuitTask, masks: Float[Array, "n edge"], *, chunk: int | None = None) -> Float[Array, " n"]:
    """The metric of each circuit mask (rows of `masks`), one vmapped program (`chunk` masks at a time)."""
    masks = jnp.asarray(masks, jnp.float32)
    if masks.ndim != 2 or masks.shape[1] != task.layout.n_edges:
        raise ValueError(f"masks must be [n, {task.layout.n_edges}] (one row per circuit), got {masks.shape}")
    return _evaluate(task, masks, chunk)


def _ends(task: CircuitTask, masks: Array) -> tuple[Array, float, float]:
    """`masks`' metrics and those of the full model and the empty circuit, from one program."""
    e = task.layout.n_edges
    values = evaluate(task, jnp.concatenate([masks, jnp.ones((1, e)), jnp.zeros((1, e))]))
    return values[:-2], float(values[-2]), float(values[-1])


def faithfulness(task: CircuitTask, *circuits: Circuit) -> np.ndarray:
    """`(m(C) - m(empty)) / (m(M) - m(empty))` of each circuit: 1 for the full model, 0 for the empty one.

    The full model and the empty circuit run through the same masked program as the circuits, so
    both ends hold exactly. `nan` when the empty circuit scores as the model does."""
    if not circuits or not all(isinstance(c, Circuit) for c in circuits):
        raise ValueError("faithfulness(task, *circuits) takes one or more Circuit values")
    masks = jnp.stack([task.layout.mask(c) for c in circuits])
    values, full, empty = _ends(task, masks)
    return _normalise(np.asarray(values), full, empty)


def _normalise(values: np.ndarray, full: float, empty: float) -> np.ndarray:
    span = full - empty
    return (values - empty) / span if span != 0 else np.full(values.shape, np.nan)


def completeness(task: CircuitTask, circuit: Circuit, key: PRNGKeyArray, *, samples: int = 16,
                 p: float = 0.5) -> float:
    """Wang et al.'s completeness gap: max over random edge sets K of the circuit (each edge in K with
    probability `p`) of `|m(C \\ K) - m(M \\ K)|`, in units of `|m(M) - m(empty)|` (0: complete)."""
    lay = task.layout
    c = lay.mask(circuit)
    drop = jax.random.bernoulli(key, p, (samples, lay.n_edges)) & (c > 0)
    in_c, in_full = c * (1 - drop), 1.0 - drop
    values, full, empty = _ends(task, jnp.concatenate([in_c, in_full]))
    gap = np.abs(np.asarray(values[:samples]) - np.asarray(values[samples:]))
    return float(gap.max() / abs(full - empty)) if full != empty else float("nan")


def minimality(task: CircuitTask, circuit: Circuit) -> dict:
    """Each circuit edge's `|m(C \\ e) - m(C)|` in units of `|m(M) - m(empty)|`, and their minimum (an
    edge with ~0 is not needed)."""
    lay = task.layout
    c = lay.mask(circuit)
    idx = np.array([lay.index(e) for e in circuit.edges], np.int32)
    without = jnp.broadcast_to(c, (len(idx), lay.n_edges)).at[np.arange(len(idx)), idx].set(0.0)
    values, full, empty = _ends(task, jnp.concatenate([without, c[None]]))
    values = np.asarray(values)
    per_edge = np.abs(values[:-1] - values[-1]) / abs(full - empty) if full != empty else values[:-1] * np.nan
    return {"per_edge": dict(zip(circuit.edges, per_edge.tolist())), "min": float(per_edge.min(initial=np.inf))}
