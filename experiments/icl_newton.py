"""Transformers implement higher-order optimisation in context (Fu, Chen, Jia & Sharan, arXiv 2310.17086).

A causal transformer reads in-context regression prompts `x_1, y_1, ..., x_n, y_n` (noiseless, w ~ N(0, I),
n = 2d) and predicts each `y_k` at the token of `x_k`. A ridge read-out fitted on the residual stream after
each layer gives that layer's predictions; their residuals `y_hat - y` over the positions of a prompt are
compared, by cosine similarity averaged over prompts, with those of Iterative Newton (Newton-Schulz iterates
`M_k` of (X^T X)^+, `w_k = M_k X^T y`, k = 0..K) and of gradient descent (t steps of step 1 / s_max on
1/2 |X w - y|^2, t on a log grid). The paper finds that the best-matching Newton step grows linearly with
the layer (about 3 iterations per middle layer) while the best-matching GD step grows exponentially.

Two models train side by side: one on isotropic covariates x ~ N(0, I) and one on ill-conditioned ones,
x ~ N(0, Q diag(λ) Q^T) with λ log-spaced over `condition_number` (`tasks.ill_conditioned_covariance`) and a
fresh rotation Q per prompt, so no fixed preconditioner solves it.
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.rng import derive_key
from workbench.core.validate import check_float, check_int
from workbench.interp import probes
from workbench.models import Transformer, TransformerConfig, run_with_cache, sites
from workbench.tasks import LinearRegression, RegressionBatch, ill_conditioned_covariance
from workbench.tasks.predictors import newton_iterates
from workbench.train import load_trained

from . import _icl_newton_figures as figures
from . import _icl_prompts as prompts
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "Transformers as Iterative Newton: layers match Newton iterations, not gradient descent steps"
PAPER = ("Fu, Chen, Jia & Sharan 2024, *Transformers Learn to Achieve Second-Order Convergence Rates for "
         "In-Context Linear Regression* (NeurIPS; arXiv 2310.17086)")
CLAIM = (
    "Read out layer by layer, a transformer trained on in-context linear regression makes the errors of "
    "Iterative Newton's method (Newton-Schulz iterations on XᵀX): the best-matching Newton step grows linearly "
    "with the layer, each middle layer roughly computing 3 iterations, while the best-matching gradient descent "
    "step grows exponentially with the layer. The same holds on ill-conditioned covariates, where GD struggles. "
    "The references' CPU check: Spearman(layer, best Newton step) ≥ 0.9 with 1–3 steps per layer, a "
    "super-linear best GD step, late-layer residual cosine with Newton ≥ 0.9."
)
VARIANTS = ("gaussian", "ill")
TARGET_STEPS_PER_LAYER = 2.0  # the references' 1-3 Newton steps per middle layer, as 2 +- 1
MIN_SPEARMAN, MIN_COSINE, LINEAR = 0.9, 0.9, 1.0
READOUT_LAMS = tuple(float(x) for x in np.logspace(-8, 2, 11))  # absolute ridge penalties of the read-outs
READOUT_FOLDS = 4


@dataclasses.dataclass(frozen=True)
class Config:
    d: int = 5
    n_points: int = 10  # n = 2d points per prompt, every one a prediction
    condition_number: float = 100.0  # of the ill-conditioned covariance (largest / smallest eigenvalue)
    n_layers: int = 8
    d_model: int = 32
    n_heads: int = 4
    attn_only: bool = True
    layout: prompts.Layout = "xy"  # the y token carries (x_i, y_i), or (0, y_i) as in Garg et al.
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 150
    probe_size: int = 2048  # prompts on which each layer's read-out is fitted
    eval_size: int = 1024  # held-out prompts on which residuals are compared
    newton_steps: int = 24  # Newton-Schulz iterates k = 0..K (Fu et al. compare 1..23)
    gd_max_log2: int = 13  # GD steps round(2^(j/2)), j = 0..2 * gd_max_log2 (Fu et al.: up to 2^12)
    tie_tol: float = 1e-3  # the best step is the smallest one within tie_tol of the best cosine
    log_every: int = 100
    eval_every: int = 250
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("d", "n_points", "n_layers", "d_model", "n_heads", "steps", "batch_size", "warmup", "probe_size",
                     "eval_size", "newton_steps", "gd_max_log2", "log_every", "eval_every", "ckpt_every"):
            check_int("icl-newton", name, getattr(self, name))
        check_float("icl-newton", "lr", self.lr, strict=True)
        check_float("icl-newton", "condition_number", self.condition_number, low=1.0)
        check_float("icl-newton", "tie_tol", self.tie_tol)
        if self.d_model % self.n_heads:
            raise ValueError(f"icl-newton: d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.n_layers < 3:
            raise ValueError(f"icl-newton: n_layers must be >= 3 (a first, a last and a middle layer), "
                             f"got {self.n_layers}")
        if self.layout not in ("xy", "garg"):
            raise ValueError(f"icl-newton: layout must be 'xy' or 'garg', got {self.layout!r}")
        if self.warmup >= self.steps:
            raise ValueError(f"icl-newton: warmup ({self.warmup}) must be below steps ({self.steps})")

    @property
    def gd_grid(self) -> tuple[int, ...]:
        """GD step counts: round(2^(j/2)) for j = 0..2 * gd_max_log2, duplicates dropped."""
        return tuple(sorted({int(round(2 ** (j / 2))) for j in range(2 * self.gd_max_log2 + 1)}))


# The references' CPU setting is d = 5-8, n = 2d, an 8-layer x 64 GPT and ~10k steps. On a shared 2-core
# machine `default` keeps d = 5, n = 10 and the 8 layers but drops the MLPs, halves the width and trains 1,500
# steps (both models, three seeds, in minutes); its y tokens carry their x (`xy_tokens`), which removes the
# copying plateau of Garg et al.'s layout. `paper` is Garg et al.'s GPT-2 (12 layers x 256, 8 heads, MLPs,
# their layout) at d = 20, n = 40.
PRESETS = {
    "quick": Config(n_layers=4, steps=400, warmup=40, probe_size=1024, eval_size=512, newton_steps=16,
                    gd_max_log2=11, eval_every=100, ckpt_every=400),
    "default": Config(),
    "paper": Config(d=20, n_points=40, n_layers=12, d_model=256, n_heads=8, attn_only=False, layout="garg",
                    steps=500_000, warmup=5000, lr=1e-4, eval_every=5000, ckpt_every=20_000, log_every=1000),
}


class RotatedRegression(eqx.Module):
    """Noiseless regression with x ~ N(0, Q diag(eigs) Q^T), a fresh uniform rotation Q and w ~ N(0, I)
    per prompt."""

    eigs: Float[Array, " d"]
    n_points: int = eqx.field(static=True)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> RegressionBatch:
        kz, kq, kw = jax.random.split(key, 3)
        d = self.eigs.shape[0]
        q, r = jnp.linalg.qr(jax.random.normal(kq, (batch_size, d, d)))
        q = q * jnp.sign(jnp.diagonal(r, axis1=1, axis2=2))[:, None, :]
        z = jax.random.normal(kz, (batch_size, self.n_points + 1, d))
        xs = jnp.einsum("bnd,bed->bne", z * jnp.sqrt(self.eigs), q)
        ws = jax.random.normal(kw, (batch_size, d))
        return RegressionBatch(xs=xs, ys=jnp.einsum("bnd,bd->bn", xs, ws), ws=ws)


def make_tasks(config: Config) -> dict[str, LinearRegression | RotatedRegression]:
    """Isotropic covariates, and ill-conditioned ones with a fresh rotation per prompt."""
    eigs = jnp.diag(ill_conditioned_covariance(config.d, config.condition_number))
    return {"gaussian": LinearRegression(d=config.d, n_points=config.n_points - 1, x_dist="gaussian"),
            "ill": RotatedRegression(eigs, config.n_points - 1)}


def model_config(config: Config) -> TransformerConfig:
    return prompts.model_config(config.d, config.n_points, config.n_layers, config.d_model, config.n_heads,
                                attn_only=config.attn_only)


_predict = eqx.filter_jit(prompts.batch_predict)


def _mse(model: Transformer, batch: RegressionBatch, layout: prompts.Layout) -> Float[Array, ""]:
    return jnp.mean((prompts.batch_predict(model, batch, layout) - batch.ys) ** 2)


def make_loss(config: Config):
    """Mean squared error at every position; the models train side by side as one pytree."""
    def loss_fn(models: tuple[Transformer, ...], batches: tuple[RegressionBatch, ...]) -> jax.Array:
        return sum(_mse(m, b, config.layout) for m, b in zip(models, batches, strict=True))

    return loss_fn


def make_eval(config: Config):
    def eval_fn(models, batches) -> dict[str, jax.Array]:
        return {f"loss_{v}": _mse(m, b, config.layout) for v, m, b in zip(VARIANTS, models, batches, strict=True)}

    return eval_fn


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam with a linear warm-up and a cosine decay to 0, clipped at global norm 1."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, config.warmup, config.steps)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def _init(config: Config, key) -> tuple[Transformer, ...]:
    return tuple(Transformer(model_config(config), key=k) for k in jax.random.split(key, len(VARIANTS)))


# --- the algorithms' predictions on every prefix ---------------------------------------------------------------


def _prefix_masks(n: int) -> Float[Array, "n n"]:
    """Row j uses the points 0..j-1."""
    return jnp.arange(n)[None, :] < jnp.arange(n)[:, None]


@eqx.filter_jit
def newton_predictions(xs: Float[Array, "batch n d"], ys: Float[Array, "batch n"], steps: int
                       ) -> Float[Array, "steps_plus_1 batch n"]:
    """Prediction of `y_j` from the points before it by the Newton-Schulz iterates k = 0..steps (0 at j = 0)."""
    def one(x, y):
        def at(mask, xq):
            return newton_iterates(x, y, mask, steps)[1] @ xq  # [steps + 1]
        return jax.vmap(at)(_prefix_masks(x.shape[0]), x)  # [n, steps + 1]

    return jnp.moveaxis(jax.vmap(one)(xs, ys), -1, 0)


def gd_weights(xs: Float[Array, "n d"], ys: Float[Array, " n"], mask, t: Float[Array, " t"]) -> Float[Array, "t d"]:
    """w_t after t steps of GD from 0 on 1/2 |X w - y|^2 (the used rows) with step 1 / s_max, in closed form:
    in S = X^T X's eigenbasis, w_t = sum_i (1 - (1 - s_i / s_max)^t) / s_i (v_i . X^T y) v_i."""
    xm = xs * mask[:, None]
    evals, vecs = jnp.linalg.eigh(xm.T @ xm)
    s_max = jnp.maximum(evals[-1], 1e-30)
    keep = evals > 1e-6 * s_max
    proj = vecs.T @ (xm.T @ (ys * mask))
    factor = 1.0 - (1.0 - jnp.clip(evals / s_max, 0.0, 1.0))[None, :] ** t[:, None]
    coef = jnp.where(keep, factor / jnp.where(keep, evals, 1.0), 0.0) * proj  # [t, d]
    return coef @ vecs.T


@eqx.filter_jit
def gd_predictions(xs: Float[Array, "batch n d"], ys: Float[Array, "batch n"], t: Float[Array, " t"]
                   ) -> Float[Array, "t batch n"]:
    """Prediction of `y_j` from the points before it after each number of GD steps in `t` (0 at j = 0)."""
    def one(x, y):
        return jax.vmap(lambda mask, xq: gd_weights(x, y, mask, t) @ xq)(_prefix_masks(x.shape[0]), x)  # [n, t]

    return jnp.moveaxis(jax.vmap(one)(xs, ys), -1, 0)


def residual_cosine(pred_a: Float[Array, "... batch n"], pred_b: Float[Array, "... batch n"],
                    ys: Float[Array, "batch n"]) -> Float[Array, "..."]:
    """Cosine of the residual vectors `pred - y` over positions, averaged over prompts (Fu et al.)."""
    ra, rb = pred_a - ys, pred_b - ys
    cos = (ra * rb).sum(-1) / jnp.sqrt((ra**2).sum(-1) * (rb**2).sum(-1) + 1e-30)
    return cos.mean(-1)


# --- per-layer read-outs --------------------------------------------------------------------------------------


@eqx.filter_jit
def layer_resid(model: Transformer, xs, ys, layout: prompts.Layout = "xy") -> Float[Array, "layer batch n d_model"]:
    """The residual stream after each layer at the x tokens (where the prediction of that point is read)."""
    names = tuple(sites.resid_post(l) for l in range(model.config.n_layers))
    _, cache = jax.vmap(lambda x, y: run_with_cache(model, prompts.LAYOUTS[layout](x, y), names))(xs, ys)
    return jnp.stack([cache[name][:, 0::2] for name in names])


@eqx.filter_jit
def readout_predictions(train_resid: Float[Array, "layer batch n d_model"], train_ys: Float[Array, "batch n"],
                        test_resid: Float[Array, "layer batch2 n d_model"]) -> Float[Array, "layer batch2 n"]:
    """Per layer, a ridge read-out of `interp.probes` (closed form, all positions pooled, the penalty of
    `READOUT_LAMS` with the least error over `READOUT_FOLDS` folds of the training prompts) fitted on
    `train_resid` to the targets and applied to `test_resid`."""
    b, n = train_ys.shape
    group = jnp.repeat(jnp.arange(b) % READOUT_FOLDS, n)  # folds by prompt: a prompt's positions stay together
    lams = jnp.asarray(READOUT_LAMS)

    def one(train, test):
        stats = probes.ridge_stats(train.reshape(b * n, -1), train_ys.reshape(-1, 1), group, READOUT_FOLDS)
        return probes.fit_ridge(stats, lams, READOUT_FOLDS)(test)[..., 0]

    return jax.vmap(one)(train_resid, test_resid)


# --- summaries -----------------------------------------------------------------------------------------------


def best_steps(cosine: np.ndarray, grid, tie_tol: float) -> list[float]:
    """Per row (layer), the smallest grid step whose cosine is within `tie_tol` of the row's best (a converged
    method's later steps all match equally)."""
    cosine = np.asarray(cosine)
    hit = cosine >= cosine.max(-1, keepdims=True) - tie_tol
    return [float(np.asarray(grid)[np.argmax(row)]) for row in hit]


def spearman(a, b) -> float:
    """Spearman rank correlation (ties share their mean rank); nan when either side is constant."""
    def rank(v):
        _, inv, counts = np.unique(np.asarray(v, float), return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        return ((ends - counts + ends - 1) / 2)[inv]

    ra, rb = rank(a), rank(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def slope(x, y) -> float:
    """Least-squares slope of y on x (nan with fewer than two distinct x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx = x - x.mean()
    return float((dx @ (y - y.mean())) / (dx @ dx)) if dx @ dx > 0 else float("nan")


def power_exponent(layers, steps) -> float:
    """p of the least-squares fit log t = p log l + c: p > 1 is super-linear growth of t in the layer l."""
    return slope(np.log(np.asarray(layers, float)), np.log(np.asarray(steps, float)))


def summarise(newton_cos: np.ndarray, gd_cos: np.ndarray, config: Config) -> dict:
    """Best steps per layer and the numbers the checks read."""
    layers = np.arange(1, newton_cos.shape[0] + 1)
    newton_best = best_steps(newton_cos, range(config.newton_steps + 1), config.tie_tol)
    gd_best = best_steps(gd_cos, config.gd_grid, config.tie_tol)
    middle = slice(1, -1)
    return {
        "newton_cosine": newton_cos.tolist(), "gd_cosine": gd_cos.tolist(),
        "newton_best": newton_best, "gd_best": gd_best,
        "newton_best_cosine": newton_cos.max(-1).tolist(), "gd_best_cosine": gd_cos.max(-1).tolist(),
        "spearman_newton": spearman(layers, newton_best), "spearman_gd": spearman(layers, gd_best),
        "newton_steps_per_layer": slope(layers[middle], np.asarray(newton_best)[middle]),
        "gd_power_exponent": power_exponent(layers, gd_best),
        "gd_doublings_per_layer": slope(layers, np.log2(gd_best)),
    }


def measure_variant(config: Config, model: Transformer, task, key) -> dict:
    probe = sample_batch(task, derive_key(key, "probe"), config.probe_size)
    test = sample_batch(task, derive_key(key, "test"), config.eval_size)
    reads = readout_predictions(layer_resid(model, probe.xs, probe.ys, config.layout), probe.ys,
                                layer_resid(model, test.xs, test.ys, config.layout))
    newton = newton_predictions(test.xs, test.ys, config.newton_steps)
    gd = gd_predictions(test.xs, test.ys, jnp.asarray(config.gd_grid, jnp.float32))
    newton_cos = np.asarray(jax.vmap(lambda r: residual_cosine(r[None], newton, test.ys))(reads))
    gd_cos = np.asarray(jax.vmap(lambda r: residual_cosine(r[None], gd, test.ys))(reads))
    mse = lambda p: np.asarray(jnp.mean((p - test.ys) ** 2, axis=(-2,))).tolist()  # noqa: E731
    out = summarise(newton_cos, gd_cos, config)
    out |= {"readout_mse": mse(reads), "model_mse": mse(_predict(model, test, config.layout)),
            "newton_mse": mse(newton), "gd_mse": mse(gd)}  # [step, position]
    return out


def measure(config: Config, models: tuple[Transformer, ...], eval_key) -> dict:
    tasks = make_tasks(config)
    return {"layers": list(range(1, config.n_layers + 1)), "newton_grid": list(range(config.newton_steps + 1)),
            "gd_grid": list(config.gd_grid), "variants": list(VARIANTS),
            **{v: measure_variant(config, m, tasks[v], derive_key(eval_key, f"measure-{v}"))
               for v, m in zip(VARIANTS, models, strict=True)}}


def checks(m: dict) -> list[Check]:
    out = []
    for v, what in (("gaussian", "isotropic covariates"), ("ill", "ill-conditioned covariates")):
        r = m[v]
        out += [
            Check(f"newton_monotone_{v}", 1.0, r["spearman_newton"], 1.0 - MIN_SPEARMAN,
                  f"Spearman(layer, best-matching Newton step), {what}; the references ask >= {MIN_SPEARMAN}",
                  one_sided=True),
            Check(f"newton_steps_per_layer_{v}", TARGET_STEPS_PER_LAYER, r["newton_steps_per_layer"], 1.0,
                  f"slope of the best Newton step over the middle layers (all but the first and last), {what}: "
                  "the references' 1-3 steps per layer"),
            Check(f"gd_superlinear_{v}", LINEAR, r["gd_power_exponent"], 0.0,
                  f"p of the fit best GD step ∝ layer^p, {what}: p >= 1 at least linear, the paper's "
                  "exponential growth gives p well above 1", one_sided=True),
            Check(f"last_layer_newton_cosine_{v}", 1.0, r["newton_best_cosine"][-1], 1.0 - MIN_COSINE,
                  f"residual cosine of the last layer with its best Newton step, {what}; the references ask "
                  f">= {MIN_COSINE}", one_sided=True),
        ]
    return out


def _finish(config: Config, models, eval_key, run: SeedRun) -> list[Check]:
    m = measure(config, models, eval_key)
    run.write_json("extras", m)
    return checks(m)


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    trained = train_on_tasks("icl-newton", config, runs, make_tasks(config), lambda k: _init(config, k),
                             make_optimizer(config), make_loss(config), make_eval(config), eval_size=1024)
    return [_finish(config, models, eval_key, run) for (models, eval_key), run in zip(trained, runs, strict=True)]


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, ...]:
    """The trained models (isotropic, ill-conditioned) from the newest checkpoint."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class IclNewton(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs)


EXPERIMENT = IclNewton()
