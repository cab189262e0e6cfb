"""Every notebook (jupytext percent .py) executes top to bottom at the quick preset.

The notebooks start from a copy of the session's finished runs (quick icl-gd, the scaled-down icl-zfb
and markov-icl of their experiment tests), so a notebook reuses a finished seed (as a user's would) instead of training
it again. A notebook gets the `WB_SET` overrides of the shared run it reuses: the test
checks that the notebook runs, its experiment's test checks the numbers.
"""

import shutil
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, quick_icl_gd, tiny_icl_zfb, tiny_markov_icl, tmp_path, monkeypatch):
    for runs in (quick_icl_gd[0], tiny_icl_zfb[0], tiny_markov_icl[0]):
        shutil.copytree(runs, tmp_path / "runs", dirs_exist_ok=True)
    monkeypatch.setenv("WB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WB_PRESET", "quick")
    shrink = {"icl_regression": tiny_icl_zfb[2], "induction_heads": tiny_markov_icl[2]}
    monkeypatch.setenv("WB_SET", " ".join(shrink.get(path.stem, [])))
    notebook = jupytext.read(path)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
