"""Experiments: one module per reproduction or study, imported as `workbench.experiments.<name>`.

The CLI name is the module name with `-` for `_` (`icl_gd.py` is `wb run icl-gd`). A module defines
`EXPERIMENT`, an instance of a subclass of `workbench.experiments._base.Experiment` (title, paper,
claim, presets; `run` or `run_seed`; `analyse`), and its `Config`, a frozen dataclass of flat scalar
fields that `wb run --set key=value` overrides with type checks. Modules whose names start with `_`
are helpers (figures, the contract itself).
"""

import importlib
import pkgutil

from ._base import Experiment, SeedRun

__all__ = ["Experiment", "SeedRun", "load", "names"]


def names() -> list[str]:
    """CLI names of every experiment module."""
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


class UnknownExperiment(ValueError):
    """No experiment has this name (a ValueError raised while importing one is not this)."""


def load(name: str) -> Experiment:
    """The experiment called `name` on the command line (`UnknownExperiment` if there is none)."""
    if name not in names():
        raise UnknownExperiment(name)
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment):
        raise TypeError(f"experiments/{module.__name__.rsplit('.', 1)[-1]}.py defines no EXPERIMENT (an Experiment)")
    return experiment
