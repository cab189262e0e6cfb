"""Probing an in-context regressor for the quantities a learning algorithm computes (Akyürek et al. 2023).

A causal transformer reads noiseless Gaussian regression prompts `x_1, y_1, ..., x_K, y_K` (d = 4, one
token per x and per y, `_icl_prompts`; by default the y token carries its x too, `layout="xy"`) and predicts
each `y_j` at the token of `x_j`. At the token of
`x_j` (which has seen the pairs `i < j`) ridge probes read three targets from the residual stream
before the first block (layer 0) and after each block (layers 1..L): the prompt's true weights `w`,
the moment `X^T y` of the pairs seen and their minimum-norm least-squares solution `w_OLS`.

Every score is held-out R^2 (`interp.probes`: ridge in closed form, penalty by 5-fold CV, a held-out
split), beside two baselines: the same target with its pairing to prompts shuffled (Hewitt and Liang's
control; selectivity = R^2 - R^2 of the control) and the same probes on the model at random init.
The paper's own control, a model of the same shape trained on one fixed w (no in-context learning
needed; it fits in a few hundred steps, so it trains `control_steps` into the seed's `fixed-w/`
folder, from the same init), is probed on the same fresh-w prompts.
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
from workbench.core.types import Key
from workbench.core.validate import check_float, check_int
from workbench.interp import probes
from workbench.models import Transformer, TransformerConfig, run_with_cache, sites
from workbench.tasks import LinearRegression, RegressionBatch
from workbench.tasks.predictors import ols, prefix_predictions
from workbench.train import load_trained

from . import _icl_probes_figures as figures
from . import _icl_prompts as prompts
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "What does an in-context regressor compute? Probes for w, Xᵀy and w_OLS across layers"
PAPER = ("Akyürek, Schuurmans, Andreas, Ma & Zhou 2023, *What learning algorithm is in-context learning? "
         "Investigations with linear models* (ICLR)")
CLAIM = (
    "Transformers trained on in-context linear regression encode the intermediate quantities of a least-squares "
    "solver: at d = 4, (MLP) probes decode the moment Xᵀy from about layer 7 and the least-squares solution "
    "w_OLS from about layer 12 of a 16-layer model, and decode them worse in a control model trained on one "
    "fixed w. In noiseless regression the trained model's predictions match OLS (min-norm when k < d)."
)
D = 4
TARGETS = ("w", "xty", "wols")  # the probe targets, in the order of `prefix_targets`
MODELS = ("trained", "fixed_w", "random")  # the probed models: trained, the paper's control, random init
SPD_TOL = 0.02  # the references' CPU tolerance on SPD(ICL, OLS) / d (the paper: squared error < 0.01)
R2_MARGIN = 0.5  # w_OLS: R^2 above the random-init baseline and selectivity, at the last layer
CONTROL_MARGIN = 0.1  # w_OLS: R^2 of the trained model above the fixed-w model's (held-out R^2 noise ~ 0.02)
DEPTH_SLACK = 0.05  # the largest drop of w_OLS's R^2 from one layer to the next still counted as rising


@dataclasses.dataclass(frozen=True)
class Config:
    n_points: int = 16  # K: pairs per prompt
    noise: float = 0.0  # label noise sigma (the paper's probing setting is noiseless)
    n_layers: int = 4
    d_model: int = 32
    n_heads: int = 2
    steps: int = 2500
    control_steps: int = 500  # the fixed-w control model (its loss is ~1e-3 by then)
    batch_size: int = 64
    lr: float = 1e-3
    layout: prompts.Layout = "xy"  # y tokens (x_i, y_i), or (0, y_i) as in Garg et al. (`_icl_prompts`)
    n_probe: int = 4096  # prompts probed (5/6 fit the probes by 5-fold CV, 1/6 held out)
    decode_r2: float = 0.8  # a target is decodable at the first layer whose held-out R^2 reaches this
    pool_seed: int = 0  # the fixed w of the control model comes from this seed's stream `fixed-w`
    eval_size: int = 2048
    log_every: int = 100
    eval_every: int = 500
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("n_points", "n_layers", "d_model", "n_heads", "steps", "control_steps", "batch_size", "n_probe",
                     "eval_size",
                     "log_every", "eval_every", "ckpt_every"):
            check_int("icl-probes", name, getattr(self, name))
        check_int("icl-probes", "pool_seed", self.pool_seed, low=0)
        check_float("icl-probes", "noise", self.noise)
        check_float("icl-probes", "lr", self.lr, strict=True)
        if self.layout not in prompts.LAYOUTS:
            raise ValueError(f"icl-probes: layout must be one of {sorted(prompts.LAYOUTS)}, got {self.layout!r}")
        check_float("icl-probes", "decode_r2", self.decode_r2, strict=True, high=1.0)
        if self.n_points < D + 2:
            raise ValueError(f"icl-probes: n_points must be >= {D + 2} (OLS is compared at k >= d + 1 pairs)")
        if self.d_model % self.n_heads:
            raise ValueError(f"icl-probes: d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.n_probe < 12 * self.d_model:
            raise ValueError(f"icl-probes: n_probe must be >= 12 d_model = {12 * self.d_model} (probe fits)")


# CPU presets: the references' CPU setting (d = 4, 16 pairs, 4 layers) at d_model 32 instead of 64 and 2.5k
# instead of 5-10k steps, so that three vmapped seeds train in minutes on 2 cores; `paper` is the paper's
# 16-layer probing model.
PRESETS = {
    "quick": Config(n_layers=2, steps=1000, control_steps=200, n_probe=2048, eval_size=1024, eval_every=250,
                    ckpt_every=1000),
    "default": Config(),
    "paper": Config(n_points=40, n_layers=16, d_model=512, n_heads=4, steps=500_000, control_steps=20_000, lr=1e-4,
                    layout="garg", n_probe=16_384, eval_every=5000, ckpt_every=20_000),
}


class FixedWeight(eqx.Module):
    """The paper's control task: x as in `task`, one weight vector `w` shared by every prompt."""

    task: LinearRegression
    w: Float[Array, " d"]

    def sample(self, key: Key, batch_size: int) -> RegressionBatch:
        kx, kn = jax.random.split(key)
        xs = self.task.sample_x(kx, (batch_size, self.task.n_points + 1))
        ys = xs @ self.w + self.task.noise * jax.random.normal(kn, xs.shape[:2])
        return RegressionBatch(xs=xs, ys=ys, ws=jnp.broadcast_to(self.w, (batch_size, self.w.shape[0])))


def fresh_task(config: Config) -> LinearRegression:
    """x ~ N(0, I), a fresh w ~ N(0, I) per prompt, `n_points` pairs (the last one the query)."""
    return LinearRegression(d=D, n_points=config.n_points - 1, noise=config.noise, x_dist="gaussian")


def control_task(config: Config) -> FixedWeight:
    """The fixed-w control: w ~ N(0, I) from the stream `fixed-w` of `pool_seed`, the same for every seed."""
    return FixedWeight(fresh_task(config), jax.random.normal(derive_key(jax.random.key(config.pool_seed), "fixed-w"),
                                                             (D,)))


def model_config(config: Config) -> TransformerConfig:
    return prompts.model_config(D, config.n_points, config.n_layers, config.d_model, config.n_heads)


def _init(config: Config, key: Key) -> tuple[Transformer]:
    return (Transformer(model_config(config), key=key),)


def _loss(model: Transformer, batch: RegressionBatch, layout: prompts.Layout) -> Array:
    """Squared error / d against the targets, mean over prompts and positions."""
    return jnp.mean((prompts.batch_predict(model, batch, layout) - batch.ys) ** 2) / D


def make_loss_fn(config: Config):
    def loss_fn(models: tuple[Transformer], batches: tuple[RegressionBatch]) -> Array:
        return _loss(models[0], batches[0], config.layout)

    def eval_fn(models, batches) -> dict[str, Array]:
        return {"loss": _loss(models[0], batches[0], config.layout)}

    return loss_fn, eval_fn


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam (the paper's beta_2 = 0.98, eps = 1e-9) on a cosine schedule with 1/5 linear warm-up."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, config.steps // 5, config.steps)
    return optax.adam(schedule, b2=0.98, eps=1e-9)


def prefix_targets(xs: Float[Array, "k d"], ys: Float[Array, " k"], w: Float[Array, " d"]) -> Float[Array, "k 3 d"]:
    """The probe targets at the token of each `x_j` (it has seen the pairs `i < j`): `w`, `X^T y` and the
    min-norm least-squares solution `w_OLS` of the pairs seen (both 0 at `j = 0`)."""
    k, d = xs.shape
    seen = jnp.arange(k)[None, :] < jnp.arange(k)[:, None]  # [j, i]: pair i is seen at the token of x_j
    xty = jnp.einsum("ji,i,id->jd", seen.astype(xs.dtype), ys, xs)
    w_ols = jax.vmap(lambda mask: ols(xs, ys, mask, jnp.eye(d)))(seen)  # x_query = I reads the weights out
    return jnp.stack([jnp.broadcast_to(w, (k, d)), xty, w_ols], axis=1)


def x_positions(n_points: int) -> tuple[int, ...]:
    """The probed tokens: `x_j` for `j = 1..K-1` (token `2j`; at `j = 0` nothing is seen, the targets are 0)."""
    return tuple(range(2, 2 * n_points, 2))


@eqx.filter_jit
def resid_stream(model: Transformer, tokens: Float[Array, "n seq d_in"], positions: tuple[int, ...]
                 ) -> Float[Array, "layer n pos d_model"]:
    """The residual stream at `positions` before the first block (layer 0) and after each block."""
    names = (sites.resid_pre(0), *(sites.resid_post(l) for l in range(model.config.n_layers)))

    def one(tok):
        _, cache = run_with_cache(model, tok, names)
        return jnp.stack([cache[n][jnp.asarray(positions)] for n in names])

    return jnp.moveaxis(jax.lax.map(one, tokens, batch_size=256), 0, 1)


@eqx.filter_jit
def site_stats(acts: Float[Array, "layer n pos d_model"], targets: Float[Array, "n pos t d"], key: Key,
               n_folds: int) -> probes.RidgeStats:
    """Ridge statistics `[layer * pos, fold + 1, ...]` of every site for the targets and their shuffled
    controls (`probes.shuffled_control`: the pairing to prompts permuted), columns `[2 t d]`."""
    n_layer, n, n_pos, _ = acts.shape
    k_split, k_control = jax.random.split(key)
    group = probes.split_groups(k_split, n, n_folds, 1.0 / (n_folds + 1))
    flat = targets.reshape(n, n_pos, -1)
    both = jnp.concatenate([flat, probes.shuffled_control(k_control, flat)], -1)  # [n, pos, 2 t d]
    sites_x = jnp.moveaxis(acts, 2, 1).reshape(n_layer * n_pos, n, -1)  # [site, n, d_model], site = (layer, pos)
    sites_y = jnp.broadcast_to(jnp.moveaxis(both, 1, 0)[None], (n_layer, n_pos, n, both.shape[-1]))
    return jax.lax.map(lambda xy: probes.ridge_stats(*xy, group, n_folds + 1),
                       (sites_x, sites_y.reshape(n_layer * n_pos, n, -1)))


def probe_scores(acts: Float[Array, "layer n pos d_model"], targets: Float[Array, "n pos t d"], key: Key,
                 n_folds: int = 5) -> tuple[Float[Array, "layer pos t"], Float[Array, "layer pos t"]]:
    """Held-out R^2 of a ridge probe (penalty by `n_folds`-fold CV) for each target block `[d]` at each
    (layer, position), and of the same probe on the target's shuffled control.

    The fit runs as its own compiled call (`probes.fit_sweep`): traced into one program with the
    statistics' `lax.map`, XLA:CPU (jax 0.10.2) sometimes deadlocks."""
    n_layer, _, n_pos, _ = acts.shape
    n_t, d = targets.shape[2:]
    r2, _ = probes.fit_sweep(site_stats(acts, targets, key, n_folds), probes.DEFAULT_LAMS, n_folds, d, 2 * n_t)
    r2 = r2.reshape(n_layer, n_pos, 2, n_t)
    return r2[:, :, 0], r2[:, :, 1]


def decode_layer(r2: Float[Array, " layer"], threshold: float) -> int | None:
    """The first layer whose R^2 reaches `threshold` (None if none does)."""
    hit = np.flatnonzero(np.asarray(r2) >= threshold)
    return int(hit[0]) if hit.size else None


@eqx.filter_jit
def spd_to_ols(model: Transformer, batch: RegressionBatch, layout: prompts.Layout) -> Float[Array, " k"]:
    """Mean squared difference / d between the model's and OLS's prediction of `y_j`, per prefix length `j`."""
    ols_pred = jax.vmap(lambda x, y: prefix_predictions(ols, x, y))(batch.xs, batch.ys)
    return jnp.mean((prompts.batch_predict(model, batch, layout) - ols_pred) ** 2, axis=0) / D


def measure(config: Config, models: tuple[Transformer, Transformer], eval_key: Key, probe_key: Key,
            init_key: Key) -> dict:
    """R^2 and control R^2 `[layer][pos][target]` of every probed model, decodable layers at the last
    token, and SPD(model, OLS) per prefix length."""
    batch = sample_batch(fresh_task(config), derive_key(eval_key, "probe"), config.n_probe)
    targets = jax.vmap(prefix_targets)(batch.xs, batch.ys, batch.ws)[:, 1:]  # [n, pos, target, d]
    tokens = jax.vmap(prompts.LAYOUTS[config.layout])(batch.xs, batch.ys)
    positions = x_positions(config.n_points)
    probed = dict(zip(MODELS, (*models, probes.random_init(models[0], init_key)), strict=True))
    out = {"targets": list(TARGETS), "models": list(MODELS), "seen_pairs": list(range(1, config.n_points)),
           "layers": list(range(config.n_layers + 1)), "decode_r2": config.decode_r2}
    for name, model in probed.items():
        r2, control = probe_scores(resid_stream(model, tokens, positions), targets, probe_key)
        last = np.asarray(r2[:, -1])  # [layer, target] at the last x token
        out[name] = {"r2": np.asarray(r2).tolist(), "control_r2": np.asarray(control).tolist(),
                     "decode_layer": {t: decode_layer(last[:, i], config.decode_r2) for i, t in enumerate(TARGETS)}}
    spd_batch = sample_batch(fresh_task(config), derive_key(eval_key, "spd"), config.eval_size)
    spd = np.asarray(spd_to_ols(models[0], spd_batch, config.layout))
    out["spd_ols"] = spd.tolist()
    out["spd_ols_k_gt_d"] = float(spd[D + 1:].mean())
    return out


def summarise(m: dict, n_layers: int) -> dict[str, float]:
    """The checked numbers from `measure`'s record (w_OLS and X^T y at the last x token)."""
    wols, xty = TARGETS.index("wols"), TARGETS.index("xty")
    final = lambda name, key="r2": m[name][key][-1][-1][wols]  # noqa: E731
    curve = np.array([layer[-1][wols] for layer in m["trained"]["r2"]])
    dec = m["trained"]["decode_layer"]
    gap = float("nan") if dec["xty"] is None else (n_layers + 1 if dec["wols"] is None else dec["wols"]) - dec["xty"]
    return {"wols_r2": final("trained"), "wols_over_random": final("trained") - final("random"),
            "wols_selectivity": final("trained") - final("trained", "control_r2"),
            "wols_over_fixed_w": final("trained") - final("fixed_w"), "decode_gap": float(gap),
            "wols_min_step": float(np.diff(curve).min()), "xty_r2": m["trained"]["r2"][-1][-1][xty]}


def checks(m: dict, n_layers: int) -> list[Check]:
    s = summarise(m, n_layers)
    return [
        Check("icl_matches_ols", 0.0, m["spd_ols_k_gt_d"], SPD_TOL,
              "SPD(model, OLS) / d at k >= d + 1 pairs, noiseless: the model does least squares in context (the "
              "paper: < 0.01 at d = 8; the references' CPU tolerance 0.02)"),
        Check("wols_beats_random_init", R2_MARGIN, s["wols_over_random"], 0.0,
              f"held-out R^2 of the w_OLS probe at the last layer and x token, trained minus random init: at least "
              f"{R2_MARGIN}", one_sided=True),
        Check("wols_selectivity", R2_MARGIN, s["wols_selectivity"], 0.0,
              f"w_OLS probe R^2 minus R^2 on its shuffled control target (last layer and x token): at least "
              f"{R2_MARGIN}", one_sided=True),
        Check("fixed_w_control_worse", CONTROL_MARGIN, s["wols_over_fixed_w"], 0.0,
              f"w_OLS probe R^2, trained minus the model trained on one fixed w (the paper's control: worse), at "
              f"least {CONTROL_MARGIN}", one_sided=True),
        Check("xty_not_after_wols", 0.0, s["decode_gap"], 0.0,
              "first layer decoding w_OLS minus first layer decoding Xᵀy (R^2 >= decode_r2 at the last x token): "
              "the paper's order, Xᵀy (layer ~7 of 16) before w_OLS (~12); NaN when Xᵀy is never decodable",
              one_sided=True),
        Check("wols_rises_with_depth", 0.0, s["wols_min_step"], DEPTH_SLACK,
              f"the smallest layer-to-layer change of w_OLS's R^2 (last x token): no drop beyond {DEPTH_SLACK}",
              one_sided=True),
    ]


def _finish(config: Config, models, eval_key, run: SeedRun) -> list[Check]:
    m = measure(config, models, eval_key, run.key("probe"), run.key("random-init"))
    m["summary"] = summarise(m, config.n_layers)
    run.write_json("extras", m)
    return checks(m, config.n_layers)


def control_run(run: SeedRun) -> SeedRun:
    """The fixed-w control's folder inside the seed's (its key streams are the seed's: the same init)."""
    return SeedRun(run.seed, run.dir / "fixed-w")


def _train(config: Config, runs: list[SeedRun], tasks: dict, name: str) -> list[tuple[tuple, Key]]:
    loss_fn, eval_fn = make_loss_fn(config)
    return train_on_tasks(name, config, runs, tasks, lambda k: _init(config, k), make_optimizer(config), loss_fn,
                          eval_fn, eval_size=1024)


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    trained = _train(config, runs, {"fresh": fresh_task(config)}, "icl-probes")
    control_config = dataclasses.replace(config, steps=config.control_steps)
    controls = _train(control_config, [control_run(r) for r in runs], {"fixed_w": control_task(config)},
                      "icl-probes fixed-w control")
    return [_finish(config, (models[0], control[0][0]), eval_key, run)
            for (models, eval_key), control, run in zip(trained, controls, runs, strict=True)]


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, Transformer]:
    """The trained model and the fixed-w control from the newest checkpoints of a seed folder."""
    like = _init(config, jax.random.key(0))
    control_opt = make_optimizer(dataclasses.replace(config, steps=config.control_steps))
    return (load_trained(run_dir, like, make_optimizer(config))[0],
            load_trained(run_dir / "fixed-w", like, control_opt)[0])


class IclProbes(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs)


EXPERIMENT = IclProbes()
