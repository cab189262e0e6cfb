"""Generators of the regression family: statistical tests with Z = 4 standard-error tolerances.

A mean over n i.i.d. draws is within Z * SE of its expectation (SE = sample std / sqrt(n), or the
exact binomial SE sqrt(p (1 - p) / n) for frequencies); two-sided false-failure rate < 1e-4 per check.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.tasks import regression_family as R

Z = 4.0


def _sample(task, seed, batch_size):
    return eqx.filter_jit(task.sample)(jax.random.key(seed), batch_size)


def _mean_within(values, expected):
    values = np.asarray(values, np.float64).ravel()
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(values.mean() - expected) <= Z * se, (values.mean(), expected, se)


def test_sparse_support_is_exact_and_uniform():
    task = R.SparseLinearRegression(d=10, n_points=4, sparsity=3, weight_scale=2.0)
    b = _sample(task, 0, 4000)
    nonzero = np.asarray(b.ws != 0)
    assert np.all(nonzero.sum(1) == 3)
    p, n = 0.3, nonzero.shape[0]
    assert np.all(np.abs(nonzero.mean(0) - p) <= Z * np.sqrt(p * (1 - p) / n))
    _mean_within(np.asarray(b.ws)[nonzero] ** 2, 4.0)  # non-zero entries ~ N(0, 2^2)
    np.testing.assert_allclose(b.ys, jnp.einsum("bnd,bd->bn", b.xs, b.ws), rtol=1e-5, atol=1e-5)


def test_finite_pool_draws_pool_members_uniformly():
    task = R.FinitePoolRegression(d=3, n_points=4, n_tasks=8, noise=0.5, key=jax.random.key(1))
    b = _sample(task, 2, 4000)
    match = np.all(np.asarray(b.ws)[:, None, :] == np.asarray(task.pool)[None], axis=-1)
    assert np.all(match.sum(1) == 1)
    p, n = 1 / 8, match.shape[0]
    assert np.all(np.abs(match.mean(0) - p) <= Z * np.sqrt(p * (1 - p) / n))
    resid = b.ys - jnp.einsum("bnd,bd->bn", b.xs, b.ws)
    _mean_within(np.asarray(resid) ** 2, 0.25)  # label noise variance
    assert np.array_equal(task.pool, R.FinitePoolRegression(3, 4, 8, key=jax.random.key(1)).pool)


def test_relu_net_output_scale():
    # E[y^2] = (2 / h) * h * E[ReLU(w^T x)^2] = E|x|^2 = d for w, a ~ N(0, I).
    b = _sample(R.ReLUNetRegression(d=4, n_points=1, hidden=50), 3, 8000)
    _mean_within(np.asarray(b.ys[:, 0]) ** 2, 4.0)


def test_tree_routing_and_leaf_distribution():
    rng = np.random.default_rng(0)
    feats, leaves, x = rng.integers(0, 5, 7), rng.normal(size=8), rng.normal(size=5)
    node = 0
    for _ in range(3):
        node = 2 * node + (2 if x[feats[node]] > 0 else 1)
    assert float(R.tree_predict(jnp.asarray(feats), jnp.asarray(leaves), jnp.asarray(x))) == pytest.approx(leaves[node - 7])
    b = _sample(R.DecisionTreeRegression(d=5, n_points=20, depth=3), 4, 2000)
    assert max(len(np.unique(np.asarray(y))) for y in b.ys) <= 8
    _mean_within(np.asarray(b.ys[:, 0]) ** 2, 1.0)  # a leaf value ~ N(0, 1)


def test_ar_process_is_unitary_dynamics():
    b = _sample(R.ARProcess(d=6, seq_len=10, x1_dist="rademacher"), 5, 16)
    w = np.asarray(b.transition, np.float64)
    np.testing.assert_allclose(np.einsum("bij,bkj->bik", w, w), np.broadcast_to(np.eye(6), w.shape), atol=1e-5)
    np.testing.assert_allclose(b.xs[:, 1:], jnp.einsum("bij,btj->bti", b.transition, b.xs[:, :-1]), atol=1e-5)
    np.testing.assert_allclose(jnp.linalg.norm(b.xs, axis=-1), np.sqrt(6.0), rtol=1e-5)


def test_representation_labels_are_linear_in_features():
    task = R.RepresentationRegression(d=3, n_points=5, d_phi=6, depth=2, noise=0.2, key=jax.random.key(6))
    b = _sample(task, 7, 2000)
    phi = jax.jit(jax.vmap(jax.vmap(task.features)))(b.xs)
    resid = b.ys - jnp.einsum("bnk,bk->bn", phi, b.ws)
    _mean_within(np.asarray(resid) ** 2, 0.04)
    assert np.all(np.asarray(phi) >= 0)


def test_ill_conditioned_covariance():
    cov = np.asarray(R.ill_conditioned_covariance(6, 100.0, key=jax.random.key(8)), np.float64)
    eig = np.linalg.eigvalsh(cov)
    assert eig[-1] / eig[0] == pytest.approx(100.0, rel=1e-3)
    assert np.trace(cov) == pytest.approx(6.0, rel=1e-5)


def test_sampling_is_deterministic_in_the_key():
    task = R.SparseLinearRegression(d=4, n_points=3, sparsity=2)
    a, b, c = _sample(task, 9, 4), _sample(task, 9, 4), _sample(task, 10, 4)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, a, b))
    assert not jnp.array_equal(a.xs, c.xs)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: R.SparseLinearRegression(d=3, n_points=4, sparsity=4), "sparsity"),
        (lambda: R.SparseLinearRegression(d=-1, n_points=4, sparsity=1), "d"),
        (lambda: R.FinitePoolRegression(3, 4, n_tasks=0, key=jax.random.key(0)), "n_tasks"),
        (lambda: R.FinitePoolRegression(3, 4, n_tasks=2, noise=0.0, key=jax.random.key(0)), "noise"),
        (lambda: R.ReLUNetRegression(d=3, n_points=-2), "n_points"),
        (lambda: R.DecisionTreeRegression(d=3, n_points=4, depth=0), "depth"),
        (lambda: R.ARProcess(d=3, seq_len=4), "d"),
        (lambda: R.ARProcess(d=4, seq_len=4, x1_dist="cauchy"), "x1_dist"),
        (lambda: R.RepresentationRegression(3, 4, d_phi=0, key=jax.random.key(0)), "d_phi"),
        (lambda: R.ill_conditioned_covariance(3, 0.5), "condition_number"),
    ],
)
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"\.{name} "):
        make()
