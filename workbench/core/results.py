"""What experiments return and what run folders record, as typed values.

- `Analysis`: what an experiment's `analyse` returns (figures, extra Markdown, captions).
- `CheckSummary`: one check aggregated over seeds (mean, spread, per-seed values).
- `SeedSummary`: a seed folder's `summary.json` (status and checks of one seed).
- `GroupSummary`: a group folder's `summary.json` (the analysis over seeds that the report, the CLI
  and `wb run --json` read).

Each record has `to_dict()` (the JSON written to disk; a check's pass mark is the key `pass`) and
`from_dict()`, which raises `ValueError` naming the missing field, so a malformed file is one clear error.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .checks import Check


@dataclasses.dataclass
class Analysis:
    """`figures`: name -> plotly figure as a JSON-ready dict (`fig.to_plotly_json()`), shown in order.
    `markdown`: extra page sections (tables, notes), placed after the checks table.
    `captions`: optional name -> one-line caption under each figure."""

    figures: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    markdown: str = ""
    captions: dict[str, str] = dataclasses.field(default_factory=dict)


def _field(data: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return data[key]
    except (KeyError, TypeError):
        raise ValueError(f"{what} lacks {key!r}") from None


@dataclasses.dataclass(frozen=True)
class CheckSummary:
    """A check over seeds: `ours` is the mean, `spread` the sample std, `passed` whether the mean passes."""

    check: Check
    spread: float = 0.0
    per_seed: tuple[float, ...] = ()
    n_pass: int = 0

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def passed(self) -> bool:
        return self.check.passed

    @classmethod
    def over_seeds(cls, per_seed: Sequence[Check]) -> "CheckSummary":
        """Mean and sample std of one check's per-seed values (all seeds carry the same check)."""
        values = tuple(c.ours for c in per_seed)
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        return cls(dataclasses.replace(per_seed[0], ours=mean), spread, values, sum(c.passed for c in per_seed))

    def to_dict(self) -> dict[str, Any]:
        return {**self.check.to_dict(), "spread": self.spread, "per_seed": list(self.per_seed), "n_pass": self.n_pass}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CheckSummary":
        check = Check.from_dict(data)
        return cls(check, float(data.get("spread", 0.0)), tuple(data.get("per_seed", (check.ours,))),
                   int(data.get("n_pass", check.passed)))


def aggregate_checks(per_seed: Sequence[Sequence[Check]]) -> list[CheckSummary]:
    """Each check (by position) summarised over seeds; pass if the mean passes."""
    if not per_seed:
        return []
    names = [c.name for c in per_seed[0]]
    for checks in per_seed[1:]:
        if [c.name for c in checks] != names:
            raise ValueError(f"seeds report different checks: {names} vs {[c.name for c in checks]}")
    return [CheckSummary.over_seeds([checks[i] for checks in per_seed]) for i in range(len(names))]


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    """A seed folder's record: `status` is running, complete, failed or interrupted."""

    experiment: str
    config_hash: str
    config: dict[str, Any]
    seed: int
    status: str
    preset: str | None = None
    checks: tuple[Check, ...] = ()
    wall_s: float | None = None
    error: str | None = None
    vmap: bool = False  # trained in a vmapped group

    def to_dict(self) -> dict[str, Any]:
        out = {"experiment": self.experiment, "config_hash": self.config_hash, "config": self.config,
               "vmap": self.vmap, "seed": self.seed, "status": self.status}
        if self.status == "complete":
            out.update(preset=self.preset, checks=[c.to_dict() for c in self.checks], wall_s=self.wall_s)
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SeedSummary":
        what = "seed summary.json"
        return cls(
            _field(data, "experiment", what), _field(data, "config_hash", what), dict(data.get("config", {})),
            int(_field(data, "seed", what)), _field(data, "status", what), data.get("preset"),
            tuple(Check.from_dict(c) for c in data.get("checks", ())), data.get("wall_s"), data.get("error"),
            bool(data.get("vmap", False)),
        )


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """The analysis of a group of seeds: what the result page, `wb show` and `wb run --json` read."""

    experiment: str
    title: str
    paper: str
    claim: str
    preset: str
    seeds: tuple[int, ...]
    config_hash: str
    config: dict[str, Any]
    command: str
    checks: tuple[CheckSummary, ...]
    markdown: str = ""
    figures: tuple[str, ...] = ()
    captions: dict[str, str] = dataclasses.field(default_factory=dict)
    runs: tuple[SeedSummary, ...] = ()
    analysed_at: float = 0.0
    commit: str | None = None  # the git commit of the code that ran, when known
    vmap: bool = False  # the seeds were trained as one vmapped program

    @property
    def all_pass(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment, "title": self.title, "paper": self.paper, "claim": self.claim,
            "preset": self.preset, "seeds": list(self.seeds), "config_hash": self.config_hash,
            "config": self.config, "vmap": self.vmap, "command": self.command, "checks": [c.to_dict() for c in self.checks],
            "all_pass": self.all_pass, "markdown": self.markdown, "figures": list(self.figures),
            "captions": self.captions, "analysed_at": self.analysed_at,
            "runs": [{"seed": r.seed, "checks": [c.to_dict() for c in r.checks], "wall_s": r.wall_s} for r in self.runs],
            **({"commit": self.commit} if self.commit else {}),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GroupSummary":
        what = "group summary.json"
        f = lambda key: _field(data, key, what)  # noqa: E731
        runs = tuple(
            SeedSummary(f("experiment"), f("config_hash"), {}, int(_field(r, "seed", what)), "complete", f("preset"),
                        tuple(Check.from_dict(c) for c in r.get("checks", ())), r.get("wall_s"))
            for r in data.get("runs", ())
        )
        return cls(
            f("experiment"), f("title"), f("paper"), f("claim"), f("preset"), tuple(f("seeds")), f("config_hash"),
            dict(f("config")), f("command"), tuple(CheckSummary.from_dict(c) for c in f("checks")),
            data.get("markdown", ""), tuple(data.get("figures", ())), dict(data.get("captions", {})), runs,
            float(data.get("analysed_at", 0.0)), data.get("commit"), bool(data.get("vmap", False)),
        )
