import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import icl_task_diversity as td
from workbench.experiments import _icl_prompts as prompts
from workbench.experiments._base import SeedRun
from workbench.run.runner import group_dir, make_config, run_experiment

TINY = ["steps=20", "n_layers=1", "d_model=16", "eval_size=128", "eval_every=10", "log_every=10", "ckpt_every=20"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    summary = run_experiment("icl-task-diversity", preset="quick", seeds=[0], overrides=TINY, out=out)
    group = group_dir(out, "icl-task-diversity", summary.config_hash, vmap=False)
    return group, summary, make_config(td.EXPERIMENT, "quick", TINY)


def test_run_and_analyse_write_checks_and_figures(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == ["ridge_baseline", "small_pool_follows_dmmse",
                                                "small_pool_fails_on_new_tasks", "fresh_tasks_follow_ridge",
                                                "large_pool_beats_dmmse"]
    assert {c.name: c.check for c in summary.checks}["ridge_baseline"].paper == pytest.approx(0.291)
    assert set(summary.figures) == {"true_loss", "estimator_distance", "pool_loss", "training"}
    extras = SeedRun(0, group / "seed-0").read_json("extras")
    assert extras["pool_sizes"] == [4, 256, 0] == list(config.pool_sizes)
    # dMMSE is Bayes-optimal on its own pool, so it beats ridge there (most clearly at M = 4)
    assert extras["pool"]["M4"]["dmmse"] < 0.8 * extras["pool"]["M4"]["ridge"]
    # on fresh tasks ridge is Bayes-optimal, so it beats the posterior over a small pool
    assert extras["true"]["M4"]["ridge"] < extras["true"]["M4"]["dmmse"]


def test_prediction_of_y_k_sees_only_earlier_pairs(tiny):
    group, _, config = tiny
    model = td.load_models(config, group / "seed-0")[0]
    xs = jax.random.normal(jax.random.key(0), (config.n_points, td.D))
    ys = jax.random.normal(jax.random.key(1), (config.n_points,))
    toks = prompts.tokens(xs, ys)
    assert toks.shape == (2 * config.n_points, td.D + 1)
    np.testing.assert_array_equal(toks[0::2, :td.D], xs)
    np.testing.assert_array_equal(toks[1::2, td.D], ys)
    k, predict = 5, eqx.filter_jit(prompts.predict)
    changed, full = predict(model, xs, ys.at[k:].set(0.0)), predict(model, xs, ys)
    np.testing.assert_allclose(changed[: k + 1], full[: k + 1], rtol=1e-6, atol=1e-6)
    assert not jnp.allclose(changed[k + 1:], full[k + 1:])


def test_crossover_interpolates_in_log2_m():
    rows = {"M4": {"delta_ridge": 4.0, "delta_dmmse": 1.0}, "M32": {"delta_ridge": 1.0, "delta_dmmse": 1.0 / 4},
            "M256": {"delta_ridge": 1.0, "delta_dmmse": 4.0}}
    # log gap: log 4, log 4, -log 4, so the sign changes half-way between 2^5 and 2^8
    assert td.crossover((4, 32, 256, 0), rows) == pytest.approx(6.5)
    assert td.crossover((4, 32, 0), {k: rows[k] for k in ("M4", "M32")}) is None


def test_presets_are_complete_and_quick_is_small():
    presets = td.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    assert presets["paper"].pool_sizes[-1] == td.INF and len(presets["paper"].pool_sizes) == 21
    assert presets["quick"].steps * len(presets["quick"].pool_sizes) < presets["default"].steps * 5 / 4
