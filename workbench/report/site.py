"""Build the mkdocs site offline: ship plotly.js once as a site asset, then `mkdocs build --strict`."""

import shutil
import subprocess
import sys
from pathlib import Path

from workbench.core.errors import WorkbenchError

PLOTLY_ASSET = Path("assets") / "javascripts" / "plotly.min.js"


def install_plotly_js(docs: Path) -> Path:
    """Copy the plotly.js bundled with the plotly package into the docs (no CDN at view time)."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = Path(docs) / PLOTLY_ASSET
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def build_site(mkdocs_yml: Path, site: Path) -> Path:
    """Build the site into `site` in strict mode; return the index page to open."""
    mkdocs_yml = Path(mkdocs_yml).resolve()
    if not mkdocs_yml.exists():
        raise WorkbenchError(f"{mkdocs_yml} not found", "run `wb report` from the repository root")
    install_plotly_js(mkdocs_yml.parent / "docs")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-q",
                           "-f", str(mkdocs_yml), "-d", str(Path(site).resolve())], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"mkdocs build failed:\n{proc.stdout}\n{proc.stderr}")
    return Path(site).resolve() / "results" / "index.html"
