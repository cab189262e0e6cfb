"""Bayes-optimal predictors of in-context regression: ridge as the Gaussian posterior mean, and the
posterior mean over a finite task pool (dMMSE, Raventos et al. 2023) with its large-pool limit.

- Gaussian prior w ~ N(0, tau^2 I), y = w^T x + N(0, sigma^2): the posterior is
  N(mu, Sigma) with Sigma = sigma^2 (X^T X + (sigma^2/tau^2) I)^{-1} and mu = Sigma X^T y / sigma^2,
  i.e. ridge with lambda = sigma^2 / tau^2. The Bayes risk at a query x_q is sigma^2 + x_q^T Sigma x_q.
  `symbolic_posterior_mean()` derives mu for d = 1 by completing the square with sympy.
- Finite pool {w_1..w_M} with a uniform prior: p(i | D) ~ exp(-|y - X w_i|^2 / (2 sigma^2)) and the
  posterior mean is sum_i p(i | D) w_i. With the pool drawn from N(0, tau^2 I) and M -> infinity it
  tends to the Gaussian posterior mean (ridge): the pool is a Monte Carlo sample of the prior.
"""

import numpy as np
import sympy as sp
from jaxtyping import Array, Float


def gaussian_posterior(
    xs: Float[Array, "n d"], ys: Float[Array, " n"], noise: float, tau: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean `[d]` and covariance `[d, d]` of w given `(xs, ys)`."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    cov = noise**2 * np.linalg.inv(xs.T @ xs + (noise**2 / tau**2) * np.eye(xs.shape[1]))
    return cov @ xs.T @ ys / noise**2, cov


def bayes_risk(xs: Float[Array, "n d"], noise: float, tau: float = 1.0) -> float:
    """E over w, the labels and x_q ~ N(0, I) of (y_q - x_q^T mu)^2 given the inputs: sigma^2 + tr Sigma."""
    return float(noise**2 + np.trace(gaussian_posterior(xs, np.zeros(len(xs)), noise, tau)[1]))


def pool_posterior(
    pool: Float[Array, "m d"], xs: Float[Array, "n d"], ys: Float[Array, " n"], noise: float
) -> np.ndarray:
    """p(i | D) over the pool `[m]` (uniform prior, Gaussian noise)."""
    resid = np.asarray(ys, np.float64)[None] - np.asarray(pool, np.float64) @ np.asarray(xs, np.float64).T
    logits = -0.5 * np.sum(resid**2, 1) / noise**2
    p = np.exp(logits - logits.max())
    return p / p.sum()


def dmmse_mean(pool: Float[Array, "m d"], xs: Float[Array, "n d"], ys: Float[Array, " n"], noise: float) -> np.ndarray:
    """The dMMSE estimate sum_i p(i | D) w_i `[d]` (the pool mean with no data)."""
    return pool_posterior(pool, xs, ys, noise) @ np.asarray(pool, np.float64)


def symbolic_posterior_mean() -> bool:
    """sympy, d = 1, n = 2: the maximiser of log p(w | D) is sum x y / (sum x^2 + sigma^2 / tau^2)."""
    w, s, t = sp.symbols("w sigma tau", positive=True)
    x1, x2, y1, y2 = sp.symbols("x1 x2 y1 y2", real=True)
    log_post = -((y1 - w * x1) ** 2 + (y2 - w * x2) ** 2) / (2 * s**2) - w**2 / (2 * t**2)
    (mode,) = sp.solve(sp.diff(log_post, w), w)
    ridge = (x1 * y1 + x2 * y2) / (x1**2 + x2**2 + s**2 / t**2)
    # A Gaussian posterior's mode is its mean; the log-posterior is quadratic in w with curvature:
    curvature = sp.diff(log_post, w, 2)
    return sp.simplify(mode - ridge) == 0 and sp.simplify(curvature + (x1**2 + x2**2) / s**2 + 1 / t**2) == 0
