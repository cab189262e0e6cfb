import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from workbench.models import LinearSelfAttention
from workbench.tasks import LinearRegression
from workbench.tasks.predictors import gd
from workbench.tasks.regression import predict_batch
from workbench.theory import lsa_gd

TASK = LinearRegression(d=4, n_points=6, x_dist="uniform")
BATCH = TASK.sample(jax.random.key(0), 64)


def predict(model, batch):
    return jax.vmap(model.predict)(batch.context_xs, batch.context_ys, batch.query_x)


def test_construction_predicts_one_gd_step():
    model = lsa_gd.construction(4, 6, eta=2.5)
    np.testing.assert_allclose(predict(model, BATCH), predict_batch(gd(2.5), BATCH), rtol=1e-5, atol=1e-6)


def test_keys_and_values_come_from_context_only():
    model = LinearSelfAttention(4, key=jax.random.key(1), init_scale=0.5)
    xs, ys = BATCH.context_xs[0], BATCH.context_ys[0]
    a = model.predict(xs, ys, BATCH.query_x[0])
    b = model.predict(xs, ys, 2 * BATCH.query_x[0])
    # the prediction is linear in x_query when the query is not among the keys
    np.testing.assert_allclose(b, 2 * a, rtol=1e-5)


def test_bilinear_form_is_invariant_to_the_scale_symmetry_and_predicts():
    model = LinearSelfAttention(4, key=jax.random.key(2), init_scale=0.5)
    rescaled = eqx.tree_at(lambda m: (m.W_V, m.P, m.W_K, m.W_Q), model,
                           (3 * model.W_V, model.P / 3, 0.5 * model.W_K, 2 * model.W_Q))
    np.testing.assert_allclose(lsa_gd.bilinear_form(rescaled), lsa_gd.bilinear_form(model), rtol=1e-5, atol=1e-6)
    # y_hat = sum_abc T_abc M_ab x_c with M the context tokens' second moment
    e = jnp.concatenate([BATCH.context_xs[0], BATCH.context_ys[0][:, None]], 1)
    y_hat = jnp.einsum("abc,ab,c->", lsa_gd.bilinear_form(model), e.T @ e, BATCH.query_x[0])
    np.testing.assert_allclose(y_hat, model.predict(BATCH.context_xs[0], BATCH.context_ys[0], BATCH.query_x[0]),
                               rtol=1e-4)


def test_construction_distance_and_effective_eta():
    assert lsa_gd.construction_distance(lsa_gd.construction(4, 6, 2.0), 6, 2.0) < 1e-6
    assert abs(lsa_gd.construction_distance(lsa_gd.construction(4, 6, 3.0), 6, 2.0) - 0.5) < 1e-5
    assert abs(lsa_gd.effective_eta(lsa_gd.construction(4, 6, 3.0), 6) - 3.0) < 1e-5
