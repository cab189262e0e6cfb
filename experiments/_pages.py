"""Report-page sections that several experiments share."""

from collections.abc import Mapping, Sequence

from workbench.core.results import SeedSummary

from ._base import SeedRun


def misses_section(runs: Sequence[SeedRun], why: Mapping[str, str], fallback: str = "") -> str:
    """`## What misses`: a line per check that misses in some seed, with every seed's value and the reason
    from `why` (or `fallback`)."""
    per_seed = [{c.name: c for c in SeedSummary.from_dict(run.read_json("summary")).checks} for run in runs]
    lines = []
    for name, first in per_seed[0].items():
        failed = [run.seed for run, checks in zip(runs, per_seed) if not checks[name].passed]
        if failed:
            ours = ", ".join(f"{checks[name].ours:.4g}" for checks in per_seed)
            paper = ", ".join(sorted({f"{checks[name].paper:.4g}" for checks in per_seed}, key=float))
            reason = f". Why: {why[name]}." if name in why else (f"; {fallback}" if fallback else ".")
            lines.append(f"- `{name}` misses in seed(s) {failed}: ours {ours} (per seed) vs {paper} "
                         f"± {first.tolerance:.3g}{' (one-sided)' if first.one_sided else ''}" + reason)
    return "## What misses\n\n" + ("\n".join(lines) if lines else "Every check passes in every seed.") + "\n\n"
