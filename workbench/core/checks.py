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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Check":
        """The check of `to_dict()` (its `pass` mark is recomputed); ValueError names a missing field."""
        try:
            return cls(data["name"], float(data["paper"]), float(data["ours"]), float(data["tolerance"]),
                       data.get("description", ""), bool(data.get("one_sided", False)))
        except KeyError as e:
            raise ValueError(f"a check lacks {e.args[0]!r}") from None
        except (TypeError, ValueError):
            raise ValueError(f"a check has a non-numeric paper/ours/tolerance: {data!r}") from None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


CHECK_FIELDS = {"name": lambda x: isinstance(x, str), "paper": _is_number, "ours": _is_number,
                "tolerance": _is_number, "pass": lambda x: isinstance(x, bool)}


def check_rows_problem(checks: Any) -> str | None:
    """What is wrong with a `checks` list read from a `summary.json` (None if every row is well formed)."""
    if not isinstance(checks, list):
        return f"'checks' is {type(checks).__name__}, not a list"
    for i, row in enumerate(checks):
        if not isinstance(row, dict):
            return f"check {i} is not an object"
        for field, ok in CHECK_FIELDS.items():
            if field not in row:
                return f"check {i} ({row.get('name', '?')}) lacks '{field}'"
            if not ok(row[field]):
                return f"check {i} ({row.get('name', '?')}) has a malformed '{field}': {row[field]!r}"
        if "spread" in row and not _is_number(row["spread"]):
            return f"check {i} ({row['name']}) has a malformed 'spread': {row['spread']!r}"
    return None
