import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.interp import probes
from workbench.models import Transformer, TransformerConfig, run_with_cache, sites

N, D, FOLDS, TEST = 4000, 16, 5, 0.25
LAMS = jnp.asarray(probes.DEFAULT_LAMS)


@eqx.filter_jit
def _fit(x, y, key=jax.random.key(3)):
    groups = probes.split_groups(key, x.shape[0], FOLDS, TEST)
    stats = probes.ridge_stats(x, y, groups, FOLDS + 1)
    probe = probes.fit_ridge(stats, LAMS, FOLDS)
    held = jax.tree.map(lambda v: v[FOLDS:], stats)
    return probe, probes.r2_from_stats(probe, held), groups


@pytest.fixture(scope="module")
def acts():
    """Correlated, off-centre activations [N, D] (a residual stream is neither white nor centred)."""
    mix = jax.random.normal(jax.random.key(1), (D, D)) / np.sqrt(D)
    return 3.0 + jax.random.normal(jax.random.key(0), (N, D)) @ mix


def test_planted_linear_feature_is_recovered(acts):
    direction = jax.random.normal(jax.random.key(2), (D, 2))
    y = acts @ direction + 0.05 * jax.random.normal(jax.random.key(4), (N, 2))
    probe, r2, groups = _fit(acts, y)
    assert float(r2.min()) > 0.99
    held = groups == FOLDS
    assert float(probes.r2_score(probe(acts[held]), y[held])) == pytest.approx(float(r2.mean()), abs=1e-4)


def test_pure_noise_scores_zero_within_sampling_error(acts):
    y = jax.random.normal(jax.random.key(5), (N, 2))
    _, r2, groups = _fit(acts, y)
    n_test = int((groups == FOLDS).sum())
    n_train = N - n_test
    # Held-out R^2 = 1 - SSE/SST of a predictor independent of the test labels. Its excess risk over the
    # mean is at most OLS's, E = (D + 1) / (n_train - D - 2) (Gaussian design, intercept included); the
    # cross term fluctuates with sd <= 2 sqrt(E / n_test); and a predictor correlated with the test labels
    # by chance gains at most rho^2 with rho ~ N(0, 1/n_test). Four standard deviations on each side:
    excess = (D + 1) / (n_train - D - 2)
    tol = excess + 4 * 2 * np.sqrt(excess / n_test) + 16 / n_test
    assert float(jnp.abs(r2).max()) < tol, (r2, tol)


def test_ridge_equals_the_closed_form_and_cv_equals_explicit_folds(acts):
    y = acts[:, :2] - 0.5 * acts[:, 3:5] + jax.random.normal(jax.random.key(6), (N, 2))
    probe, _, groups = _fit(acts, y)
    x, t, g = (np.asarray(a, np.float64) for a in (acts, y, groups))
    train = g < FOLDS
    mx, my = x[train].mean(0), t[train].mean(0)
    cov = (x[train] - mx).T @ (x[train] - mx) / train.sum()
    W = np.linalg.solve(cov + float(probe.lam) * np.eye(D), (x[train] - mx).T @ (t[train] - my) / train.sum())
    np.testing.assert_allclose(np.asarray(probe.W), W, rtol=1e-3, atol=1e-4)  # float32 vs float64
    for i in (0, 8, 16):
        lam, sse = float(LAMS[i]), 0.0
        for f in range(FOLDS):
            fit, val = train & (g != f), g == f
            mxf, myf = x[fit].mean(0), t[fit].mean(0)
            cov = (x[fit] - mxf).T @ (x[fit] - mxf) / fit.sum()
            Wf = np.linalg.solve(cov + lam * np.eye(D), (x[fit] - mxf).T @ (t[fit] - myf) / fit.sum())
            sse += np.sum(((x[val] - mxf) @ Wf + myf - t[val]) ** 2)
        assert float(probe.cv_mse[i]) == pytest.approx(sse / (2 * train.sum()), rel=1e-3)


def test_merged_statistics_equal_one_pass(acts):
    y = acts[:, :2] ** 2
    groups = probes.split_groups(jax.random.key(7), N, FOLDS, TEST)
    whole = probes.ridge_stats(acts, y, groups, FOLDS + 1)
    parts = probes.merge(probes.ridge_stats(acts[:1234], y[:1234], groups[:1234], FOLDS + 1),
                         probes.ridge_stats(acts[1234:], y[1234:], groups[1234:], FOLDS + 1))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(parts), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-5, atol=1e-3 * float(jnp.abs(a).max()) * 1e-2)


POSITIONS = (1, 4, 5)
CONFIG = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=6, d_vocab=7, d_mlp=32)


@pytest.fixture(scope="module")
def tiny():
    """A tiny model, 600 prompts, a target planted in layer 0's input (a projection of resid_pre 0), and
    the sweep over (layer, position) in one batch and streamed 128 prompts at a time."""
    model = Transformer(CONFIG, key=jax.random.key(0))
    xs = jax.random.randint(jax.random.key(1), (600, 6), 0, 7)
    name = sites.resid_pre(0)
    targets = _cache(model, xs, name) @ jax.random.normal(jax.random.key(2), (16, 3))
    kw = dict(key=jax.random.key(3), component="resid_pre", positions=POSITIONS)
    whole = probes.probe_resid(model, xs, targets, batch_size=600, **kw)
    streamed = probes.probe_resid(model, xs, targets, batch_size=128, **kw)
    return model, xs, targets, whole, streamed


@eqx.filter_jit
def _cache(model, xs, name):
    return jax.vmap(lambda x: run_with_cache(model, x, (name,)))(xs)[1][name]


def test_sweep_streams_batches_and_finds_the_planted_site(tiny):
    _, _, _, whole, streamed = tiny
    np.testing.assert_allclose(np.asarray(streamed.r2.values), np.asarray(whole.r2.values), atol=1e-3)
    assert whole.r2.axes == ("layer", "pos") and whole.r2.values.shape == (2, 3)
    assert float(whole.r2.values[0].min()) > 0.999  # the target is linear in resid_pre 0
    assert float(jnp.abs(whole.control_r2.values).max()) < 0.1  # shuffled targets: nothing to find
    np.testing.assert_allclose(np.asarray(whole.selectivity.values),
                               np.asarray(whole.r2.values - whole.control_r2.values))
    assert whole.n_train + whole.n_test == 600


def test_vmapped_sweep_equals_one_fit_per_site(tiny):
    model, xs, targets, sweep, _ = tiny
    _, groups, _ = probes.sweep_groups(jax.random.split(jax.random.key(3))[0], 600, FOLDS, 512)
    for layer in range(2):
        acts = _cache(model, xs, sites.resid_pre(layer))
        for j, pos in enumerate(POSITIONS):
            stats = probes.ridge_stats(acts[:, pos], targets[:, pos], groups, FOLDS + 1)
            probe = probes.fit_ridge(stats, LAMS, FOLDS)
            r2 = probes.r2_from_stats(probe, jax.tree.map(lambda v: v[FOLDS:], stats)).mean()
            assert float(sweep.r2.values[layer, j]) == pytest.approx(float(r2), abs=1e-4)


def test_random_init_baseline_is_a_fresh_model_of_the_same_shape(tiny):
    model = tiny[0]
    fresh = probes.random_init(model, jax.random.key(9))
    assert fresh.config == model.config
    leaves = zip(jax.tree.leaves(eqx.filter(model, eqx.is_array)), jax.tree.leaves(eqx.filter(fresh, eqx.is_array)))
    assert any(not np.array_equal(a, b) for a, b in leaves)


def test_logistic_probe_vmaps_over_sites(acts):
    direction = jax.random.normal(jax.random.key(8), (D,))
    labels = (acts @ direction > (acts @ direction).mean()).astype(int) + 2 * (acts[:, 0] > 3.0)
    stacked = jnp.stack([acts, jax.random.normal(jax.random.key(9), acts.shape)])  # [site, N, D]
    fit = jax.vmap(lambda x: probes.fit_logistic(x[:3000], labels[:3000], 4, steps=300))(stacked)
    acc = jax.vmap(lambda p, x: probes.accuracy(p, x[3000:], labels[3000:]))(fit, stacked)
    assert float(acc[0]) > 0.95
    chance = float(np.max(np.bincount(np.asarray(labels[3000:])))) / 1000
    assert float(acc[1]) < chance + 4 * np.sqrt(chance * (1 - chance) / 1000)


def test_mlp_probe_decodes_a_nonlinear_feature_that_ridge_misses(acts):
    y = jnp.abs(acts[:, :2] - 3.0)
    probe = probes.fit_mlp(acts[:3000], y[:3000], key=jax.random.key(10), steps=600)
    mlp_r2 = float(probes.r2_score(probe(acts[3000:]), y[3000:]))
    _, ridge_r2, _ = _fit(acts, y)
    assert mlp_r2 > 0.8 and float(ridge_r2.max()) < 0.2
