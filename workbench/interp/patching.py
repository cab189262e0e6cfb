"""Activation, path and attribution patching, and zero/mean/resample ablation, batched over sites.

Each instrument takes a model, a batch of prompts (`clean`, and `corrupted` of the same shape), a
metric (`workbench.interp.metrics`, fields with one entry per prompt) and a `SiteGrid` of sites. The
sites are one-hot masks passed as arrays and the sweep is one jitted program that vmaps over sites
(and over prompts inside), so the whole layer x head x position matrix costs one call:

```python
grid = site_grid(model.config, "z", seq)                         # axes (layer, head, pos)
result = activation_patching(model, clean, corrupted, LogitDiff(correct, wrong), grid)
result.normalized.sel(pos=-1)                                    # Named [layer, head]
```

Patching replaces a hook value by `jnp.where(mask, source, value)`: with the source equal to the
value it is the identity bit for bit. Results are the mean metric over prompts (`PatchResult`).
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from workbench.models import Hooks, Transformer, run_with_cache, run_with_hooks

from ._sites import EMBED, SiteGrid, hook_name
from .metrics import AbstractMetric
from .results import Named, PatchResult

Ablation = Literal["zero", "mean", "resample"]


def run_patched(
    model: Transformer, x: Array, sources: dict[str, Array], masks: dict[str, Bool[Array, "..."]]
) -> Array:
    """`model(x)` with each hook `name` in `masks` replaced by `sources[name]` where `masks[name]` is true.

    One example; `sources[name]` has the hook's shape, `masks[name]` broadcasts against it.
    """
    return run_with_hooks(model, x, {name: lambda v, n: jnp.where(masks[n], sources[n], v) for name in masks})


def _cache(model: Transformer, xs: Array, names: tuple[str, ...]) -> tuple[Array, dict[str, Array]]:
    return jax.vmap(lambda x: run_with_cache(model, x, names))(xs)


def _mean_metric(metric: AbstractMetric, outs: Array, clean_outs: Array) -> Array:
    return jax.vmap(lambda m, o, c: m(o, c))(metric, outs, clean_outs).mean()


def _over_sites(fn, masks: dict[str, Array], chunk: int | None) -> Array:
    """`fn(site_masks)` for every site: one vmap, or `chunk` sites at a time to bound memory."""
    return jax.vmap(fn)(masks) if chunk is None else jax.lax.map(fn, masks, batch_size=chunk)


def _check_pair(clean: Array, corrupted: Array) -> None:
    if clean.shape != corrupted.shape:
        raise ValueError(f"clean {clean.shape} and corrupted {corrupted.shape} prompts must have the same shape")


def _with_baselines(masks: dict[str, Array], seq: int) -> dict[str, Array]:
    """`masks` plus two sites at the end: nothing patched (clean), and the embedding patched (corrupted).

    The baselines then come out of the same vmapped program as the sites, so a site that changes
    nothing gives exactly the clean metric (a separately compiled run may round differently).
    """
    extra = {n: jnp.concatenate([m, jnp.zeros((2, *m.shape[1:]), bool)]) for n, m in masks.items()}
    embed = jnp.zeros((len(next(iter(masks.values()))) + 2, seq, 1), bool).at[-1].set(True)
    return {**extra, EMBED: embed}


@eqx.filter_jit
def _sweep(model, xs, sources, masks, metric, chunk):
    """Mean metric over prompts for each site, with the last two sites the clean and corrupted baselines."""
    masks = _with_baselines(masks, xs.shape[1])

    def one_site(site_masks):
        def one(x, src):
            return run_patched(model, x, src, site_masks)

        return jax.vmap(one)(xs, sources)

    outs = _over_sites(one_site, masks, chunk)  # [site, batch, seq, vocab_out]
    clean_out = outs[-2]
    per_site = jax.vmap(lambda o: jax.vmap(lambda m, a, c: m(a, c))(metric, o, clean_out).mean())
    values = per_site(outs)
    return values[:-2], values[-2], values[-1]


@eqx.filter_jit
def _activation(model, clean, corrupted, metric, grid: SiteGrid, chunk):
    _, sources = _cache(model, corrupted, (*grid.names, EMBED))
    return _sweep(model, clean, sources, grid.masks, metric, chunk)


def _result(values: Array, grid: SiteGrid, clean: Array, corrupted: Array | None) -> PatchResult:
    return PatchResult(Named(values.reshape(grid.shape), grid.axes, grid.labels), clean, corrupted)


def activation_patching(
    model: Transformer,
    clean: Array,
    corrupted: Array,
    metric: AbstractMetric,
    grid: SiteGrid,
    *,
    chunk: int | None = None,
) -> PatchResult:
    """Patch each site of `grid` from the corrupted run into the clean run, one site at a time.

    **Arguments:**

    - `clean`, `corrupted`: prompts `[batch, seq]` (or `[batch, seq, d_input]`), paired row by row.
    - `metric`: per-example metric whose fields are `[batch, ...]`.
    - `grid`: the sites, e.g. `site_grid(config, "z", seq)`.
    - `chunk`: sites per vmapped block (None: all at once); lowers memory, same result.

    **Returns:** a `PatchResult` with `patched` on the grid's axes.
    """
    _check_pair(clean, corrupted)
    patched, clean_m, corr_m = _activation(model, clean, corrupted, metric, grid, chunk)
    return _result(patched, grid, clean_m, corr_m)


def ablation_sources(
    cache: dict[str, Array], kind: Ablation, key: PRNGKeyArray | None = None
) -> dict[str, Array]:
    """Replacement values `[batch, ...]` for each cached hook: zeros, the batch mean, or another prompt's.

    `resample` draws a random derangement with `key`: every prompt takes the activations of a
    different prompt of the batch.
    """
    if kind == "zero":
        return {n: jnp.zeros_like(v) for n, v in cache.items()}
    if kind == "mean":
        return {n: jnp.broadcast_to(v.mean(0), v.shape) for n, v in cache.items()}
    if kind == "resample":
        if key is None:
            raise ValueError("resample ablation needs a key")
        return {n: v[_derangement(key, v.shape[0])] for n, v in cache.items()}
    raise ValueError(f"unknown ablation {kind!r}; choose zero, mean or resample")


def _derangement(key: PRNGKeyArray, n: int) -> Int[Array, " n"]:
    """A random permutation with no fixed point (for n >= 2): a random cycle through all prompts."""
    order = jax.random.permutation(key, n)
    return jnp.zeros(n, int).at[order].set(jnp.roll(order, -1))


@eqx.filter_jit
def _ablation(model, xs, metric, grid: SiteGrid, kind, key, chunk):
    _, cache = _cache(model, xs, (*grid.names, EMBED))
    embed = cache.pop(EMBED)  # the "corrupted" baseline site is then the clean run; unused
    sources = {**ablation_sources(cache, kind, key), EMBED: embed}
    patched, clean, _ = _sweep(model, xs, sources, grid.masks, metric, chunk)
    return patched, clean


def ablation(
    model: Transformer,
    xs: Array,
    metric: AbstractMetric,
    grid: SiteGrid,
    kind: Ablation = "zero",
    *,
    key: PRNGKeyArray | None = None,
    chunk: int | None = None,
) -> PatchResult:
    """Ablate each site of `grid` (zero, batch mean, or resampled from another prompt) on `xs`.

    The clean run is `xs` itself; `result.effect` is the change in the metric. `resample` needs `key`.
    """
    if kind not in ("zero", "mean", "resample"):
        raise ValueError(f"unknown ablation {kind!r}; choose zero, mean or resample")
    if kind == "resample" and (key is None or xs.shape[0] < 2):
        raise ValueError("resample ablation needs a key and at least 2 prompts")
    patched, clean_m = _ablation(model, xs, metric, grid, kind, key, chunk)
    return _result(patched, grid, clean_m, None)


def _path_names(model: Transformer, senders: SiteGrid, receivers: dict[str, Array]):
    config = model.config
    z_names = tuple(hook_name("z", l) for l in range(config.n_layers))
    frozen = z_names if config.attn_only else z_names + tuple(hook_name("mlp_out", l) for l in range(config.n_layers))
    if not set(senders.names) <= set(z_names):
        raise ValueError(f"path patching senders must be heads (component 'z'), got hooks {senders.names}")
    if set(receivers) & set(frozen):
        raise ValueError("path patching receivers must be head inputs (q, k, v, pattern, ...) or the residual "
                         f"stream, not the frozen outputs {sorted(set(receivers) & set(frozen))}")
    return z_names, frozen


@eqx.filter_jit
def _path(model, clean, corrupted, metric, senders: SiteGrid, receivers, chunk):
    z_names, frozen = _path_names(model, senders, receivers)
    clean_out, clean_c = _cache(model, clean, frozen)
    corr_out, corr_c = _cache(model, corrupted, z_names)

    def one_site(site_masks):
        def one(x, clean_v, corr_v, clean_o, m):
            fixed = dict(clean_v)
            for name in senders.names:
                fixed[name] = jnp.where(site_masks[name], corr_v[name], clean_v[name])
            hooks = Hooks({name: lambda v, n: fixed[n] for name in frozen}, record=frozenset(receivers))
            model.forward(x, hooks)  # every other path frozen at the clean run; record what receivers read
            return m(run_patched(model, x, hooks.cache, receivers), clean_o)

        return jax.vmap(one)(clean, clean_c, corr_c, clean_out, metric).mean()

    patched = _over_sites(one_site, senders.masks, chunk)
    return patched, _mean_metric(metric, clean_out, clean_out), _mean_metric(metric, corr_out, clean_out)


def path_patching(
    model: Transformer,
    clean: Array,
    corrupted: Array,
    metric: AbstractMetric,
    senders: SiteGrid,
    receivers: dict[str, Bool[Array, "..."]],
    *,
    chunk: int | None = None,
) -> PatchResult:
    """Path patching: the effect of each sender (a head, or head at a position) through `receivers` only.

    For each sender site: run the clean prompt with every head output (`z`) and MLP output frozen
    at its clean value except the sender's, taken from the corrupted run; record the receivers'
    inputs; then run the clean prompt with only those receiver inputs patched in and apply `metric`.

    **Arguments:**

    - `senders`: a grid on component `"z"` (e.g. `site_grid(config, "z", seq, by_pos=False)`).
    - `receivers`: one set of sites as masks per hook (`site_set(config, seq, [Site(1, "q", head=0)])`);
      head inputs `q`/`k`/`v`, or the final residual stream for the direct path to the logits.

    **Returns:** a `PatchResult` over the sender grid.
    """
    _check_pair(clean, corrupted)
    patched, clean_m, corr_m = _path(model, clean, corrupted, metric, senders, receivers, chunk)
    return _result(patched, senders, clean_m, corr_m)


def _finite_diff(a: Array, b: Array) -> Array:
    """`a - b` where both are finite (masked attention scores are -inf in both runs), else 0."""
    return jnp.where(jnp.isfinite(a) & jnp.isfinite(b), a - b, 0.0)


def _clean_point_grads(model, x, clean_o, m, clean_v):
    """Gradient of the metric at the clean run with respect to every hook in `clean_v`, in one backward pass."""

    def patched_metric(deltas):
        return m(run_with_hooks(model, x, {n: lambda v, n: v + deltas[n] for n in deltas}), clean_o)

    return jax.grad(patched_metric)(jax.tree.map(jnp.zeros_like, clean_v))


def _path_grads(model, x, clean_o, m, delta, alphas):
    """Per hook: the mean gradient over `alphas` with that hook moved `alpha * delta` towards the corrupted run."""

    def at(name, alpha):
        def moved_metric(e):
            return m(run_with_hooks(model, x, {name: lambda v, n: v + alpha * delta[n] + e}), clean_o)

        return jax.grad(moved_metric)(jnp.zeros_like(delta[name]))

    return {n: jax.vmap(lambda a, n=n: at(n, a))(alphas).mean(0) for n in delta}


@eqx.filter_jit
def _attribution(model, clean, corrupted, metric, grid: SiteGrid, alphas):
    clean_out, clean_c = _cache(model, clean, grid.names)
    corr_out, corr_c = _cache(model, corrupted, grid.names)
    delta = {n: _finite_diff(corr_c[n], clean_c[n]) for n in grid.names}
    if alphas is None:  # one backward pass per prompt, all sites at once
        g = jax.vmap(lambda *a: _clean_point_grads(model, *a))(clean, clean_out, metric, clean_c)
    else:
        g = jax.vmap(lambda *a: _path_grads(model, *a, alphas))(clean, clean_out, metric, delta)
    prod = {n: (delta[n] * g[n]).mean(0) for n in grid.names}
    attr = jax.vmap(lambda masks: sum(jnp.sum(jnp.where(masks[n], prod[n], 0.0)) for n in grid.names))(grid.masks)
    clean_m = _mean_metric(metric, clean_out, clean_out)
    return clean_m + attr, clean_m, _mean_metric(metric, corr_out, clean_out)


def attribution_patching(
    model: Transformer,
    clean: Array,
    corrupted: Array,
    metric: AbstractMetric,
    grid: SiteGrid,
    *,
    ig_steps: int = 0,
) -> PatchResult:
    """Attribution patching: the first-order estimate of `activation_patching`.

    The metric with a site patched is estimated as `clean + (corrupted - clean) . grad`. With
    `ig_steps = 0` the gradient is taken at the clean run, in one backward pass for all sites
    (Nanda's attribution patching). With `ig_steps = n > 0` it is integrated: for each hook of the
    grid, the mean gradient at the midpoints `alpha = (i + 1/2) / n` of the straight line from the
    hook's clean value to its corrupted value (all its sites moved at once, the rest of the model
    running on), so the sites of one hook add up to the effect of patching the whole hook (up to
    the quadrature error). That costs `n` backward passes per hook and follows saturated
    attention, where the clean-run gradient sees only the tangent.

    A metric that is minimal at the clean run (KL to the clean output; the loss of a model near
    the Bayes predictor, on average) has zero gradient there: use logit difference.
    """
    _check_pair(clean, corrupted)
    if not isinstance(ig_steps, int) or ig_steps < 0:
        raise ValueError(f"ig_steps must be an int >= 0 (0: gradient at the clean run), got {ig_steps!r}")
    alphas = (jnp.arange(ig_steps) + 0.5) / ig_steps if ig_steps else None
    patched, clean_m, corr_m = _attribution(model, clean, corrupted, metric, grid, alphas)
    return _result(patched, grid, clean_m, corr_m)
