"""The cdt-attribution experiment on a tiny config: its checks, records and figures."""

import pytest

from workbench.experiments import SeedRun
from workbench.experiments import cdt_attribution as exp

TINY = exp.Config(lsa_d=3, lsa_n=4, lsa_prompts=4, n_symbols=4, length=8, d_model=16, n_heads=2, steps=150,
                  batch_size=32, prompts=8, rasp_prompts=4)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = SeedRun(0, tmp_path_factory.mktemp("cdt"))
    [checks] = exp.EXPERIMENT.run(TINY, [run])
    return run, {c.name: c for c in checks}


def test_checks_are_the_documented_ones_and_the_exact_ones_pass(tiny_run):
    _, checks = tiny_run
    assert set(checks) == {"lsa_fixed_pattern_equals_gd_terms", "lsa_spearman_vs_patching", "induction_accuracy",
                           "induction_spearman_vs_patching", "rasp_hist_top_heads_are_ground_truth",
                           "rasp_frac_prevs_top_heads_are_ground_truth", "rasp_reverse_top_heads_are_ground_truth"}
    for name in ("lsa_fixed_pattern_equals_gd_terms", "lsa_spearman_vs_patching",
                 "rasp_hist_top_heads_are_ground_truth", "rasp_frac_prevs_top_heads_are_ground_truth"):
        assert checks[name].passed, (name, checks[name].ours)
    # reverse's length head reaches the output only through a query: CD-T finds a3.h0, not a0.h0
    assert checks["rasp_reverse_top_heads_are_ground_truth"].ours == 0.5


def test_records_and_figures(tiny_run):
    run, _ = tiny_run
    induction = run.read_json("induction")
    assert len(induction["cdt"]) == 2 and len(induction["cdt"][0]) == 2 and len(induction["cdt"][0][0]) == 9
    assert induction["cdt_seconds"] > 0 and induction["patching_seconds"] > 0
    analysis = exp.EXPERIMENT.analyse(TINY, [run])
    assert set(analysis.figures) == {"lsa_cdt_vs_gd", "induction_cdt", "induction_patching", "cdt_vs_patching",
                                     "spearman", "runtime", "rasp_scores"}
    assert "| induction |" in analysis.markdown


def test_presets_and_bad_config():
    assert set(exp.EXPERIMENT.presets) == {"quick", "default", "paper"}
    with pytest.raises(ValueError, match="multiple of n_heads"):
        exp.Config(d_model=30, n_heads=4)
