"""Which group folders a result page can be written from: a malformed one is named and skipped."""

from pathlib import Path
from typing import Any

from workbench.core.checks import check_rows_problem
from workbench.core.io import read_json

# What `result_page` reads from a group's `summary.json`, and the type of each.
SUMMARY_FIELDS = {"experiment": str, "title": str, "paper": str, "claim": str, "preset": str, "seeds": list,
                  "config_hash": str, "config": dict, "command": str, "all_pass": bool, "figures": list,
                  "captions": dict, "analysed_at": (int, float)}


def group_problem(group: Path, summary: Any) -> str | None:
    """What keeps `group` (with its parsed `summary.json`) from making a page; None if nothing."""
    if not isinstance(summary, dict):
        return "summary.json is not a JSON object"
    for field, kind in SUMMARY_FIELDS.items():
        if field not in summary:
            return f"summary.json lacks '{field}'"
        if not isinstance(summary[field], kind):
            return f"summary.json has a malformed '{field}'"
    if "checks" not in summary:
        return "summary.json lacks 'checks'"
    problem = check_rows_problem(summary["checks"])
    if problem:
        return f"summary.json: {problem}"
    for name in summary["figures"]:
        path = Path(group) / "figures" / f"{name}.json"
        try:
            read_json(path)
        except (OSError, ValueError) as e:
            return f"figure {path.name} is {'missing' if isinstance(e, FileNotFoundError) else 'unreadable'}"
    return None


def scan_groups(runs: Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[Path, str]]]:
    """Every analysed group under `runs` as (folder, summary), and every malformed one as (folder, why)."""
    good, bad = [], []
    for path in sorted(Path(runs).glob("*/*/summary.json")):
        try:
            summary = read_json(path)
        except (OSError, ValueError):
            bad.append((path.parent, "summary.json is unreadable"))
            continue
        problem = group_problem(path.parent, summary)
        if problem:
            bad.append((path.parent, problem))
        else:
            good.append((path.parent, summary))
    return good, bad
