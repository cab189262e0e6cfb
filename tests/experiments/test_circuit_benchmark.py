"""The circuit-benchmark experiment on tiny configs: its checks, records and figures."""

import dataclasses

import pytest

from workbench.experiments import SeedRun
from workbench.experiments import circuit_benchmark as exp

TINY = exp.Config(programs="frac_prevs", ablations="zero,mean", prompts=16, ig_steps=2, n_symbols=4, length=8,
                  d_model=16, n_heads=2, steps=100, batch_size=32, induction_prompts=8, induction=False)


def _run(config, tmp_path_factory):
    run = SeedRun(0, tmp_path_factory.mktemp("circuits"))
    [checks] = exp.EXPERIMENT.run(config, [run])
    return run, {c.name: c for c in checks}, exp.EXPERIMENT.analyse(config, [run])


def _check_program(records, checks):
    assert set(checks) == {"acdc_auc_frac_prevs"}  # reverse's check: in the presets (and a slow test)
    assert all(0.0 <= c.ours <= 1.0 for c in checks.values())
    zero = records["frac_prevs"]["ablations"]["zero"]
    assert set(zero) == set(exp.METHODS)
    for rec in zero.values():  # every size from one edge to the full model, which is faithful by construction
        assert len(rec["faithfulness"]) == records["frac_prevs"]["n_edges"] and rec["faithfulness"][-1] == 1.0
    assert "acdc_zero_circuit_faithfulness" in records["frac_prevs"]["ablations"]["mean"]


def test_checks_records_and_figures_of_a_compiled_program(tmp_path_factory):
    run, checks, analysis = _run(TINY, tmp_path_factory)
    records = run.read_json("circuits")
    assert set(records) == {"frac_prevs"}
    _check_program(records, checks)
    assert set(analysis.figures) == {"auc", "faithfulness_program", "runtime", "program_truth", "program_acdc"}
    assert "reference set" in analysis.markdown and "| frac_prevs | mean |" in analysis.markdown


@pytest.mark.slow  # ~1 min on 2 cores: every method compiles again for the trained model
def test_the_induction_model_adds_its_records_and_figure(tmp_path_factory):
    config = dataclasses.replace(TINY, induction=True)
    run, checks, analysis = _run(config, tmp_path_factory)
    records = run.read_json("circuits")
    assert set(records) == {"frac_prevs", "induction"}
    _check_program(records, checks)
    assert "faithfulness_induction" in analysis.figures and "| induction | mean |" in analysis.markdown


def test_bad_config():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        exp.Config(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="programs are some of"):
        exp.Config(programs="reverse,nope")
