"""The `wb` command line: list, run, show, report, bench.

Bad input prints one line `error: ... (fix)` on stderr and exits with code 2, without a traceback.
"""

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from workbench import experiments
from workbench.core.checks import check_rows_problem
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
        module = runner.load_experiment(name)
        print(f"{name:20s} {module.TITLE}  [presets: {', '.join(module.PRESETS)}]")


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
        print(json.dumps(summary, indent=2))
    else:
        _print_checks(summary)
        print(f"run folder: {runner.group_dir(out, name, summary['config_hash'], vmap)}")


def _print_checks(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary.get('experiment', '')} — checks")
    for column in ("check", "paper", "ours", "tolerance", "pass"):
        table.add_column(column)
    for c in summary.get("checks", []):
        ours = f"{c['ours']:.4g}" + (f" ± {c['spread']:.2g}" if c.get("spread") else "")
        table.add_row(c["name"], f"{c['paper']:.4g}", ours, f"{c['tolerance']:.3g}", "yes" if c["pass"] else "NO")
    Console().print(table)


@app.command()
def show(run_dir: Annotated[Path, typer.Argument(help="A run folder (group or seed-<s>).")]) -> None:
    """Show a run folder's config, status and checks."""
    path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise WorkbenchError(f"{run_dir} is not a folder", "pass a run folder such as runs/icl-gd/<hash>/seed-0")
    try:
        summary = read_json(path)
        name = summary["experiment"]
    except (OSError, ValueError, KeyError, TypeError):
        raise WorkbenchError(f"{run_dir} is not a workbench run folder (no readable summary.json)",
                             "pass a folder made by `wb run`, e.g. runs/icl-gd/<hash>") from None
    problem = check_rows_problem(summary.get("checks", []))
    if problem:
        raise WorkbenchError(f"{path} is malformed: {problem}", f"rerun the experiment, or move {run_dir} away")
    status = summary.get("status", "analysed")
    print(f"experiment: {name}   config: {summary.get('config_hash')}   status: {status}")
    if summary.get("error"):
        print(f"error: {summary['error']}")
    print(json.dumps(summary.get("config", {}), indent=1, sort_keys=True))
    _print_checks(summary)


@app.command()
def report(
    runs: Annotated[Path, typer.Option(help="Folder that holds run folders.")] = Path("runs"),
    docs: Annotated[Path, typer.Option(help="mkdocs docs folder.")] = Path("docs"),
    site: Annotated[Path, typer.Option(help="Where to build the site.")] = Path("site"),
    build: Annotated[bool, typer.Option(help="Build the site after writing the pages.")] = True,
) -> None:
    """Write docs/results/ from run folders and build the site (strict)."""
    from workbench.report import build_site, scan_groups, write_pages

    pages = write_pages(runs, docs)
    for page in pages:
        print(f"wrote {page}")
    skipped = scan_groups(runs)[1]
    for group, problem in skipped:  # one line each; the other groups' pages are written
        print(f"error: skipped {group}: {problem} (rerun that experiment, or move the folder away)", file=sys.stderr)
    if build:
        index = build_site(docs.parent / "mkdocs.yml", site)
        print(f"site built in {site}/")
        for page in pages[1:]:
            print(f"open {index.parent / page.stem / 'index.html'}")
        print(f"(all results: {index}; or serve it: python -m http.server -d {site})")
    if skipped:
        raise typer.Exit(2)


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
