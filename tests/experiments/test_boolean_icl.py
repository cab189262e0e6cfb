import jax
import numpy as np
import pytest

from workbench.experiments import boolean_icl
from workbench.experiments._base import SeedRun

TINY = ["steps=20", "n_vars=4", "n_points=8", "late_from=4", "d_model=16", "eval_size=32", "eval_every=10",
        "log_every=10", "ckpt_every=20"]


@pytest.fixture(scope="module")
def tiny(tiny_group):
    """One seed of `wb run boolean-icl --preset quick --vmap --set ...`: group folder, summary, config."""
    return tiny_group("boolean-icl", TINY)


def test_encoding_puts_the_previous_example_beside_the_query():
    xs = np.array([[1.0, -1.0], [-1.0, -1.0], [1.0, 1.0]], np.float32)
    tokens = np.asarray(boolean_icl.encode(xs, np.array([1, 0, 1])))
    np.testing.assert_array_equal(tokens[0], [1, -1, 0, 0, 0, 0])
    np.testing.assert_array_equal(tokens[2], [1, 1, -1, -1, -1, 1])


def test_run_and_analyse_write_checks_and_figures(tiny):
    group, summary, config = tiny
    assert [c.name for c in summary.checks] == ["conjunction_late_accuracy", "parity_late_accuracy",
                                                "teaching_after_prefix_accuracy"]
    assert all(0 <= c.check.ours <= 1 for c in summary.checks)
    assert set(summary.figures) == {"accuracy", "training"}
    run = SeedRun(0, group / "seed-0")
    steps, acc = run.curve("eval", "teaching/after_prefix_accuracy")
    assert list(steps) == [0, 10, 20] and np.all((acc >= 0) & (acc <= 1))
    extras = run.read_json("extras")
    assert len(extras["parity"]["model"]) == config.n_points and "bayes" in extras["parity"]
    # the reference learners are exact where they should be: elimination right after a teaching prefix
    assert extras["teaching"]["elimination@after_prefix"] == 1.0
    late = np.mean(extras["conjunction"]["model"][config.late_from:])
    assert summary.checks[0].check.ours == pytest.approx(late)
    assert len(boolean_icl.load_models(config, group / "seed-0")) == 3


def test_presets_and_bad_config():
    presets = boolean_icl.EXPERIMENT.presets
    assert set(presets) == {"quick", "default", "paper"}
    assert (presets["default"].n_points, presets["default"].parity_k) == (40, 2)
    with pytest.raises(ValueError, match="late_from"):
        boolean_icl.Config(late_from=40)
    with pytest.raises(ValueError, match="n_heads"):
        boolean_icl.Config(d_model=30)
