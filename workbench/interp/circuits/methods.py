"""Four discovery methods on one `CircuitTask`, each returning a `Discovery`: scored edges and wall time.

- `acdc` (Conmy et al. 2023): edges in reverse topological order (receivers from the logits back,
  each receiver's senders from the latest back); an edge is removed when removing it moves the
  metric by less than `threshold` (`|m(C \\ e) - m(C)| < threshold`). The loop over edges is a
  `lax.scan` over the one masked forward, `vmap`ped over a sweep of thresholds.
- `eap` (Syed et al. 2023): the gradient of the metric with respect to the edge mask at the full
  model, one backward pass; `ig_steps > 0` averages it over masks `alpha * 1` (integrated gradients).
  The score is `|grad|`, the first-order estimate of `|m(M \\ e) - m(M)|`.
- `path_patching`: each edge alone ablated from the full model (its sender's path into that one
  receiver input ablated, every other path at its clean value), all edges vmapped; score
  `|m(M \\ e) - m(M)|`.
- `cdt` (Hsu et al. 2025): `workbench.interp.cdt.discover`'s iterative discovery; the edges it finds
  carry their |score|, all others 0.
"""

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from workbench.models import Circuit

from .. import cdt as _cdt
from ..metrics import L1, AbstractMetric
from .ablation import CircuitTask, evaluate, task_metric

METHODS = ("acdc", "eap", "path_patching", "cdt")
THRESHOLDS = tuple(float(t) for t in np.concatenate([[0.0], np.logspace(-7, 1, 33)]))


@dataclasses.dataclass(frozen=True)
class Discovery:
    """A method's result: the complete graph with every edge scored (`scored`), its wall time in
    seconds, and for ACDC the circuit found at each threshold of its sweep (`sweep`)."""

    method: str
    scored: Circuit
    seconds: float
    sweep: tuple[tuple[float, Circuit], ...] = ()

    def circuit_at(self, threshold: float) -> Circuit:
        """ACDC: the circuit its run at `threshold` kept (a threshold of the sweep); others: the edges
        scored at least `threshold`."""
        if not self.sweep:
            return self.scored.above(threshold)
        for t, c in self.sweep:
            if t == threshold:
                return c
        raise ValueError(f"ACDC ran at thresholds {[t for t, _ in self.sweep]}, not {threshold}")

    def top(self, k: int) -> Circuit:
        """The `k` highest-scored edges."""
        return self.scored.top(k)


def _timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def reverse_topological(task: CircuitTask) -> np.ndarray:
    """Edge indices in ACDC's order: receivers from the logits back, each one's senders latest first."""
    edges = task.layout.edges
    return np.array(sorted(range(len(edges)), key=lambda i: edges[i].sort_key(), reverse=True), np.int32)


@eqx.filter_jit
def _acdc(task, order, thresholds):
    def run(threshold):
        def step(carry, i):
            mask, current = carry
            trial = mask.at[i].set(0.0)
            value = task_metric(task, trial)
            remove = jnp.abs(value - current) < threshold
            return (jnp.where(remove, trial, mask), jnp.where(remove, value, current)), None

        full = jnp.ones(task.layout.n_edges)
        (mask, _), _ = jax.lax.scan(step, (full, task_metric(task, full)), order)
        return mask

    return jax.vmap(run)(thresholds)


def acdc(task: CircuitTask, thresholds=THRESHOLDS) -> Discovery:
    """ACDC at each of `thresholds` (one vmapped scan). `sweep` holds each run's circuit (the ROC's
    points); an edge's score is the largest threshold at which it was kept (-1: never)."""
    ts = sorted(float(t) for t in thresholds)
    if not ts or min(ts) < 0:
        raise ValueError(f"acdc needs one or more thresholds >= 0, got {thresholds!r}")
    masks, seconds = _timed(lambda: _acdc(task, jnp.asarray(reverse_topological(task)), jnp.asarray(ts, jnp.float32)))
    masks = np.asarray(masks) > 0.5
    lay = task.layout
    kept_at = np.where(masks, np.asarray(ts)[:, None], -1.0).max(0)
    sweep = tuple((t, lay.circuit(m)) for t, m in zip(ts, masks))
    return Discovery("acdc", lay.complete.with_scores(dict(zip(lay.edges, kept_at.tolist()))), seconds, sweep)


@eqx.filter_jit
def _eap(task, alphas):
    grad = jax.grad(lambda m: task_metric(task, m))
    n = task.layout.n_edges
    return jax.vmap(lambda a: grad(jnp.full(n, a)))(alphas).mean(0)


def eap(task: CircuitTask, *, ig_steps: int = 0) -> Discovery:
    """Edge attribution patching: `|d m / d mask|` at the full model (`ig_steps=0`, one backward pass) or
    averaged over masks `alpha = (i + 1/2) / ig_steps` (integrated gradients from empty to full).

    A metric minimal at the full model (KL or L2 to the clean output) has zero gradient there: use
    `ig_steps > 0` with those."""
    if not isinstance(ig_steps, int) or ig_steps < 0:
        raise ValueError(f"ig_steps must be an int >= 0 (0: the gradient at the full model), got {ig_steps!r}")
    alphas = (jnp.arange(ig_steps) + 0.5) / ig_steps if ig_steps else jnp.ones(1)
    grad, seconds = _timed(lambda: _eap(task, alphas))
    lay = task.layout
    name = "eap" if not ig_steps else "eap_ig"
    return Discovery(name, lay.complete.with_scores(dict(zip(lay.edges, np.abs(np.asarray(grad)).tolist()))), seconds)


def path_patching(task: CircuitTask, *, chunk: int | None = None) -> Discovery:
    """Each edge ablated alone from the full model (one vmapped program); score `|m(M \\ e) - m(M)|`."""
    lay = task.layout
    n = lay.n_edges
    # the full model and the empty circuit at the end: the shape `faithfulness` of every size compiles for
    masks = jnp.concatenate([1.0 - jnp.eye(n), jnp.ones((1, n)), jnp.zeros((1, n))])
    values, seconds = _timed(lambda: evaluate(task, masks, chunk=chunk))
    effect = np.abs(np.asarray(values[:-2]) - float(values[-2]))
    return Discovery("path_patching", lay.complete.with_scores(dict(zip(lay.edges, effect.tolist()))), seconds)


def cdt(task: CircuitTask, *, metric: AbstractMetric | None = None, per_iteration: int = 2, iterations: int = 3,
        reference: dict | None = None) -> Discovery:
    """CD-T's iterative discovery (`interp.cdt.discover`) on the task's prompts: found edges score their
    |CD-T score|, the rest 0. `metric` acts on each node's beta-output (default `L1()`: its size, as
    for compiled programs); `reference` as in `cdt.contributions` (None: beta is the whole output)."""
    metric = L1() if metric is None else metric
    found, seconds = _timed_circuit(lambda: _cdt.discover(task.model, task.xs, metric, per_iteration=per_iteration,
                                                          iterations=iterations, reference=reference))
    lay = task.layout
    scores = {e: abs(found.scores.get(e, 0.0)) for e in lay.edges}
    return Discovery("cdt", lay.complete.with_scores(scores), seconds)


def _timed_circuit(fn) -> tuple[Circuit, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_all(task: CircuitTask, *, ig_steps: int = 5, thresholds=THRESHOLDS) -> dict[str, Discovery]:
    """Every method on `task` (EAP both at the full model and integrated)."""
    return {"acdc": acdc(task, thresholds), "eap": eap(task), "eap_ig": eap(task, ig_steps=ig_steps),
            "path_patching": path_patching(task), "cdt": cdt(task)}
