"""In-context learning is gradient descent (von Oswald et al. 2023), one linear self-attention layer.

A single LSA layer trained on in-context linear regression (d = N = 10, x ~ U(-0.5, 0.5), w ~ N(0, I),
no noise) should implement one step of gradient descent with the optimal step size: same loss, same
predictions, same sensitivity to the query, and weights equal to the construction of Prop. 1 up to
the scale symmetry.
"""

import dataclasses
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.rng import derive_key
from workbench.core.validate import check_float, check_int
from workbench.models import LinearSelfAttention
from workbench.tasks import LinearRegression, RegressionBatch
from workbench.tasks.predictors import gd, ols, unmasked
from workbench.tasks.regression import best_gd_eta, half_mse, predict_batch
from workbench.train import Schedule, load_trained, train, unstack
from workbench.theory import lsa_gd

from . import _icl_gd_figures as figures
from ._base import Experiment, SeedRun

TITLE = "In-context learning is gradient descent"
PAPER = "von Oswald et al. 2023, *Transformers learn in-context by gradient descent* (ICML)"
CLAIM = (
    "A single linear self-attention layer trained on in-context linear regression matches one step "
    "of gradient descent with the optimal step size: its loss is identical to GD's, its predictions and "
    "its sensitivity to the query input agree (cosine ≈ 1), and its weights equal the construction of "
    "Prop. 1 once the scale symmetry is removed."
)
N_SAVED_PREDICTIONS = 400


@dataclasses.dataclass(frozen=True)
class Config:
    d: int = 10
    n_points: int = 10
    noise: float = 0.0
    x_range: float = 1.0  # x ~ U(-x_range/2, x_range/2): the released code's input_range = 1
    steps: int = 5000
    batch_size: int = 2048
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: decay to 0 over `steps`
    b1: float = 0.9
    b2: float = 0.98
    clip: float = 1e-3  # global-norm clipping before Adam, as in the paper's code for <= 2 layers
    init_scale: float = 0.002
    eval_size: int = 10_000
    eta_prompts: int = 10_000
    log_every: int = 100
    eval_every: int = 250
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("d", "n_points", "steps", "batch_size", "eval_size", "eta_prompts",
                     "log_every", "eval_every", "ckpt_every"):
            check_int("icl-gd", name, getattr(self, name))
        for name in ("lr", "clip", "init_scale", "x_range"):
            check_float("icl-gd", name, getattr(self, name), strict=True)
        check_float("icl-gd", "noise", self.noise)


# `paper` is the paper's 1-layer setting (Adam 1e-3 at a constant rate, batch 2048, 5,000 steps).
# With a constant rate Adam's noise keeps the weights jittering around the GD solution, so `default`
# and `quick` decay the rate to zero (cosine) and stop earlier; the plateau ends after ~500 steps.
PRESETS = {
    "quick": Config(steps=1500, batch_size=1024, lr_schedule="cosine", eval_size=4096, eta_prompts=4096,
                    eval_every=100, ckpt_every=500),
    "default": Config(steps=3000, lr_schedule="cosine"),
    "paper": Config(eval_every=100, ckpt_every=500),
}


def make_task(config: Config) -> LinearRegression:
    return LinearRegression(d=config.d, n_points=config.n_points, noise=config.noise, x_dist="uniform",
                            x_range=config.x_range)


def make_optimizer(config: Config) -> optax.GradientTransformation:
    lr = optax.cosine_decay_schedule(config.lr, config.steps) if config.lr_schedule == "cosine" else config.lr
    return optax.chain(optax.clip_by_global_norm(config.clip), optax.adam(lr, b1=config.b1, b2=config.b2))


def lsa_predictions(model: LinearSelfAttention, batch: RegressionBatch) -> jax.Array:
    return jax.vmap(model.predict)(batch.context_xs, batch.context_ys, batch.query_x)


def loss_fn(model: LinearSelfAttention, batch: RegressionBatch) -> jax.Array:
    return half_mse(lsa_predictions(model, batch), batch.query_y)


def _cosine(a, b):
    return jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))


def _eval_fn(eta: jax.Array):
    def evaluate(model, batch):
        pred = lsa_predictions(model, batch)
        ref = predict_batch(gd(eta), batch)
        return {"loss": half_mse(pred, batch.query_y), "pred_cosine_gd": _cosine(pred, ref)}

    return evaluate


def sensitivity_cosine(model: LinearSelfAttention, eta: float, batch: RegressionBatch) -> jax.Array:
    """Mean over prompts of cos(d y_hat / d x_q) between the model and one GD step with `eta`."""
    grad_model = jax.vmap(jax.grad(model.predict, argnums=2))(batch.context_xs, batch.context_ys, batch.query_x)
    grad_gd = jax.vmap(jax.grad(unmasked(gd(eta)), argnums=2))(batch.context_xs, batch.context_ys, batch.query_x)
    cos = jnp.sum(grad_model * grad_gd, -1) / (jnp.linalg.norm(grad_model, axis=-1) * jnp.linalg.norm(grad_gd, axis=-1))
    return cos.mean()


@eqx.filter_jit
def _sample(task: LinearRegression, key: jax.Array, batch_size: int) -> RegressionBatch:
    return task.sample(key, batch_size)


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    task = make_task(config)
    seeds, run_dirs = [r.seed for r in runs], [r.dir for r in runs]
    streams = [{name: r.key(name) for name in ("init", "data", "eval")} for r in runs]
    etas = [best_gd_eta(_sample(task, derive_key(st["data"], "line-search"), config.eta_prompts)) for st in streams]
    eval_batches = [_sample(task, st["eval"], config.eval_size) for st in streams]
    models = eqx.filter_vmap(lambda k: LinearSelfAttention(config.d, key=k, init_scale=config.init_scale))(
        jnp.stack([st["init"] for st in streams])
    )
    eval_data = (jnp.asarray(etas), jax.tree.map(lambda *xs: jnp.stack(xs), *eval_batches))

    def evaluate(model, data):
        eta, batch = data
        return _eval_fn(eta)(model, batch)

    models = train(
        models, make_optimizer(config), loss_fn, lambda key: task.sample(key, config.batch_size),
        data_keys=jnp.stack([st["data"] for st in streams]), eval_fn=evaluate, eval_data=eval_data,
        schedule=Schedule(config.steps, config.log_every, config.eval_every, config.ckpt_every),
        seeds=seeds, run_dirs=run_dirs, meta={"experiment": "icl-gd", "config": dataclasses.asdict(config)},
        label=f"icl-gd seeds {','.join(map(str, seeds))}",
    )
    return [
        _finish(config, unstack(models, i), etas[i], eval_batches[i], runs[i]) for i in range(len(runs))
    ]


@eqx.filter_jit
def _measure(model: LinearSelfAttention, eta: jax.Array, batch: RegressionBatch) -> dict[str, jax.Array]:
    pred = lsa_predictions(model, batch)
    pred_gd = predict_batch(gd(eta), batch)
    sq_gd = 0.5 * (pred_gd - batch.query_y) ** 2
    return {
        "pred": pred, "pred_gd": pred_gd, "loss": half_mse(pred, batch.query_y), "gd_loss": sq_gd.mean(),
        "gd_loss_se": sq_gd.std() / jnp.sqrt(sq_gd.size), "ols_loss": half_mse(predict_batch(ols, batch), batch.query_y),
        "zero_loss": half_mse(jnp.zeros_like(pred), batch.query_y), "pred_cosine": _cosine(pred, pred_gd),
        "sensitivity_cosine": sensitivity_cosine(model, eta, batch), "mean_abs_diff": jnp.abs(pred - pred_gd).mean(),
    }


def _finish(config: Config, model: LinearSelfAttention, eta: float, batch: RegressionBatch, run: SeedRun) -> list[Check]:
    task = make_task(config)
    m = {k: np.asarray(v) for k, v in _measure(model, jnp.asarray(eta), batch).items()}
    loss, gd_loss, gd_loss_se = float(m["loss"]), float(m["gd_loss"]), float(m["gd_loss_se"])
    s2, m4 = task.x_moments
    eta_theory = lsa_gd.optimal_eta(config.d, config.n_points, s2, m4)
    theory_loss = float(lsa_gd.expected_gd_loss(eta_theory, config.d, config.n_points, s2, m4))
    extras = {
        "eta_star": eta, "eta_theory": eta_theory, "effective_eta": lsa_gd.effective_eta(model, config.n_points),
        "loss": loss, "gd_loss": gd_loss, "gd_loss_se": gd_loss_se, "theory_gd_loss": theory_loss,
        "ols_loss": float(m["ols_loss"]), "zero_loss": float(m["zero_loss"]),
        "pred_model": m["pred"][:N_SAVED_PREDICTIONS].tolist(),
        "pred_gd": m["pred_gd"][:N_SAVED_PREDICTIONS].tolist(),
    }
    run.write_json("extras", extras)
    noise_free = config.noise == 0
    checks = [
        Check("loss_ratio_to_gd", 1.0, loss / gd_loss, 0.02,
              "test loss of the trained LSA / loss of one GD step with the line-searched eta*"),
        Check("prediction_cosine", 1.0, float(m["pred_cosine"]), 0.01,
              "cosine similarity of the predictions of the LSA and of GD(eta*) on the eval prompts", one_sided=True),
        Check("sensitivity_cosine", 1.0, float(m["sensitivity_cosine"]), 0.01,
              "mean cosine of d y_hat / d x_query, LSA vs GD(eta*)", one_sided=True),
        Check("mean_abs_prediction_diff", 0.0, float(m["mean_abs_diff"]), 0.02,
              "mean |y_hat_LSA - y_hat_GD| on the eval prompts"),
        Check("construction_distance", 0.0, lsa_gd.construction_distance(model, config.n_points, eta), 0.1,
              "relative Frobenius distance of the learned bilinear form (P W_V, W_K^T W_Q) to Prop. 1's at eta*"),
    ]
    if noise_free:
        checks.append(Check("gd_loss_vs_theory", theory_loss, gd_loss, 3 * gd_loss_se,
                            "eval loss of GD(eta*) vs the closed form E loss at the optimal eta (theory/lsa_gd.py); "
                            "tolerance 3 standard errors"))
    return checks


def load_model(config: Config, run_dir: Path) -> LinearSelfAttention:
    """The trained layer from the newest checkpoint of a seed folder."""
    return load_trained(run_dir, LinearSelfAttention(config.d, key=jax.random.key(0)), make_optimizer(config))


class IclGd(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        s2, m4 = make_task(config).x_moments
        return figures.analyse(config, runs, s2, m4)


EXPERIMENT = IclGd()
