"""The report: result pages from run folders, a strict mkdocs build, and no network requests."""

import re
import shutil

from workbench.report import build_site, write_pages


def test_site_builds_strictly_with_figures_and_no_external_requests(quick_icl_gd, repo, tmp_path):
    runs, summary = quick_icl_gd
    shutil.copytree(repo / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("results"))
    shutil.copy(repo / "mkdocs.yml", tmp_path / "mkdocs.yml")
    pages = write_pages(runs, tmp_path / "docs")
    assert {p.name for p in pages} == {"index.md", "icl-gd.md"}
    index = build_site(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert index.exists()
    html = (tmp_path / "site" / "results" / "icl-gd" / "index.html").read_text()
    assert html.count('class="wb-figure-data"') == len(summary.figures) >= 3
    assert "loss_ratio_to_gd" in html and "Reproduce" in html
    assert summary.command in (tmp_path / "docs" / "results" / "icl-gd.md").read_text()
    assert (tmp_path / "site" / "assets" / "javascripts" / "plotly.min.js").stat().st_size > 1_000_000
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        external = re.findall(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(https?:)?//[^"]+"', text)
        assert not external, f"{page} loads {external}"
        assert "fonts.googleapis" not in text and "cdn." not in text


def test_index_page_without_runs_says_what_to_do(tmp_path):
    pages = write_pages(tmp_path / "no-runs", tmp_path / "docs")
    assert "make report" in pages[0].read_text()
