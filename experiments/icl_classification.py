"""In-context classification (Reddy 2023): an abrupt induction-head transition after a plateau.

A two-layer attention-only transformer (one head per layer) reads `n_context` item-label pairs and a
query item, as vector tokens (content, then a one-hot position), and a 3-layer MLP on the query's
output predicts its label among `n_labels`. Trained only on novel classes (p_C = 1: fresh centroids
and random labels in every sequence), the task is solvable only in context. Accuracy on held-out
novel classes first climbs from 1/L to the level of picking a random in-context label (1/N), stays
there, then jumps to ~1 when an induction head forms: layer 0 copies each item into the label token
after it (ILA1), layer 1 attends from the query to the label of the matching item (TILA2). A control
with as many labels as context pairs (L = N) is trained beside it.
"""

import dataclasses
import functools
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from workbench.core import Check
from workbench.core.results import Analysis
from workbench.core.validate import check_float, check_int
from workbench.models import Transformer, TransformerConfig, run_with_cache, sites
from workbench.tasks.classification import InContextClassification
from workbench.core.rng import derive_key
from workbench.train import Schedule, load_trained, train

from . import _icl_classification_figures as figures
from ._base import Experiment, SeedRun
from ._progress import smooth, steepest_rise

TITLE = "In-context classification: the abrupt induction-head transition"
PAPER = ("Reddy 2024, *The Mechanistic Basis of Data Dependence and Abrupt Learning in an In-Context "
         "Classification Task* (ICLR)")
CLAIM = (
    "A two-layer attention-only transformer with an MLP classifier, trained on sequences of N = 8 item-label "
    "pairs of Gaussian classes (L = 32 labels, D = 63, ε = 0.1), learns to classify a query in context. With "
    "novel classes only (p_C = 1), accuracy on unseen classes first rises from 1/L to about **1/N** (a random "
    "in-context label), stays on that **plateau**, then **jumps abruptly** to ≥ 0.95. The jump is the formation "
    "of an **induction head**: layer 1 attends from each label to the item before it (ILA1) and layer 2 from "
    "the query to the label of the matching item (TILA2), both rising at the jump. With as many labels as "
    "context pairs (**L = N = 8**) in-context learning does not emerge (0 of 6 seeds)."
)
MODELS = ("main", "control")  # the trained pair: L = n_labels, and the control with L = n_context


@dataclasses.dataclass(frozen=True)
class Config:
    n_labels: int = 32
    n_context: int = 8
    dim: int = 32
    eps: float = 0.1
    n_classes: int = 512
    burstiness: int = 1
    p_novel: float = 1.0
    d_model: int = 64
    mlp_width: int = 64
    layer_norm: bool = False
    steps: int = 2000
    batch_size: int = 128
    lr: float = 3e-3
    init_range: float = 0.1
    eval_size: int = 512
    progress_prompts: int = 128
    jump_level: float = 0.95
    smooth_window: int = 3
    log_every: int = 50
    eval_every: int = 50
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("n_labels", "n_context", "dim", "n_classes", "burstiness", "d_model", "mlp_width", "steps",
                     "batch_size", "eval_size", "progress_prompts", "smooth_window", "log_every", "eval_every",
                     "ckpt_every"):
            check_int("icl-classification", name, getattr(self, name))
        check_int("icl-classification", "n_labels", self.n_labels, low=self.n_context + 1)
        check_int("icl-classification", "n_classes", self.n_classes, low=self.n_labels)
        check_int("icl-classification", "progress_prompts", self.progress_prompts, high=self.eval_size)
        check_float("icl-classification", "p_novel", self.p_novel, high=1.0)
        check_float("icl-classification", "jump_level", self.jump_level, strict=True, high=1.0)
        for name in ("eps", "lr", "init_range"):
            check_float("icl-classification", name, getattr(self, name), strict=name != "eps")
        if self.n_context % self.burstiness:
            raise ValueError(f"icl-classification.burstiness ({self.burstiness}) must divide n_context "
                             f"({self.n_context})")


# `default` and `quick`: D = 32 (the reference's CPU range is 32-63), width 64, no LayerNorm, init 0.1 and
# Adam 3e-3. Measured on one seed (main model alone, 2,500 steps): with LayerNorm and init 0.02 (lr 1e-3
# or 3e-3) IC accuracy is still on the plateau (0.13-0.14, CLA 0.3-0.4) at step 2,500-3,000; without
# LayerNorm at init 0.1 it jumps from 0.12 (step 250) to 0.91 (step 750). `paper`: Reddy's D = 63 and
# 128-wide tokens, 30k steps.
PRESETS = {
    "quick": Config(steps=1000, eval_size=256, progress_prompts=64, eval_every=50, log_every=50, ckpt_every=1000),
    "default": Config(),
    "paper": Config(dim=63, d_model=128, mlp_width=128, steps=30_000, eval_size=2048, eval_every=250,
                    log_every=250, ckpt_every=5000),
}


class Prompts(eqx.Module):
    """`tokens [batch, 2N+1, D+2N+1]` (x_1, l_1, ..., x_N, l_N, x_q, each with a one-hot position),
    `labels [batch, N+1]` (the last is the query's), `match [batch]` (the context pair whose item is
    nearest the query: its class, at eps << 1)."""

    tokens: Float[Array, "batch seq d_input"]
    labels: Int[Array, "batch n_plus_1"]
    match: Int[Array, " batch"]


class LabelledTask(eqx.Module):
    """Reddy's task with its `label_vectors [L, D]` (random, fixed): `sample` gives token prompts."""

    task: InContextClassification
    label_vectors: Float[Array, "n_labels dim"]

    def prompts(self, key: PRNGKeyArray, batch_size: int, split: str) -> Prompts:
        batch = self.task.sample_split(key, batch_size, split)
        tokens = jax.vmap(lambda x, l: encode(x, self.label_vectors[l]))(batch.items, batch.labels)
        dist = jnp.sum((batch.items[:, :-1] - batch.items[:, -1:]) ** 2, -1)
        return Prompts(tokens=tokens, labels=batch.labels, match=jnp.argmin(dist, -1))

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Prompts:
        return self.prompts(key, batch_size, "train")


def encode(items: Float[Array, "n_plus_1 dim"], label_vecs: Float[Array, "n_plus_1 dim"]) -> Float[Array, "seq d"]:
    """Interleave items and their label vectors (the query's label left out), then append one-hot positions."""
    pairs = jnp.stack([items[:-1], label_vecs[:-1]], 1).reshape(-1, items.shape[1])
    content = jnp.concatenate([pairs, items[-1:]], 0)
    return jnp.concatenate([content, jnp.eye(content.shape[0], dtype=content.dtype)], 1)


def make_tasks(config: Config, key: PRNGKeyArray) -> tuple[LabelledTask, LabelledTask]:
    """The main task (L = n_labels) and the control (L = N), in the order of `MODELS`, on the same centroids."""
    k_task, k_labels = jax.random.split(key)
    out = []
    for n_labels in (config.n_labels, config.n_context):
        task = InContextClassification(n_classes=config.n_classes, n_labels=n_labels, n_context=config.n_context,
                                       dim=config.dim, burstiness=config.burstiness, p_novel=config.p_novel,
                                       eps=config.eps, key=k_task)
        vecs = jax.random.normal(jax.random.fold_in(k_labels, n_labels), (n_labels, config.dim)) / math.sqrt(config.dim)
        out.append(LabelledTask(task, vecs))
    return tuple(out)


class Classifier(eqx.Module):
    """The attention-only transformer and the MLP classifier that reads its output at the query."""

    transformer: Transformer
    readout: tuple[eqx.nn.Linear, ...]

    def __init__(self, config: Config, n_labels: int, *, key: PRNGKeyArray):
        kt, km = jax.random.split(key)
        self.transformer = Transformer(model_config(config), key=kt)
        widths = (config.d_model, config.mlp_width, config.mlp_width, n_labels)
        self.readout = tuple(eqx.nn.Linear(a, b, key=k) for a, b, k in zip(widths, widths[1:], jax.random.split(km, 3)))

    def classify(self, h: Float[Array, " d_model"]) -> Float[Array, " n_labels"]:
        """The 3-layer ReLU MLP on the query's output."""
        for layer in self.readout[:-1]:
            h = jax.nn.relu(layer(h))
        return self.readout[-1](h)

    def __call__(self, tokens: Float[Array, "seq d_input"]) -> Float[Array, " n_labels"]:
        return self.classify(self.transformer(tokens)[-1])

    def batched(self, tokens: Float[Array, "batch seq d_input"]) -> Float[Array, "batch n_labels"]:
        return jax.vmap(self.classify)(self.transformer.batched(tokens)[:, -1])


def model_config(config: Config) -> TransformerConfig:
    """Two attention-only layers, one head each; positions come one-hot in the tokens (no W_pos); LayerNorm
    only with `layer_norm`."""
    seq = 2 * config.n_context + 1
    return TransformerConfig(n_layers=2, d_model=config.d_model, n_heads=1, d_head=config.d_model, n_ctx=seq,
                             d_input=config.dim + seq, d_vocab_out=config.d_model, attn_only=True,
                             positional_embedding_type="none", init_range=config.init_range,
                             normalization_type="LN" if config.layer_norm else None)


def load_models(config: Config, run_dir: Path) -> tuple[Classifier, Classifier]:
    """The trained (main, control) models from a seed's newest checkpoint."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


def _init(config: Config, key: PRNGKeyArray) -> tuple[Classifier, Classifier]:
    k_main, k_control = jax.random.split(key)
    return Classifier(config, config.n_labels, key=k_main), Classifier(config, config.n_context, key=k_control)


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adam(config.lr)


def query_loss(model: Classifier, prompts: Prompts) -> Float[Array, ""]:
    return optax.softmax_cross_entropy_with_integer_labels(model.batched(prompts.tokens), prompts.labels[:, -1]).mean()


def loss_fn(models: tuple, batches: tuple) -> Float[Array, ""]:
    return sum(query_loss(m, b) for m, b in zip(models, batches))


def attention_measures(model: Classifier, prompts: Prompts) -> dict[str, Float[Array, ""]]:
    """ILA1: layer-0 attention from each label token to the item before it; TILA2: layer-1 attention from
    the query to the label token of the matching item (means over the prompts)."""
    names = (sites.attn(0, "pattern"), sites.attn(1, "pattern"))
    _, cache = jax.vmap(lambda x: run_with_cache(model.transformer, x, names))(prompts.tokens)
    p0, p1 = cache[names[0]][:, 0], cache[names[1]][:, 0]  # [batch, q, k] of the single head
    n = prompts.labels.shape[1] - 1
    lab = 2 * jnp.arange(n) + 1
    ila1 = p0[:, lab, lab - 1].mean()
    tila2 = jnp.take_along_axis(p1[:, -1], (2 * prompts.match + 1)[:, None], 1).mean()
    return {"ila1": ila1, "tila2": tila2}


def split_measures(model: Classifier, prompts: Prompts) -> dict[str, Float[Array, ""]]:
    """Loss, accuracy (argmax) and CLA (probability on labels present in the context)."""
    logits = model.batched(prompts.tokens)
    target = prompts.labels[:, -1]
    probs = jax.nn.softmax(logits, -1)
    in_context = jax.vmap(lambda l: jnp.zeros(logits.shape[-1], bool).at[l[:-1]].set(True))(prompts.labels)
    return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, target).mean(),
            "accuracy": jnp.mean(logits.argmax(-1) == target), "cla": jnp.sum(probs * in_context, -1).mean()}


def make_eval(config: Config):
    def evaluate(models: tuple, data: tuple) -> dict[str, Float[Array, ""]]:
        """Per model: IC / IC2 / IWL loss, accuracy and CLA; ILA1 and TILA2 on the first IC prompts."""
        out = {}
        for name, model, splits in zip(MODELS, models, data):
            for split, prompts in splits.items():
                out.update({f"{name}/{split}_{k}": v for k, v in split_measures(model, prompts).items()})
            few = jax.tree.map(lambda x: x[: config.progress_prompts], splits["ic"])
            out.update({f"{name}/{k}": v for k, v in attention_measures(model, few).items()})
        return out
    return evaluate


@functools.partial(jax.jit, static_argnums=1)
def random_context_label_accuracy(labels: Int[Array, "batch n_plus_1"], n_labels: int) -> Float[Array, ""]:
    """Accuracy of predicting the most frequent context label (ties split evenly): the plateau's level,
    1/N when no two context labels coincide."""
    counts = jax.vmap(lambda l: jnp.bincount(l[:-1], length=n_labels))(labels)
    top = counts == counts.max(-1, keepdims=True)
    return jnp.mean(jnp.take_along_axis(top, labels[:, -1:], 1)[:, 0] / top.sum(-1))


SPLITS = ("ic", "ic2", "iwl")


@eqx.filter_jit
def eval_prompts(config: Config, tasks: tuple[LabelledTask, ...], key: PRNGKeyArray) -> tuple[dict, ...]:
    """Each model's held-out IC / IC2 / IWL prompts (stream `eval`)."""
    return tuple({s: t.prompts(jax.random.fold_in(jax.random.fold_in(key, i), j), config.eval_size, s)
                  for j, s in enumerate(SPLITS)} for i, t in enumerate(tasks))


def task_key() -> PRNGKeyArray:
    """The tasks' key (centroids, label vectors): one draw shared by every seed, so seeds differ in their
    init, data and eval streams. With p_C = 1 training never sees the centroids."""
    return derive_key(jax.random.key(0), "task")


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    tasks = make_tasks(config, task_key())
    evals = [eval_prompts(config, tasks, r.key("eval")) for r in runs]
    models = eqx.filter_vmap(lambda k: _init(config, k))(jnp.stack([r.key("init") for r in runs]))

    def sample(key):
        keys = jax.random.split(key, len(MODELS))
        return tuple(t.sample(k, config.batch_size) for t, k in zip(tasks, keys))

    models = train(
        models, make_optimizer(config), loss_fn, sample, data_keys=jnp.stack([r.key("data") for r in runs]),
        eval_fn=make_eval(config), eval_data=jax.tree.map(lambda *xs: jnp.stack(xs), *evals),
        schedule=Schedule(config.steps, config.log_every, config.eval_every, config.ckpt_every),
        seeds=[r.seed for r in runs], run_dirs=[r.dir for r in runs],
        meta={"experiment": "icl-classification", "config": dataclasses.asdict(config)},
        label=f"icl-classification seeds {','.join(str(r.seed) for r in runs)}",
    )
    return [_finish(config, tasks, evals[i], run) for i, run in enumerate(runs)]


def first_step(steps: np.ndarray, values: np.ndarray, level: float) -> int | None:
    """The first step where `values` reach `level` (None if they never do)."""
    hit = np.flatnonzero(np.asarray(values) >= level)
    return int(steps[hit[0]]) if hit.size else None


def phases(config: Config, run: SeedRun, model: str = "main") -> dict:
    """The jump of IC accuracy, from the logged curve (smoothed over `smooth_window` evals).

    Jump step: where smoothed IC accuracy rises fastest. Plateau: the median raw IC accuracy over the evals
    in the second half of the stretch before smoothed accuracy first reaches 0.5 (the whole second half of
    training if it never does). Jump width: steps from the last eval below 0.25 before the 0.5 crossing to
    the first at or above 0.75. The jump is present when final accuracy >= `jump_level`, the plateau is
    within 0.05 of 1/N or below, and the width is at most half the steps before the 0.5 crossing."""
    w = config.smooth_window
    steps, acc = run.curve("eval", f"{model}/ic_accuracy")
    s = smooth(acc, w)
    t_half = first_step(steps, s, 0.5)
    end = t_half if t_half is not None else steps[-1] + 1
    start = end / 2 if t_half is not None else steps[-1] / 2
    on_plateau = (steps >= start) & (steps < end)
    plateau = float(np.median(acc[on_plateau])) if on_plateau.any() else float("nan")
    width = None
    if t_half is not None:
        below = np.flatnonzero((s < 0.25) & (steps < t_half))
        t_low = int(steps[below[-1]]) if below.size else int(steps[0])
        t_high = first_step(steps[steps >= t_half], s[steps >= t_half], 0.75)
        width = None if t_high is None else t_high - t_low
    final = float(acc[-1])
    jump = (final >= config.jump_level and plateau <= 1 / config.n_context + 0.05 and width is not None
            and width <= t_half / 2)
    out = {"plateau_accuracy": plateau, "half_step": t_half, "jump_width": width, "final_accuracy": final,
           "max_accuracy": float(acc.max()), "jump_present": bool(jump),
           "jump_step": steepest_rise(steps, acc, window=w) if t_half is not None else None}
    for name in ("ila1", "tila2", "ic_cla"):
        m_steps, values = run.curve("eval", f"{model}/{name}")
        out[f"{name}_rise_step"] = steepest_rise(m_steps, values, window=w)
        out[f"{name}_final"] = float(values[-1])
    return out


def _finish(config: Config, tasks: tuple, evals: tuple, run: SeedRun) -> list[Check]:
    ref = {name: float(random_context_label_accuracy(e["ic"].labels, t.task.n_labels))
           for name, t, e in zip(MODELS, tasks, evals)}
    ph = {name: phases(config, run, name) for name in MODELS}
    run.write_json("extras", {"phases": ph, "random_context_label": ref})
    main, control = ph["main"], ph["control"]
    n = config.n_context
    lag = lambda name: (float("nan") if main["jump_step"] is None  # noqa: E731
                        else abs(main[f"{name}_rise_step"] - main["jump_step"]) / config.steps)
    return [
        Check("ic_jump_present", 1.0, float(main["jump_present"]), 0.0,
              f"1 if IC accuracy sits on a plateau <= 1/N + 0.05, rises from below 0.25 to >= 0.75 within half "
              f"the steps before it, and ends >= {config.jump_level} (paper: the jump in most seeds; check: "
              f">= 2/3 of the seeds pass)"),
        Check("ic_plateau_accuracy", 1 / n, main["plateau_accuracy"], 0.05,
              f"median IC accuracy on the plateau before the jump vs 1/N = {1 / n:.3f} (a random in-context "
              f"label; with labels drawn with replacement the most frequent context label scores "
              f"{ref['main']:.3f} on the same prompts)"),
        Check("ic_final_accuracy", 1.0, main["final_accuracy"], 1 - config.jump_level,
              f"IC accuracy (novel classes) at the last eval (>= {config.jump_level})", one_sided=True),
        Check("ila1_rise_at_jump", 0.0, lag("ila1"), 0.1,
              "|steepest rise of ILA1 (layer-0 label -> preceding item) - jump step| / steps"),
        Check("tila2_rise_at_jump", 0.0, lag("tila2"), 0.1,
              "|steepest rise of TILA2 (layer-1 query -> label of the matching item) - jump step| / steps"),
        Check("control_final_ic_accuracy", ref["control"], control["final_accuracy"], 0.1,
              f"IC accuracy of the L = N = {n} control at the last eval vs the most frequent context label's "
              f"({ref['control']:.3f} on the same prompts; paper: 0 of 6 seeds learn ICL, reference: <= 0.2)"),
    ]


class IclClassification(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs)


EXPERIMENT = IclClassification()
