import jax
import numpy as np
import pytest

from workbench.experiments import _markov_icl_patching as patching
from workbench.experiments import _progress, markov_icl
from workbench.experiments._base import SeedRun
from workbench.interp import Loss, activation_patching, site_grid
from workbench.run.runner import group_dir, make_config

@pytest.fixture(scope="module")
def tiny(tiny_markov_icl):
    """The session's tiny markov-icl run (one seed, vmapped): `(group folder, summary, config)`."""
    out, summary, overrides = tiny_markov_icl
    config = make_config(markov_icl.EXPERIMENT, "quick", overrides)
    return group_dir(out, "markov-icl", summary.config_hash, vmap=True), summary, config


def test_run_and_analyse_write_checks_progress_measures_and_figures(tiny):
    group, summary, _ = tiny
    assert [c.name for c in summary.checks] == ["plateau_loss", "final_loss", "kl_to_bigram",
                                                "induction_rise_at_transition", "prev_token_head_layer0",
                                                "induction_head_layer1", "key_path_share", "attribution_spearman"]
    names = {c.name: c.check for c in summary.checks}
    for name in ("final_loss", "kl_to_bigram", "prev_token_head_layer0", "attribution_spearman"):
        assert np.isfinite(names[name].ours)
    run = SeedRun(0, group / "seed-0")
    steps, values = run.curve("eval", "induction.a1.h0")
    assert list(steps) == [0, 10, 20, 30, 40] and np.all((values >= 0) & (values <= 1))
    assert len(run.curve("eval", "ablation.a1.h0")[1]) == 5 and len(run.curve("eval", "sink.a0.h0")[1]) == 5
    assert set(summary.figures) == {"progress", "kl", "head_ablation", "position_patching", "attribution"}
    extras = run.read_json("extras")
    assert np.shape(extras["patching"]["activation"]) == (2, 1, 16)
    # the estimators are ordered: uniform > unigram > bigram on the same sequences
    est = extras["estimators"]
    assert est["uniform"] > est["unigram"] > est["bigram"]


def test_patching_invariants_on_the_trained_model(tiny):
    group, _, config = tiny
    model = markov_icl.load_model(config, group / "seed-0")
    task = markov_icl.make_task(config)
    clean, corrupted = (task.sample(k, 4).tokens for k in jax.random.split(jax.random.key(7)))
    metric = Loss(targets=_progress.next_token_targets(clean))
    grid = site_grid(model.config, "z", config.seq_len)
    same = activation_patching(model, clean, clean, metric, grid, chunk=1)
    assert np.array_equal(np.asarray(same.patched.values), np.full(grid.shape, np.asarray(same.clean)))
    whole = activation_patching(model, clean, corrupted, metric, site_grid(model.config, "resid_pre",
                                                                            config.seq_len, by_pos=False))
    assert np.array_equal(np.asarray(whole.patched.values), np.full(2, np.asarray(whole.corrupted)))


def test_transition_and_plateau_on_a_synthetic_curve():
    steps = np.arange(0, 2001, 20)
    loss = 0.58 - 0.07 / (1 + np.exp(-(steps - 1200) / 40)) + 0.11 * np.exp(-steps / 60)
    assert _progress.transition_step(steps, loss, window=5) <= 100  # the first drop, from the uniform predictor
    assert abs(_progress.transition_step(steps, loss, window=5, after=400) - 1200) <= 20
    assert _progress.transition_step(steps, loss, after=3000) is None
    a, b = np.where(steps < 700, 1.0, 0.0), np.full(len(steps), 0.5)
    assert _progress.crossing_step(steps, a, b, window=1) == 700 and _progress.crossing_step(steps, b, a) is None
    rise = 1 / (1 + np.exp(-(steps - 1100) / 40))
    assert abs(_progress.steepest_rise(steps, rise) - 1100) <= 20


def test_spearman_with_ties():
    assert patching.spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    assert patching.spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    np.testing.assert_array_equal(patching.rank(np.array([5.0, 1.0, 5.0, 0.0])), [2.5, 1.0, 2.5, 0.0])


def test_presets_are_complete_and_quick_is_small():
    presets = markov_icl.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    paper, default = presets["paper"], presets["default"]
    assert (paper.n_symbols, paper.seq_len, paper.d_model, paper.n_heads, paper.batch_size, paper.steps, paper.lr,
            paper.weight_decay) == (2, 100, 16, 1, 64, 2000, 5e-4, 0.1)
    assert presets["quick"].steps * presets["quick"].eval_size <= default.steps * default.eval_size
