"""The rasp-compile experiment module on two programs: checks, table and circuit figures."""

import pytest
from workbench.experiments import SeedRun
from workbench.experiments import rasp_compile as exp


def test_rasp_compile_runs_and_analyses(tmp_path):
    config = exp.Config(programs="reverse,frac_prevs")
    [checks] = exp.EXPERIMENT.run(config, [SeedRun(0, tmp_path)])
    by_name = {c.name: c for c in checks}
    assert by_name["reverse: agreement with the interpreter"].ours == 1.0
    assert by_name["reverse: layers (tracr)"].ours == 4
    assert by_name["frac_prevs: layers (tracr)"].ours == 2
    assert by_name["reverse: attention layers (RASP paper)"].ours == 2
    assert all(c.passed for c in checks)
    analysis = exp.EXPERIMENT.analyse(config, [SeedRun(0, tmp_path)])
    assert set(analysis.figures) == {"sizes", "circuit_reverse", "circuit_frac_prevs"}
    assert "| reverse | {1, 2, 3} | 5 | 4 | 2 | 1 |" in analysis.markdown


def test_config_rejects_unknown_programs():
    with pytest.raises(ValueError, match="no library program 'nope'"):
        exp.Config(programs="reverse,nope")
