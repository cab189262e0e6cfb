"""Pretraining task diversity and the emergence of non-Bayesian in-context learning (Raventós et al. 2023).

A small causal transformer reads in-context regression prompts `x_1, y_1, ..., x_K, y_K` (one token
per x and per y, `d_input = D + 1`) and predicts each `y_k` at the token of `x_k` from the pairs before
it. Its training prompts draw `w` from a fixed pool of M tasks, one model per M (all trained side by
side, seeds vmapped), plus one on fresh Gaussian tasks (M = ∞). Two estimators bracket the answer:
dMMSE, the posterior mean over the pool (Bayes-optimal on the pretraining distribution), and ridge
with λ = σ² (Bayes-optimal on fresh tasks, T_true). With few tasks the model follows dMMSE and fails
on new tasks; past a threshold M* it follows ridge, beyond the pool it was trained on.

The pools are drawn from the key stream `pool-<M>` under `pool_seed` (a config field), the same for
every seed: seeds vary the initialisation and the data order.
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.rng import derive_key
from workbench.core.validate import check_float, check_int
from workbench.models import Transformer, TransformerConfig
from workbench.tasks import LinearRegression, RegressionBatch
from workbench.tasks.predictors import Ridge, dmmse, prefix_predictions
from workbench.tasks.regression_family import FinitePoolRegression
from workbench.train import load_trained

from . import _icl_task_diversity_figures as figures
from ._icl_task_diversity_figures import INF, label
from . import _icl_prompts as prompts
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "Pretraining task diversity: from the Bayes posterior over the pool to ridge"
PAPER = ("Raventós, Paul, Chen & Ganguli 2023, *Pretraining task diversity and the emergence of non-Bayesian "
         "in-context learning for regression* (NeurIPS)")
CLAIM = (
    "A transformer pretrained on in-context regression with w drawn from a finite pool of M tasks (D = 8, "
    "K = 16, σ² = 0.25) follows dMMSE, the Bayes posterior over the pool, up to about 2^6 tasks and fails on "
    "new tasks; past a threshold (between 2^14 and 2^15 for the 8-layer model, about 2^11.5 for the 4-layer "
    "one) it follows ridge regression, the Bayes estimator for fresh Gaussian tasks, and so solves tasks it "
    "never saw. Baselines at D = 4: ridge 0.291, dMMSE 1.24 / 0.52 / 0.33 at M = 2^2 / 2^6 / 2^10 "
    "(loss / D on fresh tasks)."
)
D = 4
NOISE = 0.5  # sigma, so sigma^2 = 0.25
RIDGE_D4 = 0.291  # the paper's ridge loss / D at D = 4, K = 16, noisy targets


@dataclasses.dataclass(frozen=True)
class Config:
    n_points: int = 16  # K: points per prompt, every one a prediction
    min_log2_tasks: int = 2
    max_log2_tasks: int = 11
    log2_stride: int = 3
    pool_seed: int = 0
    n_layers: int = 2
    d_model: int = 32
    n_heads: int = 2
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    eval_size: int = 4096
    log_every: int = 100
    eval_every: int = 500
    ckpt_every: int = 2000

    def __post_init__(self):
        for name in ("n_points", "min_log2_tasks", "max_log2_tasks", "log2_stride", "n_layers", "d_model", "n_heads",
                     "steps", "batch_size", "eval_size", "log_every", "eval_every", "ckpt_every"):
            check_int("icl-task-diversity", name, getattr(self, name))
        check_float("icl-task-diversity", "lr", self.lr, strict=True)
        if self.max_log2_tasks < self.min_log2_tasks:
            raise ValueError("icl-task-diversity: max_log2_tasks must be >= min_log2_tasks")
        if self.d_model % self.n_heads:
            raise ValueError(f"icl-task-diversity: d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")

    @property
    def pool_sizes(self) -> tuple[int, ...]:
        """The finite pool sizes 2^min, 2^(min + stride), ..., up to 2^max, then `INF` (fresh tasks)."""
        return (*(2**e for e in range(self.min_log2_tasks, self.max_log2_tasks + 1, self.log2_stride)), INF)


# CPU presets: the references' CPU setting (D = 4, K = 16, sigma^2 = 0.25) with a narrower model and fewer
# steps than their 2-4 layers x 64, batch 128, 5-10k steps, so that a 2-core machine trains every pool
# size and three seeds in minutes.
PRESETS = {
    "quick": Config(min_log2_tasks=2, max_log2_tasks=8, log2_stride=6, steps=500, batch_size=64, eval_size=512,
                    eval_every=100, ckpt_every=250),
    "default": Config(),
    "paper": Config(min_log2_tasks=1, max_log2_tasks=20, log2_stride=1, n_layers=4, d_model=64, steps=100_000,
                    batch_size=256, eval_every=2000, ckpt_every=10_000),
}


def make_tasks(config: Config) -> dict[str, LinearRegression | FinitePoolRegression]:
    """One pretraining task per pool size; the pools come from the stream `pool-<M>` of `pool_seed`."""
    root = jax.random.key(config.pool_seed)
    fresh = true_task(config)
    return {label(m): fresh if m == INF else
            FinitePoolRegression(D, config.n_points - 1, m, NOISE, key=derive_key(root, f"pool-{m}"))
            for m in config.pool_sizes}


def true_task(config: Config) -> LinearRegression:
    """T_true: fresh w ~ N(0, I) per prompt, x ~ N(0, I), label noise sigma."""
    return LinearRegression(d=D, n_points=config.n_points - 1, noise=NOISE, x_dist="gaussian")


def model_config(config: Config) -> TransformerConfig:
    return prompts.model_config(D, config.n_points, config.n_layers, config.d_model, config.n_heads)


def _loss_per_dim(pred, batch: RegressionBatch):
    """Raventós' loss / D: the squared error against the noisy targets, mean over prompts and positions."""
    return jnp.mean((pred - batch.ys) ** 2) / D


def loss_fn(models: tuple[Transformer, ...], batches: tuple[RegressionBatch, ...]) -> jax.Array:
    """The models train side by side as one pytree (disjoint parameters, so no coupling)."""
    return sum(_loss_per_dim(prompts.batch_predict(m, b), b) for m, b in zip(models, batches, strict=True))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam on Raventós' triangle schedule (linear warm-up over the first half, linear decay to 0)."""
    half = config.steps // 2
    schedule = optax.join_schedules([optax.linear_schedule(0.0, config.lr, half),
                                     optax.linear_schedule(config.lr, 0.0, config.steps - half)], [half])
    return optax.adam(schedule)


def _init(config: Config, key) -> tuple[Transformer, ...]:
    keys = jax.random.split(key, len(config.pool_sizes))
    return tuple(Transformer(model_config(config), key=k) for k in keys)


def _eval_fn(config: Config):
    names = [label(m) for m in config.pool_sizes]

    def evaluate(models, batches):
        return {f"loss_{n}": _loss_per_dim(prompts.batch_predict(m, b), b) for n, m, b in zip(names, models, batches, strict=True)}

    return evaluate


@jax.jit
def _ridge_prefix(batch: RegressionBatch) -> Float[Array, "batch k"]:
    """Ridge (λ = σ²) at every position from the pairs before it (0 at the first)."""
    return jax.vmap(lambda x, y: prefix_predictions(Ridge(NOISE**2), x, y))(batch.xs, batch.ys)


@jax.jit
def _dmmse_prefix(pool: Float[Array, "m d"], batch: RegressionBatch) -> Float[Array, "batch k"]:
    """dMMSE over `pool` at every position (the pool mean at the first); prompts in chunks of 64, since
    one prompt's posterior weighs `[k, m]` residual sums."""
    def one(xy):
        return prefix_predictions(dmmse(pool, NOISE), *xy)

    return jax.lax.map(one, (batch.xs, batch.ys), batch_size=64)


@eqx.filter_jit
def _compare(model: Transformer, batch: RegressionBatch, ridge_pred, dmmse_pred) -> dict[str, Array]:
    """loss / D of the model, ridge and dMMSE on `batch`, and the model's distance Δ (mean squared
    difference of predictions / D) to each estimator."""
    pred = prompts.batch_predict(model, batch)
    return {"model": _loss_per_dim(pred, batch), "ridge": _loss_per_dim(ridge_pred, batch),
            "dmmse": _loss_per_dim(dmmse_pred, batch),
            "delta_ridge": jnp.mean((pred - ridge_pred) ** 2) / D, "delta_dmmse": jnp.mean((pred - dmmse_pred) ** 2) / D}


def measure(config: Config, models: tuple[Transformer, ...], eval_key) -> dict:
    """Per pool size: loss / D and Δ to ridge and dMMSE on T_true and on the model's own pool."""
    tasks = make_tasks(config)
    true_batch = sample_batch(true_task(config), derive_key(eval_key, "true"), config.eval_size)
    ridge_true = _ridge_prefix(true_batch)
    out = {"pool_sizes": list(config.pool_sizes), "true": {}, "pool": {}}
    for m, model in zip(config.pool_sizes, models, strict=True):
        name, task = label(m), tasks[label(m)]
        if m == INF:  # on fresh Gaussian tasks the posterior mean is ridge itself
            out["true"][name] = _floats(_compare(model, true_batch, ridge_true, ridge_true))
            continue
        out["true"][name] = _floats(_compare(model, true_batch, ridge_true, _dmmse_prefix(task.pool, true_batch)))
        own = sample_batch(task, derive_key(eval_key, f"pool-{m}"), config.eval_size)
        out["pool"][name] = _floats(_compare(model, own, _ridge_prefix(own), _dmmse_prefix(task.pool, own)))
    out["crossover_log2_tasks"] = crossover(config.pool_sizes, out["true"])
    return out


def _floats(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}


def crossover(pool_sizes, true_rows: dict) -> float | None:
    """log2 of the smallest finite pool whose model is closer to ridge than to dMMSE on T_true (Δ_ridge <
    Δ_dMMSE), interpolated in log2 M between grid points; None if no finite pool gets there."""
    finite = [m for m in pool_sizes if m != INF]
    gap = [np.log(true_rows[label(m)]["delta_ridge"] / true_rows[label(m)]["delta_dmmse"]) for m in finite]
    for i, (m, g) in enumerate(zip(finite, gap, strict=True)):
        if g < 0:
            if i == 0:
                return float(np.log2(m))
            lo, hi = np.log2(finite[i - 1]), np.log2(m)
            return float(lo + (hi - lo) * gap[i - 1] / (gap[i - 1] - g))
    return None


def _finish(config: Config, models, eval_key, run: SeedRun) -> list[Check]:
    m = measure(config, models, eval_key)
    run.write_json("extras", m)
    finite = [s for s in config.pool_sizes if s != INF]
    small, large = label(finite[0]), label(finite[-1])
    own, true = m["pool"][small], m["true"]
    return [
        Check("ridge_baseline", RIDGE_D4, true["inf"]["ridge"], 0.03 * RIDGE_D4,
              "loss / D of ridge (λ = σ²) on fresh tasks, our Monte Carlo vs the paper's D = 4 value; 3%"),
        Check("small_pool_follows_dmmse", 1.0, own["model"] / own["dmmse"], 0.1,
              f"model loss / dMMSE loss on its own pool at M = {finite[0]}; 10% (the references' CPU check)"),
        Check("small_pool_fails_on_new_tasks", 2.0, true[small]["model"] / true[small]["ridge"], 0.0,
              f"model loss / ridge loss on fresh tasks at M = {finite[0]}: far above ridge (at least twice)",
              one_sided=True),
        Check("fresh_tasks_follow_ridge", 1.0, true["inf"]["model"] / true["inf"]["ridge"], 0.1,
              "model loss / ridge loss on fresh tasks for the model trained on fresh tasks (M = ∞); 10%"),
        Check("large_pool_beats_dmmse", 0.0, 1.0 - true[large]["model"] / true[large]["dmmse"], 0.0,
              f"1 - model loss / dMMSE loss on fresh tasks at M = {finite[-1]}: positive when the model beats "
              "the posterior over its own pool on new tasks", one_sided=True),
    ]


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    trained = train_on_tasks("icl-task-diversity", config, runs, make_tasks(config), lambda k: _init(config, k),
                             make_optimizer(config), loss_fn, _eval_fn(config), eval_size=1024)
    return [_finish(config, models, eval_key, run) for (models, eval_key), run in zip(trained, runs, strict=True)]


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, ...]:
    """The trained models, one per pool size (in `config.pool_sizes` order), from the newest checkpoint."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class IclTaskDiversity(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs)


EXPERIMENT = IclTaskDiversity()
