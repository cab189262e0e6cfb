"""Every notebook (jupytext percent .py) executes top to bottom at the quick preset.

The notebooks start from a copy of the session's quick icl-gd runs, so the icl-gd notebook reuses
its finished seed 0 (as a user's would) instead of training it again.
"""

import shutil
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, quick_icl_gd, tmp_path, monkeypatch):
    shutil.copytree(quick_icl_gd[0], tmp_path / "runs")
    monkeypatch.setenv("WB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WB_PRESET", "quick")
    notebook = jupytext.read(path)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
