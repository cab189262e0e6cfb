"""Linear causal attention trained on AR trajectories learns one GD step (Zheng et al. 2024).

One layer of merged-parameter linear causal attention reads tokens e_t = (0, x_t, x_{t-1}) of a
trajectory x_{t+1} = W x_t (W orthogonal, 2x2 rotation blocks with uniform angles, a fresh W per
sequence) and is trained to predict x_{t+1} at every position. Zheng et al. prove that it converges to
one step of GD on the in-context OLS objective, y_hat_{t+1} = (eta / t) sum_{i<=t} x_i x_{i-1}^T x_t
(`theory/ar_gd.py`), and that the learned map recovers W only under a moment condition on x_1 that
Gaussian x_1 violates. Two layers train side by side, one with x_1 in {+-1}^d, one with x_1 ~ N(0, I).
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.rng import derive_key
from workbench.core.validate import check_float, check_int
from workbench.models import CausalLinearAttention
from workbench.tasks import ARProcess
from workbench.tasks import predictors as P
from workbench.tasks.regression_family import TrajectoryBatch
from workbench.theory import ar_gd
from workbench.train import load_trained

from . import _icl_autoregressive_figures as figures
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "Autoregressively trained linear attention learns one GD step"
PAPER = "Zheng, Xiao, Li et al. 2024, *On Mesa-Optimization in Autoregressively Trained Transformers* (NeurIPS)"
CLAIM = (
    "One layer of linear causal self-attention trained on the AR loss of x_{t+1} = W x_t (W unitary) "
    "converges to one step of gradient descent on the in-context OLS objective: "
    "ŷ_{t+1} = (η/(t−1)) Σ_{i<t} x_{i+1} x_iᵀ x_t, with W^KQ and W^PV block-sparse and their "
    "(x_t, x_{t−1}) blocks ∝ I. Whether the learned step recovers W depends on the initial token: "
    "under Gaussian x_1 (which violates their Assumption 4.2) the error does not vanish as t grows."
)
X1_DISTS = ar_gd.X1_DISTS
# Zheng et al.'s gradient flow starts from the construction's sparsity pattern (`structured`); a layer
# from a dense random init (`random`) trains beside it as the control.
INITS = ("structured", "random")
LAYERS = tuple((dist, init) for init in INITS for dist in X1_DISTS)


def label(dist: str, init: str) -> str:
    return dist if init == "structured" else f"{dist}_{init}"


@dataclasses.dataclass(frozen=True)
class Config:
    d: int = 6
    seq_len: int = 40
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 1e-2
    init_scale: float = 0.1
    eval_size: int = 8192
    log_every: int = 100
    eval_every: int = 250
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("d", "seq_len", "steps", "batch_size", "eval_size", "log_every", "eval_every", "ckpt_every"):
            check_int("icl-autoregressive", name, getattr(self, name))
        for name in ("lr", "init_scale"):
            check_float("icl-autoregressive", name, getattr(self, name), strict=True)
        if self.d % 2:
            raise ValueError(f"icl-autoregressive: d must be even (W is built from 2x2 rotations), got {self.d}; "
                             "e.g. --set d=4")
        check_int("icl-autoregressive", "seq_len", self.seq_len, low=4)


PRESETS = {
    "quick": Config(d=4, seq_len=24, steps=1500, batch_size=512, eval_size=4096, eval_every=100, ckpt_every=500),
    "default": Config(),
    "paper": Config(d=8, seq_len=50, steps=20_000, batch_size=2048, lr=3e-3, eval_size=32_768),
}


def make_task(config: Config, x1_dist: str) -> ARProcess:
    return ARProcess(d=config.d, seq_len=config.seq_len, x1_dist=x1_dist)


def tokens(xs: jax.Array) -> jax.Array:
    """`[seq, d]` -> e_t = (0, x_t, x_{t-1}) `[seq, 3d]` (x_{-1} = 0)."""
    prev = jnp.concatenate([jnp.zeros_like(xs[:1]), xs[:-1]])
    return jnp.concatenate([jnp.zeros_like(xs), xs, prev], axis=-1)


def predictions(model: CausalLinearAttention, xs: jax.Array) -> jax.Array:
    """`[batch, seq, d]` -> `[batch, seq - 2, d]`: the output block at positions t = 1..seq-2 (predicting x_{t+1})."""
    d = xs.shape[-1]
    return jax.vmap(lambda x: model(tokens(x))[1:-1, :d])(xs)


def ar_loss(model: CausalLinearAttention, xs: jax.Array) -> jax.Array:
    return jnp.mean(jnp.sum((predictions(model, xs) - xs[:, 2:]) ** 2, -1))


def loss_fn(models: tuple[CausalLinearAttention, ...], batches: tuple[TrajectoryBatch, ...]) -> jax.Array:
    """The layers of `LAYERS` train side by side as one pytree (disjoint parameters, so no coupling);
    the two inits of one x_1 distribution share its batch."""
    return sum(0.5 * ar_loss(m, batches[X1_DISTS.index(dist)].xs) for m, (dist, _) in zip(models, LAYERS, strict=True))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(config.lr, config.steps))


def _init(config: Config, key) -> tuple[CausalLinearAttention, ...]:
    """One layer per entry of `LAYERS`: `structured` is the construction scaled by `init_scale` in both
    weights (eta = init_scale^2), `random` is dense N(0, init_scale^2)."""
    kq, pv = (jnp.asarray(w, jnp.float32) * config.init_scale for w in ar_gd.construction(config.d))
    layers = []
    for k, (_, init) in zip(jax.random.split(key, len(LAYERS)), LAYERS, strict=True):
        layer = CausalLinearAttention(3 * config.d, key=k, init_scale=config.init_scale)
        layers.append(eqx.tree_at(lambda m: (m.W_KQ, m.W_PV), layer, (kq, pv)) if init == "structured" else layer)
    return tuple(layers)


def _eval(models, batches):
    return {f"loss_{label(dist, init)}": ar_loss(m, batches[X1_DISTS.index(dist)].xs)
            for m, (dist, init) in zip(models, LAYERS, strict=True)}


@eqx.filter_jit
def _model_predictions(model: CausalLinearAttention, xs: jax.Array) -> jax.Array:
    return predictions(model, xs)


@jax.jit
def _ols_predictions(xs: jax.Array) -> jax.Array:
    """Min-norm OLS on the pairs seen so far, aligned with `predictions` (`[batch, seq - 2, d]`)."""
    return jax.vmap(lambda x: P.ar_prefix_predictions(P.ols, x))(xs)[:, 2:]


def weight_structure(model: CausalLinearAttention, d: int) -> dict[str, float]:
    """Cosine of the learned bilinear form with the one-step GD construction, and its step size.

    Only W_PV[:d, d:] (what reaches the read-out from non-zero token blocks) and W_KQ[d:, d:] matter;
    the form is their outer product, so its cosine with the construction's is the product of cosines
    and eta_eff = a b with a, b the mean diagonals of the two identity blocks."""
    kq_c, pv_c = ar_gd.construction(d)
    pv, kq = np.asarray(model.W_PV, np.float64)[:d, d:], np.asarray(model.W_KQ, np.float64)[d:, d:]
    gp, gk = pv_c[:d, d:], kq_c[d:, d:]

    def cos(a, b):
        return float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    return {"construction_cosine": cos(pv, gp) * cos(kq, gk),
            "eta_eff": float(np.trace(pv[:, :d]) / d * np.trace(kq[d:, :d]) / d)}


def measure(config: Config, models, eval_key) -> dict:
    """Per initial-token distribution: relative error vs position of the model, one GD step with the
    fitted eta, OLS and the t -> infinity limit; the prediction cosine; the learned structure."""
    out = {"positions": list(range(1, config.seq_len - 1)), "d": config.d}
    for model, (dist, init) in zip(models, LAYERS, strict=True):
        xs = sample_batch(make_task(config, dist), derive_key(eval_key, dist), config.eval_size).xs
        target = np.asarray(xs[:, 2:], np.float64)
        pred = np.asarray(_model_predictions(model, xs), np.float64)
        g = ar_gd.gd_predictions(np.asarray(xs))[:, 1:-1]  # eta = 1
        eta_star = float(np.sum(g * target) / np.sum(g * g))  # the loss-minimising step of one GD step
        n_ols = min(1024, config.eval_size)
        ols = np.asarray(_ols_predictions(xs[:n_ols]), np.float64)
        norm = np.mean(np.sum(target**2, -1), 0)

        def rel(p, t=target):
            return (np.mean(np.sum((p - t) ** 2, -1), 0) / norm).tolist()

        flat_p, flat_g = pred.reshape(len(pred), -1), g.reshape(len(g), -1)
        cosine = np.sum(flat_p * flat_g, 1) / (np.linalg.norm(flat_p, axis=1) * np.linalg.norm(flat_g, axis=1))
        structure = weight_structure(model, config.d)
        out[label(dist, init)] = {
            "model": rel(pred), "gd": rel(eta_star * g), "ols": rel(ols, target[:n_ols]), "eta_star": eta_star,
            "pred_cosine": float(cosine.mean()), "pred_cosine_min": float(cosine.min()), **structure,
            "limit_model_eta": ar_gd.limit_error(structure["eta_eff"], dist),
            "limit_best": ar_gd.limit_error(ar_gd.best_limit_eta(dist), dist),
            "model_over_gd": float(np.mean(np.sum((pred - target) ** 2, -1)) / np.mean(np.sum((eta_star * g - target) ** 2, -1))),
            "W_KQ": np.asarray(model.W_KQ).tolist(), "W_PV": np.asarray(model.W_PV).tolist(),
        }
    return out


def _finish(config: Config, models, eval_key, run: SeedRun) -> list[Check]:
    m = measure(config, models, eval_key)
    run.write_json("extras", m)
    checks = []
    for dist in X1_DISTS:
        r = m[dist]
        checks.append(Check(f"pred_cosine_{dist}", 1.0, r["pred_cosine"], 0.02,
                            f"mean over eval trajectories of the cosine between the trained layer's predictions and one "
                            f"GD step's (all positions), x_1 {dist}; summary-table tolerance cos >= 0.98", one_sided=True))
        checks.append(Check(f"construction_cosine_{dist}", 1.0, r["construction_cosine"], 0.02,
                            "cosine of the learned bilinear form W_PV[:d, d:] (x) W_KQ[d:, d:] with the one-step GD "
                            "construction (block-sparse, (x_{i-1}, x_t) block ∝ I); >= 0.98", one_sided=True))
        checks.append(Check(f"error_ratio_{dist}", 1.0, r["model_over_gd"], 0.05,
                            "AR error of the trained layer over that of one GD step with the fitted step (all positions); "
                            "1 if the layer is one GD step, below 1 if it found a better predictor; 5%"))
        checks.append(Check(f"eta_{dist}", r["eta_star"], r["eta_eff"], 0.05 * r["eta_star"],
                            "the layer's step size a*b (mean diagonals of its identity blocks) vs the loss-minimising "
                            "step of one GD step on the eval trajectories; 5%"))
    g = m["gaussian"]
    checks.append(Check("gaussian_error_floor", g["limit_best"], g["model"][-1], 0.0,
                        f"relative error of the Gaussian-x_1 layer at the last position (t = {config.seq_len - 2}) stays "
                        "above 1/3, the t -> infinity error of one GD step at its best step size (OLS reaches 0); "
                        "one-sided", one_sided=True))
    return checks


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    tasks = {s: make_task(config, s) for s in X1_DISTS}
    trained = train_on_tasks("icl-autoregressive", config, runs, tasks, lambda k: _init(config, k),
                             make_optimizer(config), loss_fn, _eval, eval_size=2048)
    return [_finish(config, models, eval_key, run) for (models, eval_key), run in zip(trained, runs, strict=True)]


def load_models(config: Config, run_dir: Path) -> tuple[CausalLinearAttention, ...]:
    """The trained layers (in the order of `LAYERS`) from the newest checkpoint of a seed folder."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class IclAutoregressive(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs, X1_DISTS, [label(d, i) for d, i in LAYERS])


EXPERIMENT = IclAutoregressive()
