"""The report site, built once from the session's quick icl-gd run, then opened in headless Chromium.

The runs folder also holds a corrupted group folder (named and skipped) and a benchmark record; the
other experiments of the package have no runs, so they show as "not run" with their command.
"""

import functools
import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from workbench import experiments
from workbench.report import Planned, build_site, scan_runs, write_pages
from workbench.report.notebooks import site_outputs
from workbench.report.scoreboard import scoreboard_markdown
from workbench.run.runner import command_line, load_experiment

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def planned(seeds=(0, 1, 2)) -> list[Planned]:
    return [Planned(n, load_experiment(n).title, load_experiment(n).paper, command_line(n, "quick", list(seeds), []))
            for n in experiments.names()]


def _notebook(path: Path) -> None:
    """A small executed-looking notebook whose plotly output is the mimetype JSON a kernel would send."""
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 0.5, 0.25], name="loss"))
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A notebook\n\nThe loss $L(W)$ falls."),
        nbformat.v4.new_code_cell("fig.show()", execution_count=1, outputs=[nbformat.v4.new_output(
            "display_data", data={"application/vnd.plotly.v1+json": json.loads(pio.to_json(fig))})]),
    ])
    site_outputs(notebook, "demo")
    path.write_text(nbformat.writes(notebook))


@pytest.fixture(scope="module")
def built(quick_icl_gd, repo, tmp_path_factory):
    runs_src, summary = quick_icl_gd
    tmp = tmp_path_factory.mktemp("site")
    runs = tmp / "runs"
    shutil.copytree(runs_src, runs, ignore=shutil.ignore_patterns("checkpoints"))
    broken = runs / "scan-snap" / "0123456789"
    broken.mkdir(parents=True)
    (broken / "summary.json").write_text('{"experiment": "scan-snap", "checks": [')
    (runs / "benchmarks").mkdir()
    (runs / "benchmarks" / "kernels.json").write_text(json.dumps({
        "benchmark": "kernels", "machine": {"platform": "test-machine", "cpu_count": 2},
        "results": [], "ratios": {"scan_snap_vmap_over_loop": 12.5}}))
    docs = tmp / "docs"
    shutil.copytree(repo / "docs", docs, ignore=shutil.ignore_patterns("results", "*.ipynb", "mathjax", "plotly.min.js"))
    _notebook(docs / "notebooks" / "demo.ipynb")
    pages, skipped = write_pages(runs, docs, planned=planned(), commit="abc1234")
    home = build_site(repo / "mkdocs.yml", tmp / "site", docs)
    return {"runs": runs, "docs": docs, "site": tmp / "site", "home": home, "pages": pages, "skipped": skipped,
            "summary": summary, "broken": broken}


def test_scoreboard_rows_come_from_checks_and_the_experiments_package(built):
    board = (built["docs"] / "results" / "_scoreboard.md").read_text()
    summary = built["summary"]
    for check in summary.checks:
        assert f"`{check.name}`" in board
    passing = sum(c.passed for c in summary.checks)
    others = [p for p in planned() if p.name != "icl-gd"]
    assert f"**{passing} passing · {len(summary.checks) - passing} missing · {len(others)} not run**" in board
    for p in others:
        assert f"| {p.title}: `{p.command}` | | | | not run | | | |" in board
    assert f"commit `{summary.commit}`" in board if summary.commit else "commit `abc1234`" in board
    html = built["home"].read_text()
    assert html.count("<tr>") == len(summary.checks) + len(others) + 1  # + the header row
    assert 'href="results/icl-gd/"' in html


def test_a_corrupted_run_folder_is_named_and_skipped(built):
    assert len(built["skipped"]) == 1 and str(built["broken"]) in built["skipped"][0]
    assert "not valid JSON" in built["skipped"][0]
    assert str(built["broken"]) in built["home"].read_text()
    assert [p.name for p in built["pages"]] == ["index.md", "icl-gd.md"]


def test_removing_the_run_folder_turns_its_rows_into_not_run(built, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(built["runs"], runs)
    before, _ = scan_runs(runs)
    shutil.rmtree(runs / "icl-gd")
    after, _ = scan_runs(runs)
    assert set(before) == {"icl-gd"} and after == {}
    board = scoreboard_markdown(after, planned(), [], None)
    icl = next(p for p in planned() if p.name == "icl-gd")
    assert f"| {icl.paper.split(', *')[0]} | {icl.title}: `{icl.command}` | | | | not run | | | |" in board
    assert f"**0 passing · 0 missing · {len(planned())} not run**" in board


def test_result_page_has_figures_checks_command_and_config(built):
    summary = built["summary"]
    html = (built["site"] / "results" / "icl-gd" / "index.html").read_text()
    assert html.count('class="wb-figure-data"') == len(summary.figures) >= 3
    assert summary.command in (built["docs"] / "results" / "icl-gd.md").read_text()  # highlighted in the HTML
    assert "<details" in html and summary.config_hash in html
    for check in summary.checks:
        assert check.name in html


def test_site_ships_its_assets_and_references_nothing_outside(built):
    site = built["site"]
    assert (site / "assets" / "javascripts" / "plotly.min.js").stat().st_size > 1_000_000
    assert (site / "assets" / "javascripts" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    assert "12.5" in (site / "performance" / "index.html").read_text()
    assert (site / "notebooks" / "demo" / "index.html").exists()
    assert (site / "api" / "models" / "index.html").read_text().count("doc-heading") > 3
    for page in site.rglob("*.html"):
        text = page.read_text()
        external = re.findall(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(?:https?:)?//[^"]+"', text)
        assert not external, f"{page} loads {external}"


def test_index_page_without_runs_says_what_to_do(tmp_path):
    pages, skipped = write_pages(tmp_path / "no-runs", tmp_path / "docs")
    assert "make report" in pages[0].read_text() and skipped == []


# --- the browser: headless Debian chromium driven by Selenium -------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(built):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make test` installs them with apt-get)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(built["site"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    shots = Path(os.environ.get("WB_SCREENSHOTS", built["site"] / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    yield driver, f"http://127.0.0.1:{server.server_address[1]}", shots
    driver.quit()
    server.shutdown()
    server.server_close()


def _wait(driver, script: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if driver.execute_script(script):
            return True
        time.sleep(0.2)
    return False


FIGURES_DRAWN = ("const f = document.querySelectorAll('.wb-figure');"
                 "return [...f].every(d => d.querySelector('svg.main-svg'));")
NOTEBOOK_DRAWN = (FIGURES_DRAWN[:-1] + " && document.querySelector('.jp-RenderedMarkdown mjx-container svg') !== null;")
MATH_DRAWN = ("const m = document.querySelectorAll('.arithmatex');"
              "return m.length > 0 && [...m].every(e => e.querySelector('mjx-container svg'));")


def test_pages_render_in_chromium_offline(browser, built):
    driver, base, shots = browser
    pages = {"scoreboard": ("/", None), "result-icl-gd": ("/results/icl-gd/", FIGURES_DRAWN),
             "theory-lsa-gd": ("/theory/lsa-gd/", MATH_DRAWN), "notebook": ("/notebooks/demo/", NOTEBOOK_DRAWN)}
    requests, errors = [], []
    for name, (path, ready) in pages.items():
        driver.get(base + path)
        assert _wait(driver, "return document.readyState === 'complete'")
        if ready:
            assert _wait(driver, ready), f"{path}: not drawn ({ready})"
        if name == "result-icl-gd":
            n = driver.execute_script("return document.querySelectorAll('.wb-figure svg.main-svg').length")
            assert n >= len(built["summary"].figures)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(height, 800), 6000))
        driver.save_screenshot(str(shots / f"{name}.png"))
        driver.set_window_size(1280, 1600)
        errors += [f"{path}: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
    print(f"screenshots in {shots}")
    assert not errors
    assert requests and all(u.startswith(base) or u.startswith(("data:", "blob:")) for u in requests), \
        [u for u in requests if not u.startswith((base, "data:", "blob:"))]
    assert {p.name for p in shots.glob("*.png")} >= {f"{n}.png" for n in pages}


def test_wb_report_names_skipped_folders_and_lists_not_run_commands(built, tmp_path):
    from typer.testing import CliRunner

    from workbench.run.cli import app

    result = CliRunner().invoke(app, ["report", "--runs", str(built["runs"]), "--docs", str(tmp_path / "docs"),
                                      "--no-build", "--seeds", "0-1"])
    assert result.exit_code == 2, result.output  # the good pages are written, the site built, the bad folder named
    assert f"error: skipped {built['broken']}" in result.output
    board = (tmp_path / "docs" / "results" / "_scoreboard.md").read_text()
    assert "`wb run scan-snap --preset quick --seeds 0-1 --vmap`" in board and "(`loss_ratio_to_gd`)" in board
