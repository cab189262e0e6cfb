"""Regression reference predictors against closed forms.

Statistical tolerances: a Monte-Carlo mean over n i.i.d. prompts is compared with its expectation
within Z = 4 standard errors (SE = sample std / sqrt(n)); a false failure has probability < 1e-4.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.tasks import predictors as P
from workbench.tasks.regression import LinearRegression
from workbench.tasks.regression_family import FinitePoolRegression, ill_conditioned_covariance

Z = 4.0


def _sample(task, seed, batch_size):
    return eqx.filter_jit(task.sample)(jax.random.key(seed), batch_size)


def _vmapped(predictor, batch):
    return jax.jit(jax.vmap(P.unmasked(predictor)))(batch.context_xs, batch.context_ys, batch.query_x)


def _prefix(predictor, xs, ys):
    return jax.jit(jax.vmap(lambda x, y: P.prefix_predictions(predictor, x, y)))(xs, ys)


def _prompt(seed, n, d, noise=0.0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    return xs, xs @ w + noise * rng.normal(size=n), rng.normal(size=d)


def _within(values, expected, z=Z):
    values = np.asarray(values, np.float64)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - expected) <= z * se, (values.mean(), expected, se)


def test_ols_is_least_squares_at_every_prefix():
    xs, ys, _ = _prompt(0, 12, 4, noise=0.3)
    preds = np.asarray(_prefix(P.ols, jnp.asarray(xs[None], jnp.float32), jnp.asarray(ys[None], jnp.float32))[0])
    for j in range(12):
        w = np.linalg.pinv(xs[:j]) @ ys[:j] if j else np.zeros(4)  # minimum-norm solution
        np.testing.assert_allclose(preds[j], xs[j] @ w, rtol=1e-3, atol=1e-3)


def test_ridge_is_gaussian_posterior_mean():
    noise, tau = 0.5, 2.0
    xs, ys, xq = _prompt(1, 6, 5, noise=noise)
    # Posterior mean in the dual (kernel) form, a different computation from (X^T X + lam I)^-1 X^T y.
    post = tau**2 * xs.T @ np.linalg.solve(tau**2 * xs @ xs.T + noise**2 * np.eye(6), ys)
    pred = P.unmasked(P.ridge(P.bayes_ridge_lambda(noise, tau)))(*(jnp.asarray(a, jnp.float32) for a in (xs, ys, xq)))
    np.testing.assert_allclose(float(pred), xq @ post, rtol=1e-4, atol=1e-4)


def test_gd_matches_the_one_and_three_step_formulas():
    xs, ys, xq = (jnp.asarray(a, jnp.float32) for a in _prompt(2, 10, 3))
    eta = 0.7
    expected = eta * (xs.T @ ys / 10) @ xq
    np.testing.assert_allclose(P.unmasked(P.gd(eta, 1))(xs, ys, xq), expected, rtol=1e-5)
    w = jnp.zeros(3)
    for _ in range(3):
        w = w - eta * xs.T @ (xs @ w - ys) / 10
    np.testing.assert_allclose(P.unmasked(P.gd(eta, 3))(xs, ys, xq), w @ xq, rtol=1e-5)


def test_newton_converges_quadratically_to_ols():
    cov = np.asarray(ill_conditioned_covariance(5, 30.0, key=jax.random.key(0)))
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(20, 5)) @ np.linalg.cholesky(cov).T
    ys = xs @ rng.normal(size=5)
    iterates = jax.jit(P.newton_iterates, static_argnums=3)
    mats, ws = iterates(jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32), jnp.ones(20, bool), 30)
    s = xs.T @ xs
    resid = [np.linalg.norm(np.eye(5) - s @ np.asarray(m, np.float64), 2) for m in mats]
    # I - S M_{j+1} = (I - S M_j)^2 exactly: the spectral residual squares at each step (float32 round-off aside).
    checked = 0
    for r, r_next in zip(resid[:-1], resid[1:]):
        if 1e-2 < r < 1.0:
            np.testing.assert_allclose(r_next, r**2, rtol=1e-2)
            checked += 1
    assert checked >= 3
    w_ols = np.linalg.lstsq(xs, ys, rcond=None)[0]
    np.testing.assert_allclose(np.asarray(ws[-1]), w_ols, rtol=2e-3, atol=2e-3)


def test_dmmse_is_pool_member_at_small_noise():
    task = FinitePoolRegression(d=4, n_points=8, n_tasks=16, noise=1e-3, key=jax.random.key(0))
    batch = _sample(task, 1, 64)
    pred = _vmapped(P.dmmse(task.pool, task.noise), batch)
    np.testing.assert_allclose(pred, jnp.einsum("bd,bd->b", batch.ws, batch.query_x), atol=1e-3)


def test_dmmse_tends_to_ridge_as_pool_grows():
    # Fresh Gaussian tasks; dMMSE over a pool of M prior draws is a self-normalised importance-sampling
    # estimate of the posterior mean (= Bayes ridge), whose squared error shrinks like 1/M.
    noise, d = 0.5, 2
    batch = _sample(LinearRegression(d=d, n_points=4, noise=noise), 2, 512)
    ridge = _vmapped(P.ridge(noise**2), batch)
    gaps = []
    for m in (16, 256, 4096):
        pool = jax.random.normal(jax.random.key(m), (m, d))
        pred = _vmapped(P.dmmse(pool, noise), batch)
        gaps.append(float(jnp.mean((pred - ridge) ** 2)))
    assert gaps[0] > gaps[1] > gaps[2]
    # 1/M scaling predicts a 16x drop per step; require at least 4x (a generous margin for MC noise).
    assert gaps[1] < gaps[0] / 4 and gaps[2] < gaps[1] / 4, gaps
    ridge_mse = float(jnp.mean((ridge - batch.query_y) ** 2))
    assert gaps[2] < 0.01 * ridge_mse


def test_lasso_satisfies_kkt():
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(15, 8))
    w = np.zeros(8)
    w[[1, 5]] = [2.0, -1.5]
    ys = xs @ w + 0.1 * rng.normal(size=15)
    alpha = 0.1
    # Recover the weights by predicting at the unit vectors.
    pred = jax.jit(jax.vmap(lambda e: P.unmasked(P.lasso(alpha, steps=3000))(jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32), e)))
    w_hat = np.asarray(pred(jnp.eye(8)), np.float64)
    grad = xs.T @ (xs @ w_hat - ys) / 15  # subgradient condition: grad_i = -alpha sign(w_i), |grad_i| <= alpha at 0
    nz = np.abs(w_hat) > 1e-6
    np.testing.assert_allclose(grad[nz], -alpha * np.sign(w_hat[nz]), atol=2e-3)
    assert np.all(np.abs(grad[~nz]) <= alpha + 2e-3)
    assert set(np.flatnonzero(nz)) >= {1, 5}


def test_knn_and_averaging_match_brute_force():
    xs, ys, xq = _prompt(5, 9, 3)
    mask = np.arange(9) < 7
    args = [jnp.asarray(a, jnp.float32) for a in (xs, ys)] + [jnp.asarray(mask)] + [jnp.asarray(xq, jnp.float32)]
    order = np.argsort(((xs[:7] - xq) ** 2).sum(1))
    np.testing.assert_allclose(P.knn(3)(*args), ys[:7][order[:3]].mean(), rtol=1e-5)
    np.testing.assert_allclose(P.averaging(*args), xq @ (xs[:7].T @ ys[:7] / 7), rtol=1e-4)
    assert float(P.knn(3)(args[0], args[1], jnp.zeros(9, bool), args[3])) == 0.0


def test_garg_closed_forms_per_prefix():
    # Isotropic noiseless: min-norm OLS error / d = (d - k) / d (k < d); averaging error / d = (d + 1) / k.
    d = 5
    batch = _sample(LinearRegression(d=d, n_points=10, noise=0.0), 6, 4000)
    per_prompt = lambda p: _prefix(p, batch.xs, batch.ys)
    err_ols = np.asarray((per_prompt(P.ols) - batch.ys) ** 2) / d
    err_avg = np.asarray((per_prompt(P.averaging) - batch.ys) ** 2) / d
    for k in (1, 2, 3):
        _within(err_ols[:, k], (d - k) / d)
    for k in (2, 8):
        _within(err_avg[:, k], (d + 1) / k)
    assert err_ols[:, d + 2 :].max() < 1e-3


def test_raventos_ridge_baseline():
    # Raventos et al. D = 4, K = 16, noise^2 = 0.25: ridge loss / D averaged over the 16 positions,
    # against noisy targets, is 0.291 (icl_papers.md, computed independently); +-0.0005 for rounding.
    batch = _sample(LinearRegression(d=4, n_points=15, noise=0.5), 7, 4000)
    preds = _prefix(P.ridge(0.25), batch.xs, batch.ys)
    per_prompt = np.asarray(jnp.mean((preds - batch.ys) ** 2, axis=1) / 4)
    se = per_prompt.std(ddof=1) / np.sqrt(len(per_prompt))
    assert abs(per_prompt.mean() - 0.291) <= Z * se + 0.0005, (per_prompt.mean(), se)


def test_ar_prefix_ols_recovers_dynamics():
    from workbench.tasks.regression_family import ARProcess

    batch = _sample(ARProcess(d=4, seq_len=12), 8, 8)
    preds = jax.jit(jax.vmap(lambda x: P.ar_prefix_predictions(P.ols, x)))(batch.xs)
    np.testing.assert_allclose(preds[:, 6:], batch.xs[:, 6:], atol=1e-3)  # 4 pairs determine W (d = 4)
    # One GD step with eta = 1 (Zheng et al.): W_t = (1 / (t - 1)) sum x_{i+1} x_i^T, explicitly at t = 5.
    x = np.asarray(batch.xs[0], np.float64)
    w_gd = sum(np.outer(x[i + 1], x[i]) for i in range(4)) / 4
    gd_pred = jax.jit(lambda x: P.ar_prefix_predictions(P.gd(1.0, 1), x))(batch.xs[0])
    np.testing.assert_allclose(gd_pred[5], w_gd @ x[4], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: P.ridge(-1.0), "lam"),
        (lambda: P.gd(0.1, 0), "steps"),
        (lambda: P.dmmse(jnp.zeros((2, 2)), 0.0), "noise"),
        (lambda: P.lasso(0.0), "alpha"),
        (lambda: P.knn(0), "k"),
    ],
)
def test_bad_predictor_parameters(make, name):
    with pytest.raises(ValueError, match=name):
        make()
