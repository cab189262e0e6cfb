"""Attention sinks in a small model: softmax against linear attention on the bigram-backcopy source.

Guo et al. 2024's source (`tasks.markov.BigramBackcopy`): BOS, a fixed bigram chain, and after each
trigger symbol a copy of the symbol before it. A one-layer model (attention + MLP) predicts the
bigram from the current token alone (the MLP) and needs its head only at triggers, to copy the
previous token. At every other ("dormant") query the head has nothing to read; with softmax it
must still spend a unit of attention, and it spends it on BOS, the attention sink. Linear attention
(the masked scores as the pattern, no normalisation) can attend to nothing instead.

Measures, logged at every eval step for each model: the loss (all positions, triggers, the rest),
the copy accuracy at triggers, the **sink share** (|pattern[q, 0]| / sum_k |pattern[q, k]|, which is
the attention on BOS for softmax) over dormant and over trigger queries, and two ablations: the
rise in loss when BOS's value is zeroed (is the sink's content used?) and when the sink is removed
(BOS's column zeroed at queries q >= 1, softmax rows renormalised: the attention goes elsewhere).
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int

from workbench.core import Check
from workbench.core.rng import derive_key
from workbench.core.results import Analysis
from workbench.core.validate import check_float, check_int
from workbench.interp.attention import sink_share
from workbench.models import Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites
from workbench.tasks.markov import BackcopyBatch, BigramBackcopy, batch_losses
from workbench.train import load_trained

from . import _attention_sinks_figures as figures
from ._base import Experiment, SeedRun
from ._task_group import sample_batch, train_on_tasks

TITLE = "Attention sinks: softmax against linear attention on the bigram-backcopy source"
PAPER = ("Gu et al. 2025, *When Attention Sink Emerges in Language Models: An Empirical View*; Guo et al. 2024, "
         "*Active-Dormant Attention Heads* (the bigram-backcopy source)")
CLAIM = (
    "Attention sinks (most of a head's attention on the first token) emerge during training even in small "
    "models; the sink acts like a key bias, storing attention that is **not used in the value computation**; "
    "and it stems from softmax normalisation: attention **without normalisation does not form sinks** (Gu et al.). "
    "Here a one-layer model learns Guo et al.'s bigram-backcopy source, where the head is needed only at trigger "
    "tokens. Checks: the softmax model learns the copy (accuracy at triggers ≥ 0.9); its head puts at least half "
    "its attention on BOS at dormant queries (a sink); zeroing BOS's value leaves its loss within 0.05 nats "
    "(the sink's content is unused); the linear-attention model's share on BOS at dormant queries stays within "
    "0.15 of the uniform share (no sink)."
)
MODELS = ("softmax", "linear")
MEASURES = ("loss", "copy_loss", "bigram_loss", "copy_acc", "sink_dormant", "sink_trigger", "bos_value_ablation",
            "sink_removal")


@dataclasses.dataclass(frozen=True)
class Config:
    n_symbols: int = 16
    n_triggers: int = 3
    alpha: float = 0.5
    seq_len: int = 32
    d_model: int = 32
    d_mlp: int = 128
    n_heads: int = 1
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    init_range: float = 0.02
    eval_size: int = 256
    smooth_window: int = 5
    log_every: int = 50
    eval_every: int = 25
    ckpt_every: int = 500

    def __post_init__(self):
        for name in ("n_symbols", "n_triggers", "seq_len", "d_model", "d_mlp", "n_heads", "steps", "batch_size",
                     "eval_size", "smooth_window", "log_every", "eval_every", "ckpt_every"):
            check_int("attention-sinks", name, getattr(self, name))
        check_int("attention-sinks", "seq_len", self.seq_len, low=4)
        for name in ("alpha", "lr", "init_range"):
            check_float("attention-sinks", name, getattr(self, name), strict=True)
        if self.n_triggers >= self.n_symbols:
            raise ValueError(f"attention-sinks.n_triggers ({self.n_triggers}) must be below n_symbols "
                             f"({self.n_symbols})")
        if self.d_model % self.n_heads:
            raise ValueError(f"attention-sinks.d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")


PRESETS = {
    "quick": Config(steps=600, eval_size=128),
    "default": Config(),
    "paper": Config(n_symbols=64, seq_len=128, d_model=128, d_mlp=512, steps=10_000, eval_size=1024,
                    eval_every=100, log_every=100, ckpt_every=2000),
}


def make_task(config: Config, run: SeedRun) -> BigramBackcopy:
    """The seed's source: its bigram table is drawn from the seed's `source` stream."""
    return BigramBackcopy.random(config.n_symbols, config.n_triggers, config.seq_len, config.alpha,
                                 key=run.key("source"))


def model_config(config: Config, attention: str) -> TransformerConfig:
    return TransformerConfig(n_layers=1, d_model=config.d_model, n_heads=config.n_heads,
                             d_head=config.d_model // config.n_heads, n_ctx=config.seq_len,
                             d_vocab=config.n_symbols + 1, d_mlp=config.d_mlp, attention_type=attention,
                             init_range=config.init_range)


def _init(config: Config, key) -> tuple[Transformer, ...]:
    keys = jax.random.split(key, len(MODELS))
    return tuple(Transformer(model_config(config, a), key=k) for a, k in zip(MODELS, keys))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adamw(config.lr, b1=0.9, b2=0.95, weight_decay=0.0)


def token_losses(logits: Float[Array, "batch seq vocab"], tokens: Int[Array, "batch seq"]
                 ) -> Float[Array, "batch seq_1"]:
    """-log p(x_{t+1} | x_0..x_t), t = 0..seq-2."""
    logp = jax.nn.log_softmax(logits[:, :-1], -1)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0]


def loss_fn(models: tuple, batches: tuple) -> Float[Array, ""]:
    return sum(token_losses(m.batched(b.tokens), b.tokens).mean() for m, b in zip(models, batches))


def _mean(x: Float[Array, "..."], mask: Bool[Array, "..."]) -> Float[Array, ""]:
    return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(mask.sum(), 1)


def _remove_sink(pattern: Float[Array, "head seq kv"], renormalise: bool) -> Float[Array, "head seq kv"]:
    keep = jnp.ones(pattern.shape[-2:]).at[1:, 0].set(0.0)
    out = pattern * keep
    return out / jnp.maximum(out.sum(-1, keepdims=True), 1e-12) if renormalise else out


def _zero_bos_value(v: Float[Array, "seq head d_head"]) -> Float[Array, "seq head d_head"]:
    return v.at[0].set(0.0)


def measures(model: Transformer, batch: BackcopyBatch) -> dict[str, Float[Array, ""]]:
    """The progress measures of one model on one batch (all scalars; see the module docstring)."""
    tokens, trigger = batch.tokens, batch.copy
    pattern_name, v_name = sites.attn(0, "pattern"), sites.attn(0, "v")
    logits, cache = jax.vmap(lambda x: run_with_cache(model, x, (pattern_name,)))(tokens)
    losses = token_losses(logits, tokens)
    at_trigger = trigger[:, :-1]
    correct = logits[:, :-1].argmax(-1) == tokens[:, 1:]
    share = jax.vmap(sink_share)(cache[pattern_name]).mean(1)  # [batch, seq], mean over heads
    query = jnp.arange(tokens.shape[1])[None, :] >= 1
    softmax = model.config.attention_type == "softmax"
    drop = {pattern_name: lambda p, _: _remove_sink(p, softmax)}
    removed = jax.vmap(lambda x: run_with_hooks(model, x, drop))(tokens)
    no_value = jax.vmap(lambda x: run_with_hooks(model, x, {v_name: lambda v, _: _zero_bos_value(v)}))(tokens)
    loss = losses.mean()
    return {
        "loss": loss,
        "copy_loss": _mean(losses, at_trigger),
        "bigram_loss": _mean(losses, ~at_trigger),
        "copy_acc": _mean(correct, at_trigger),
        "sink_dormant": _mean(share, query & ~trigger),
        "sink_trigger": _mean(share, trigger),
        "bos_value_ablation": token_losses(no_value, tokens).mean() - loss,
        "sink_removal": token_losses(removed, tokens).mean() - loss,
    }


def evaluate(models: tuple, batches: tuple) -> dict[str, Float[Array, ""]]:
    return {f"{name}/{k}": v for name, m, b in zip(MODELS, models, batches) for k, v in measures(m, b).items()}


def uniform_share(batch: BackcopyBatch) -> float:
    """The sink share of uniform causal attention, 1 / (q + 1), averaged over the dormant queries."""
    q = np.arange(batch.tokens.shape[1])[None, :]
    mask = (q >= 1) & ~np.asarray(batch.copy)
    return float((1.0 / (q + 1) * mask).sum() / mask.sum())


_batch_losses = eqx.filter_jit(batch_losses)


@eqx.filter_jit
def mean_pattern(model: Transformer, tokens: Int[Array, "batch seq"]) -> Float[Array, "seq kv"]:
    """The head-averaged attention pattern (softmax) or |weights| (linear), averaged over the batch."""
    name = sites.attn(0, "pattern")
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, (name,)))(tokens)
    return jnp.abs(cache[name]).mean((0, 1))


def _finish(config: Config, task: BigramBackcopy, models: tuple, eval_key, run: SeedRun) -> list[Check]:
    batch = sample_batch(task, derive_key(eval_key, "train-softmax"), config.eval_size)  # the softmax model's eval set
    bayes = np.asarray(_batch_losses(task.bayes_probs, batch))
    trig = np.asarray(batch.copy)[:, :-1]
    final = {name: {k: float(run.curve("eval", f"{name}/{k}")[1][-1]) for k in MEASURES} for name in MODELS}
    refs = {"bayes": float(bayes.mean()), "bayes_bigram": float(bayes[~trig].mean()),
            "uniform_share": uniform_share(batch)}
    patterns = {name: np.asarray(mean_pattern(m, batch.tokens[:64])).tolist() for name, m in zip(MODELS, models)}
    run.write_json("extras", {"references": refs, "final": final, "patterns": patterns})
    s, lin = final["softmax"], final["linear"]
    return [
        Check("softmax_copy_acc", 1.0, s["copy_acc"], 0.1,
              "copy accuracy of the softmax model at trigger tokens (the task is learned)", one_sided=True),
        Check("softmax_sink_dormant", 1.0, s["sink_dormant"], 0.5,
              "softmax model: mean attention on BOS at dormant (non-trigger) queries q >= 1 (a sink: at least 0.5; "
              f"uniform attention gives {refs['uniform_share']:.3f})", one_sided=True),
        Check("softmax_bos_value_ablation", 0.0, s["bos_value_ablation"], 0.05,
              "softmax model: rise of the eval loss (nats) when BOS's value vector is zeroed (the sink's content "
              "is unused)"),
        Check("linear_sink_dormant", refs["uniform_share"], lin["sink_dormant"], 0.15,
              "linear-attention model: share of |weights| on BOS at dormant queries against the uniform share "
              "(no sink without normalisation)"),
    ]


def _run_seed(config: Config, run: SeedRun) -> list[Check]:
    task = make_task(config, run)
    (models, eval_key), = train_on_tasks("attention-sinks", config, [run], {name: task for name in MODELS},
                                         lambda k: _init(config, k), make_optimizer(config), loss_fn, evaluate,
                                         eval_size=config.eval_size)
    return _finish(config, task, models, eval_key, run)


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, ...]:
    """The trained models (in the order of `MODELS`) from a seed's newest checkpoint."""
    return load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))


class AttentionSinks(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_seed(self, config: Config, run: SeedRun) -> list[Check]:
        # each seed draws its own bigram table, so seeds train one at a time (also under --vmap)
        return _run_seed(config, run)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs, MODELS)


EXPERIMENT = AttentionSinks()
