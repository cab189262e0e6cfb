"""The experiment contract: `Experiment` (what a reproduction declares and does) and `SeedRun` (one
seed's folder, with the bookkeeping every experiment shares: named key streams, the metrics log,
figures and JSON records).

```python
class IclGd(Experiment[Config]):
    title, paper, claim = "...", "...", "..."
    presets = {"quick": Config(steps=100), "default": Config(), "paper": Config(steps=5000)}

    def run_seed(self, config, run):            # or `run(config, runs, *, vmap)` to batch seeds
        key = run.key("init")                    # named stream of core.rng, never an ad-hoc integer
        run.log.log(0, "eval", {"loss": 1.0})
        run.write_figure("loss", fig)            # plotly Figure or JSON-ready dict
        return [Check("loss", 0.0, 1.0, 0.1)]

    def analyse(self, config, runs):
        return Analysis(figures={"loss": runs[0].read_figure("loss")})

EXPERIMENT = IclGd()
```

The runner (`workbench.run.runner`) prepares the seed folders, calls `run`, writes each seed's
`summary.json` from the returned checks, calls `analyse` and writes the group's summary and figures.
"""

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from workbench.core import Check, derive_key
from workbench.core.io import MetricsLog, read_json, read_jsonl, write_json_atomic
from workbench.core.results import Analysis
from workbench.core.types import Key

ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class SeedRun:
    """Seed `seed` of a run, recorded in the folder `dir`."""

    seed: int
    dir: Path

    def key(self, stream: str) -> Key:
        """The named stream `stream` of this seed (`core.rng`: `fold_in(key(seed), sha256(stream))`)."""
        return derive_key(jax.random.key(self.seed), stream)

    def keys(self, stream: str, count: int) -> Key:
        """`count` independent keys `[count]` of the named stream: `fold_in(key(stream), i)`."""
        base = self.key(stream)
        return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(count))

    @property
    def log(self) -> MetricsLog:
        """The seed's `metrics.jsonl` (step, split, name, value)."""
        return MetricsLog(self.dir / "metrics.jsonl")

    def curve(self, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The logged metric `name` of `split`: steps `[n]` and values `[n]`."""
        rows = [r for r in read_jsonl(self.dir / "metrics.jsonl") if r["split"] == split and r["name"] == name]
        return np.array([r["step"] for r in rows]), np.array([r["value"] for r in rows])

    def write_figure(self, name: str, figure: Any) -> None:
        """Save a plotly figure (a `go.Figure` or its JSON-ready dict) as `figures/<name>.json`."""
        data = json.loads(figure.to_json()) if hasattr(figure, "to_json") else figure
        write_json_atomic(self.dir / "figures" / f"{name}.json", data)

    def read_figure(self, name: str) -> dict[str, Any]:
        return read_json(self.dir / "figures" / f"{name}.json")

    def write_json(self, name: str, obj: Any) -> None:
        """Save a record of the run as `<name>.json` (atomically)."""
        write_json_atomic(self.dir / f"{name}.json", obj)

    def read_json(self, name: str) -> Any:
        return read_json(self.dir / f"{name}.json")


def curves(runs: Sequence[SeedRun], split: str, name: str) -> tuple[np.ndarray, Float[Array, "seed step"]]:
    """A metric over seeds on the steps every seed logged: steps `[n]`, values `[n_seeds, n]`."""
    per_seed = [dict(zip(*(a.tolist() for a in run.curve(split, name)))) for run in runs]
    steps = sorted(set.intersection(*(set(s) for s in per_seed)))
    return np.array(steps), np.array([[s[t] for t in steps] for s in per_seed])


class Experiment(abc.ABC, Generic[ConfigT]):
    """A reproduction or a study, run by `wb run NAME` (NAME: the module's name with `-` for `_`).

    **Declares:** `title`, `paper` (the citation), `claim` (Markdown: what the paper claims), and
    `presets` with `quick` (about a minute on 2 CPU cores), `default` (minutes on CPU) and `paper`
    (the published scale). A config is a frozen dataclass of flat scalar fields, overridden by
    `wb run --set key=value` with type checks.

    **Does:** `run_seed(config, run) -> list[Check]` for one seed, or `run_group(config, runs)` for
    seeds trained as one program (`run` calls it on all seeds when `vmap`, on one seed at a time
    otherwise); raise `core.errors.TrainingDiverged` when a loss stops being finite. `analyse(config, runs) -> Analysis` draws the figures and tables
    over seeds. Every seed returns the same checks in the same order.
    """

    title: ClassVar[str]
    paper: ClassVar[str]
    claim: ClassVar[str]
    presets: ClassVar[Mapping[str, Any]]

    def run(self, config: ConfigT, runs: Sequence[SeedRun], *, vmap: bool = False) -> list[list[Check]]:
        """Each seed's checks, in the order of `runs`: `run_group` on all seeds at once when `vmap`,
        else on each seed alone."""
        groups = [list(runs)] if vmap else [[run] for run in runs]
        return [checks for group in groups for checks in self.run_group(config, group)]

    def run_group(self, config: ConfigT, runs: list[SeedRun]) -> list[list[Check]]:
        """The checks of seeds trained as one (vmapped) program. The default runs `run_seed` on each."""
        return [self.run_seed(config, run) for run in runs]

    def run_seed(self, config: ConfigT, run: SeedRun) -> list[Check]:
        raise NotImplementedError(f"{type(self).__name__} defines none of run_seed, run_group and run")

    @abc.abstractmethod
    def analyse(self, config: ConfigT, runs: Sequence[SeedRun]) -> Analysis:
        """Figures and tables over the seeds of a finished group."""
