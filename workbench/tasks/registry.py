"""The task catalogue: every task with its parameters, a small sample and its reference predictors.

`describe_tasks()` feeds `wb list --tasks`; `tasks_markdown()` is `docs/tasks.md`
(regenerate with `python -m workbench.tasks.registry > docs/tasks.md`).
"""

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import numpy as np

from . import algorithmic as A
from . import boolean as B
from . import classification as C
from . import markov as M
from . import regression_family as R
from .regression import LinearRegression


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    name: str
    family: str
    paper: str
    make: Callable[[], eqx.Module]  # the task at its documented (small) defaults
    predictors: tuple[str, ...] = ()  # for tasks without a `predictors()` method


def _key():
    return jax.random.key(0)


ENTRIES = (
    TaskEntry("linear", "regression", "von Oswald et al. 2023; Garg et al. 2022",
              lambda: LinearRegression(d=5, n_points=10, noise=0.0), ("ols", "ridge", "gd", "newton", "knn3", "averaging")),
    TaskEntry("linear_ill_conditioned", "regression", "Fu et al. 2023 (Iterative Newton)",
              lambda: LinearRegression(d=5, n_points=10, covariance=R.ill_conditioned_covariance(5, 100.0, key=_key())),
              ("ols", "newton", "gd")),
    TaskEntry("sparse_linear", "regression", "Garg et al. 2022", lambda: R.SparseLinearRegression(d=10, n_points=20, sparsity=3)),
    TaskEntry("finite_pool", "regression", "Raventos et al. 2023",
              lambda: R.FinitePoolRegression(d=4, n_points=15, n_tasks=64, noise=0.5, key=_key())),
    TaskEntry("relu_net", "regression", "Garg et al. 2022", lambda: R.ReLUNetRegression(d=5, n_points=20, hidden=100)),
    TaskEntry("decision_tree", "regression", "Garg et al. 2022", lambda: R.DecisionTreeRegression(d=5, n_points=20, depth=4)),
    TaskEntry("ar_process", "regression", "Zheng et al. 2024", lambda: R.ARProcess(d=4, seq_len=20)),
    TaskEntry("representation", "regression", "Guo et al. 2024", lambda: R.RepresentationRegression(d=5, n_points=20, key=_key())),
    TaskEntry("markov_fixed", "markov", "Makkuva et al. 2024", lambda: M.FixedMarkovSource.binary(0.5, 0.8, seq_len=64)),
    TaskEntry("markov_switching", "markov", "Rajaraman et al. 2024", lambda: M.FixedMarkovSource.switching(2, 0.1, seq_len=64)),
    TaskEntry("markov_icl", "markov", "Edelman et al. 2024", lambda: M.DirichletMarkovICL(n_symbols=2, seq_len=100)),
    TaskEntry("bigram_backcopy", "markov", "Guo et al. 2024 (attention sinks)",
              lambda: M.BigramBackcopy.random(16, 3, seq_len=32, key=_key())),
    TaskEntry("icl_classification", "classification", "Reddy 2023",
              lambda: C.InContextClassification(n_classes=512, n_labels=32, key=_key())),
    TaskEntry("conjunction", "boolean", "Bhattamishra et al. 2024", lambda: B.Conjunction(n_vars=8, n_points=40)),
    TaskEntry("disjunction", "boolean", "Bhattamishra et al. 2024", lambda: B.Disjunction(n_vars=8, n_points=40)),
    TaskEntry("sparse_parity", "boolean", "Bhattamishra et al. 2024", lambda: B.SparseParity(n_vars=10, n_points=40, k=2)),
    TaskEntry("teaching_conjunction", "boolean", "Bhattamishra et al. 2024",
              lambda: B.TeachingConjunction(n_vars=10, n_points=40)),
    TaskEntry("majority", "boolean", "Bhattamishra et al. 2024", lambda: B.Majority(n_vars=10, n_points=40, k=3)),
) + tuple(
    TaskEntry(name, "algorithmic", "Weiss et al. 2021; Friedman et al. 2023", (lambda make=make: make()))
    for name, make in A.ALGORITHMIC_TASKS.items()
)


def _params(task: eqx.Module) -> dict:
    """Static hyperparameters (array fields, such as a pool or centroids, are summarised by shape)."""
    out = {}
    for f in dataclasses.fields(task):
        value = getattr(task, f.name)
        if isinstance(value, jax.Array):
            out[f.name] = f"array{list(value.shape)}"
        elif isinstance(value, tuple) and value and isinstance(value[0], jax.Array):
            out[f.name] = f"{len(value)} arrays"
        else:
            out[f.name] = value
    return out


def _show(x: np.ndarray) -> str:
    if np.issubdtype(x.dtype, np.floating):
        return np.array2string(x, precision=2, suppress_small=True, max_line_width=1000)
    return np.array2string(x, max_line_width=1000)


def _sample_text(task: eqx.Module) -> dict[str, str]:
    """The first example of a batch of 1 (long axes cut to 6 entries)."""
    batch = eqx.filter_jit(task.sample)(jax.random.key(0), 1)
    out = {}
    for f in dataclasses.fields(batch):
        x = np.asarray(getattr(batch, f.name))[0]
        cut = x[tuple(slice(0, 6) for _ in range(x.ndim))]
        out[f.name] = f"{list(x.shape)} {_show(cut)}".replace("\n", " ")
    return out


def describe_tasks(samples: bool = True) -> list[dict]:
    """One dict per task: name, family, paper, cls, module, params, sample (field -> text; empty when
    `samples=False`, which skips compiling every sampler), predictors."""
    rows = []
    for e in ENTRIES:
        task = e.make()
        preds = e.predictors or tuple(task.predictors())
        rows.append(dict(name=e.name, family=e.family, paper=e.paper, cls=type(task).__name__,
                         module=type(task).__module__, params=_params(task),
                         sample=_sample_text(task) if samples else {}, predictors=list(preds)))
    return rows


def tasks_markdown() -> str:
    lines = ["# Tasks", "",
             "Every task is `task.sample(key, batch_size) -> batch` (pure, jit-able) and carries its reference",
             "predictors. Generated by `python -m workbench.tasks.registry > docs/tasks.md`; `wb list --tasks`",
             "prints the same catalogue. Samples use `jax.random.key(0)`, long axes cut to 6 entries.", ""]
    family = None
    for row in describe_tasks():
        if row["family"] != family:
            family = row["family"]
            lines += [f"## {family.capitalize()}", ""]
        lines += [f"### `{row['name']}`: `{row['module']}.{row['cls']}`", "", f"After {row['paper']}.", "",
                  "| parameter | default |", "|---|---|"]
        lines += [f"| `{k}` | `{v}` |" for k, v in row["params"].items()]
        lines += ["", "Sample:", "", "```"] + [f"{k}: {v}" for k, v in row["sample"].items()] + ["```", ""]
        lines += ["Reference predictors: " + ", ".join(f"`{p}`" for p in row["predictors"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(tasks_markdown(), end="")
