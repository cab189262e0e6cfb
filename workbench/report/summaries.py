"""Group summaries read from run folders: the one reader, and the scan that names what it skips.

A group folder `runs/<experiment>/<config-hash>/` holds `summary.json` (the aggregated checks over
seeds, written by the runner's analysis) and `figures/<name>.json` (plotly). Everything the report
shows comes through `read_group`.
"""

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

from workbench.core.io import read_json
from workbench.core.results import GroupSummary

SUMMARY_FIELDS = ("experiment", "title", "paper", "claim", "preset", "seeds", "config_hash", "config", "command",
                  "checks", "all_pass", "figures", "captions", "analysed_at")
CHECK_FIELDS = ("name", "paper", "ours", "tolerance", "pass")


class Group(NamedTuple):
    """One analysed group: its folder, its summary and its figures (plotly JSON by name)."""

    path: Path
    summary: GroupSummary
    figures: dict[str, dict[str, Any]]


def _read(path: Path) -> Any:
    try:
        return read_json(path)
    except OSError as e:
        raise ValueError(f"cannot read {path.name} ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name} is not valid JSON (line {e.lineno})") from None


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_group(group: Path) -> Group:
    """Read and check a group folder; ValueError naming the first problem found."""
    summary = _read(Path(group) / "summary.json")
    if not isinstance(summary, dict):
        raise ValueError("summary.json is not a JSON object")
    missing = [k for k in SUMMARY_FIELDS if k not in summary]
    if missing:
        raise ValueError(f"summary.json lacks {', '.join(missing)}")
    if not isinstance(summary["checks"], list) or not isinstance(summary["figures"], list):
        raise ValueError("summary.json: checks and figures must be lists")
    for i, check in enumerate(summary["checks"]):
        if not isinstance(check, dict) or any(k not in check for k in CHECK_FIELDS):
            raise ValueError(f"summary.json: check {i} lacks one of {', '.join(CHECK_FIELDS)}")
        if not all(_number(check[k]) for k in ("paper", "ours", "tolerance")):
            raise ValueError(f"summary.json: check {check['name']!r} has a non-numeric paper/ours/tolerance")
    figures = {}
    for name in summary["figures"]:
        figure = _read(Path(group) / "figures" / f"{name}.json")
        if not isinstance(figure, dict) or "data" not in figure:
            raise ValueError(f"figures/{name}.json is not a plotly figure")
        figures[name] = figure
    return Group(Path(group), GroupSummary.from_dict(summary), figures)


def scan_runs(runs: Path) -> tuple[dict[str, Group], list[str]]:
    """The most recently analysed group of each experiment under `runs`, and one line per skipped folder.

    A group folder whose summary or figures cannot be read is skipped and named (with the reason);
    a group without `summary.json` (seeds still running, never analysed) is not a group yet.
    """
    latest: dict[str, Group] = {}
    skipped: list[str] = []
    for path in sorted(Path(runs).glob("*/*/summary.json")):
        folder = path.parent
        try:
            group = read_group(folder)
            if group.summary.experiment != folder.parent.name:
                raise ValueError(f"summary.json names experiment {group.summary.experiment!r}")
            if not math.isfinite(group.summary.analysed_at) or group.summary.analysed_at <= 0:
                raise ValueError("summary.json: analysed_at is not a time")
        except ValueError as e:
            skipped.append(f"{folder}: {e}")
            continue
        name = group.summary.experiment
        if name not in latest or group.summary.analysed_at > latest[name].summary.analysed_at:
            latest[name] = group
    return latest, skipped


def read_benchmarks(folder: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The `wb bench NAME --json` outputs saved as `folder/<NAME>.json`, and one line per skipped file."""
    found: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            record = _read(path)
            if not isinstance(record, dict) or any(k not in record for k in ("benchmark", "machine", "ratios")):
                raise ValueError("not a `wb bench --json` output (needs benchmark, machine, ratios)")
        except ValueError as e:
            skipped.append(f"{path}: {e}")
            continue
        found[record["benchmark"]] = record
    return found, skipped
