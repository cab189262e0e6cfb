import jax.numpy as jnp
import numpy as np

from workbench.tasks.predictors import bayes_ridge_lambda, dmmse, ridge, unmasked
from workbench.theory import bayes

D, N, NOISE = 4, 8, 0.5


def test_posterior_mean_symbolically():
    assert bayes.symbolic_posterior_mean()


def test_posterior_mean_is_ridge_and_the_predictors_agree():
    rng = np.random.default_rng(0)
    xs, ys, xq = rng.standard_normal((N, D)), rng.standard_normal(N), rng.standard_normal(D)
    mu, _ = bayes.gaussian_posterior(xs, ys, NOISE)
    pred = unmasked(ridge(bayes_ridge_lambda(NOISE)))(jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(xq))
    assert abs(float(pred) - xq @ mu) < 1e-4
    pool = rng.standard_normal((16, D))
    got = unmasked(dmmse(jnp.asarray(pool, jnp.float32), NOISE))(jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(xq))
    assert abs(float(got) - xq @ bayes.dmmse_mean(pool, xs, ys, NOISE)) < 1e-4


def test_bayes_risk_and_posterior_covariance_match_monte_carlo():
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((N, D))
    _, cov = bayes.gaussian_posterior(xs, np.zeros(N), NOISE)
    ws = rng.standard_normal((20_000, D))
    ys = ws @ xs.T + NOISE * rng.standard_normal((20_000, N))
    err = ws - ys @ (cov @ xs.T / NOISE**2).T  # w - mu(D): the posterior mean is linear in y
    emp = err.T @ err / len(err)
    # Entry (j, k) of a sample covariance of Gaussians has sd sqrt((S_jj S_kk + S_jk^2) / n); 4 sd, every entry.
    sd = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / len(err))
    assert np.all(np.abs(emp - cov) < 4 * sd)
    xq = rng.standard_normal((20_000, D))
    sq = (np.sum(xq * ws, 1) + NOISE * rng.standard_normal(20_000) - np.sum(xq * (ws - err), 1)) ** 2
    assert abs(sq.mean() - bayes.bayes_risk(xs, NOISE)) < 4 * sq.std() / np.sqrt(sq.size)


def test_dmmse_is_the_pool_posterior_mean_and_tends_to_ridge():
    rng = np.random.default_rng(2)
    pool = rng.standard_normal((8, D))
    # Orthogonality of the posterior mean: E[(w - w_hat) g(D)] = 0 for any statistic g, here g = w_hat.
    prompts = 4000
    idx = rng.integers(0, 8, prompts)
    xs = rng.standard_normal((prompts, 2, D))
    ys = np.einsum("pnd,pd->pn", xs, pool[idx]) + NOISE * rng.standard_normal((prompts, 2))
    est = np.array([bayes.dmmse_mean(pool, x, y, NOISE) for x, y in zip(xs, ys)])
    prod = np.sum((pool[idx] - est) * est, 1)
    assert abs(prod.mean()) < 4 * prod.std() / np.sqrt(prompts)
    resid = pool[idx] - est
    assert np.all(np.abs(resid.mean(0)) < 4 * resid.std(0) / np.sqrt(prompts))
    # A pool drawn from the prior approaches the Gaussian posterior mean as it grows (importance sampling).
    x, y = xs[0], ys[0]
    mu, cov = bayes.gaussian_posterior(x, y, NOISE)
    gaps = []
    for m in (2**4, 2**8, 2**14):
        draws = [np.sum((bayes.dmmse_mean(rng.standard_normal((m, D)), x, y, NOISE) - mu) ** 2) for _ in range(20)]
        gaps.append(np.mean(draws) / np.trace(cov))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.05
