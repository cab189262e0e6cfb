"""transformer-programs on the quick preset's two tasks with a one-layer program, trained briefly: the
discretised model, its decompiled Python and its recompiled RASP transformer agree on every test
output (agreement holds for any discretised program, so a short run tests it); records, figures,
bad input. Training compiles two programs and two baselines (well over 20 s on 2 cores), so the
runs are marked slow; tests/rasp/test_learned.py checks the same agreement on random programs in CI."""

import dataclasses

import pytest

from workbench.experiments import SeedRun
from workbench.experiments import transformer_programs as exp

TINY = dataclasses.replace(exp.PRESETS["quick"], n_layers=1, steps=20, eval_every=10, test_size=100,
                           baseline_d_model=8)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run = SeedRun(0, tmp_path_factory.mktemp("tprog"))
    [checks] = exp.EXPERIMENT.run(TINY, [run])
    return run, {c.name: c for c in checks}


@pytest.mark.slow
def test_three_way_agreement_on_the_full_test_set(quick_run):
    run, checks = quick_run
    assert len(TINY.task_list) >= 2
    assert set(checks) == {f"{kind}_{t}" for t in TINY.task_list for kind in ("accuracy", "agreement")}
    for task in TINY.task_list:
        record = run.read_json(f"program_{task}")
        assert record["test_size"] == TINY.test_size
        assert record["agreement_python"] == 1.0 and record["agreement_compiled"] == 1.0, task
        assert checks[f"agreement_{task}"].passed and checks[f"agreement_{task}"].tolerance == 0.0
        assert 0.0 <= record["accuracy"] <= 1.0 and 0.0 <= record["standard_accuracy"] <= 1.0
        assert "def run(tokens):" in record["source"]


@pytest.mark.slow
def test_analysis_lists_every_task_with_its_program_and_circuit(quick_run):
    run, _ = quick_run
    analysis = exp.EXPERIMENT.analyse(TINY, [run])
    assert {"accuracy", "training"} | {f"circuit_{t}" for t in TINY.task_list} == set(analysis.figures)
    for task in TINY.task_list:
        assert f"| {task} |" in analysis.markdown
        assert f'??? abstract "Decompiled program: {task}' in analysis.markdown
    for task in set(exp.TASKS) - set(TINY.task_list):  # the page lists every task of the paper
        assert f"| {task} | {exp.PAPER_ACCURACY[task]:.3f} | not run |" in analysis.markdown


def test_presets_and_bad_input():
    assert set(exp.EXPERIMENT.presets) == {"quick", "default", "paper"}
    assert set(exp.PRESETS["default"].task_list) == set(exp.TASKS)
    paper = exp.PRESETS["paper"]
    assert (paper.n_symbols, paper.length, paper.dyck_length, paper.batch_size, paper.lr) == (8, 8, 16, 512, 5e-2)
    with pytest.raises(ValueError, match="unknown task sorting; choose from reverse"):
        exp.Config(tasks="sort,sorting")
    with pytest.raises(ValueError, match="unknown task"):
        exp.make_task(TINY, "nope")


@pytest.mark.slow
def test_quick_preset_agrees_on_both_tasks(tmp_path):
    quick = exp.PRESETS["quick"]
    [checks] = exp.EXPERIMENT.run(quick, [SeedRun(0, tmp_path)])
    for task in quick.task_list:
        assert {c.name: c for c in checks}[f"agreement_{task}"].ours == 1.0
