"""CD-T over many sources at once: each source's contribution to a target, as named arrays.

```python
grid = cdt.head_sources(model.config, seq)                       # (layer, head, pos)
result = cdt.contributions(model, xs, grid, LogitDiff(correct, wrong))
result.scores.sel(pos=-1)                                        # Named [layer, head]
cdt.heatmap(result.scores.sum("pos"))                            # plotly, layer x head
```

The clean cache is computed once per prompt; the sources are grouped by their first layer and each
group is one vmapped program over sources (and prompts inside) that starts from the clean residual
stream there, so the layers before a source are never decomposed.
"""

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from workbench.models import Transformer, run_with_cache

from .._sites import SiteGrid
from ..metrics import AbstractMetric
from ..results import Named, heatmap as _heatmap
from ._forward import OUTPUT, clean_names, walk, walk_at_position
from .sources import by_start_layer, single_positions


class Decomposition(eqx.Module):
    """One example's decomposition: `beta`, `gamma` of the output and of each recorded hook."""

    beta: dict[str, Array]
    gamma: dict[str, Array]


def clean_cache(model: Transformer, x: Array) -> dict[str, Array]:
    """What the fast walk reads: the clean activations of one example, with the output under `"logits"`."""
    out, cache = run_with_cache(model, x, clean_names(model))
    return {**cache, OUTPUT: out}


def decompose(
    model: Transformer, x: Array, masks: Mapping[str, Bool[Array, "..."]], *, reference: Mapping[str, Array] | None = None,
    fixed: bool = False, cleanup: bool = True, shapley: bool = False, record=(OUTPUT,), fast: bool = False,
) -> Decomposition:
    """The decomposition of one example `x` for one source set `masks` (hook name -> mask, e.g. from
    `workbench.interp.site_set`). `record`: hook names to return (and `"logits"`). `fast`: the cached walk
    from the first source layer (the reference propagation from the embedding otherwise)."""
    record = frozenset(record) | {OUTPUT}
    start = None
    if fast:
        grid = SiteGrid({n: m[None] for n, m in masks.items()}, ("source",), ((0,),))
        start = by_start_layer(model.config, grid)[0][0]
    pairs = _decompose(model, x, dict(masks), reference, start, fixed, cleanup, shapley, record)
    return Decomposition({n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()})


@eqx.filter_jit
def _decompose(model, x, masks, reference, start, fixed, cleanup, shapley, record):
    clean = None if start is None else clean_cache(model, x)
    _, pairs = walk(model, x, masks, reference, clean=clean, start=start or 0, fixed=fixed, cleanup=cleanup,
                    record=record, shapley=shapley)
    return pairs


class CDTResult(eqx.Module):
    """Mean over prompts of each source's score: `scores` on the grid's axes, plus the clean score."""

    scores: Named
    clean: Float[Array, ""]

    def table(self) -> list[dict]:
        """Tidy rows `{layer, head, pos, ..., score}`."""
        return self.scores.table("score")


def _target_value(out: tuple, records: dict, clean: dict, metric, targets, kind: str):
    if targets is None:
        return out[0] if metric is None else metric(out[0], clean[OUTPUT])
    total = 0.0
    for name, mask in targets.items():
        if name not in records:  # the fast walk skipped it: no source before it, beta is 0
            continue
        beta, gamma = records[name]
        if kind == "dot":  # the share of the target's activation along beta
            total = total + jnp.sum(jnp.where(mask, beta * (beta + gamma), 0.0)) / jnp.sum(jnp.where(mask, (beta + gamma) ** 2, 0.0))
        else:  # "l1": mean |beta| / (mean |beta| + mean |gamma|)
            b, g = jnp.sum(jnp.where(mask, jnp.abs(beta), 0.0)), jnp.sum(jnp.where(mask, jnp.abs(gamma), 0.0))
            total = total + b / (b + g)
    return total


@eqx.filter_jit
def _group(model, xs, caches, masks, reference, metric, targets, start, fixed, cleanup, shapley, kind, chunk,
           positions=None):
    """One group's scores `[n, ...]`. `positions [n]` (`single_positions`): each source's stretch up to the
    next attention is decomposed at its own position alone (`walk_at_position`)."""
    record = frozenset() if targets is None else frozenset(targets)

    def one_source(source):
        source_masks, p = source

        def one(x, clean, m):
            if p is None:
                out, records = walk(model, x, source_masks, reference, clean=clean, start=start, fixed=fixed,
                                    cleanup=cleanup, record=record, shapley=shapley)
                return _target_value(out, records, clean, m, targets, kind)
            row = lambda tree: {n: jax.lax.dynamic_slice_in_dim(v, p, 1, 0) for n, v in tree.items() if n in source_masks}
            out = walk_at_position(model, row(source_masks), None if reference is None else row(reference), clean, p,
                                   start, fixed=fixed, cleanup=cleanup, shapley=shapley)
            return _target_value(out, {}, clean, m, None, kind)

        return jax.vmap(one)(xs, caches, metric).mean(0)

    sources = (masks, positions)
    return jax.vmap(one_source)(sources) if chunk is None else jax.lax.map(one_source, sources, batch_size=chunk)


@eqx.filter_jit
def _caches(model, xs, metric):
    caches = jax.vmap(lambda x: clean_cache(model, x))(xs)
    clean = None if metric is None else jax.vmap(lambda m, o: m(o, o))(metric, caches[OUTPUT]).mean()
    return caches, clean


def contributions(
    model: Transformer,
    xs: Array,
    grid: SiteGrid,
    metric: AbstractMetric | None = None,
    *,
    targets: Mapping[str, Bool[Array, "..."]] | None = None,
    kind: str = "l1",
    reference: Mapping[str, Array] | None = None,
    fixed: bool = False,
    cleanup: bool = True,
    shapley: bool = False,
    chunk: int | None = None,
) -> CDTResult:
    """The contribution of each source of `grid` to the output (or to `targets`), mean over prompts `xs`.

    **Arguments:**

    - `grid`: the sources, e.g. `head_sources(config, seq)`; one decomposition per site.
    - `metric`: applied to each source's beta-output (`LogitDiff`: the authors' beta-logit(IO) -
      beta-logit(S)); None returns the beta-output itself (`[..grid, seq, vocab_out]`).
    - `targets`: hook sites as masks (`site_set(config, seq, [Site(1, "q", head=0)])`) instead of the
      output; the score is the sum over their hooks of `kind` (`"l1"`: |beta| / (|beta| + |gamma|),
      `"dot"`: beta . total / |total|^2).
    - `reference`: `mean_reference(model, ref_xs, grid)`: beta is the deviation from the mean.
    - `fixed`, `cleanup`, `shapley`: the attention, sign and activation rules (see `walk`).
    - `chunk`: sources per vmapped block (None: all of a layer at once).
    """
    if kind not in ("l1", "dot"):
        raise ValueError(f"unknown target score {kind!r}; choose l1 or dot")
    caches, clean = _caches(model, xs, metric)
    values = None
    for start, idx, masks in by_start_layer(model.config, grid):
        positions = single_positions(start, masks) if targets is None else None
        positions = None if positions is None else jnp.asarray(positions)
        part = _group(model, xs, caches, masks, reference, metric, targets, start, fixed, cleanup, shapley, kind, chunk,
                      positions)
        if values is None:
            values = jnp.zeros((grid.n_sites, *part.shape[1:]), part.dtype)
        values = values.at[jnp.asarray(idx)].set(part)
    extra_axes = values.shape[1:]
    axes = grid.axes + tuple(f"out{i}" for i in range(len(extra_axes)))
    labels = grid.labels + tuple(tuple(range(n)) for n in extra_axes)
    scores = Named(values.reshape(*grid.shape, *extra_axes), axes, labels)
    return CDTResult(scores, jnp.nan if clean is None else clean)


def heatmap(named: Named, *, rows: str = "layer", cols: str = "head", title: str = "") -> dict:
    """A plotly heatmap of a 2-axis score map (layer x head by default; `cols="pos"` for position x layer)."""
    return _heatmap(named, rows=rows, cols=cols, title=title)


def top_sources(named: Named, k: int) -> list[tuple]:
    """The labels of the `k` sources with the largest |score|, largest first."""
    values = np.abs(np.asarray(named.values)).ravel()
    order = np.argsort(-values, kind="stable")[:k]
    return [tuple(named.labels[a][i] for a, i in enumerate(np.unravel_index(j, named.values.shape))) for j in order]


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two score arrays (ties get their average rank)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for value in np.unique(x):  # average rank over ties
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks
