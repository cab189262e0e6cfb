"""transformer-programs with the quick preset's architecture and tasks (two), trained briefly: the
discretised model, its decompiled Python and its recompiled RASP transformer agree on every test
output (agreement holds for any discretised program, so a short run tests it); records, figures,
bad input. The full quick preset runs in the slow test."""

import dataclasses

import pytest

from workbench.experiments import SeedRun
from workbench.experiments import transformer_programs as exp

QUICK = dataclasses.replace(exp.PRESETS["quick"], steps=40, eval_every=20, test_size=200)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    run = SeedRun(0, tmp_path_factory.mktemp("tprog"))
    [checks] = exp.EXPERIMENT.run(QUICK, [run])
    return run, {c.name: c for c in checks}


def test_three_way_agreement_on_the_full_test_set(quick_run):
    run, checks = quick_run
    assert len(QUICK.task_list) >= 2
    assert set(checks) == {f"{kind}_{t}" for t in QUICK.task_list for kind in ("accuracy", "agreement")}
    for task in QUICK.task_list:
        record = run.read_json(f"program_{task}")
        assert record["test_size"] == QUICK.test_size
        assert record["agreement_python"] == 1.0 and record["agreement_compiled"] == 1.0, task
        assert checks[f"agreement_{task}"].passed and checks[f"agreement_{task}"].tolerance == 0.0
        assert 0.0 <= record["accuracy"] <= 1.0 and 0.0 <= record["standard_accuracy"] <= 1.0
        assert "def run(tokens):" in record["source"]


def test_analysis_lists_every_task_with_its_program_and_circuit(quick_run):
    run, _ = quick_run
    analysis = exp.EXPERIMENT.analyse(QUICK, [run])
    assert {"accuracy", "training"} | {f"circuit_{t}" for t in QUICK.task_list} == set(analysis.figures)
    for task in QUICK.task_list:
        assert f"| {task} |" in analysis.markdown
        assert f'??? abstract "Decompiled program: {task}' in analysis.markdown
    for task in set(exp.TASKS) - set(QUICK.task_list):  # the page lists every task of the paper
        assert f"| {task} | {exp.PAPER_ACCURACY[task]:.3f} | not run |" in analysis.markdown


def test_presets_and_bad_input():
    assert set(exp.EXPERIMENT.presets) == {"quick", "default", "paper"}
    assert set(exp.PRESETS["default"].task_list) == set(exp.TASKS)
    paper = exp.PRESETS["paper"]
    assert (paper.n_symbols, paper.length, paper.dyck_length, paper.batch_size, paper.lr) == (8, 8, 16, 512, 5e-2)
    with pytest.raises(ValueError, match="unknown task sorting; choose from reverse"):
        exp.Config(tasks="sort,sorting")
    with pytest.raises(ValueError, match="unknown task"):
        exp.make_task(QUICK, "nope")


@pytest.mark.slow
def test_quick_preset_agrees_on_both_tasks(tmp_path):
    quick = exp.PRESETS["quick"]
    [checks] = exp.EXPERIMENT.run(quick, [SeedRun(0, tmp_path)])
    for task in quick.task_list:
        assert {c.name: c for c in checks}[f"agreement_{task}"].ours == 1.0
