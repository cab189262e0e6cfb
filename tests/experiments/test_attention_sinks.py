import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import attention_sinks
from workbench.experiments._base import SeedRun
from workbench.interp.attention import sink_share

TINY = ["steps=30", "n_symbols=6", "n_triggers=2", "seq_len=12", "d_model=16", "d_mlp=32", "eval_size=16",
        "eval_every=10", "log_every=10", "ckpt_every=30", "smooth_window=3"]


@pytest.fixture(scope="module")
def tiny(tiny_group):
    return tiny_group("attention-sinks", TINY)


def test_sink_share_and_sink_removal():
    seq = 5
    on_bos = jnp.zeros((1, seq, seq)).at[:, :, 0].set(1.0)
    assert np.allclose(sink_share(on_bos), 1.0)
    uniform = jnp.tril(jnp.ones((seq, seq))) / jnp.arange(1, seq + 1)[:, None]
    assert np.allclose(sink_share(uniform[None]), 1.0 / np.arange(1, seq + 1))
    removed = attention_sinks._remove_sink(uniform[None], renormalise=True)[0]
    assert np.allclose(removed.sum(-1), 1.0) and np.all(removed[1:, 0] == 0) and removed[0, 0] == 1.0
    assert np.allclose(attention_sinks._remove_sink(uniform[None], renormalise=False)[0, 1:, 1:], uniform[1:, 1:])


def test_run_and_analyse_write_checks_measures_and_figures(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == ["softmax_copy_acc", "softmax_sink_dormant",
                                                "softmax_bos_value_ablation", "linear_sink_dormant"]
    assert all(np.isfinite(c.check.ours) for c in summary.checks)
    run = SeedRun(0, group / "seed-0")
    steps, share = run.curve("eval", "softmax/sink_dormant")
    assert list(steps) == [0, 10, 20, 30] and np.all((share >= 0) & (share <= 1))
    extras = run.read_json("extras")
    assert summary.checks[1].check.ours == pytest.approx(extras["final"]["softmax"]["sink_dormant"])
    assert extras["references"]["bayes"] < extras["final"]["softmax"]["loss"]
    assert set(summary.figures) == {"softmax", "linear", "patterns"}
    models = attention_sinks.load_models(config, group / "seed-0")
    assert [m.config.attention_type for m in models] == ["softmax", "linear"]


def test_presets_and_bad_config():
    assert set(attention_sinks.EXPERIMENT.presets) == {"quick", "default", "paper"}
    with pytest.raises(ValueError, match="n_triggers"):
        attention_sinks.Config(n_symbols=3, n_triggers=3)
