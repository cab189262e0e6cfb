"""Experiments: one module per reproduction or study, imported as `workbench.experiments.<name>`.

The CLI name is the module name with `-` for `_` (`icl_gd.py` is `wb run icl-gd`). A module defines:

- `TITLE: str`, `PAPER: str` (the citation), `CLAIM: str` (Markdown: what the paper claims).
- `Config`: a frozen dataclass of flat scalar fields (int, float, bool, str, Literal); `wb run --set
  key=value` overrides them with type checks. The run folder is `runs/<name>/<config-hash>/seed-<s>/`.
- `PRESETS: dict[str, Config]` with `quick` (under a minute on 2 CPU cores), `default` (minutes on
  CPU) and `paper` (the published scale).
- `run(config, seeds, run_dirs, *, vmap=False) -> list[list[Check]]`: run every seed (all at once
  with `jax.vmap` when `vmap`), writing `metrics.jsonl`, checkpoints and `figures/*.json` into each
  seed's folder, and return each seed's checks (`workbench.core.Check`). The runner writes
  `summary.json`. Raise `workbench.core.errors.TrainingDiverged` when a loss stops being finite.
- `analyse(config, run_dirs) -> workbench.core.results.Analysis`: figures and tables over seeds.
"""

import importlib
import pkgutil

DEFAULT = ("icl-gd", "rasp-compile")  # what `make report` runs at the quick preset


def names() -> list[str]:
    """CLI names of every experiment module."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    """The experiment module for CLI name `name` (ValueError if there is none)."""
    if name not in names():
        raise ValueError(name)
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
