"""The one-step-GD AR predictor: the construction computes it, and its t -> infinity error matches
Monte Carlo on long trajectories of the task."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from workbench.models import CausalLinearAttention
from workbench.tasks import predictors as P
from workbench.tasks.regression_family import ARProcess
from workbench.theory import ar_gd


def _tokens(xs):
    prev = jnp.concatenate([jnp.zeros_like(xs[:1]), xs[:-1]])
    return jnp.concatenate([jnp.zeros_like(xs), xs, prev], axis=-1)


def test_symbolic_limit_matches_closed_form():
    eta = sp.Symbol("eta", positive=True)
    sym = ar_gd.symbolic_limit_error()
    for dist in ar_gd.X1_DISTS:
        for value in (0.2, 1 / 3, 0.9):
            assert float(sym[dist].subs(eta, value)) == pytest.approx(ar_gd.limit_error(value, dist), abs=1e-12)
        grid = np.linspace(0.01, 1.5, 1491)
        best = grid[np.argmin([ar_gd.limit_error(e, dist) for e in grid])]
        assert best == pytest.approx(ar_gd.best_limit_eta(dist), abs=1e-3)
    assert ar_gd.limit_error(1 / 3, "gaussian") == pytest.approx(1 / 3)


def test_construction_layer_is_one_gd_step():
    """The attention layer with the construction's weights predicts what `gd_predictions` and the
    task's `gd(eta, 1)` predictor do (float32 round-off)."""
    d, eta = 4, 0.7
    xs = ARProcess(d=d, seq_len=12, x1_dist="gaussian").sample(jax.random.key(0), 3).xs
    kq, pv = ar_gd.construction(d, eta)
    model = eqx.tree_at(lambda m: (m.W_KQ, m.W_PV), CausalLinearAttention(3 * d, key=jax.random.key(1)),
                        (jnp.asarray(kq, jnp.float32), jnp.asarray(pv, jnp.float32)))
    layer = jax.jit(jax.vmap(lambda x: model(_tokens(x))[:, :d]))(xs)
    closed = ar_gd.gd_predictions(np.asarray(xs), eta)
    np.testing.assert_allclose(np.asarray(layer)[:, 1:], closed[:, 1:], rtol=1e-4, atol=1e-5)
    task_gd = jax.jit(jax.vmap(lambda x: P.ar_prefix_predictions(P.gd(eta, 1), x)))(xs)  # row t predicts x_t
    np.testing.assert_allclose(np.asarray(task_gd)[:, 2:], closed[:, 1:-1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dist", ar_gd.X1_DISTS)
def test_limit_error_matches_monte_carlo(dist):
    """Relative error of one GD step at t = 3000 on 2,000 trajectories (d = 4). Tolerance: 4 Monte Carlo
    standard errors (of the ratio, by the delta method) plus the finite-t term, which is
    O(E[1 / (t |sin theta|)]) ~ log(t) / t < 0.005 for uniform rotation angles."""
    eta = 0.5
    seq = 3001
    xs = np.asarray(ARProcess(d=4, seq_len=seq, x1_dist=dist).sample(jax.random.key(2), 2000).xs, np.float64)
    s = np.einsum("nia,nib->nab", xs[:, :-1], xs[:, :-1]) / (seq - 1)  # S_t at t = seq - 1
    x_t = xs[:, -1]
    pred = eta * np.einsum("nab,nb->na", s, x_t)  # W_hat_t x_t = eta W S_t x_t; compare in W's frame (W orthogonal)
    err, norm = np.sum((x_t - pred) ** 2, 1), np.sum(x_t**2, 1)
    ratio = err.mean() / norm.mean()
    se = np.std(err - ratio * norm) / np.sqrt(len(err)) / norm.mean()
    assert abs(ratio - ar_gd.limit_error(eta, dist)) < 4 * se + 0.005
