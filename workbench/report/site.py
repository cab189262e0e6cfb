"""Build the mkdocs site offline: ship plotly.js and MathJax once as site assets, then `mkdocs build --strict`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from workbench.core.errors import WorkbenchError

PLOTLY_ASSET = Path("assets") / "javascripts" / "plotly.min.js"
MATHJAX_ASSET = Path("assets") / "javascripts" / "mathjax" / "tex-svg-full.js"


def _copy_if_changed(source: Path, target: Path) -> Path:
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return target


def install_plotly_js(docs: Path) -> Path:
    """Copy the plotly.js bundled with the plotly package into the docs (no CDN at view time)."""
    import plotly

    return _copy_if_changed(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", Path(docs) / PLOTLY_ASSET)


def install_mathjax(docs: Path) -> Path:
    """Copy MathJax 3's self-contained TeX-to-SVG build (from the `django-static-mathjax` wheel) into the docs."""
    try:
        import mathjax  # the django-static-mathjax distribution: plain MathJax files, no Django import
    except ImportError:
        raise WorkbenchError("MathJax is not installed", "install the docs extra: pip install -e '.[docs]'") from None
    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    return _copy_if_changed(source, Path(docs) / MATHJAX_ASSET)


def git_commit(root: Path) -> str | None:
    """The short commit of the checkout at `root` (with `+dirty` for uncommitted changes), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def build_site(mkdocs_yml: Path, site: Path, docs: Path | None = None) -> Path:
    """Build the site into `site` in strict mode from `docs` (default: the config's); return its home page."""
    mkdocs_yml = Path(mkdocs_yml).resolve()
    if not mkdocs_yml.exists():
        raise WorkbenchError(f"{mkdocs_yml} not found", "run `wb report` from the repository root")
    docs = Path(docs).resolve() if docs is not None else mkdocs_yml.parent / "docs"
    install_plotly_js(docs)
    install_mathjax(docs)
    env = {**os.environ, "WB_DOCS_DIR": str(docs), "NO_MKDOCS_2_WARNING": "1"}
    site = Path(site).resolve()
    staging = site.with_name(f".{site.name}.building")  # a failed build leaves the previous site in place
    shutil.rmtree(staging, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-q",
                           "-f", str(mkdocs_yml), "-d", str(staging)],
                          capture_output=True, text=True, cwd=mkdocs_yml.parent, env=env)
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        errors = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if "ERROR" in line or "WARNING" in line]
        raise WorkbenchError(f"mkdocs build failed: {' / '.join(errors) or proc.stderr.strip()[-400:]}",
                             "fix the pages or settings named there (the build is strict)")
    if site.exists():
        shutil.rmtree(site)
    os.replace(staging, site)
    return site / "index.html"
