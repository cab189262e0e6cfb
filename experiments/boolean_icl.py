"""In-context learning of Boolean functions (Bhattamishra et al. 2024): conjunctions yes, sparse parities no,
and a teaching prefix that makes a conjunction known after k + 1 examples.

One model per task, trained on prompts of `n_points` labelled points of a fresh function each. Token j
holds the query x_j and the previous example (x_{j-1}, y_{j-1}), so the label y_j is predicted at
token j from the points 0..j-1 (a causal model sees no later point).
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.rng import derive_key
from workbench.core.validate import check_float, check_int
from workbench.models import Transformer, TransformerConfig
from workbench.tasks.boolean import (BooleanBatch, Conjunction, SparseParity, TeachingConjunction, prefix_accuracy,
                                     prefix_probs)
from workbench.train import load_trained

from . import _boolean_icl_figures as figures
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "In-context learning of Boolean functions: conjunctions, sparse parities and teaching sequences"
PAPER = ("Bhattamishra, Patel, Blunsom & Kanade 2024, *Understanding In-Context Learning in Transformers and LLMs "
         "by Learning to Learn Discrete Functions* (ICLR)")
CLAIM = (
    "Transformers trained on prompts of labelled points of random Boolean functions learn simple classes in "
    "context: **conjunctions** are predicted near perfectly after O(n) examples (accuracy at late positions "
    "≥ 0.95), while **sparse parities** (k = 2) are not learned (accuracy near chance, 0.5). Prompts that open "
    "with a **teaching sequence** (for a monotone conjunction of k literals: k + 1 examples) make the function "
    "known at once (accuracy ≥ 0.95 right after those k + 1 examples). The paper trains a 12-layer GPT-2 "
    "(n = 28, 40 points, 15–20k steps); the checks here are at CPU scale — n = 10, 40 points, a 2-layer "
    "width-32 model and 1,500 steps of 64 prompts in `default` (`quick`: 600 steps of 32; `paper`: 4 layers of "
    "width 64, 10k steps, the reference's CPU scale) — where a failure on parities is weak evidence."
)
TASKS = ("conjunction", "parity", "teaching")
# reference learners drawn beside each model (the exact Bayes predictor of conjunctions enumerates 3^n functions)
LEARNERS = {"conjunction": ("elimination", "nearest_neighbour"), "parity": ("bayes", "nearest_neighbour"),
            "teaching": ("elimination", "nearest_neighbour")}


@dataclasses.dataclass(frozen=True)
class Config:
    n_vars: int = 10
    n_points: int = 40
    parity_k: int = 2
    n_layers: int = 2
    d_model: int = 32
    n_heads: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    late_from: int = 30
    eval_size: int = 1024
    log_every: int = 50
    eval_every: int = 100
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("n_vars", "n_points", "parity_k", "n_layers", "d_model", "n_heads", "steps", "batch_size",
                     "eval_size", "log_every", "eval_every", "ckpt_every"):
            check_int("boolean-icl", name, getattr(self, name))
        check_int("boolean-icl", "n_points", self.n_points, low=self.n_vars + 2)
        check_int("boolean-icl", "parity_k", self.parity_k, high=self.n_vars)
        check_int("boolean-icl", "late_from", self.late_from, low=0, high=self.n_points - 1)
        check_float("boolean-icl", "lr", self.lr, strict=True)
        check_float("boolean-icl", "weight_decay", self.weight_decay)
        if self.d_model % self.n_heads:
            raise ValueError(f"boolean-icl.d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")


PRESETS = {
    "quick": Config(steps=600, batch_size=32, eval_size=512, eval_every=50, log_every=50, ckpt_every=600),
    "default": Config(),
    "paper": Config(n_layers=4, d_model=64, steps=10_000, eval_every=500, log_every=100, ckpt_every=2000),
}


def make_tasks(config: Config) -> dict:
    n, m = config.n_vars, config.n_points
    return {"conjunction": Conjunction(n_vars=n, n_points=m), "parity": SparseParity(n_vars=n, n_points=m, k=config.parity_k),
            "teaching": TeachingConjunction(n_vars=n, n_points=m)}


def model_config(config: Config) -> TransformerConfig:
    return TransformerConfig(n_layers=config.n_layers, d_model=config.d_model, n_heads=config.n_heads,
                             d_head=config.d_model // config.n_heads, n_ctx=config.n_points,
                             d_input=2 * config.n_vars + 2, d_vocab_out=2)


def encode(xs: Float[Array, "m n"], ys) -> Float[Array, "m two_n_plus_2"]:
    """Token j = (x_j, x_{j-1}, 2 y_{j-1} - 1, 1 if j > 0): the query and the example before it (zeros at j = 0)."""
    prev_x = jnp.concatenate([jnp.zeros_like(xs[:1]), xs[:-1]])
    prev_y = jnp.concatenate([jnp.zeros(1), 2.0 * ys[:-1] - 1])
    has_prev = (jnp.arange(xs.shape[0]) > 0).astype(xs.dtype)
    return jnp.concatenate([xs, prev_x, prev_y[:, None], has_prev[:, None]], 1)


def logits_of(model: Transformer, batch: BooleanBatch) -> Float[Array, "batch m 2"]:
    return model.batched(jax.vmap(encode)(batch.xs, batch.ys))


def label_loss(model: Transformer, batch: BooleanBatch) -> Float[Array, ""]:
    """Cross-entropy of y_j at every position j, mean over positions and prompts."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_of(model, batch), batch.ys).mean()


def loss_fn(models: tuple, batches: tuple) -> Float[Array, ""]:
    return sum(label_loss(m, b) for m, b in zip(models, batches))


def model_probs(model: Transformer, batch: BooleanBatch) -> Float[Array, "batch m"]:
    """The model's P(y_j = 1) at every position."""
    return jax.nn.softmax(logits_of(model, batch), -1)[..., 1]


def after_prefix_accuracy(probs: Float[Array, "batch m"], batch: BooleanBatch) -> Float[Array, ""]:
    """Accuracy at position k + 1 of each teaching prompt: the first point after its teaching sequence."""
    at = jnp.sum(batch.params, 1) + 1
    pick = lambda a: jnp.take_along_axis(a, at[:, None], 1)[:, 0]
    return prefix_accuracy(pick(probs)[:, None], pick(batch.ys)[:, None])[0]


def make_eval(config: Config):
    def evaluate(models: tuple, batches: tuple) -> dict[str, Float[Array, ""]]:
        """Loss and late-position accuracy of each task's model; accuracy right after the teaching prefix."""
        out = {}
        for name, m, b in zip(TASKS, models, batches):
            probs = model_probs(m, b)
            out[f"{name}/loss"] = label_loss(m, b)
            out[f"{name}/late_accuracy"] = prefix_accuracy(probs, b.ys)[config.late_from:].mean()
            if name == "teaching":
                out["teaching/after_prefix_accuracy"] = after_prefix_accuracy(probs, b)
        return out
    return evaluate


def _init(config: Config, key) -> tuple[Transformer, ...]:
    return tuple(Transformer(model_config(config), key=k) for k in jax.random.split(key, len(TASKS)))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adamw(config.lr, weight_decay=config.weight_decay)


@eqx.filter_jit
def _accuracies(model: Transformer, task, batch: BooleanBatch, learners: tuple[str, ...]) -> dict[str, Float[Array, "..."]]:
    """Per-position accuracy of the model and of the reference `learners` of `task` on one batch."""
    fns = task.predictors()
    probs = {"model": model_probs(model, batch), **{name: prefix_probs(fns[name], batch) for name in learners}}
    out = {name: prefix_accuracy(p, batch.ys) for name, p in probs.items()}
    if isinstance(task, TeachingConjunction):
        out.update({f"{name}@after_prefix": after_prefix_accuracy(p, batch) for name, p in probs.items()})
    return out


def measure(config: Config, models: tuple, tasks: dict, eval_key) -> dict:
    """Per-position accuracies on a fresh batch per task (stream `eval`, never seen in training)."""
    out = {}
    for (name, task), model in zip(tasks.items(), models):
        batch = sample_batch(task, derive_key(eval_key, f"measure-{name}"), config.eval_size)
        out[name] = {k: v.tolist() for k, v in _accuracies(model, task, batch, LEARNERS[name]).items()}
        out[name]["positive_rate"] = float(batch.ys.mean())
    # the conjunction model read at the teaching prompts' first point after the prefix, for contrast
    batch = sample_batch(tasks["teaching"], derive_key(eval_key, "measure-teaching"), config.eval_size)
    out["teaching"]["conjunction_model@after_prefix"] = float(after_prefix_accuracy(
        model_probs(models[0], batch), batch))
    return out


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    tasks = make_tasks(config)
    trained = train_on_tasks("boolean-icl", config, runs, tasks, lambda k: _init(config, k), make_optimizer(config),
                             loss_fn, make_eval(config), eval_size=config.eval_size)
    return [_finish(config, measure(config, models, tasks, key), run) for (models, key), run in zip(trained, runs)]


def _finish(config: Config, acc: dict, run: SeedRun) -> list[Check]:
    run.write_json("extras", acc)
    late = {name: float(sum(acc[name]["model"][config.late_from:]) / (config.n_points - config.late_from))
            for name in TASKS}
    pos = f"positions {config.late_from}–{config.n_points - 1}"
    return [
        Check("conjunction_late_accuracy", 1.0, late["conjunction"], 0.05,
              f"accuracy on conjunctions at {pos} (paper: near 100%; check >= 0.95)", one_sided=True),
        Check("parity_late_accuracy", 0.5, late["parity"], 0.1,
              f"accuracy on sparse parities (k = {config.parity_k}) at {pos}: chance 0.5 (check <= 0.6)"),
        Check("teaching_after_prefix_accuracy", 1.0, float(acc["teaching"]["model@after_prefix"]), 0.05,
              "accuracy on monotone conjunctions at the first point after the k + 1 teaching examples (>= 0.95)",
              one_sided=True),
    ]


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, ...]:
    """The trained models (conjunction, parity, teaching) from a seed's newest checkpoint."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class BooleanIcl(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs, TASKS)


EXPERIMENT = BooleanIcl()
