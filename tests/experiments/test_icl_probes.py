import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import icl_probes as ip
from workbench.experiments._base import SeedRun

TINY = ["steps=20", "control_steps=10", "n_points=8", "n_layers=1", "d_model=16", "n_heads=1", "n_probe=384",
        "eval_size=128", "eval_every=10", "log_every=10", "ckpt_every=20"]


@pytest.fixture(scope="module")
def tiny(tiny_group):
    return tiny_group("icl-probes", TINY)


def test_run_and_analyse_write_checks_figures_and_scores(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == ["icl_matches_ols", "wols_beats_random_init", "wols_selectivity",
                                                "fixed_w_control_worse", "xty_not_after_wols",
                                                "wols_rises_with_depth"]
    assert set(summary.figures) == {"r2_by_layer", "heatmap", "by_position", "training"}
    extras = SeedRun(0, group / "seed-0").read_json("extras")
    assert extras["layers"] == [0, 1] and extras["seen_pairs"] == list(range(1, 8))
    for model in ip.MODELS:
        assert np.asarray(extras[model]["r2"]).shape == (2, 7, 3) == np.asarray(extras[model]["control_r2"]).shape
    # noiseless: once k >= d pairs are seen, w_OLS = w, so their probes score the same at the last token
    r2 = np.asarray(extras["trained"]["r2"])
    np.testing.assert_allclose(r2[:, -1, 0], r2[:, -1, 2], atol=1e-3)
    assert len(extras["spd_ols"]) == 8
    models = ip.load_models(config, group / "seed-0")  # the control trained in its own folder, from the same init
    assert len(models) == 2 and not np.allclose(models[0].embed.W_E, models[1].embed.W_E)


def test_prefix_targets_are_the_moments_and_least_squares_of_the_pairs_seen():
    k, d = 7, ip.D
    xs = jax.random.normal(jax.random.key(0), (k, d))
    w = jax.random.normal(jax.random.key(1), (d,))
    ys = xs @ w
    t = np.asarray(ip.prefix_targets(xs, ys, w))
    assert t.shape == (k, 3, d)
    np.testing.assert_allclose(t[:, 0], np.broadcast_to(w, (k, d)))
    x, y = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    for j in range(k):
        np.testing.assert_allclose(t[j, 1], x[:j].T @ y[:j], atol=1e-4)
        np.testing.assert_allclose(t[j, 2], np.linalg.pinv(x[:j]) @ y[:j] if j else np.zeros(d), atol=1e-3)
    np.testing.assert_allclose(t[d:, 2], np.broadcast_to(w, (k - d, d)), atol=1e-3)  # noiseless, k >= d
    assert np.linalg.norm(t[2, 2]) < np.linalg.norm(w)  # min-norm: the part of w outside the span is missing


def test_probe_scores_find_a_linear_code_and_not_the_control():
    n, d_model, d = 1200, 8, 2
    key_a, key_w, key_n = jax.random.split(jax.random.key(0), 3)
    acts = jax.random.normal(key_a, (2, n, 3, d_model))  # [layer, n, pos, d_model]
    readout = jax.random.normal(key_w, (d_model, d))
    coded = acts[1] @ readout  # layer 1 holds the target linearly, layer 0 is independent of it
    targets = jnp.stack([coded, jax.random.normal(key_n, coded.shape)], axis=2)  # [n, pos, 2 targets, d]
    r2, control = ip.probe_scores(acts, targets, jax.random.key(1))
    assert r2.shape == control.shape == (2, 3, 2)
    assert np.all(np.asarray(r2[1, :, 0]) > 0.99)
    assert np.all(np.abs(np.asarray(r2[0])) < 0.05) and np.all(np.abs(np.asarray(r2[1, :, 1])) < 0.05)
    assert np.all(np.abs(np.asarray(control)) < 0.05)


def test_decode_layer_and_the_order_gap():
    assert ip.decode_layer(jnp.array([0.1, 0.5, 0.9, 0.95]), 0.8) == 2
    assert ip.decode_layer(jnp.array([0.1, 0.5]), 0.8) is None
    wols, xty = ip.TARGETS.index("wols"), ip.TARGETS.index("xty")

    def record(dec):
        r2 = np.zeros((3, 2, 3))
        r2[:, :, wols] = [[0, 0.0], [0, 0.5], [0, 0.9]]
        scores = {"r2": r2.tolist(), "control_r2": np.zeros_like(r2).tolist(), "decode_layer": dec}
        return {name: scores for name in ip.MODELS}

    s = ip.summarise(record({"w": None, "xty": 1, "wols": 2}), n_layers=2)
    assert s["decode_gap"] == 1 and s["wols_r2"] == pytest.approx(0.9) and s["wols_min_step"] == pytest.approx(0.4)
    assert ip.summarise(record({"w": None, "xty": 1, "wols": None}), n_layers=2)["decode_gap"] == 2  # never: L + 1
    assert math.isnan(ip.summarise(record({"w": None, "xty": None, "wols": 2}), n_layers=2)["decode_gap"])


def test_fixed_weight_task_shares_one_w():
    config = ip.EXPERIMENT.presets["quick"]
    task = ip.control_task(config)
    batch = task.sample(jax.random.key(0), 16)
    np.testing.assert_array_equal(batch.ws, jnp.broadcast_to(task.w, (16, ip.D)))
    np.testing.assert_allclose(batch.ys, batch.xs @ task.w, rtol=1e-5, atol=1e-5)
    assert batch.xs.shape == (16, config.n_points, ip.D)


def test_presets_are_complete_and_config_is_validated():
    presets = ip.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    assert presets["paper"].n_layers == 16 and presets["default"].n_layers == 4
    with pytest.raises(ValueError, match="n_points"):
        ip.Config(n_points=ip.D + 1)
    with pytest.raises(ValueError, match="decode_r2"):
        ip.Config(decode_r2=1.5)
