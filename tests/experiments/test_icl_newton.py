import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import _icl_prompts as prompts
from workbench.experiments import icl_newton as nt
from workbench.experiments._base import SeedRun
from workbench.run.runner import group_dir, make_config, run_experiment
from workbench.tasks.predictors import GD
from workbench.theory import newton as theory

TINY = ["steps=20", "warmup=5", "n_layers=3", "d_model=16", "probe_size=128", "eval_size=128", "newton_steps=6",
        "gd_max_log2=4", "eval_every=10", "log_every=10", "ckpt_every=20"]
CHECKS = [f"{c}_{v}" for v in ("gaussian", "ill") for c in
          ("newton_monotone", "newton_steps_per_layer", "gd_superlinear", "last_layer_newton_cosine")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    summary = run_experiment("icl-newton", preset="quick", seeds=[0], overrides=TINY, out=out)
    group = group_dir(out, "icl-newton", summary.config_hash, vmap=False)
    return group, summary, make_config(nt.EXPERIMENT, "quick", TINY)


def test_run_and_analyse_write_checks_figures_and_per_layer_numbers(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == CHECKS
    assert set(summary.figures) == {"newton_heatmap", "gd_heatmap", "best_steps", "errors", "training"}
    extras = SeedRun(0, group / "seed-0").read_json("extras")
    assert extras["layers"] == [1, 2, 3] and extras["gd_grid"] == list(config.gd_grid)
    for v in ("gaussian", "ill"):
        r = extras[v]
        assert np.asarray(r["newton_cosine"]).shape == (3, config.newton_steps + 1)
        assert np.asarray(r["gd_cosine"]).shape == (3, len(config.gd_grid))
        assert np.all(np.abs(r["newton_cosine"]) <= 1 + 1e-5)
        assert set(r["gd_best"]) <= set(config.gd_grid)
        # Newton's iterates converge to least squares: its error at the last step is below the first's
        assert np.mean(r["newton_mse"][-1]) < np.mean(r["newton_mse"][0])


def _prompt(key, n=7, d=3):
    kx, kw = jax.random.split(key)
    xs = jax.random.normal(kx, (n, d))
    return xs, xs @ jax.random.normal(kw, (d,))


def test_newton_predictions_follow_the_closed_form_iterates():
    xs, ys = _prompt(jax.random.key(0))
    preds = nt.newton_predictions(xs[None], ys[None], 6)[:, 0]  # [step, n]
    np.testing.assert_allclose(preds[:, 0], 0.0)  # nothing before the first point
    j = 5
    x, y = np.asarray(xs[:j], np.float64), np.asarray(ys[:j], np.float64)
    for k in (0, 3, 6):
        w = theory.iterate_closed_form(x.T @ x, k) @ x.T @ y
        np.testing.assert_allclose(preds[k, j], np.asarray(xs[j]) @ w, rtol=2e-3, atol=2e-4)


def test_gd_closed_form_equals_iterated_gd_with_step_one_over_s_max():
    xs, ys = _prompt(jax.random.key(1))
    j = 6
    mask = jnp.arange(xs.shape[0]) < j
    s_max = float(jnp.linalg.eigvalsh(xs[:j].T @ xs[:j])[-1])
    ws = nt.gd_weights(xs, ys, mask, jnp.asarray([1.0, 4.0, 32.0]))
    for w, t in zip(ws, (1, 4, 32)):
        # the library's GD averages the gradient over the k used points: its step is k / s_max here
        expected = GD(j / s_max, t)(xs, ys, mask, jnp.eye(xs.shape[1]))
        np.testing.assert_allclose(w, expected, rtol=1e-4, atol=1e-5)
    preds = nt.gd_predictions(xs[None], ys[None], jnp.asarray([1.0, 2.0]))
    assert preds.shape == (2, 1, xs.shape[0]) and float(jnp.abs(preds[:, 0, 0]).max()) == 0.0


def test_residual_cosine_and_summaries():
    ys = jnp.asarray([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    pred = ys + jnp.asarray([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert float(nt.residual_cosine(pred, pred, ys)) == pytest.approx(1.0)
    assert float(nt.residual_cosine(pred, 2 * ys - pred, ys)) == pytest.approx(-1.0)
    other = ys + jnp.asarray([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # orthogonal in prompt 0, parallel in prompt 1
    assert float(nt.residual_cosine(pred, other, ys)) == pytest.approx(0.5)
    cos = np.array([[0.5, 0.9995, 1.0, 0.99], [0.1, 0.2, 0.3, 0.4]])
    assert nt.best_steps(cos, (1, 2, 4, 8), tie_tol=1e-3) == [2.0, 8.0]  # the tie goes to the smaller step
    assert nt.spearman([1, 2, 3, 4], [1, 5, 5, 9]) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2.5, 2.5, 4])[0, 1])
    assert np.isnan(nt.spearman([1, 2, 3], [4, 4, 4]))
    layers = np.arange(1, 9)
    assert nt.power_exponent(layers, 3.0 * layers**2) == pytest.approx(2.0)
    assert nt.power_exponent(layers, 2.0**layers) > 2.0  # exponential growth is super-linear
    assert nt.slope(layers, 2 * layers + 1) == pytest.approx(2.0)


def test_rotated_task_has_the_spectrum_in_a_fresh_basis_per_prompt():
    config = nt.Config(n_points=4000, condition_number=100.0)
    task = nt.make_tasks(config)["ill"]
    batch = task.sample(jax.random.key(2), 2)
    np.testing.assert_allclose(batch.ys, jnp.einsum("bnd,bd->bn", batch.xs, batch.ws), rtol=1e-5, atol=1e-5)
    covs = jnp.einsum("bni,bnj->bij", batch.xs, batch.xs) / batch.xs.shape[1]
    for cov in covs:
        evals = np.sort(np.linalg.eigvalsh(np.asarray(cov)))
        np.testing.assert_allclose(evals, np.sort(np.asarray(task.eigs)), rtol=0.15)
    assert float(np.asarray(task.eigs).max() / np.asarray(task.eigs).min()) == pytest.approx(100.0, rel=1e-4)
    assert not np.allclose(covs[0], covs[1], atol=0.1)  # the rotation differs between prompts


def test_readout_recovers_a_linear_target_and_predictions_are_causal(tiny):
    key = jax.random.key(3)
    resid = jax.random.normal(key, (2, 64, 5, 6))
    w = jnp.arange(6.0)
    ys = resid[0] @ w
    pred = nt.readout_predictions(resid, ys, resid)
    np.testing.assert_allclose(pred[0], ys, atol=0.05 * float(jnp.std(ys)))
    group, _, config = tiny
    model = nt.load_models(config, group / "seed-0")[0]
    xs, ys = _prompt(jax.random.key(4), n=config.n_points, d=config.d)
    toks = prompts.xy_tokens(xs, ys)
    np.testing.assert_array_equal(toks[1::2, : config.d], xs)
    np.testing.assert_array_equal(toks[0::2, config.d], 0.0)
    k, predict = 4, eqx.filter_jit(prompts.batch_predict)
    batch = lambda y: nt.RegressionBatch(xs=xs[None], ys=y[None], ws=jnp.zeros((1, config.d)))  # noqa: E731
    changed = predict(model, batch(ys.at[k:].set(0.0)), config.layout)[0]
    full = predict(model, batch(ys), config.layout)[0]
    np.testing.assert_allclose(changed[: k + 1], full[: k + 1], rtol=1e-5, atol=1e-5)
    assert not jnp.allclose(changed[k + 1:], full[k + 1:])


def test_presets_are_complete():
    presets = nt.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    assert presets["paper"].layout == "garg" and not presets["paper"].attn_only
    assert presets["default"].n_points == 2 * presets["default"].d
    assert presets["default"].gd_grid[0] == 1 and presets["default"].gd_grid[-1] == 2**13
    with pytest.raises(ValueError, match="layout"):
        nt.Config(layout="other")
