import math

import equinox as eqx
import jax
import numpy as np
import pytest

from workbench.experiments import markov_fixed
from workbench.experiments._base import SeedRun
from workbench.tasks.markov import FixedMarkovSource, binary_entropy

TINY = ["steps=30", "seq_len=12", "eval_size=16", "progress_prompts=8", "eval_every=10", "log_every=10",
        "ckpt_every=30", "smooth_window=3"]


@pytest.fixture(scope="module")
def tiny(tiny_group):
    """One seed of `wb run markov-fixed --preset quick --vmap --set ...`: group folder, summary, config."""
    return tiny_group("markov-fixed", TINY)


@pytest.mark.parametrize("p, q, unigram, rate", [(0.5, 0.8, 0.666, 0.619), (0.8, 0.8, 0.693, 0.500),
                                                 (0.2, 0.3, 0.673, 0.545)])
def test_closed_forms_match_makkuva(p, q, unigram, rate):
    ref = markov_fixed.references(FixedMarkovSource.binary(p, q))
    assert ref["unigram"] == pytest.approx(unigram, abs=5e-4)
    assert ref["entropy_rate"] == pytest.approx(rate, abs=5e-4)


@pytest.mark.parametrize("delta, optimum", [(0.1, 0.325), (0.2, 0.500)])
def test_closed_forms_match_rajaraman(delta, optimum):
    ref = markov_fixed.references(FixedMarkovSource.switching(2, delta))
    assert ref["unigram"] == pytest.approx(math.log(2), abs=1e-6)
    assert ref["entropy_rate"] == pytest.approx(optimum, abs=5e-4)
    assert ref["entropy_rate"] == pytest.approx(binary_entropy(delta), abs=1e-6)


def test_tied_unembedding_is_the_embedding_and_trains_it(tiny):
    _, _, config = tiny
    models = markov_fixed._init(config, jax.random.key(0))
    tokens = FixedMarkovSource.binary(0.5, 0.8, seq_len=config.seq_len).sample(jax.random.key(1), 4).tokens
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: markov_fixed.token_loss(markov_fixed.tie(m), tokens)))(models[0])
    assert np.array_equal(markov_fixed.tie(models[0]).unembed.W_U, models[0].embed.W_E.T)
    assert not np.any(grads.unembed.W_U) and np.any(grads.embed.W_E)


def test_run_and_analyse_write_checks_progress_measures_and_figures(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == ["binary_1layer_loss", "binary_2layer_loss", "switching_1layer_loss",
                                                "switching_2layer_loss"]
    assert all(np.isfinite(c.check.ours) for c in summary.checks)
    run = SeedRun(0, group / "seed-0")
    steps, score = run.curve("eval", "switching_2layer/prev_token.a1.h0")
    assert list(steps) == [0, 10, 20, 30] and np.all((score >= 0) & (score <= 1))
    assert set(summary.figures) == {"losses", *markov_fixed.MODELS}
    extras = run.read_json("extras")
    assert set(extras["phases"]) == set(markov_fixed.MODELS)
    binary = extras["references"]["binary"]
    assert binary["unigram"] > binary["entropy_rate"]
    final = run.curve("eval", "binary_2layer/loss")[1][-1]
    assert summary.checks[1].check.ours == pytest.approx(final)
    models = markov_fixed.load_models(config, group / "seed-0")
    assert len(models) == 4 and [len(m.blocks) for m in models] == [1, 2, 1, 2]


def test_presets_and_bad_config():
    presets = markov_fixed.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    assert (presets["default"].p, presets["default"].q, presets["default"].order, presets["default"].delta) == (
        0.5, 0.8, 2, 0.1)
    assert presets["quick"].steps * presets["quick"].batch_size < presets["default"].steps * presets["default"].batch_size
    with pytest.raises(ValueError, match="markov-fixed.p"):
        markov_fixed.Config(p=1.5)
    with pytest.raises(ValueError, match="progress_prompts"):
        markov_fixed.Config(eval_size=8, progress_prompts=16)
