import jax
import numpy as np
import pytest

from workbench.experiments import icl_autoregressive as ar
from workbench.run.runner import run_experiment
from workbench.theory import ar_gd

TINY = ["steps=200", "batch_size=128", "eval_size=512", "eval_every=100", "ckpt_every=200", "log_every=50",
        "seq_len=12"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return out, run_experiment("icl-autoregressive", preset="quick", seeds=[0, 1], overrides=TINY, out=out, vmap=True)


def test_run_and_analyse_write_checks_and_figures(tiny_run):
    _, summary = tiny_run
    names = [c.name for c in summary.checks]
    expected = [f"{k}_{d}" for d in ar.X1_DISTS for k in ("pred_cosine", "construction_cosine", "error_ratio", "eta")]
    assert names == expected + ["gaussian_error_floor"]
    assert {c.name: c.check for c in summary.checks}["gaussian_error_floor"].paper == pytest.approx(1 / 3)
    assert set(summary.figures) >= {"error_vs_t_rademacher", "error_vs_t_gaussian", "weights", "training"}
    assert "departs from one GD step" in summary.markdown


def test_structured_init_is_the_scaled_construction():
    config = ar.PRESETS["quick"]
    layers = ar._init(config, jax.random.key(0))
    kq, pv = ar_gd.construction(config.d)
    for layer, (_, init) in zip(layers, ar.LAYERS, strict=True):
        s = ar.weight_structure(layer, config.d)
        if init == "structured":
            np.testing.assert_allclose(np.asarray(layer.W_KQ), config.init_scale * kq, rtol=1e-6)
            assert s["construction_cosine"] == pytest.approx(1.0, abs=1e-6)
            assert s["eta_eff"] == pytest.approx(config.init_scale**2, rel=1e-5)
        else:
            assert abs(s["construction_cosine"]) < 0.5


def test_measure_of_the_exact_construction_is_one_gd_step():
    """A layer set to the construction with the fitted step matches one GD step: cosine 1, ratio 1."""
    config = ar.Config(d=4, seq_len=12, eval_size=512)
    layers = ar._init(config, jax.random.key(0))
    m = ar.measure(config, layers, jax.random.key(1))
    for dist in ar.X1_DISTS:
        assert m[dist]["pred_cosine"] == pytest.approx(1.0, abs=1e-5)
        assert m[dist]["construction_cosine"] == pytest.approx(1.0, abs=1e-6)
        # the prediction is eta_init * g, so its error ratio to the fitted step exceeds 1 unless eta_init = eta*
        assert m[dist]["model_over_gd"] >= 1.0 - 1e-6
        assert m[dist]["ols"][-1] < 1e-6  # noiseless: OLS recovers W from d pairs


def test_bad_config_names_the_fix():
    with pytest.raises(ValueError, match="d=4"):
        ar.Config(d=5)
