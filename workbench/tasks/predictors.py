"""Reference predictors for in-context regression, evaluated per prompt prefix.

A *masked predictor* acts on one prompt: `(xs [n, d], ys [n] or [n, k], mask [n], x_query [d]) -> y_hat`
(`[]`, or `[k]` for vector targets) and uses only the rows where `mask` is True. Masks are how a
predictor is evaluated on every prefix of a prompt with one `jax.vmap` (`prefix_predictions`): the
prediction for point `j` uses points `0..j-1`. `unmasked(p)` turns one into the
`(xs, ys, x_query) -> y_hat` form (all points used); `regression.predict_batch` applies one to a batch.

Predictors: `ols` (minimum-norm least squares), `ridge(lam)` (with `bayes_ridge_lambda` for a
Gaussian prior), `gd(eta, steps)`, `newton(steps)` (Newton-Schulz iterations on X^T X, Fu et al.),
`dmmse(pool, noise)` (posterior mean over a finite task pool, Raventos et al.), `lasso(alpha)`
(FISTA), `knn(k)` and `averaging` (Garg et al.'s baselines).
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from workbench.core import validate as v

MaskedPredictor = Callable[[Array, Array, Array, Array], Array]


def _masked(xs: Float[Array, "n d"], ys: Array, mask: Bool[Array, " n"]) -> tuple[Array, Array, Array]:
    """Zero the unused rows and count the used ones (at least 1, to keep divisions finite)."""
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    m = mask.astype(xs.dtype)
    ym = ys * (m if ys.ndim == 1 else m[:, None])
    return xs * m[:, None], ym, jnp.maximum(m.sum(), 1.0)


def ols(xs, ys, mask, x_query):
    """Least squares, minimum-norm when fewer than `d` points: w = pinv(X) y (zero rows change nothing)."""
    xm, ym, _ = _masked(xs, ys, mask)
    return x_query @ (jnp.linalg.pinv(xm) @ ym)


def bayes_ridge_lambda(noise: float, weight_scale: float = 1.0) -> float:
    """The ridge penalty whose solution is the posterior mean for w ~ N(0, weight_scale^2 I): noise^2 / weight_scale^2."""
    v.check_float("bayes_ridge_lambda", "weight_scale", weight_scale, strict=True)
    return noise**2 / weight_scale**2


class Ridge(eqx.Module):
    """Ridge regression w = (X^T X + lam I)^{-1} X^T y; `lam = bayes_ridge_lambda(noise, scale)` is Bayes-optimal.

    A module, not a closure, so that `lam` is an array leaf: a jitted caller compiles once for every `lam`."""

    lam: float | Array

    def __check_init__(self):
        if isinstance(self.lam, (int, float)):
            v.check_float("ridge", "lam", self.lam)

    def __call__(self, xs, ys, mask, x_query):
        xm, ym, _ = _masked(xs, ys, mask)
        d = xs.shape[1]
        return x_query @ jnp.linalg.solve(xm.T @ xm + self.lam * jnp.eye(d), xm.T @ ym)


class GD(eqx.Module):
    """`steps` of GD from w = 0 on L(w) = (1/2k) sum_{i used} |w^T x_i - y_i|^2, `k` the number of used points.

    `eta` is an array leaf (one compile for every step size); `steps` is static."""

    eta: float | Array
    steps: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        v.check_int("gd", "steps", self.steps)

    def __call__(self, xs, ys, mask, x_query):
        xm, ym, k = _masked(xs, ys, mask)
        w = jnp.zeros((xs.shape[1],) + ys.shape[1:], xs.dtype)
        # a loop, not an unrolled Python `for`: compile time stays flat in `steps`
        w = jax.lax.fori_loop(0, self.steps, lambda _, w: w - self.eta * xm.T @ (xm @ w - ym) / k, w)
        return x_query @ w


ridge = Ridge
gd = GD


def newton_iterates(
    xs: Float[Array, "n d"], ys: Array, mask: Bool[Array, " n"], steps: int
) -> tuple[Float[Array, "steps_plus_1 d d"], Array]:
    """Newton-Schulz iterates `M_0..M_steps` approximating (X^T X)^+ and the weights `w_j = M_j X^T y`.

    S = X^T X, M_0 = S / ||S S^T||_F (Fu et al.'s code), M_{j+1} = M_j (2I - S M_j). Since
    I - S M_{j+1} = (I - S M_j)^2, the residual squares at every step (quadratic convergence).
    """
    xm, ym, _ = _masked(xs, ys, mask)
    s = xm.T @ xm
    norm = jnp.linalg.norm(s @ s.T)
    m = jnp.where(norm > 0, s / jnp.where(norm > 0, norm, 1.0), 0.0)
    eye = jnp.eye(s.shape[0], dtype=s.dtype)
    ms = [m]
    for _ in range(steps):
        m = m @ (2 * eye - s @ m)
        ms.append(m)
    mats = jnp.stack(ms)
    return mats, mats @ (xm.T @ ym)


def newton(steps: int) -> MaskedPredictor:
    """Prediction of the `steps`-th Newton-Schulz iterate (Iterative Newton, Fu et al.)."""
    v.check_int("newton", "steps", steps, low=0)

    def predict(xs, ys, mask, x_query):
        return x_query @ newton_iterates(xs, ys, mask, steps)[1][-1]

    return predict


def dmmse(pool: Float[Array, "n_tasks d"], noise: float) -> MaskedPredictor:
    """Posterior mean of w under a uniform prior on `pool` and Gaussian label noise of std `noise`.

    p_i ~ exp(-(1/2 noise^2) sum_j (y_j - w_i^T x_j)^2); with no points it is the pool mean.
    """
    v.check_float("dmmse", "noise", noise, strict=True)

    def predict(xs, ys, mask, x_query):
        resid = ys[None, :] - pool @ xs.T  # [n_tasks, n]
        logits = -0.5 * jnp.sum(jnp.where(mask[None, :], resid**2, 0.0), axis=1) / noise**2
        return jax.nn.softmax(logits) @ (pool @ x_query)

    return predict


def lasso(alpha: float, steps: int = 300) -> MaskedPredictor:
    """Lasso min_w (1/2k)|y - Xw|^2 + alpha |w|_1 (sklearn's scaling, as Garg et al.) by `steps` of FISTA."""
    v.check_float("lasso", "alpha", alpha, strict=True)
    v.check_int("lasso", "steps", steps)

    def predict(xs, ys, mask, x_query):
        xm, ym, k = _masked(xs, ys, mask)
        gram, xty = xm.T @ xm / k, xm.T @ ym / k
        lip = jnp.maximum(jnp.linalg.eigvalsh(gram)[-1], 1e-12)
        shrink = lambda z: jnp.sign(z) * jnp.maximum(jnp.abs(z) - alpha / lip, 0.0)

        def step(carry, _):
            w, z, t = carry
            w_next = shrink(z - (gram @ z - xty) / lip)
            t_next = (1 + jnp.sqrt(1 + 4 * t**2)) / 2
            return (w_next, w_next + (t - 1) / t_next * (w_next - w), t_next), None

        w0 = jnp.zeros(xs.shape[1], xs.dtype)
        (w, _, _), _ = jax.lax.scan(step, (w0, w0, jnp.asarray(1.0, xs.dtype)), None, length=steps)
        return x_query @ w

    return predict


def knn(k: int = 3) -> MaskedPredictor:
    """Mean label of the `k` nearest used points (Euclidean); fewer if fewer are used; 0 with none."""
    v.check_int("knn", "k", k)

    def predict(xs, ys, mask, x_query):
        dist = jnp.where(mask, jnp.sum((xs - x_query) ** 2, axis=1), jnp.inf)
        neg, idx = jax.lax.top_k(-dist, min(k, xs.shape[0]))
        used = jnp.isfinite(neg)
        return jnp.sum(jnp.where(used, ys[idx], 0.0)) / jnp.maximum(used.sum(), 1)

    return predict


def averaging(xs, ys, mask, x_query):
    """Garg et al.'s averaging estimator: w = (1/k) sum_i y_i x_i."""
    xm, ym, k = _masked(xs, ys, mask)
    return x_query @ (xm.T @ ym / k)


class Unmasked(eqx.Module):
    """The `(xs, ys, x_query) -> y_hat` form (all points used) of a masked predictor."""

    predictor: MaskedPredictor

    def __call__(self, xs, ys, x_query):
        return self.predictor(xs, ys, jnp.ones(xs.shape[0], bool), x_query)


unmasked = Unmasked


def in_features(predictor: MaskedPredictor, phi: Callable[[Array], Array]) -> MaskedPredictor:
    """Run `predictor` on features `phi(x)` (one point `[d] -> [d_phi]`), e.g. ridge on a known representation."""

    def predict(xs, ys, mask, x_query):
        return predictor(jax.vmap(phi)(xs), ys, mask, phi(x_query))

    return predict


def prefix_predictions(
    predictor: MaskedPredictor, xs: Float[Array, "m d"], ys: Float[Array, " m"]
) -> Float[Array, " m"]:
    """Entry `j` predicts `ys[j]` at `xs[j]` from the first `j` points (entry 0 uses none)."""
    m = xs.shape[0]
    masks = jnp.arange(m)[None, :] < jnp.arange(m)[:, None]
    return jax.vmap(lambda mask, xq: predictor(xs, ys, mask, xq))(masks, xs)


def prefix_errors(
    predictor: MaskedPredictor, xs: Float[Array, "batch m d"], ys: Float[Array, "batch m"]
) -> Float[Array, " m"]:
    """Mean squared error against `ys` at every prefix length 0..m-1 (error vs in-context examples)."""
    preds = jax.vmap(lambda x, y: prefix_predictions(predictor, x, y))(xs, ys)
    return jnp.mean((preds - ys) ** 2, axis=0)


def ar_prefix_predictions(predictor: MaskedPredictor, xs: Float[Array, "seq d"]) -> Float[Array, "seq d"]:
    """For a trajectory x_0..x_{T-1}: row `t` predicts `xs[t]` from `xs[t-1]` with the map fitted on the
    pairs (x_i, x_{i+1}), i + 1 < t (rows 0 and 1 have no pair and predict 0)."""
    inputs, targets = xs[:-1], xs[1:]
    t = jnp.arange(1, xs.shape[0])
    masks = jnp.arange(xs.shape[0] - 1)[None, :] < (t - 1)[:, None]
    preds = jax.vmap(lambda mask, xq: predictor(inputs, targets, mask, xq))(masks, xs[:-1])
    return jnp.concatenate([jnp.zeros_like(xs[:1]), preds])
