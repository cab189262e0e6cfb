"""The scoreboard: one row per reproduced claim across all experiments, from the run folders' checks.

An experiment of the catalogue without an analysed group gets one "not run" row with the command
that produces it.
"""

import math
import time
from typing import Any, NamedTuple

from workbench.core.checks import Check

from .summaries import Group


class Planned(NamedTuple):
    """An experiment the site expects, with the command that produces its runs."""

    name: str
    title: str
    paper: str
    command: str


def fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def target(check: Check) -> str:
    """The paper's number as a rule: `≥ lower` for one-sided checks, else the value itself."""
    return f"≥ {fmt(check.paper - check.tolerance)}" if check.one_sided else fmt(check.paper)


def tolerance(check: Check) -> str:
    return "one-sided" if check.one_sided else f"± {fmt(check.tolerance)}"


def short_paper(paper: str) -> str:
    """`Authors year` from a citation written `Authors year, *Title* (venue)`."""
    return paper.split(", *")[0]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(groups: dict[str, Group], planned: list[Planned]) -> list[dict[str, Any]]:
    """Scoreboard rows: every check of every analysed group, then the planned experiments not run."""
    out = []
    for name, group in sorted(groups.items()):
        s = group.summary
        for c in s.checks:
            out.append({
                "experiment": name, "paper": short_paper(s.paper), "claim": c.check.description or c.name,
                "check": c.name, "target": target(c.check), "ours": f"{fmt(c.check.ours)} ± {fmt(c.spread)}",
                "tolerance": tolerance(c.check), "status": "pass" if c.passed else "miss",
                "seeds": f"{c.n_pass}/{len(s.seeds)}", "preset": s.preset,
                "link": f"results/{name}.md",
            })
    for p in planned:
        if p.name not in groups:
            out.append({"experiment": p.name, "paper": short_paper(p.paper), "claim": p.title, "check": "",
                        "target": "", "ours": "", "tolerance": "", "status": "not run", "seeds": "", "preset": "",
                        "command": p.command})
    return out


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def provenance(groups: dict[str, Group], commit: str | None) -> str:
    """When the shown runs were analysed, and the commit(s) they (or, failing a record, the site) came from."""
    if not groups:
        return f"No runs analysed yet. Site built from commit `{commit}`." if commit else "No runs analysed yet."
    times = [g.summary.analysed_at for g in groups.values()]
    when = _when(min(times)) if min(times) == max(times) else f"{_when(min(times))} to {_when(max(times))}"
    recorded = sorted({g.summary.commit for g in groups.values() if g.summary.commit})
    if recorded:
        source = f"runs from commit{'s' if len(recorded) > 1 else ''} {', '.join(f'`{c}`' for c in recorded)}"
    else:
        source = f"site built from commit `{commit}`" if commit else "commit unknown (not a git checkout)"
    return f"Runs analysed {when}; {source}."


def scoreboard_markdown(groups: dict[str, Group], planned: list[Planned], skipped: list[str],
                        commit: str | None) -> str:
    """The scoreboard section of the home page (Markdown, links relative to the site root)."""
    table = rows(groups, planned)
    counts = {k: sum(r["status"] == k for r in table) for k in ("pass", "miss", "not run")}
    lines = [
        f"**{counts['pass']} passing · {counts['miss']} missing · {counts['not run']} not run** "
        f"(claims across {len(groups)} analysed experiment(s)). {provenance(groups, commit)}",
        "",
        "| paper | claim | target | ours (mean ± std) | tolerance | status | seeds passing | preset | page |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        if r["status"] == "not run":
            lines.append(f"| {_cell(r['paper'])} | {_cell(r['claim'])}: `{r['command']}` | | | | not run | | | |")
            continue
        status = "pass" if r["status"] == "pass" else "**MISS**"
        claim = (f"{_cell(r['claim'])} (`{r['check']}`)" if r["claim"] != r["check"] else f"`{r['check']}`")
        lines.append(f"| {_cell(r['paper'])} | {claim} | {r['target']} | {r['ours']} | {r['tolerance']} | {status} | "
                     f"{r['seeds']} | `{r['preset']}` | [{r['experiment']}]({r['link']}) |")
    if not table:
        lines.append("| | no experiments known and no runs found | | | | | | | `make report` |")
    if skipped:
        lines += ["", "!!! warning \"Run folders skipped (unreadable)\"", ""]
        lines += [f"    - `{line}`" for line in skipped]
    return "\n".join(lines) + "\n"
