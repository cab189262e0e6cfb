"""The `wb` command line: list, run, show, report, bench.

Bad input prints one line `error: ... (fix)` on stderr and exits with code 2, without a traceback.
"""

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from workbench import experiments
from workbench.core import Check, CheckSummary, GroupSummary, SeedSummary
from workbench.core.errors import TrainingDiverged, WorkbenchError
from workbench.core.io import read_json

from . import runner

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="The workbench: train, take apart and report small transformers.")

REPO = Path(__file__).resolve().parents[2]


@app.command("list")
def list_(tasks: Annotated[bool, typer.Option("--tasks", help="List the synthetic tasks instead.")] = False) -> None:
    """List experiments (name, title, presets)."""
    if tasks:
        from workbench.tasks import registry

        family = None
        for row in registry.describe_tasks(samples=False):
            if row["family"] != family:
                family = row["family"]
                print(f"\n{family}")
            params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
            print(f"  {row['name']:24s} {row['cls']:26s} ({row['paper']})\n"
                  f"  {'':24s} params: {params}\n  {'':24s} predictors: {', '.join(row['predictors'])}")
        return
    for name in experiments.names():
        experiment = runner.load_experiment(name)
        print(f"{name:20s} {experiment.title}  [presets: {', '.join(experiment.presets)}]")


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="Experiment name, e.g. icl-gd (see `wb list`).")],
    preset: Annotated[str, typer.Option(help="quick | default | paper")] = "quick",
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-4 or 0,3,7.")] = "0",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: key=value.")] = None,
    out: Annotated[Path, typer.Option(help="Folder that holds run folders.")] = Path("runs"),
    vmap: Annotated[bool, typer.Option("--vmap", help="Train all seeds at once with jax.vmap.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo seeds that are already complete.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary (with its checks) as JSON.")] = False,
    max_seeds: Annotated[int, typer.Option("--max-seeds", help="Refuse more seeds than this.")] = runner.MAX_SEEDS,
) -> None:
    """Run (or resume) an experiment for some seeds and analyse them."""
    seed_list = runner.parse_seeds(seeds, max_seeds)
    summary = runner.run_experiment(name, preset=preset, seeds=seed_list, overrides=set_ or [], out=out,
                                    vmap=vmap, force=force)
    if json_:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_checks(summary.experiment, summary.checks)
        print(f"run folder: {runner.group_dir(out, name, summary.config_hash, vmap)}")


def _print_checks(experiment: str, checks: Sequence[CheckSummary | Check]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{experiment} — checks")
    for column in ("check", "paper", "ours", "tolerance", "pass"):
        table.add_column(column)
    for c in checks:
        spread = c.spread if isinstance(c, CheckSummary) else 0.0
        check = c.check if isinstance(c, CheckSummary) else c
        ours = f"{check.ours:.4g}" + (f" ± {spread:.2g}" if spread else "")
        table.add_row(check.name, f"{check.paper:.4g}", ours, f"{check.tolerance:.3g}", "yes" if check.passed else "NO")
    Console().print(table)


@app.command()
def show(run_dir: Annotated[Path, typer.Argument(help="A run folder (group or seed-<s>).")]) -> None:
    """Show a run folder's config, status and checks."""
    path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise WorkbenchError(f"{run_dir} is not a folder", "pass a run folder such as runs/icl-gd/<hash>/seed-0")
    try:
        data = read_json(path)
    except (OSError, ValueError):
        raise WorkbenchError(f"{run_dir} is not a workbench run folder (no readable summary.json)",
                             "pass a folder made by `wb run`, e.g. runs/icl-gd/<hash>") from None
    try:  # a seed folder's summary has a status; a group folder's has the analysis
        summary = SeedSummary.from_dict(data) if isinstance(data, dict) and "status" in data else GroupSummary.from_dict(data)
    except ValueError as e:
        raise WorkbenchError(f"{path} is malformed: {e}", f"rerun the experiment, or move {run_dir} away") from None
    status = summary.status if isinstance(summary, SeedSummary) else "analysed"
    print(f"experiment: {summary.experiment}   config: {summary.config_hash}   status: {status}")
    if isinstance(summary, SeedSummary) and summary.error:
        print(f"error: {summary.error}")
    print(json.dumps(summary.config, indent=1, sort_keys=True))
    _print_checks(summary.experiment, summary.checks)


@app.command()
def report(
    runs: Annotated[Path, typer.Option(help="Folder that holds run folders.")] = Path("runs"),
    docs: Annotated[Path, typer.Option(help="mkdocs docs folder.")] = Path("docs"),
    site: Annotated[Path, typer.Option(help="Where to build the site.")] = Path("site"),
    build: Annotated[bool, typer.Option(help="Build the site after writing the pages.")] = True,
    run_preset: Annotated[Optional[str], typer.Option(
        "--run", help="First run this preset (quick | default | paper) of every experiment, reusing complete "
                      "runs, and execute the notebooks.")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds for --run and for the commands of experiments not run.")] = "0-2",
    bench: Annotated[Optional[Path], typer.Option(help="Folder of `wb bench NAME --json` outputs "
                                                        "[default: RUNS/benchmarks].")] = None,
) -> None:
    """Write the scoreboard and docs/results/ from run folders and build the site (strict)."""
    from workbench.report import Planned, build_site, git_commit, write_pages

    seed_list = runner.parse_seeds(seeds)
    preset = run_preset or "quick"
    if preset not in runner.PRESETS:
        raise WorkbenchError(f"unknown preset {preset!r}", f"choose one of: {', '.join(runner.PRESETS)}")
    names = experiments.names()
    modules = {n: runner.load_experiment(n) for n in names}
    planned = [Planned(n, e.title, e.paper, runner.command_line(n, preset, seed_list, [], vmap=True))
               for n, e in modules.items()]
    if run_preset:
        _run_all(names, preset, seed_list, runs)
        _execute_notebooks(docs, runs, preset)  # after the runs, so notebooks reuse them
    pages, skipped = write_pages(runs, docs, planned=planned, benchmarks=bench, commit=git_commit(REPO))
    for line in skipped:  # one line each; the other groups' pages are written and the site is built
        print(f"error: skipped {line} (rerun that experiment, or move the folder away)", file=sys.stderr)
    print(f"wrote {docs / 'index.md'} (scoreboard) and {len(pages) - 1} result page(s) in {docs / 'results'}")
    if build:
        home = build_site(docs.parent / "mkdocs.yml", site, docs)
        print(f"site built in {site}/: open {home}")
        for page in pages[1:]:
            print(f"  {page.stem}: {site / 'results' / page.stem / 'index.html'}")
        print(f"(or serve it: python -m http.server -d {site})")
    if skipped:
        raise typer.Exit(2)


def _run_all(names: list[str], preset: str, seeds: list[int], runs: Path) -> None:
    """Run every experiment at `preset`, one progress line each; a failure is reported and the rest go on."""
    import time

    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}: {runner.command_line(name, preset, seeds, [], vmap=True)} ...", flush=True)
        started = time.time()
        try:
            summary = runner.run_experiment(name, preset=preset, seeds=seeds, out=runs, vmap=True)
        except (WorkbenchError, TrainingDiverged) as e:
            print(f"[{i}/{len(names)}] {name}: failed ({e}); its claims show as not run", flush=True)
            continue
        passed = sum(c.passed for c in summary.checks)
        print(f"[{i}/{len(names)}] {name}: {passed}/{len(summary.checks)} checks pass "
              f"({time.time() - started:.0f} s)", flush=True)


def _execute_notebooks(docs: Path, runs: Path, preset: str) -> None:
    """Execute notebooks/*.py into docs/notebooks/*.ipynb; a failing notebook is reported and left out."""
    import time

    from workbench.report import execute_notebook

    for source in sorted((REPO / "notebooks").glob("*.py")):
        target = docs / "notebooks" / f"{source.stem}.ipynb"
        print(f"notebook {source.name} ...", flush=True)
        started = time.time()
        try:
            execute_notebook(source, target, runs, preset)
            print(f"notebook {source.name}: executed ({time.time() - started:.0f} s)", flush=True)
        except WorkbenchError:
            raise
        except Exception as e:  # a cell's error: the notebook is left off the site, the report goes on
            target.unlink(missing_ok=True)
            print(f"notebook {source.name}: failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                  flush=True)


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help="A benchmark in benchmarks/, e.g. kernels.")],
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a side-by-side benchmark and report ratios."""
    available = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_"))
    if name not in available:
        raise WorkbenchError(f"unknown benchmark {name!r}", f"choose one of: {', '.join(available) or 'none'}")
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    result = module.run()
    if json_:
        print(json.dumps(result, indent=2))
    else:
        for label, value in result["ratios"].items():
            print(f"{label:40s} {value:10.3g}")


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except (typer.Abort, click.exceptions.Abort):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except (typer.TyperException, click.exceptions.ClickException) as e:  # usage errors from option parsing
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        print(f"error: {message} (see `wb --help`)", file=sys.stderr)
        sys.exit(2)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        print(f"error: training diverged: {e}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
