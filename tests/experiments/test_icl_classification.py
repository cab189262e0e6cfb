import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.core.io import MetricsLog
from workbench.experiments import icl_classification as ic
from workbench.experiments._base import SeedRun

TINY = ["steps=20", "n_context=2", "n_labels=3", "n_classes=4", "dim=4", "d_model=16", "mlp_width=16", "eval_size=32",
        "progress_prompts=16", "eval_every=10", "log_every=10", "ckpt_every=20"]


@pytest.fixture(scope="module")
def tiny(tiny_group):
    """One seed of `wb run icl-classification --preset quick --vmap --set ...`: group folder, summary, config."""
    return tiny_group("icl-classification", TINY)


def test_run_and_analyse_write_checks_progress_measures_and_figures(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == ["ic_jump_present", "ic_plateau_accuracy", "ic_final_accuracy",
                                                "ila1_rise_at_jump", "tila2_rise_at_jump",
                                                "control_final_ic_accuracy"]
    assert set(summary.figures) == {"ic_accuracy", "control", "splits"}
    run = SeedRun(0, group / "seed-0")
    for model in ic.MODELS:
        for name in ("ic_accuracy", "ic2_accuracy", "iwl_accuracy", "ic_cla", "ila1", "tila2"):
            steps, values = run.curve("eval", f"{model}/{name}")
            assert list(steps) == [0, 10, 20] and np.all((values >= 0) & (values <= 1)), (model, name)
    extras = run.read_json("extras")
    assert extras["phases"]["main"]["final_accuracy"] == summary.checks[2].check.ours
    assert 0 < extras["random_context_label"]["main"] < extras["random_context_label"]["control"] <= 1
    main, control = ic.load_models(config, group / "seed-0")
    assert main.readout[-1].out_features == 3 and control.readout[-1].out_features == 2


def test_encoding_interleaves_items_and_labels_with_one_hot_positions():
    items = jnp.arange(3 * 2, dtype=jnp.float32).reshape(3, 2)
    labels = -jnp.arange(3 * 2, dtype=jnp.float32).reshape(3, 2) - 1
    tokens = np.asarray(ic.encode(items, labels))
    assert tokens.shape == (5, 2 + 5)
    np.testing.assert_array_equal(tokens[:, :2], [items[0], labels[0], items[1], labels[1], items[2]])
    np.testing.assert_array_equal(tokens[:, 2:], np.eye(5))


def test_attention_measures_of_a_uniform_attention_model():
    """With W_Q = 0 every causal head attends uniformly: ILA1 = mean of 1/(2i+2), TILA2 = 1/(2N+1)."""
    config = ic.Config(n_context=4, n_labels=8, n_classes=16, dim=8, d_model=16, mlp_width=16)
    task = ic.make_tasks(config, ic.task_key())[0]
    model = ic.Classifier(config, config.n_labels, key=jax.random.key(0))
    for layer in range(2):
        model = eqx.tree_at(lambda m: m.transformer.blocks[layer].attn.W_Q, model,
                            jnp.zeros_like(model.transformer.blocks[layer].attn.W_Q))
    prompts = eqx.filter_jit(task.prompts)(jax.random.key(1), 16, "ic")
    out = eqx.filter_jit(ic.attention_measures)(model, prompts)
    n = config.n_context
    assert float(out["ila1"]) == pytest.approx(np.mean(1 / (2 * np.arange(n) + 2)), rel=1e-5)
    assert float(out["tila2"]) == pytest.approx(1 / (2 * n + 1), rel=1e-5)
    # the matching item carries the query's label
    labels = np.asarray(prompts.labels)
    assert np.all(labels[np.arange(16), np.asarray(prompts.match)] == labels[:, -1])


def test_most_frequent_context_label_accuracy():
    labels = jnp.array([[0, 1, 2, 3, 1], [1, 1, 2, 3, 1], [1, 1, 2, 2, 1], [0, 1, 2, 3, 4]])
    # 1/4 (four-way tie), 1 (label 1 is the mode), 1/2 (tie of 1 and 2), 0 (query label absent)
    assert float(ic.random_context_label_accuracy(labels, 5)) == pytest.approx((0.25 + 1 + 0.5 + 0) / 4)


def _seed_with_curve(folder, steps, acc, measure) -> SeedRun:
    folder.mkdir()
    log = MetricsLog(folder / "metrics.jsonl")
    for t, a, x in zip(steps, acc, measure):
        log.log(int(t), "eval", {"main/ic_accuracy": a, "main/ila1": x, "main/tila2": x, "main/ic_cla": x})
    return SeedRun(0, folder)


def test_phases_find_the_plateau_and_the_jump(tmp_path):
    config = ic.Config(steps=2000, eval_every=50, smooth_window=3)
    steps = np.arange(0, 2001, 50)
    acc = 1 / 32 + (0.125 - 1 / 32) * (1 - np.exp(-steps / 100)) + 0.87 / (1 + np.exp(-(steps - 1000) / 20))
    late = 1 / (1 + np.exp(-(steps - 1000) / 20))
    ph = ic.phases(config, _seed_with_curve(tmp_path / "jump", steps, acc, late))
    assert ph["jump_present"] and abs(ph["jump_step"] - 1000) <= 50 and ph["half_step"] == 1000
    assert ph["plateau_accuracy"] == pytest.approx(0.125, abs=0.01) and ph["jump_width"] <= 200
    assert ph["ila1_rise_step"] == ph["jump_step"]
    # a steady climb to the same final accuracy is no jump
    ramp = ic.phases(config, _seed_with_curve(tmp_path / "ramp", steps, 0.1 + 0.9 * steps / 2000, late))
    assert not ramp["jump_present"] and ramp["final_accuracy"] == pytest.approx(1.0) and ramp["jump_width"] > 800


def test_presets_and_bad_config():
    presets = ic.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    paper = presets["paper"]
    assert (paper.n_labels, paper.n_context, paper.dim, paper.eps, paper.p_novel) == (32, 8, 63, 0.1, 1.0)
    with pytest.raises(ValueError, match="n_labels"):
        ic.Config(n_labels=8)
    with pytest.raises(ValueError, match="burstiness"):
        ic.Config(burstiness=3)
    with pytest.raises(ValueError, match="progress_prompts"):
        ic.Config(eval_size=64)
