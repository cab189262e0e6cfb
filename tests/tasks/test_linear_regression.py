import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.tasks import LinearRegression
from workbench.tasks.predictors import gd, ols, ridge, unmasked
from workbench.tasks.regression import best_gd_eta, predict_batch

TASK = LinearRegression(d=5, n_points=8, noise=0.1)
BATCH = TASK.sample(jax.random.key(0), 256)


def test_sampling_is_deterministic_in_the_key_and_labels_follow_w():
    again = TASK.sample(jax.random.key(0), 256)
    np.testing.assert_array_equal(again.xs, BATCH.xs)
    noiseless = LinearRegression(d=5, n_points=8).sample(jax.random.key(3), 16)
    np.testing.assert_allclose(noiseless.ys, jnp.einsum("bnd,bd->bn", noiseless.xs, noiseless.ws), atol=1e-5)
    assert BATCH.xs.shape == (256, 9, 5) and BATCH.query_y.shape == (256,)


def test_uniform_inputs_have_the_stated_moments():
    task = LinearRegression(d=10, n_points=10, x_dist="uniform")
    x = task.sample_x(jax.random.key(1), (20_000,))
    s2, m4 = task.x_moments
    # 200k coordinates: standard errors ~ 2e-4 (s2) and ~4e-5 (m4); 5 SE tolerance
    assert abs(float((x**2).mean()) - s2) < 5 * float((x**2).std()) / np.sqrt(x.size)
    assert abs(float((x**4).mean()) - m4) < 5 * float((x**4).std()) / np.sqrt(x.size)


def test_ols_is_the_least_squares_solution():
    xs, ys, xq = BATCH.context_xs[0], BATCH.context_ys[0], BATCH.query_x[0]
    w = np.linalg.lstsq(np.asarray(xs, np.float64), np.asarray(ys, np.float64), rcond=None)[0]
    np.testing.assert_allclose(unmasked(ols)(xs, ys, xq), w @ np.asarray(xq), rtol=1e-4, atol=1e-5)


def test_ridge_is_the_gaussian_posterior_mean():
    xs, ys, xq = (np.asarray(a, np.float64) for a in (BATCH.context_xs[1], BATCH.context_ys[1], BATCH.query_x[1]))
    sigma2 = 0.1**2  # prior w ~ N(0, I): posterior mean = (X^T X + sigma^2 I)^-1 X^T y
    cov = np.linalg.inv(xs.T @ xs / sigma2 + np.eye(5))
    posterior_mean = cov @ xs.T @ ys / sigma2
    np.testing.assert_allclose(unmasked(ridge(sigma2))(xs, ys, xq), posterior_mean @ xq, rtol=1e-4)


def test_gd_steps_converge_to_ols_when_overdetermined():
    task = LinearRegression(d=3, n_points=30)
    b = task.sample(jax.random.key(2), 8)
    one = predict_batch(gd(0.5, 1), b)
    manual = jnp.einsum("bn,bnd,bd->b", b.context_ys, b.context_xs, b.query_x) * 0.5 / 30
    np.testing.assert_allclose(one, manual, rtol=1e-5)
    np.testing.assert_allclose(predict_batch(gd(0.5, 300), b), predict_batch(ols, b), rtol=1e-3, atol=1e-4)


def test_best_eta_matches_the_exact_minimiser_for_one_step():
    task = LinearRegression(d=10, n_points=10, x_dist="uniform")
    b = task.sample(jax.random.key(4), 4096)
    g = predict_batch(gd(1.0), b)  # one step is linear in eta: loss(eta) is a quadratic
    exact = float(jnp.vdot(g, b.query_y) / jnp.vdot(g, g))
    assert best_gd_eta(b) == pytest.approx(exact, abs=0.01)


def test_bad_parameters_fail_at_construction():
    with pytest.raises(ValueError, match="d >= 1"):
        LinearRegression(d=0, n_points=3)
    with pytest.raises(ValueError, match="noise >= 0"):
        LinearRegression(d=2, n_points=3, noise=-1.0)
