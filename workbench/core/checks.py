"""A reproduced number beside the paper's: `{name, paper, ours, tolerance, pass}`.

`pass` means |ours - paper| <= tolerance, or ours >= paper - tolerance when `one_sided` (for
numbers where more is better, such as a cosine similarity whose ideal is 1).
"""

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    paper: float
    ours: float
    tolerance: float
    description: str = ""
    one_sided: bool = False

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.ours):
            return False
        if self.one_sided:
            return self.ours >= self.paper - self.tolerance
        return abs(self.ours - self.paper) <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paper": self.paper,
            "ours": self.ours,
            "tolerance": self.tolerance,
            "pass": self.passed,
            "description": self.description,
            "one_sided": self.one_sided,
        }


def aggregate_checks(per_seed: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean and spread (sample std) over seeds of each check; pass if the mean passes.

    Each output row also carries `per_seed` values and `n_pass` (seeds that pass on their own).
    """
    if not per_seed:
        return []
    rows = []
    for i, first in enumerate(per_seed[0]):
        values = [seed_checks[i]["ours"] for seed_checks in per_seed]
        mean = sum(values) / len(values)
        spread = (
            math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        )
        check = Check(
            first["name"], first["paper"], mean, first["tolerance"], first.get("description", ""),
            first.get("one_sided", False),
        )
        row = check.to_dict()
        row.update(spread=spread, per_seed=values, n_pass=sum(c[i]["pass"] for c in per_seed))
        rows.append(row)
    return rows
