"""The circuit-benchmark experiment on a tiny config: its checks, records and figures."""

import pytest

from workbench.experiments import SeedRun
from workbench.experiments import circuit_benchmark as exp

TINY = exp.Config(programs="frac_prevs", ablations="zero,mean", prompts=16, ig_steps=2, n_symbols=4, length=8, d_model=16, n_heads=2, steps=100, batch_size=32,
                  induction_prompts=8)


pytestmark = pytest.mark.slow  # ~2 min on 2 shared cores: every method compiles for each model


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = SeedRun(0, tmp_path_factory.mktemp("circuits"))
    [checks] = exp.EXPERIMENT.run(TINY, [run])
    return run, {c.name: c for c in checks}


def test_checks_records_and_figures(tiny_run):
    run, checks = tiny_run
    assert set(checks) == {"acdc_auc_frac_prevs"}  # reverse's check: in the presets (and a slow test)
    assert all(0.0 <= c.ours <= 1.0 for c in checks.values())
    records = run.read_json("circuits")
    assert set(records) == {"frac_prevs", "induction"}
    zero = records["frac_prevs"]["ablations"]["zero"]
    assert set(zero) == set(exp.METHODS)
    for rec in zero.values():  # every size from one edge to the full model, which is faithful by construction
        assert len(rec["faithfulness"]) == records["frac_prevs"]["n_edges"] and rec["faithfulness"][-1] == 1.0
    assert "acdc_zero_circuit_faithfulness" in records["frac_prevs"]["ablations"]["mean"]
    analysis = exp.EXPERIMENT.analyse(TINY, [run])
    assert set(analysis.figures) == {"auc", "faithfulness_program", "faithfulness_induction", "runtime",
                                     "program_truth", "program_acdc"}
    assert "reference set" in analysis.markdown and "| induction | mean |" in analysis.markdown


def test_bad_config():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        exp.Config(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="programs are some of"):
        exp.Config(programs="reverse,nope")
