"""In-context linear regression, `predict_batch` for its reference predictors (OLS, ridge, k-step GD
of `tasks.predictors`), the half-MSE loss and the line-searched GD step size.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractTask, RegressionBatch
from .predictors import MaskedPredictor, gd, unmasked


class LinearRegression(AbstractTask):
    """y = w^T x + noise * eps with w ~ N(0, weight_scale^2 I), fresh w per prompt.

    **Arguments:**
    - `d`: input dimension; `n_points`: context points per prompt (plus one query).
    - `noise`: std of the label noise.
    - `x_dist`: `"uniform"` draws x ~ U(-x_range/2, x_range/2)^d (von Oswald et al.'s code),
      `"gaussian"` draws x ~ N(0, covariance) (identity if `covariance` is None).
    """

    d: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    noise: float = eqx.field(static=True, default=0.0)
    x_dist: Literal["uniform", "gaussian"] = eqx.field(static=True, default="gaussian")
    x_range: float = eqx.field(static=True, default=1.0)
    weight_scale: float = eqx.field(static=True, default=1.0)
    covariance: Float[Array, "d d"] | None = None

    def __check_init__(self):
        if self.d < 1 or self.n_points < 1:
            raise ValueError(f"LinearRegression needs d >= 1 and n_points >= 1, got d={self.d}, n_points={self.n_points}")
        if self.noise < 0 or self.x_range <= 0 or self.weight_scale <= 0:
            raise ValueError("LinearRegression needs noise >= 0, x_range > 0 and weight_scale > 0")
        if self.x_dist not in ("uniform", "gaussian"):
            raise ValueError(f"LinearRegression.x_dist must be 'uniform' or 'gaussian', got {self.x_dist!r}")
        if self.covariance is not None and (self.x_dist != "gaussian" or self.covariance.shape != (self.d, self.d)):
            raise ValueError(f"covariance must be a [{self.d}, {self.d}] matrix with x_dist='gaussian'")

    def sample_x(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Array:
        if self.x_dist == "uniform":
            half = self.x_range / 2
            return jax.random.uniform(key, shape + (self.d,), minval=-half, maxval=half)
        x = jax.random.normal(key, shape + (self.d,))
        if self.covariance is not None:
            x = x @ jnp.linalg.cholesky(self.covariance).T
        return x

    def sample(self, key: PRNGKeyArray, batch_size: int) -> RegressionBatch:
        kx, kw, kn = jax.random.split(key, 3)
        xs = self.sample_x(kx, (batch_size, self.n_points + 1))
        ws = self.weight_scale * jax.random.normal(kw, (batch_size, self.d))
        ys = jnp.einsum("bnd,bd->bn", xs, ws) + self.noise * jax.random.normal(kn, xs.shape[:2])
        return RegressionBatch(xs=xs, ys=ys, ws=ws)

    @property
    def x_moments(self) -> tuple[float, float]:
        """Second and fourth moments (E x^2, E x^4) of one input coordinate (isotropic inputs)."""
        if self.x_dist == "uniform":
            a = self.x_range / 2
            return a**2 / 3, a**4 / 5
        if self.covariance is not None:
            raise ValueError("x_moments is defined for isotropic inputs only")
        return 1.0, 3.0


@eqx.filter_jit
def predict_batch(predictor: MaskedPredictor, batch: RegressionBatch) -> Float[Array, " batch"]:
    """Apply a masked predictor of `tasks.predictors` (every point used) to every prompt of `batch`.

    Jitted; `gd(eta)` and `ridge(lam)` are modules, so a new step size or penalty does not recompile."""
    return jax.vmap(unmasked(predictor))(batch.context_xs, batch.context_ys, batch.query_x)


def half_mse(pred: Float[Array, " batch"], target: Float[Array, " batch"]) -> Float[Array, ""]:
    """The loss of von Oswald et al.: 0.5 * mean squared error."""
    return 0.5 * jnp.mean((pred - target) ** 2)


@eqx.filter_jit
def _gd_losses(etas: Array, batch: RegressionBatch, steps: int) -> Array:
    return jax.vmap(lambda eta: half_mse(predict_batch(gd(eta, steps), batch), batch.query_y))(etas)


def best_gd_eta(batch: RegressionBatch, steps: int = 1, grid: tuple[float, float, int] = (0.0, 25.0, 251)) -> float:
    """Step size of `steps`-step GD with the lowest loss on `batch`: grid search, then two finer grids.

    The default grid is von Oswald et al.'s [0, 25) in steps of 0.1; each refinement searches
    +-1 grid spacing around the best point with 41 points.
    """
    lo, hi, num = grid
    etas = jnp.linspace(lo, hi, num)
    for _ in range(3):
        best = etas[jnp.argmin(_gd_losses(etas, batch, steps))]
        spacing = etas[1] - etas[0]
        etas = jnp.linspace(jnp.maximum(best - spacing, 0.0), best + spacing, 41)
    return float(best)
