"""Trained linear self-attention learns a linear model in context (Zhang, Frei and Bartlett 2024).

One LSA layer (ZFB's normalisation: the update is divided by the prompt length) is trained on
Gaussian in-context regression, x ~ N(0, Lambda), w ~ N(0, I), N = 20 points, once with Lambda = I
and once with Lambda = diag(4, 2, 1, 0.5, 0.25). At the global minimum its prediction is
x_q^T Gamma^{-1} (1/M) sum_i y_i x_i with Gamma = (1 + 1/N) Lambda + tr(Lambda)/N I (`theory/zfb.py`),
so the test error on prompts of length M follows a closed form, and a covariate shift at test time
(x ~ N(0, 2 Lambda)) leaves an error that no number of examples removes.
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
from workbench.models import LinearSelfAttention
from workbench.tasks import LinearRegression, RegressionBatch
from workbench.tasks.predictors import ols
from workbench.train import load_trained
from workbench.theory import zfb

from . import _icl_zfb_figures as figures
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "Trained transformers learn linear models in context"
PAPER = "Zhang, Frei & Bartlett 2024, *Trained Transformers Learn Linear Models In-Context* (JMLR 25)"
CLAIM = (
    "A single linear self-attention layer trained by gradient flow on in-context linear regression with "
    "x ~ N(0, Λ) reaches the global minimum W^PV_22 · W^KQ_11 = Γ⁻¹, Γ = (1 + 1/N) Λ + tr(Λ)/N · I. Its "
    "prediction is x_qᵀ Γ⁻¹ (1/M) Σ y_i x_i, so the test error on prompts of length M has a closed form "
    "(3.817 / 1.154 / 0.488 at M = 5 / 20 / 80 for d = 5, N = 20, Λ = I); task and query shifts are "
    "tolerated, a covariate shift is not."
)
SPECTRA = {"isotropic": (1.0, 1.0, 1.0, 1.0, 1.0), "diagonal": (4.0, 2.0, 1.0, 0.5, 0.25)}
PROMPT_LENGTHS = (5, 10, 20, 40, 80)
SHIFT = 2.0  # covariate shift at test time: x ~ N(0, SHIFT * Lambda)


@dataclasses.dataclass(frozen=True)
class Config:
    n_points: int = 20
    steps: int = 4000
    batch_size: int = 2048
    lr: float = 3e-3
    init_scale: float = 0.1
    eval_size: int = 40_000
    log_every: int = 100
    eval_every: int = 250
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("n_points", "steps", "batch_size", "eval_size", "log_every", "eval_every", "ckpt_every"):
            check_int("icl-zfb", name, getattr(self, name))
        for name in ("lr", "init_scale"):
            check_float("icl-zfb", name, getattr(self, name), strict=True)


PRESETS = {
    "quick": Config(steps=1500, batch_size=1024, eval_size=20_000, eval_every=100, ckpt_every=500),
    "default": Config(),
    "paper": Config(steps=20_000, batch_size=4096, lr=1e-3, eval_size=100_000),
}
D = 5


def covariance(spectrum: str, scale: float = 1.0) -> np.ndarray:
    return np.diag(np.asarray(SPECTRA[spectrum]) * scale)


def make_task(spectrum: str, n_points: int, scale: float = 1.0) -> LinearRegression:
    return LinearRegression(d=D, n_points=n_points, x_dist="gaussian",
                            covariance=jnp.asarray(covariance(spectrum, scale), jnp.float32))


def predictions(model: LinearSelfAttention, batch: RegressionBatch) -> jax.Array:
    """ZFB's normalised LSA: the update of the query token divided by the number of context points."""
    n = batch.context_xs.shape[1]
    return jax.vmap(model.predict)(batch.context_xs, batch.context_ys, batch.query_x) / n


def preconditioner(model: LinearSelfAttention) -> jax.Array:
    """The learned W^PV_22 W^KQ_11 `[d, d]`: -(P W_V)[y, y] (W_K^T W_Q)[x, x] (prediction = minus the y-slot)."""
    pv = model.P @ model.W_V
    kq = model.W_K.T @ model.W_Q
    return -pv[D, D] * kq[:D, :D]


def _mse(pred, target):
    return jnp.mean((pred - target) ** 2)


def loss_fn(models: tuple[LinearSelfAttention, ...], batches: tuple[RegressionBatch, ...]) -> jax.Array:
    """The two spectra train side by side as one pytree (disjoint parameters, so no coupling)."""
    return sum(0.5 * _mse(predictions(m, b), b.query_y) for m, b in zip(models, batches, strict=True))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(config.lr, config.steps))


def _init(config: Config, key) -> tuple[LinearSelfAttention, ...]:
    keys = jax.random.split(key, len(SPECTRA))
    return tuple(LinearSelfAttention(D, key=k, init_scale=config.init_scale) for k in keys)


def _eval(models, batches):
    return {f"error_{s}": _mse(predictions(m, b), b.query_y) for s, m, b in zip(SPECTRA, models, batches, strict=True)}


@eqx.filter_jit
def _errors(model: LinearSelfAttention, a_theory: jax.Array, batch: RegressionBatch, m: jax.Array) -> dict[str, jax.Array]:
    """Mean squared errors (and standard errors) of the model, the closed-form minimiser and OLS on the
    first `m` context points of each prompt (a traced length: one compile for every M)."""
    mask = jnp.arange(batch.context_xs.shape[1]) < m
    xs, ys = batch.context_xs * mask[:, None], batch.context_ys * mask  # unused points add nothing to a sum
    h = jnp.einsum("pnd,pn->pd", xs, ys) / m
    pred_ols = jax.vmap(lambda x, y, q: ols(x, y, mask, q))(xs, ys, batch.query_x)
    pred_model = jax.vmap(model.predict)(xs, ys, batch.query_x) / m
    out = {}
    for name, pred in (("model", pred_model), ("theory", jnp.einsum("pd,de,pe->p", batch.query_x, a_theory, h)),
                       ("ols", pred_ols)):
        sq = (pred - batch.query_y) ** 2
        out[name], out[f"{name}_se"] = sq.mean(), sq.std() / jnp.sqrt(sq.size)
    return out


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    tasks = {s: make_task(s, config.n_points) for s in SPECTRA}
    trained = train_on_tasks("icl-zfb", config, runs, tasks, lambda k: _init(config, k), make_optimizer(config),
                             loss_fn, _eval, eval_size=4096)
    return [_finish(config, models, eval_key, run) for (models, eval_key), run in zip(trained, runs, strict=True)]


def measure(config: Config, models, eval_key) -> dict:
    """Errors vs M for both spectra and under covariate shift, and the learned vs closed-form Gamma^{-1}."""
    out = {"prompt_lengths": list(PROMPT_LENGTHS), "n_points": config.n_points}
    for (spectrum, model), (shift, label) in [((s, m), sh) for s, m in zip(SPECTRA, models, strict=True)
                                              for sh in ((1.0, s), (SHIFT, f"{s}_shift"))]:
        lam, lam_test = covariance(spectrum), covariance(spectrum, shift)
        a_theory = jnp.asarray(zfb.preconditioner(lam, config.n_points), jnp.float32)
        rows = {k: [] for k in ("model", "model_se", "theory", "theory_se", "ols", "ols_se")}
        task = make_task(spectrum, max(PROMPT_LENGTHS), shift)
        for m in PROMPT_LENGTHS:
            batch = sample_batch(task, derive_key(eval_key, f"{label}-{m}"), config.eval_size)
            for k, v in _errors(model, a_theory, batch, jnp.asarray(m, jnp.float32)).items():
                rows[k].append(float(v))
        rows["formula"] = [zfb.expected_error(lam, config.n_points, m, lam_test) for m in PROMPT_LENGTHS]
        rows["formula_limit"] = zfb.expected_error(lam, config.n_points, np.inf, lam_test)
        out[label] = rows
        if shift == 1.0:
            learned, closed = np.asarray(preconditioner(model)), zfb.preconditioner(lam, config.n_points)
            out[f"{spectrum}_learned"], out[f"{spectrum}_gamma_inv"] = learned.tolist(), closed.tolist()
            out[f"{spectrum}_frobenius"] = float(np.linalg.norm(learned - closed) / np.linalg.norm(closed))
    return out


def _finish(config: Config, models, eval_key, run: SeedRun) -> list[Check]:
    m = measure(config, models, eval_key)
    run.write_json("extras", m)
    idx = {length: i for i, length in enumerate(PROMPT_LENGTHS)}
    checks = []
    for length in (5, 20, 80):
        ref = zfb.isotropic_expected_error(D, config.n_points, length)
        checks.append(Check(f"error_M{length}_isotropic", ref, m["isotropic"]["model"][idx[length]], 0.05 * ref,
                            f"E(y_hat - y)^2 of the trained LSA on prompts of M = {length} points, Lambda = I, vs the "
                            f"closed form (N = {config.n_points}); tolerance 5% of it"))
    ref = zfb.expected_error(covariance("diagonal"), config.n_points, 20)
    checks.append(Check("error_M20_diagonal", ref, m["diagonal"]["model"][idx[20]], 0.05 * ref,
                        "error at M = 20 with Lambda = diag(4, 2, 1, 0.5, 0.25); tolerance 5%"))
    for spectrum in SPECTRA:
        checks.append(Check(f"preconditioner_{spectrum}", 0.0, m[f"{spectrum}_frobenius"], 0.05,
                            f"|W^PV_22 W^KQ_11 - Gamma^-1|_F / |Gamma^-1|_F of the trained LSA, Lambda {spectrum}"))
    shift = m["diagonal_shift"]
    checks.append(Check("shift_error_M80", shift["formula"][idx[80]], shift["model"][idx[80]],
                        0.05 * shift["formula"][idx[80]],
                        f"error at M = 80 when the test inputs are x ~ N(0, {SHIFT:g} Lambda) (diagonal Lambda), vs "
                        "the closed form; tolerance 5%"))
    checks.append(Check("shift_error_floor", shift["formula_limit"], shift["model"][idx[80]],
                        0.05 * shift["formula_limit"],
                        "under the covariate shift the error stays above the closed form's M -> infinity limit "
                        "(OLS reaches 0 there); one-sided, 5%", one_sided=True))
    return checks


def load_models(config: Config, run_dir: Path) -> tuple[LinearSelfAttention, ...]:
    """The trained pair (isotropic, diagonal) from the newest checkpoint of a seed folder."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class IclZfb(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs, SPECTRA, SHIFT)


EXPERIMENT = IclZfb()
