import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import icl_function_classes as fc
from workbench.experiments._base import SeedRun
from workbench.experiments._task_group import sample_batch
from workbench.tasks import predictors as P

TINY = ["steps=20", "n_layers=1", "d_model=16", "eval_size=64", "n_ilwd_prompts=4", "eval_every=10", "log_every=10",
        "ckpt_every=20"]


@pytest.fixture(scope="module")
def tiny(tiny_group):
    return tiny_group("icl-function-classes", TINY)


def test_run_and_analyse_write_checks_and_figures(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == [
        "linear_error_past_d", "linear_follows_min_norm", "linear_beats_averaging", "spd_to_least_squares",
        "best_ridge_lambda", "sparse_beats_least_squares", "relu_beats_baselines", "tree_beats_baselines"]
    assert {c.name: c.check for c in summary.checks}["best_ridge_lambda"].paper == pytest.approx(0.25)
    assert set(summary.figures) == {"error_vs_k", "algorithm_match", "ridge_penalty", "training"}
    extras = SeedRun(0, group / "seed-0").read_json("extras")
    lin = extras["linear"]
    assert len(lin["error"]["model"]) == config.n_points
    # noiseless linear prompts: least squares is exact from k = d on, and follows (d - k)/d before
    assert max(lin["error"]["ols"][config.d + 1:]) < 1e-3
    assert len(lin["ilwd"]["ols"]) == config.n_points and len(extras["mspd_lambda"]) == len(fc.LAMBDAS)


def test_error_scales_are_the_zero_predictors_error():
    """E[y^2] per task against Monte Carlo over 4,096 prompts x 11 points: the sd of a mean of y^2 is below
    3% of the scale for every class here (y^2 of a Gaussian has sd sqrt(2) E y^2), so 10% cannot fail by chance."""
    config = fc.PRESETS["default"]
    scale = fc.y_scale(config)
    for i, (name, task) in enumerate(fc.make_tasks(config).items()):
        batch = sample_batch(task, jax.random.key(i), 4096)
        assert float(jnp.mean(batch.ys**2)) == pytest.approx(scale[name], rel=0.1), name


def test_least_squares_and_averaging_follow_their_closed_forms():
    """Error / d on 16,384 noiseless prompts (d = 5): min-norm least squares (d - k)/d, averaging (d + 1)/k.
    Averaging's squared errors are heavy-tailed (y^2 x^4 terms): over 4,096 prompts its k = 1 mean spread by
    12% between keys, so 16,384 prompts give about 6% and 20% is over three sd."""
    config = fc.PRESETS["default"]
    batch = sample_batch(fc.make_tasks(config)["linear"], jax.random.key(7), 16384)
    k = np.arange(1, config.n_points)
    ols = np.mean((fc.prefix_batch(P.ols, batch.xs, batch.ys) - batch.ys) ** 2, 0)[1:] / config.d
    avg = np.mean((fc.prefix_batch(P.averaging, batch.xs, batch.ys) - batch.ys) ** 2, 0)[1:] / config.d
    np.testing.assert_allclose(ols[: config.d - 1], (config.d - k[: config.d - 1]) / config.d, rtol=0.2)
    assert np.max(ols[config.d:]) < 1e-4
    np.testing.assert_allclose(avg, (config.d + 1) / k, rtol=0.2)


def test_implied_weights_fit_the_models_prediction_at_each_prefix(tiny):
    group, _, config = tiny
    model = fc.load_models(config, group / "seed-0")[0]
    key = jax.random.split(jax.random.key(3), 3)
    xs, ys = jax.random.normal(key[0], (config.n_points, config.d)), jax.random.normal(key[1], (config.n_points,))
    probes = jax.random.normal(key[2], (config.n_probe, config.d))
    w = fc.implied_weights(model, xs, ys, probes, config.layout)
    k = 4  # by hand: the probe in place of x_k, the prompt cut after it (later pairs cannot matter)
    predict = eqx.filter_jit(fc.prompts.predict)
    preds = jnp.stack([predict(model, xs[: k + 1].at[k].set(p), ys[: k + 1], config.layout)[k] for p in probes])
    np.testing.assert_allclose(w[k], jnp.linalg.lstsq(probes, preds)[0], rtol=1e-4, atol=1e-5)


def test_prefix_weights_of_least_squares_and_spd():
    key = jax.random.key(0)
    xs = jax.random.normal(key, (9, 3))
    ys = xs @ jnp.array([1.0, -2.0, 0.5])
    w = fc.prefix_weights(P.ols, xs, ys)
    assert w.shape == (9, 3)
    np.testing.assert_allclose(w[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(w[5], [1.0, -2.0, 0.5], atol=1e-4)
    spd = fc.spd(jnp.zeros((4, 9)), jnp.ones((4, 9)), d=3)
    np.testing.assert_allclose(spd, 1 / 3)


def test_ratio_margin_is_positive_only_when_below_every_baseline():
    err = {"model": [1.0, 0.5, 0.2], "a": [1.0, 1.0, 0.4], "b": [1.0, 0.6, 0.1]}
    assert fc._ratio_margin(err, slice(1, 2), ("a", "b")) == pytest.approx(1 - 0.5 / 0.6)
    assert fc._ratio_margin(err, slice(1, None), ("a", "b")) < 0  # at k = 2, b is below the model


def test_presets_and_config_errors():
    assert set(fc.EXPERIMENT.presets) == {"quick", "default", "paper"}
    with pytest.raises(ValueError, match="n_points"):
        fc.Config(n_points=6)
    with pytest.raises(ValueError, match="sparsity"):
        fc.Config(sparsity=6)
