"""What can transformers learn in context? Function classes (Garg et al. 2022) and which algorithm a
trained model matches (Akyürek et al. 2023).

One small causal transformer per function class reads prompts `x_1, y_1, ..., x_K, y_K` (one token per
x and per y, `d_input = d + 1`, `experiments/_icl_prompts.py`) and predicts each `y_k` at the token of
`x_k` from the pairs before it; the five models (noiseless linear, noisy linear, sparse linear, two-layer
ReLU networks, depth-4 decision trees) train side by side, seeds vmapped. Each model's error against the
number of in-context examples `k` is compared with the baselines of Garg et al.'s code (least squares,
Lasso, 3-nearest neighbours, averaging) and, for linear prompts, with the closed forms of min-norm
least squares. Akyürek et al.'s similarity metrics say which algorithm the model matches: SPD, the mean
squared difference of two algorithms' predictions on the same prompts, and ILWD, the squared distance of
the weights implied by their predictions on probe inputs (a least-squares fit to each algorithm's
predictions at `n_probe` probe queries), both / d. Under label noise the ridge penalty that the model
matches best should be the Bayes one, σ²/τ².

Errors are normalised by E[y²] (the error of predicting 0): d for linear prompts (Garg's "/ d"),
d + σ² with noise, the sparsity for sparse w, d for the ReLU networks and 1 for trees (N(0, 1) leaves).
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
from workbench.tasks import LinearRegression
from workbench.tasks import predictors as P
from workbench.tasks.regression_family import DecisionTreeRegression, ReLUNetRegression, SparseLinearRegression
from workbench.train import load_trained

from . import _icl_function_classes_figures as figures
from . import _icl_prompts as prompts
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "Function classes in context: least squares, Lasso and beyond, and which algorithm the model runs"
PAPER = ("Garg, Tsipras, Liang & Valiant 2022, *What Can Transformers Learn In-Context? A Case Study of Simple "
         "Function Classes* (NeurIPS); Akyürek, Schuurmans, Andreas, Ma & Zhou 2023, *What learning algorithm is "
         "in-context learning? Investigations with linear models* (ICLR)")
CLAIM = (
    "A transformer trained on in-context linear regression matches least squares: its error / d follows the "
    "min-norm least-squares curve (d − k)/d below k = d and is near 0 beyond, far below 3-nearest neighbours "
    "and averaging (Garg et al.); trained on sparse linear functions, ReLU networks and decision trees it "
    "competes with Lasso and beats the nearest-neighbour and averaging baselines. Its predictions agree with "
    "least squares (SPD / d below 0.01 in the paper) and, under label noise, with ridge at the Bayes penalty "
    "λ = σ²/τ² (Akyürek et al.)."
)
TASKS = ("linear", "noisy", "sparse", "relu", "tree")
LAMBDAS = (0.0, 1 / 16, 1 / 9, 1 / 4, 4 / 9)  # Akyürek et al.'s ridge grid; 0 is min-norm least squares
SPD_OLS_PAPER = 0.01  # "squared error less than 0.01" between ICL and least squares, noiseless
KNN3 = P.knn(3)  # module constants: one compiled prefix evaluation per predictor
LASSO = P.lasso(0.01)


@dataclasses.dataclass(frozen=True)
class Config:
    d: int = 5
    n_points: int = 11  # K: points per prompt, every one a prediction (k = 0..K-1 examples before it)
    noise: float = 0.5  # sigma of the noisy task (tau = 1), so the Bayes ridge penalty is sigma^2 = 1/4
    sparsity: int = 2
    relu_hidden: int = 100
    tree_depth: int = 4
    layout: prompts.Layout = "xy"  # y tokens (x_i, y_i), or (0, y_i) as in Garg et al. (`_icl_prompts`)
    n_layers: int = 3
    d_model: int = 32
    n_heads: int = 2
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    eval_size: int = 2048
    n_ilwd_prompts: int = 128
    n_probe: int = 10  # probe queries per prompt and prefix for the implied weights of ILWD
    log_every: int = 100
    eval_every: int = 250
    ckpt_every: int = 2500

    def __post_init__(self):
        for name in ("d", "n_points", "sparsity", "relu_hidden", "tree_depth", "n_layers", "d_model", "n_heads",
                     "steps", "batch_size", "eval_size", "n_ilwd_prompts", "n_probe", "log_every", "eval_every",
                     "ckpt_every"):
            check_int("icl-function-classes", name, getattr(self, name))
        check_float("icl-function-classes", "lr", self.lr, strict=True)
        check_float("icl-function-classes", "noise", self.noise, strict=True)
        if self.layout not in prompts.LAYOUTS:
            raise ValueError(f"icl-function-classes: layout must be one of {sorted(prompts.LAYOUTS)}, "
                             f"got {self.layout!r}")
        if self.sparsity > self.d:
            raise ValueError(f"icl-function-classes: sparsity ({self.sparsity}) must be <= d ({self.d})")
        if self.n_points < self.d + 3:
            raise ValueError(f"icl-function-classes: n_points ({self.n_points}) must be >= d + 3 = {self.d + 3} "
                             "(the least-squares checks read k >= d + 2)")
        if self.n_probe < self.d:
            raise ValueError(f"icl-function-classes: n_probe ({self.n_probe}) must be >= d ({self.d}) to fit weights")
        if self.d_model % self.n_heads:
            raise ValueError(f"icl-function-classes: d_model ({self.d_model}) must be a multiple of n_heads "
                             f"({self.n_heads})")


# CPU presets: Garg et al.'s toy setting (d = 5, 11 points) with their tiny model's depth (3 layers, 2 heads)
# at half its width (32), without their curriculum, 3k steps of batch 128, five models and three seeds side by
# side. The y tokens carry their x (`layout="xy"`): with Garg et al.'s (0, y_i) tokens the linear model sits on
# its loss plateau for most of this budget (measured: error / d 0.15 at k = 10 after 3k steps in seed 0, against 0.04
# after 1.5k steps with "xy"). The paper preset is Garg et al.'s standard run and layout (d = 20, 41 points,
# 12 layers x 256).
PRESETS = {
    "quick": Config(steps=600, batch_size=64, eval_size=512, n_ilwd_prompts=32, eval_every=100, ckpt_every=300),
    "default": Config(),
    "paper": Config(d=20, n_points=41, sparsity=3, n_probe=40, n_layers=12, d_model=256, n_heads=8, steps=500_000,
                    batch_size=64, lr=1e-4, layout="garg", eval_every=5000, ckpt_every=50_000),
}


def make_tasks(config: Config) -> dict[str, object]:
    """The five function classes; each prompt has `n_points` pairs (a task's `n_points` counts the context)."""
    n, d = config.n_points - 1, config.d
    return {
        "linear": LinearRegression(d=d, n_points=n),
        "noisy": LinearRegression(d=d, n_points=n, noise=config.noise),
        "sparse": SparseLinearRegression(d=d, n_points=n, sparsity=config.sparsity),
        "relu": ReLUNetRegression(d=d, n_points=n, hidden=config.relu_hidden),
        "tree": DecisionTreeRegression(d=d, n_points=n, depth=config.tree_depth),
    }


def y_scale(config: Config) -> dict[str, float]:
    """E[y^2] per task, the error of predicting 0: d w^T x terms of variance 1 (linear), plus sigma^2 (noisy),
    `sparsity` of them (sparse); (2/h) h E[ReLU(z)^2] = d for z ~ N(0, |x|^2) (ReLU nets); 1 (N(0, 1) leaves)."""
    return {"linear": float(config.d), "noisy": config.d + config.noise**2, "sparse": float(config.sparsity),
            "relu": float(config.d), "tree": 1.0}


def baselines(config: Config, task: str) -> dict[str, P.MaskedPredictor]:
    """Garg et al.'s baselines per task (Lasso for sparse w); `measure_task` adds ridge on Akyürek et al.'s grid
    for noisy prompts."""
    out = {"ols": P.ols, "averaging": P.averaging, "knn3": KNN3}
    if task == "sparse":
        out["lasso"] = LASSO
    return out


def model_config(config: Config) -> TransformerConfig:
    return prompts.model_config(config.d, config.n_points, config.n_layers, config.d_model, config.n_heads)


def _init(config: Config, key) -> tuple[Transformer, ...]:
    return tuple(Transformer(model_config(config), key=k) for k in jax.random.split(key, len(TASKS)))


def make_loss_fn(config: Config):
    scale = y_scale(config)

    def loss_fn(models: tuple[Transformer, ...], batches) -> jax.Array:
        """Normalised squared error over every prefix, summed over the five models (disjoint parameters)."""
        return sum(jnp.mean((prompts.batch_predict(m, b, config.layout) - b.ys) ** 2) / scale[t]
                   for t, m, b in zip(TASKS, models, batches, strict=True))

    return loss_fn


def _eval_fn(config: Config):
    scale = y_scale(config)

    def evaluate(models, batches):
        return {f"loss_{t}": jnp.mean((prompts.batch_predict(m, b, config.layout) - b.ys) ** 2) / scale[t]
                for t, m, b in zip(TASKS, models, batches, strict=True)}

    return evaluate


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam with a linear warm-up over the first 5% of steps and a cosine decay to lr / 10."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, max(1, config.steps // 20), config.steps,
                                                  end_value=config.lr / 10)
    return optax.adam(schedule)


@eqx.filter_jit
def prefix_batch(predictor: P.MaskedPredictor, xs: Float[Array, "b k d"], ys: Float[Array, "b k"]
                 ) -> Float[Array, "b k"]:
    """`predictor` at every prefix of every prompt (entry k uses the first k pairs)."""
    return jax.vmap(lambda x, y: P.prefix_predictions(predictor, x, y))(xs, ys)


_model_predict = eqx.filter_jit(prompts.batch_predict)


def spd(a: Float[Array, "b k"], b: Float[Array, "b k"], d: int) -> Float[Array, " k"]:
    """Akyürek et al.'s squared prediction difference / d at every prefix length."""
    return jnp.mean((a - b) ** 2, axis=0) / d


def prefix_weights(predictor: P.MaskedPredictor, xs: Float[Array, "k d"], ys: Float[Array, " k"]
                   ) -> Float[Array, "k d"]:
    """The weights a linear predictor applies at each prefix: its predictions at the d unit queries."""
    eye = jnp.eye(xs.shape[1], dtype=xs.dtype)
    k = xs.shape[0]
    masks = jnp.arange(k)[None, :] < jnp.arange(k)[:, None]
    return jax.vmap(lambda mask: jax.vmap(lambda q: predictor(xs, ys, mask, q))(eye))(masks)


@eqx.filter_jit
def implied_weights(model: Transformer, xs: Float[Array, "k d"], ys: Float[Array, " k"],
                    probes: Float[Array, "p d"], layout: prompts.Layout = "garg") -> Float[Array, "k d"]:
    """ILWD's implied weights of the model at each prefix k: the least-squares fit of its predictions at
    the probe queries, each put in place of `x_k` (causal attention: the prediction at `x_k` sees only the
    pairs before it, so the rest of the prompt does not matter)."""
    def at(k):
        preds = jax.vmap(lambda p: prompts.predict(model, xs.at[k].set(p), ys, layout)[k])(probes)
        return jnp.linalg.lstsq(probes, preds)[0]

    return jax.vmap(at)(jnp.arange(xs.shape[0]))


_batch_prefix_weights = eqx.filter_jit(jax.vmap(prefix_weights, in_axes=(None, 0, 0)))
_batch_implied_weights = eqx.filter_jit(jax.vmap(implied_weights, in_axes=(None, 0, 0, 0, None)))


def ilwd(a: Float[Array, "b k d"], b: Float[Array, "b k d"]) -> Float[Array, " k"]:
    """Akyürek et al.'s implicit linear weight difference / d at every prefix length."""
    return jnp.mean(jnp.sum((a - b) ** 2, axis=-1), axis=0) / a.shape[-1]


def _floats(x) -> list[float]:
    return [float(v) for v in np.asarray(x)]


def measure_task(config: Config, task: str, model: Transformer, batch) -> dict:
    """Normalised error per prefix of the model and the baselines, and the model's SPD to each baseline."""
    scale = y_scale(config)[task]
    preds = {"model": _model_predict(model, batch, config.layout)}
    preds |= {name: prefix_batch(p, batch.xs, batch.ys) for name, p in baselines(config, task).items()}
    if task == "noisy":
        preds |= {f"ridge_{i}": prefix_batch(P.Ridge(jnp.asarray(lam)), batch.xs, batch.ys)
                  for i, lam in enumerate(LAMBDAS) if lam > 0}
    out = {"error": {n: _floats(jnp.mean((p - batch.ys) ** 2, axis=0) / scale) for n, p in preds.items()},
           "spd": {n: _floats(spd(preds["model"], p, config.d)) for n, p in preds.items() if n != "model"}}
    if task == "linear":
        k = np.arange(config.n_points)
        out["error"]["min_norm_formula"] = _floats(np.maximum(config.d - k, 0) / config.d)
    return out


def ridge_name(i: int) -> str:
    """The record name of ridge at `LAMBDAS[i]` (min-norm least squares at lambda = 0)."""
    return "ols" if LAMBDAS[i] == 0 else f"ridge_{i}"


def measure_ilwd(config: Config, task: str, model: Transformer, batch, key) -> dict[str, list[float]]:
    """ILWD / d per prefix between the model's implied weights and least squares, ridge on the grid
    (noisy prompts) and the true w, on the first `n_ilwd_prompts` prompts."""
    n = config.n_ilwd_prompts
    xs, ys, ws = batch.xs[:n], batch.ys[:n], batch.ws[:n]
    probes = jax.random.normal(key, (n, config.n_probe, config.d))
    implied = _batch_implied_weights(model, xs, ys, probes, config.layout)
    refs = {"ols": _batch_prefix_weights(P.ols, xs, ys), "averaging": _batch_prefix_weights(P.averaging, xs, ys),
            "true_w": jnp.broadcast_to(ws[:, None, :], implied.shape)}
    if task == "noisy":
        refs |= {ridge_name(i): _batch_prefix_weights(P.Ridge(jnp.asarray(lam)), xs, ys)
                 for i, lam in enumerate(LAMBDAS) if lam > 0}
    return {name: _floats(ilwd(implied, w)) for name, w in refs.items()}


def measure(config: Config, models: tuple[Transformer, ...], eval_key) -> dict:
    tasks = make_tasks(config)
    out = {"tasks": list(TASKS), "lambdas": list(LAMBDAS), "d": config.d, "n_points": config.n_points}
    for task, model in zip(TASKS, models, strict=True):
        batch = sample_batch(tasks[task], derive_key(eval_key, f"measure-{task}"), config.eval_size)
        out[task] = measure_task(config, task, model, batch)
        if task in ("linear", "noisy"):
            out[task]["ilwd"] = measure_ilwd(config, task, model, batch, derive_key(eval_key, f"probes-{task}"))
    noisy = out["noisy"]
    out["mspd_lambda"] = [float(np.mean(noisy["spd"][ridge_name(i)][1:])) for i in range(len(LAMBDAS))]
    out["milwd_lambda"] = [float(np.mean(noisy["ilwd"][ridge_name(i)][1:])) for i in range(len(LAMBDAS))]
    return out


def _ratio_margin(err: dict, k: slice, others: tuple[str, ...]) -> float:
    """1 - max over the prefixes `k` of model error / the best of `others`: positive when the model is below
    every one of them at every such prefix."""
    best = np.min([err[o][k] for o in others], axis=0)
    return float(1.0 - np.max(np.asarray(err["model"][k]) / best))


def checks(config: Config, m: dict) -> list[Check]:
    d, last = config.d, config.n_points - 1
    lin = m["linear"]["error"]
    below = np.abs(np.asarray(lin["model"][:d]) - np.asarray(lin["min_norm_formula"][:d]))
    lam_star = LAMBDAS[int(np.argmin(m["mspd_lambda"]))]
    return [
        Check("linear_error_past_d", 0.0, float(np.max(lin["model"][d + 2:])), 0.1,
              f"max normalised error of the linear model for k >= d + 2 = {d + 2} examples (Garg: ≈ 0; "
              "check <= 0.1)"),
        Check("linear_follows_min_norm", 0.0, float(np.max(below)), 0.1,
              f"max over k < d of |model error − (d − k)/d|, the min-norm least-squares curve (± 0.1)"),
        Check("linear_beats_averaging", 0.0, _ratio_margin(lin, slice(1, None), ("averaging",)), 0.0,
              "1 − max over k >= 1 of model error / averaging error: positive when the model is below the "
              "averaging estimator at every k", one_sided=True),
        Check("spd_to_least_squares", 0.0, float(np.max(m["linear"]["spd"]["ols"][d + 1:])), 0.02,
              f"max over k >= d + 1 of SPD(model, least squares) / d, noiseless (paper < {SPD_OLS_PAPER}; "
              "references' CPU check < 0.02)"),
        Check("best_ridge_lambda", config.noise**2, lam_star, 0.0,
              f"the λ in {{0, 1/16, 1/9, 1/4, 4/9}} whose ridge predictions are closest to the noisy model's "
              "(mean SPD over k >= 1); Bayes: σ²/τ², exact"),
        Check("sparse_beats_least_squares", 0.0, _ratio_margin(m["sparse"]["error"], slice(1, d), ("ols",)), 0.0,
              f"1 − max over 1 <= k < d of sparse model error / least-squares error: positive when the model "
              f"exploits the sparsity ({config.sparsity} of {d} coordinates) below k = d", one_sided=True),
        Check("relu_beats_baselines", 0.0, _ratio_margin(m["relu"]["error"], slice(last, None), ("knn3", "averaging")),
              0.0, f"1 − model error / the better of 3-NN and averaging at k = {last}, ReLU networks",
              one_sided=True),
        Check("tree_beats_baselines", 0.0,
              _ratio_margin(m["tree"]["error"], slice(last, None), ("knn3", "averaging", "ols")), 0.0,
              f"1 − model error / the best of 3-NN, averaging and least squares at k = {last}, decision trees",
              one_sided=True),
    ]


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    trained = train_on_tasks("icl-function-classes", config, runs, make_tasks(config), lambda k: _init(config, k),
                             make_optimizer(config), make_loss_fn(config), _eval_fn(config), eval_size=512)
    out = []
    for (models, eval_key), run in zip(trained, runs, strict=True):
        m = measure(config, models, eval_key)
        run.write_json("extras", m)
        out.append(checks(config, m))
    return out


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, ...]:
    """The trained models, one per task of `TASKS`, from the newest checkpoint."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class IclFunctionClasses(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs)


EXPERIMENT = IclFunctionClasses()
