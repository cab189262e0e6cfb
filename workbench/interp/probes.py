"""Probes: ridge probes in closed form with the penalty chosen by k-fold cross-validation, logistic and
small MLP probes trained with optax, control targets (selectivity) and a random-init baseline.

A ridge probe needs only the sufficient statistics of its data (counts, means, centred second
moments), one group per cross-validation fold plus one held-out group. Statistics of two batches
merge exactly (Chan's parallel update), so a sweep over sites streams batches of prompts through the
model and never holds the activations of the whole run:

```python
result = probe_resid(model, xs, targets, key=run.key("probe"), positions=(9, 19, 39))
result.r2.sel(layer=3)                 # Named [pos]: held-out R^2 of the ridge probe
result.selectivity                     # R^2 on the targets minus R^2 on the shuffled control
```

Fitting every (layer, position) site is one vmapped call over the stacked statistics `[site, ...]`.
"""

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from workbench.models import Transformer, run_with_cache, sites

from ._probe_training import LogisticProbe as LogisticProbe
from ._probe_training import MLPProbe as MLPProbe
from ._probe_training import accuracy as accuracy
from ._probe_training import fit_logistic as fit_logistic
from ._probe_training import fit_mlp as fit_mlp
from .results import Named

DEFAULT_LAMS = tuple(float(x) for x in np.logspace(-6, 2, 17))


class RidgeStats(eqx.Module):
    """Sufficient statistics of `(x, y)` pairs in `group` groups (folds, and the held-out split last).

    `n [group]`, means `mx [group, d]`, `my [group, k]`, centred sums `cxx [group, d, d]`,
    `cxy [group, d, k]`, `cyy [group, k]` (squared deviations of each target).
    """

    n: Float[Array, " group"]
    mx: Float[Array, "group d"]
    my: Float[Array, "group k"]
    cxx: Float[Array, "group d d"]
    cxy: Float[Array, "group d k"]
    cyy: Float[Array, "group k"]


@eqx.filter_jit
def ridge_stats(
    x: Float[Array, "n d"], y: Float[Array, "n k"], group: Int[Array, " n"], n_groups: int
) -> RidgeStats:
    """Statistics of the rows of `x`, `y` split by `group` (values `0..n_groups-1`)."""
    onehot = jax.nn.one_hot(group, n_groups, dtype=x.dtype)  # [n, group]; group -1 counts nowhere
    n = onehot.sum(0)
    safe = jnp.maximum(n, 1.0)
    # Moments about the batch mean first (float32 loses the spread of an off-centre stream otherwise).
    x0, y0 = x.mean(0), y.mean(0)
    xc, yc = x - x0, y - y0
    mx, my = (onehot.T @ xc) / safe[:, None], (onehot.T @ yc) / safe[:, None]
    cxx = jnp.einsum("ng,ni,nj->gij", onehot, xc, xc) - n[:, None, None] * mx[:, :, None] * mx[:, None, :]
    cxy = jnp.einsum("ng,ni,nj->gij", onehot, xc, yc) - n[:, None, None] * mx[:, :, None] * my[:, None, :]
    cyy = onehot.T @ yc**2 - n[:, None] * my**2
    return RidgeStats(n, mx + x0, my + y0, cxx, cxy, cyy)


def block_stats(
    x: Float[Array, "group b d"], y: Float[Array, "group b k"], valid: Float[Array, "group b"]
) -> RidgeStats:
    """Statistics of rows already laid out by group (`valid` weighs padding out): one pass over the
    rows, where `ridge_stats` with a group index costs one pass per group."""
    n = valid.sum(1)
    safe = jnp.maximum(n, 1.0)
    x0 = jnp.einsum("gb,gbi->i", valid, x) / jnp.maximum(n.sum(), 1.0)
    y0 = jnp.einsum("gb,gbi->i", valid, y) / jnp.maximum(n.sum(), 1.0)
    xc, yc = (x - x0) * valid[..., None], (y - y0) * valid[..., None]
    mx, my = xc.sum(1) / safe[:, None], yc.sum(1) / safe[:, None]
    cxx = jnp.einsum("gbi,gbj->gij", xc, xc) - n[:, None, None] * mx[:, :, None] * mx[:, None, :]
    cxy = jnp.einsum("gbi,gbj->gij", xc, yc) - n[:, None, None] * mx[:, :, None] * my[:, None, :]
    cyy = jnp.sum(yc**2, 1) - n[:, None] * my**2
    return RidgeStats(n, mx + x0, my + y0, cxx, cxy, cyy)


def merge(a: RidgeStats, b: RidgeStats) -> RidgeStats:
    """Statistics of the union of the data behind `a` and `b`, group by group (Chan et al.)."""
    n = a.n + b.n
    frac = jnp.where(n > 0, a.n * b.n / jnp.maximum(n, 1.0), 0.0)
    wb = jnp.where(n > 0, b.n / jnp.maximum(n, 1.0), 0.0)
    dx, dy = b.mx - a.mx, b.my - a.my
    return RidgeStats(
        n, a.mx + wb[:, None] * dx, a.my + wb[:, None] * dy,
        a.cxx + b.cxx + frac[:, None, None] * dx[:, :, None] * dx[:, None, :],
        a.cxy + b.cxy + frac[:, None, None] * dx[:, :, None] * dy[:, None, :],
        a.cyy + b.cyy + frac[:, None] * dy**2,
    )


def _pool(s: RidgeStats) -> RidgeStats:
    """All groups of `s` merged into one (group axis of length 1)."""
    n = s.n.sum()
    w = (s.n / n)[:, None]
    mx, my = (w * s.mx).sum(0), (w * s.my).sum(0)
    dx, dy = s.mx - mx, s.my - my
    return RidgeStats(
        n[None], mx[None], my[None], (s.cxx + s.n[:, None, None] * dx[:, :, None] * dx[:, None, :]).sum(0)[None],
        (s.cxy + s.n[:, None, None] * dx[:, :, None] * dy[:, None, :]).sum(0)[None],
        (s.cyy + s.n[:, None] * dy**2).sum(0)[None],
    )


def _rest(total: RidgeStats, part: RidgeStats) -> RidgeStats:
    """Statistics of `total` minus `part` (one group each): the training data of a held-out fold."""
    n = total.n - part.n
    mx = (total.n[:, None] * total.mx - part.n[:, None] * part.mx) / n[:, None]
    my = (total.n[:, None] * total.my - part.n[:, None] * part.my) / n[:, None]
    frac = n * part.n / total.n
    dx, dy = part.mx - mx, part.my - my
    return RidgeStats(
        n, mx, my, total.cxx - part.cxx - frac[:, None, None] * dx[:, :, None] * dx[:, None, :],
        total.cxy - part.cxy - frac[:, None, None] * dx[:, :, None] * dy[:, None, :],
        total.cyy - part.cyy - frac[:, None] * dy**2,
    )


class RidgeProbe(eqx.Module):
    """`y_hat = (x - mx) @ W + my`; `W = (C_xx / n + lam I)^{-1} C_xy / n` fitted on the training folds.

    `W [d, k]`, `mx [d]`, `my [k]`, `lam` the penalty chosen by cross-validation, `cv_mse [lam]` the
    validation mean squared error (per target) of every candidate penalty.
    """

    W: Float[Array, "d k"]
    mx: Float[Array, " d"]
    my: Float[Array, " k"]
    lam: Float[Array, ""]
    cv_mse: Float[Array, " lam"]

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... k"]:
        return (x - self.mx) @ self.W + self.my


def _weights(train: RidgeStats, lams: Float[Array, " lam"]) -> Float[Array, "lam d k"]:
    """Ridge weights of one group of statistics for every penalty (one eigendecomposition)."""
    n = train.n[0]
    evals, vecs = jnp.linalg.eigh(train.cxx[0] / n)
    proj = vecs.T @ (train.cxy[0] / n)  # [d, k]
    return jnp.einsum("ij,lj,jk->lik", vecs, 1.0 / (jnp.maximum(evals, 0.0)[None] + lams[:, None]), proj)


def _sse(W: Float[Array, "... d k"], mx, my, data: RidgeStats) -> Float[Array, "... k"]:
    """Sum of squared errors per target of `(x - mx) W + my` on the data of one group of statistics."""
    dx, dy = data.mx[0] - mx, data.my[0] - my
    sxx = data.cxx[0] + data.n[0] * jnp.outer(dx, dx)
    sxy = data.cxy[0] + data.n[0] * jnp.outer(dx, dy)
    syy = data.cyy[0] + data.n[0] * dy**2
    return syy - 2 * jnp.einsum("...dk,dk->...k", W, sxy) + jnp.einsum("...dk,de,...ek->...k", W, sxx, W)


@eqx.filter_jit
def fit_ridge(stats: RidgeStats, lams: Float[Array, " lam"], n_folds: int) -> RidgeProbe:
    """Ridge probe on the first `n_folds` groups of `stats`, with the penalty of least k-fold CV error.

    Groups beyond `n_folds` (the held-out split) are not used. One penalty for all targets.
    """
    folds = jax.tree.map(lambda v: v[:n_folds], stats)
    total = _pool(folds)
    parts = jax.tree.map(lambda v: v[:, None], folds)  # [fold, 1, ...]
    trains = jax.vmap(lambda part: _rest(total, part))(parts)
    # The fold fits and the full fit share one batched eigendecomposition: two LAPACK eigh calls of one program
    # can run at once, and jaxlib 0.10's CPU kernel then deadlocks on a 2-thread pool (ParallelBatchMap).
    fits = jax.tree.map(lambda t, a: jnp.concatenate([t, a[None]]), trains, total)  # [fold + 1, 1, ...]
    W = jax.vmap(lambda s: _weights(s, lams))(fits)  # [fold + 1, lam, d, k]
    sse = jax.vmap(lambda w, train, part: _sse(w, train.mx[0], train.my[0], part))(W[:-1], trains, parts).sum(0)
    cv_mse = sse.sum(-1) / (total.n[0] * sse.shape[-1])
    best = jnp.argmin(cv_mse)
    return RidgeProbe(W[-1, best], total.mx[0], total.my[0], lams[best], cv_mse)


@eqx.filter_jit
def r2_from_stats(probe: RidgeProbe, data: RidgeStats) -> Float[Array, " k"]:
    """Held-out R^2 per target on one group of statistics: 1 - SSE / SST (SST about the data's mean)."""
    return 1.0 - _sse(probe.W, probe.mx, probe.my, data) / data.cyy[0]


def r2_score(y_hat: Float[Array, "n k"], y: Float[Array, "n k"]) -> Float[Array, ""]:
    """R^2 averaged over targets (sklearn's `r2_score`, uniform average)."""
    return jnp.mean(1.0 - jnp.sum((y - y_hat) ** 2, 0) / jnp.sum((y - y.mean(0)) ** 2, 0))


@eqx.filter_jit
def split_groups(key: PRNGKeyArray, n: int, n_folds: int, test_fraction: float) -> Int[Array, " n"]:
    """Group of each of `n` examples: held out (`n_folds`) with probability `test_fraction`, else a fold."""
    ku, kf = jax.random.split(key)
    fold = jax.random.randint(kf, (n,), 0, n_folds)
    return jnp.where(jax.random.uniform(ku, (n,)) < test_fraction, n_folds, fold)


@eqx.filter_jit
def shuffled_control(key: PRNGKeyArray, targets: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
    """Control target (Hewitt and Liang): the same values, assigned to the examples by a random permutation.

    It keeps the targets' distribution and breaks their link to the input, so a probe that scores on it
    is fitting noise; selectivity = score on `targets` - score on the control."""
    return targets[jax.random.permutation(key, targets.shape[0])]


def random_init(model: Transformer, key: PRNGKeyArray) -> Transformer:
    """The random-init baseline: a fresh model of the same architecture (what probes find without training)."""
    return Transformer(model.config, key=key)


@dataclasses.dataclass(frozen=True)
class ProbeSweep:
    """Held-out scores of ridge probes on a grid of sites (axes `("layer", "pos")`).

    `r2` and `control_r2` (the shuffled control target) are `Named [layer, pos]` means over targets;
    `selectivity = r2 - control_r2`; `lam` the chosen penalties; `n_train`, `n_test` the counts.
    """

    r2: Named
    control_r2: Named
    lam: Named
    n_train: int
    n_test: int

    @property
    def selectivity(self) -> Named:
        return Named(self.r2.values - self.control_r2.values, self.r2.axes, self.r2.labels)


def _targets(s: RidgeStats, lo: int, hi: int) -> RidgeStats:
    """The statistics of targets `lo:hi` only."""
    return RidgeStats(s.n, s.mx, s.my[:, lo:hi], s.cxx, s.cxy[:, :, lo:hi], s.cyy[:, lo:hi])


@eqx.filter_jit
def _fit_and_score(stats: RidgeStats, lams, n_folds: int, k: int, n_parts: int):
    """One vmapped fit over sites and over the `n_parts` blocks of `k` targets (targets, then controls);
    held-out R^2 `[site, part]` and the chosen penalties `[site, part]`."""

    def one(s):
        parts = jax.tree.map(lambda *v: jnp.stack(v), *(_targets(s, i * k, (i + 1) * k) for i in range(n_parts)))

        def score(part):
            probe = fit_ridge(part, lams, n_folds)
            return r2_from_stats(probe, jax.tree.map(lambda v: v[n_folds : n_folds + 1], part)).mean(), probe.lam

        return jax.vmap(score)(parts)

    return jax.vmap(one)(stats)


def fit_sweep(
    stats: RidgeStats, lams: Sequence[float], n_folds: int, n_targets: int, n_parts: int = 2
) -> tuple[Float[Array, "site part"], Float[Array, "site part"]]:
    """Fit and score ridge probes at every site of `stats [site, group, ...]` in one vmapped call.

    The targets are `n_parts` blocks of `n_targets` (the targets, then their controls); returns the
    held-out R^2 and the chosen penalty of each, `[site, part]`."""
    return _fit_and_score(stats, jnp.asarray(lams, jnp.float32), n_folds, n_targets, n_parts)


@eqx.filter_jit
def _batch_stats(model, xs, targets, valid, names: tuple[str, ...], positions, n_groups: int):
    """Statistics `[layer * pos, group, ...]` of one batch of prompts at the resid sites (row r in
    group r % n_groups)."""
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, names))(xs)
    acts = jnp.stack([cache[n][:, positions] for n in names])  # [layer, batch, pos, d]
    block = xs.shape[0] // n_groups
    # Row r of the batch is in group r % n_groups: [site, block, group, .] -> [site, group, block, .]
    acts = jnp.moveaxis(acts, 2, 1).reshape(-1, block, n_groups, acts.shape[-1]).swapaxes(1, 2)
    tg = jnp.moveaxis(targets[:, positions], 1, 0)  # [pos, batch, k]
    tg = jnp.broadcast_to(tg[None], (len(names), *tg.shape)).reshape(-1, block, n_groups, tg.shape[-1]).swapaxes(1, 2)
    return jax.vmap(lambda a, t: block_stats(a, t, valid.reshape(block, n_groups).T))(acts, tg)


def sweep_groups(key: PRNGKeyArray, n: int, n_folds: int, batch_size: int) -> tuple[Int[Array, " n"], Int[Array, " n"], int]:
    """How `probe_resid` splits `n` prompts: the order they stream in (a random permutation), each
    prompt's group (the `i`-th prompt streamed is in group `i % (n_folds + 1)`; folds `0..n_folds-1`,
    held out `n_folds`), and the batch size used (rounded up to a multiple of `n_folds + 1`, so that
    every batch holds equal blocks of every group). The split does not depend on the batch size."""
    g = n_folds + 1
    order = jax.random.permutation(key, n)
    return order, jnp.zeros(n, int).at[order].set(jnp.arange(n) % g), -(-batch_size // g) * g


def probe_resid(
    model: Transformer,
    xs: Array,
    targets: Float[Array, "n seq k"],
    *,
    key: PRNGKeyArray,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    component: str = "resid_post",
    lams: Sequence[float] = DEFAULT_LAMS,
    n_folds: int = 5,
    batch_size: int = 512,
    control: bool = True,
) -> ProbeSweep:
    """Ridge probes for `targets` (one per prompt and position) at every (layer, position) of the stream.

    **Arguments:** `xs` prompts `[n, seq]` (or `[n, seq, d_input]`); `targets [n, seq, k]`;
    `component` a residual hook (`resid_pre`, `resid_mid`, `resid_post`); `key` splits prompts into
    `n_folds` folds and a held-out split of the same size (`sweep_groups`) and draws the control
    permutation. Prompts stream through the model `batch_size` at a time (rounded up to a multiple of
    `n_folds + 1`); only the statistics `[site, group, d_model, d_model]` are kept.
    `control=False` skips the shuffled control (its scores come back as NaN).
    """
    n, seq = xs.shape[0], xs.shape[1]
    if targets.shape[:2] != (n, seq) or targets.ndim != 3:
        raise ValueError(f"targets must be [n, seq, k] = [{n}, {seq}, k], got {targets.shape}")
    layers = tuple(range(model.config.n_layers)) if layers is None else tuple(layers)
    positions = tuple(range(seq)) if positions is None else tuple(positions)
    names = tuple(sites.Site(l, component).name for l in layers)
    k_split, k_control = jax.random.split(key)
    order, _, batch_size = sweep_groups(k_split, n, n_folds, batch_size)
    both = jnp.concatenate([targets, shuffled_control(k_control, targets)], -1) if control else targets
    pos = jnp.asarray(positions)
    pad = -n % batch_size  # padded prompts carry weight 0: one compile for every batch
    xs, both = (jnp.concatenate([a[order], jnp.zeros((pad, *a.shape[1:]), a.dtype)]) for a in (xs, both))
    valid = (jnp.arange(n + pad) < n).astype(both.dtype)
    stats = None
    for start in range(0, n + pad, batch_size):
        sl = slice(start, start + batch_size)
        batch = _batch_stats(model, xs[sl], both[sl], valid[sl], names, pos, n_folds + 1)
        stats = batch if stats is None else merge_sites(stats, batch)
    r2, lam = fit_sweep(stats, lams, n_folds, targets.shape[-1], 2 if control else 1)
    r2, control_r2, lam = r2[:, 0], r2[:, 1] if control else jnp.full_like(r2[:, 0], jnp.nan), lam[:, 0]
    shape, axes, labels = (len(layers), len(positions)), ("layer", "pos"), (layers, positions)
    n_test = int(stats.n[0, n_folds])
    return ProbeSweep(Named(r2.reshape(shape), axes, labels), Named(control_r2.reshape(shape), axes, labels),
                      Named(lam.reshape(shape), axes, labels), n - n_test, n_test)


@eqx.filter_jit
def merge_sites(a: RidgeStats, b: RidgeStats) -> RidgeStats:
    """`merge` over a leading site axis."""
    return jax.vmap(merge)(a, b)
