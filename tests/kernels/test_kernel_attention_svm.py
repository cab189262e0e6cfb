"""Attention-SVM kernel: the JAX Att-SVM solvers against a reference convex solver (cvxpy +
Clarabel), the rank properties, and the `local_converge` acceptance (mean correlation >= 0.95)."""

import cvxpy as cp  # a dev dependency: `make test` installs it
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.kernels.attention_svm import (
    correlation, init_params, ngd_step, observe, optimal_tokens, sample_svm_data, simulate_ngd, train_ngd,
)
from workbench.kernels.svm_solver import margins, att_svm_problem, matrix_rank, solve_att_svm


def _instances(count, n, T, d, seed=0):
    with jax.enable_x64(True):
        data = jax.jit(jax.vmap(lambda k: sample_svm_data(k, n, T, d)))(jax.random.split(jax.random.key(seed), count))
        ids = jax.vmap(optimal_tokens)(data)
    return np.asarray(data.X), np.asarray(data.z), np.asarray(ids)


def _reference(X, z, ids, norm):
    """The authors' `W_svm_solver` formulation, solved by Clarabel."""
    n, T, d = X.shape
    W = cp.Variable((d, d))
    cons = [(X[i, ids[i]] - X[i, t]) @ W @ z[i] >= 1 for i in range(n) for t in range(T) if t != ids[i]]
    prob = cp.Problem(cp.Minimize(cp.norm(W, norm)), cons)
    prob.solve(solver=cp.CLARABEL)
    return prob.status, prob.value, W.value


@pytest.mark.parametrize("norm", ["fro", "nuc"])
def test_solver_matches_clarabel(norm):
    X, z, ids = _instances(6, 4, 5, 6)
    sol = solve_att_svm(X, z, ids, norm=norm)
    checked = 0
    for i in range(len(X)):
        status, value, W_ref = _reference(X[i], z[i], ids[i], norm)
        assert bool(sol.feasible[i]) == (status == "optimal"), (i, status)
        if status != "optimal":
            continue
        checked += 1
        assert abs(float(sol.objective[i]) - value) <= 1e-5 * max(1.0, value), (i, float(sol.objective[i]), value)
        with jax.enable_x64(True):
            m = margins(att_svm_problem(jnp.asarray(X[i]), jnp.asarray(z[i]), jnp.asarray(ids[i])), jnp.asarray(sol.W[i]))
        active = np.arange(X.shape[1] * X.shape[2]) % X.shape[2] != np.repeat(ids[i], X.shape[2])
        assert np.asarray(m)[active].min() >= 1 - 1e-6
        assert np.linalg.matrix_rank(sol.W[i], tol=1e-7) == np.linalg.matrix_rank(W_ref, tol=1e-7)
    assert checked >= 4


def test_infeasible_instances_are_flagged():
    X, z, ids = _instances(4, 5, 5, 1, seed=3)  # d = 1: almost never separable
    sol = solve_att_svm(X, z, ids, norm="fro")
    for i in range(len(X)):
        assert bool(sol.feasible[i]) == (_reference(X[i], z[i], ids[i], "fro")[0] == "optimal")


def test_rank_properties():
    X, z, ids = _instances(12, 5, 5, 10, seed=1)
    fro = solve_att_svm(X, z, ids, norm="fro")
    nuc = solve_att_svm(X, z, ids, norm="nuc")
    assert bool(np.all(fro.feasible)) and bool(np.all(nuc.feasible))
    with jax.enable_x64(True):
        r_fro = np.asarray(jax.vmap(matrix_rank)(jnp.asarray(fro.W)))
        r_nuc = np.asarray(jax.vmap(matrix_rank)(jnp.asarray(nuc.W)))
    assert np.all(r_fro <= 5) and np.all(r_nuc <= r_fro)
    assert r_nuc.mean() < r_fro.mean()  # the nuclear-norm solution is lower rank


def test_bad_input_raises():
    with pytest.raises(ValueError, match="norm"):
        solve_att_svm(np.zeros((2, 3, 4)), np.zeros((2, 4)), np.zeros(2, int), norm="l1")
    with pytest.raises(ValueError, match="param"):
        init_params(jax.random.key(0), 3, "QK")
    with pytest.raises(ValueError, match="T >= 2"):
        sample_svm_data(jax.random.key(0), 3, 1, 4)


def test_token_space_w_step_matches_autodiff():
    """The W-parametrisation's token-space step (what `train_ngd` runs) gives the same iterates as
    autodiff NGD on W itself; the trace's observables are those of the recorded W."""
    steps = 150
    with jax.enable_x64(True):
        data = sample_svm_data(jax.random.key(4), 4, 5, 6)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), init_params(jax.random.key(5), 6, "W"))
        trace = jax.jit(lambda d, p: train_ngd(d, p, steps=steps, lr=0.1, record_every=50))(data, params)

        def autodiff(p, _):
            p = ngd_step(data, p, 0.1)
            return p, p.W

        _, Ws = jax.jit(lambda p: jax.lax.scan(autodiff, p, None, length=steps))(params)
        assert float(jnp.linalg.norm(Ws[-1] - params.W)) > 5  # NGD moved W well away from its init
        np.testing.assert_allclose(trace.W, Ws[49::50], rtol=0, atol=1e-11)
        prob, loss, sel = jax.vmap(observe, in_axes=(0, None))(Ws[49::50], data)
        np.testing.assert_allclose(trace.max_prob, prob, rtol=0, atol=1e-12)
        np.testing.assert_allclose(trace.loss, loss, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(trace.selected, sel[-1])


def test_local_converge_correlation():
    """Acceptance: `local_converge` (n=6, T=8, d=10, 100 instances, 2000 NGD steps, float64):
    mean corr(W(2000), W^mm on the selected tokens) >= 0.95."""
    with jax.enable_x64(True):
        fn = jax.jit(jax.vmap(lambda k: simulate_ngd(k, 6, 8, 10, param="W", steps=2000, record_every=100)))
        data, trace = fn(jax.random.split(jax.random.key(0), 100))
    sol = solve_att_svm(data.X, data.z, trace.selected, norm="fro")
    assert bool(np.all(sol.feasible))
    with jax.enable_x64(True):
        corr = np.asarray(jax.vmap(correlation)(trace.W[:, -1], jnp.asarray(sol.W)))
    assert corr.mean() >= 0.95, corr.mean()
    assert np.asarray(trace.max_prob)[:, -1].mean() > 0.99
