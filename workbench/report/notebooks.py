"""Executed notebooks for the site: run each jupytext notebook at a preset against a runs folder, then
turn its plotly outputs into the site's own figure blocks (drawn by the shipped plotly.js, no CDN)."""

import os
from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.core.io import write_bytes_atomic

from .pages import figure_html

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def site_outputs(notebook, stem: str) -> None:
    """Replace each plotly output (mimetype JSON) by an HTML figure block, in place."""
    count = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                output["data"] = {"text/html": figure_html(f"{stem}-{count}", dict(data[PLOTLY_MIME]))}
                count += 1


def execute_notebook(source: Path, target: Path, runs: Path, preset: str, timeout: int = 900) -> Path:
    """Execute the jupytext notebook `source` (cwd: its folder, runs in `runs`) and write `target` (.ipynb).

    Raises the kernel's error (nbclient's CellExecutionError) when a cell fails; nothing is written then.
    """
    try:
        import jupytext
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        raise WorkbenchError("notebook execution needs jupytext and nbclient",
                             "install the notebooks extra: pip install -e '.[notebooks]'") from None
    notebook = jupytext.read(source)
    env = {**os.environ, "WB_RUNS": str(Path(runs).resolve()), "WB_PRESET": preset, "PLOTLY_RENDERER": "plotly_mimetype"}
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(source).resolve().parent)}})
    client.execute(env=env)
    site_outputs(notebook, Path(source).stem)
    write_bytes_atomic(target, nbformat.writes(notebook).encode())
    return target
