"""One- vs two-layer transformers on a fixed Markov source (Makkuva et al. 2024; Rajaraman et al. 2024).

Every sequence comes from one fixed source, so the optimum is the source's entropy rate, which a
model reaches by reading the last symbol (first order) or the last two (the switching source). Two
sources, each with a one- and a two-layer model (embedding and unembedding tied, `W_U = W_E^T`):

- `binary`: Makkuva et al.'s chain P(0 -> 1) = p, P(1 -> 0) = q. With p + q > 1 the tied one-layer
  model has a bad local minimum at the unigram (stationary) predictor, loss H(pi); depth 2 reaches
  the entropy rate.
- `switching`: Rajaraman et al.'s x_n = x_{n-k} XOR Bernoulli(delta), which transformers without a
  tokenizer are said to fit only at the unigram level (loss ln 2) instead of H_b(delta).
"""

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from workbench.core import Check
from workbench.core.rng import derive_key
from workbench.core.results import Analysis
from workbench.core.validate import check_float, check_int
from workbench.models import Transformer, TransformerConfig
from workbench.tasks.markov import FixedMarkovSource, entropy_rate, oracle_losses, stationary
from workbench.train import load_trained

from . import _markov_fixed_figures as figures
from ._base import Experiment, SeedRun
from ._progress import attention_scores, crossing_step, smooth
from ._task_group import train_on_tasks

TITLE = "A fixed Markov source: stuck at the unigram or at the entropy rate"
PAPER = ("Makkuva et al. 2024, *Attention with Markov: A Framework for Principled Analysis of Transformers via "
         "Markov Chains*; Rajaraman, Jiao & Ramchandran 2024, *Toward a Theory of Tokenization in LLMs*")
CLAIM = (
    "On a single fixed binary Markov chain with P(0→1) = p = 0.5 and P(1→0) = q = 0.8 (p + q > 1), a "
    "**one-layer** transformer with tied embedding and unembedding ends at the **unigram** (stationary) "
    "predictor, loss H(π) = 0.666 nats, a bad local minimum, while a **two-layer** one reaches the bigram "
    "entropy rate 0.619 (Makkuva et al.). On the order-2 switching source x_n = x_{n−2} ⊕ Bern(δ), "
    "δ = 0.1, transformers trained on the raw symbols (no tokenizer) predict the unigram distribution, "
    "loss ln 2 = 0.693, instead of the optimum H_b(δ) = 0.325 (Rajaraman et al.). Checks: each model's "
    "final eval loss against the loss the paper says it ends at (±0.01 for the binary chain, ±0.02 for "
    "the switching source); the references are computed in closed form from the source."
)
SOURCES = ("binary", "switching")
DEPTHS = (1, 2)
MODELS = tuple(f"{s}_{d}layer" for s in SOURCES for d in DEPTHS)
MODEL_DEPTHS = DEPTHS * len(SOURCES)  # the depth of each of MODELS


@dataclasses.dataclass(frozen=True)
class Config:
    p: float = 0.5
    q: float = 0.8
    order: int = 2
    delta: float = 0.1
    seq_len: int = 64
    d_model: int = 16
    n_heads: int = 1
    tied: bool = True
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    init_range: float = 0.02
    eval_size: int = 512
    progress_prompts: int = 64
    smooth_window: int = 5
    log_every: int = 50
    eval_every: int = 25
    ckpt_every: int = 500

    def __post_init__(self):
        for name in ("order", "seq_len", "d_model", "n_heads", "steps", "batch_size", "eval_size", "progress_prompts",
                     "smooth_window", "log_every", "eval_every", "ckpt_every"):
            check_int("markov-fixed", name, getattr(self, name))
        check_int("markov-fixed", "seq_len", self.seq_len, low=self.order + 2)
        for name in ("p", "q", "delta"):
            check_float("markov-fixed", name, getattr(self, name), strict=True, high=1.0)
        for name in ("lr", "init_range"):
            check_float("markov-fixed", name, getattr(self, name), strict=True)
        check_float("markov-fixed", "weight_decay", self.weight_decay)
        if self.d_model % self.n_heads:
            raise ValueError(f"markov-fixed.d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.progress_prompts > self.eval_size:
            raise ValueError(f"markov-fixed.progress_prompts ({self.progress_prompts}) must be <= eval_size "
                             f"({self.eval_size})")


PRESETS = {
    "quick": Config(steps=500, batch_size=32, eval_size=256, progress_prompts=32, log_every=25, eval_every=25),
    "default": Config(),
    "paper": Config(steps=10_000, seq_len=128, d_model=32, eval_size=2048, eval_every=100, log_every=100,
                    ckpt_every=2000),
}


def make_task(config: Config, source: str) -> FixedMarkovSource:
    if source == "binary":
        return FixedMarkovSource.binary(config.p, config.q, seq_len=config.seq_len)
    return FixedMarkovSource.switching(config.order, config.delta, seq_len=config.seq_len)


def references(task: FixedMarkovSource) -> dict[str, float]:
    """Closed forms: the unigram loss H(pi) (entropy of the symbols' stationary law) and the entropy rate."""
    pi = stationary(task.transitions)  # over contexts; its last digit is the symbol
    symbols = pi.reshape(-1, task.n_symbols).sum(0)
    return {"unigram": float(-jnp.sum(symbols * jnp.log(symbols))), "entropy_rate": float(entropy_rate(task.transitions))}


def model_config(config: Config, n_layers: int) -> TransformerConfig:
    return TransformerConfig(n_layers=n_layers, d_model=config.d_model, n_heads=config.n_heads,
                             d_head=config.d_model // config.n_heads, n_ctx=config.seq_len, d_vocab=2,
                             init_range=config.init_range)


def tie(model: Transformer, tied: bool = True) -> Transformer:
    """The model read with `W_U = W_E^T` (the stored `W_U` is then unused and gets no gradient)."""
    return eqx.tree_at(lambda m: m.unembed.W_U, model, model.embed.W_E.T) if tied else model


def _init(config: Config, key) -> tuple[Transformer, ...]:
    keys = jax.random.split(key, len(MODELS))
    return tuple(tie(Transformer(model_config(config, d), key=k), config.tied) for k, d in zip(keys, MODEL_DEPTHS))


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adamw(config.lr, b1=0.9, b2=0.95, weight_decay=config.weight_decay)


def token_loss(model: Transformer, tokens: Int[Array, "batch seq"]) -> Float[Array, ""]:
    """Mean -log p(x_{t+1} | x_0..x_t) over t = 0..seq-2 and the batch."""
    logp = jax.nn.log_softmax(model.batched(tokens)[:, :-1], -1)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()


def _pairs(models: tuple, batches: tuple):
    """Each model with its source's batch (both depths of a source see the same sequences)."""
    return [(m, batches[i // len(DEPTHS)]) for i, m in enumerate(models)]


def make_loss(tied: bool):
    def loss_fn(models: tuple, batches: tuple) -> Float[Array, ""]:
        return sum(token_loss(tie(m, tied), b.tokens) for m, b in _pairs(models, batches))
    return loss_fn


def make_eval(config: Config):
    def evaluate(models: tuple, batches: tuple) -> dict[str, Float[Array, ""]]:
        """Each model's eval loss and the attention scores of its heads (on the first prompts)."""
        out = {}
        for name, (m, b) in zip(MODELS, _pairs(models, batches)):
            m = tie(m, config.tied)
            out[f"{name}/loss"] = token_loss(m, b.tokens)
            out.update({f"{name}/{k}": v for k, v in attention_scores(m, b.tokens[: config.progress_prompts]).items()})
        return out
    return evaluate


def phases(config: Config, run: SeedRun, name: str, ref: dict[str, float]) -> dict[str, float | int | None]:
    """Final loss; the transition step, from which the smoothed loss stays below the midpoint of the unigram
    loss and the entropy rate; and the steps spent on the unigram plateau (smoothed loss within a tenth of
    that gap of the unigram loss)."""
    steps, loss = run.curve("eval", f"{name}/loss")
    gap = ref["unigram"] - ref["entropy_rate"]
    mid = np.full(len(steps), ref["entropy_rate"] + gap / 2)
    s = smooth(loss, config.smooth_window)
    near = np.abs(s - ref["unigram"]) < gap / 10
    return {"final_loss": float(loss[-1]), "transition_step": crossing_step(steps, loss, mid, window=config.smooth_window),
            "plateau_steps": int(near.sum() * config.eval_every)}


def _run_group(config: Config, runs: list[SeedRun]) -> list[list[Check]]:
    tasks = {s: make_task(config, s) for s in SOURCES}
    trained = train_on_tasks("markov-fixed", config, runs, tasks, lambda k: _init(config, k), make_optimizer(config),
                             make_loss(config.tied), make_eval(config), eval_size=config.eval_size)
    return [_finish(config, tasks, eval_key, run) for (_, eval_key), run in zip(trained, runs, strict=True)]


@eqx.filter_jit
def _oracle_loss(task: FixedMarkovSource, key, size: int) -> Float[Array, ""]:
    return oracle_losses(task.sample(key, size), task.order).mean()


def best_prev_token(run: SeedRun, name: str, n_layers: int, n_heads: int) -> float:
    """The largest final previous-token score over the heads of model `name`."""
    return max(float(run.curve("eval", f"{name}/prev_token.a{l}.h{h}")[1][-1])
               for l in range(n_layers) for h in range(n_heads))


def _finish(config: Config, tasks: dict, eval_key, run: SeedRun) -> list[Check]:
    # the eval sequences of training (train_on_tasks draws them from `eval` folded with `train-<source>`)
    refs = {s: {**references(t), "oracle_on_eval": float(_oracle_loss(t, derive_key(eval_key, f"train-{s}"),
                                                                      config.eval_size))}
            for s, t in tasks.items()}
    ph = {name: {**phases(config, run, name, refs[name.split("_")[0]]),
                 "prev_token": best_prev_token(run, name, depth, config.n_heads)}
          for name, depth in zip(MODELS, MODEL_DEPTHS)}
    run.write_json("extras", {"references": refs, "phases": ph})
    b, s = refs["binary"], refs["switching"]
    d = config.delta
    return [
        Check("binary_1layer_loss", b["unigram"], ph["binary_1layer"]["final_loss"], 0.01,
              f"final eval loss of the tied one-layer model on the p = {config.p}, q = {config.q} chain vs the unigram "
              f"loss H(π) it is said to be stuck at (0.666 at p = 0.5, q = 0.8)"),
        Check("binary_2layer_loss", b["entropy_rate"], ph["binary_2layer"]["final_loss"], 0.01,
              "final eval loss of the tied two-layer model vs the chain's entropy rate (0.619 at p = 0.5, q = 0.8)"),
        Check("switching_1layer_loss", s["unigram"], ph["switching_1layer"]["final_loss"], 0.02,
              f"final eval loss of the one-layer model on x_n = x_(n-{config.order}) XOR Bern({d}) vs the unigram "
              f"loss ln 2 it is said to be stuck at (optimum H_b(δ) = {s['entropy_rate']:.3f})"),
        Check("switching_2layer_loss", s["unigram"], ph["switching_2layer"]["final_loss"], 0.02,
              f"final eval loss of the two-layer model on the switching source vs ln 2 (optimum {s['entropy_rate']:.3f})"),
    ]


def load_models(config: Config, run_dir: Path) -> tuple[Transformer, ...]:
    """The trained models (in the order of `MODELS`, tied as trained) from a seed's newest checkpoint."""
    models = load_trained(run_dir, _init(config, jax.random.key(0)), make_optimizer(config))
    return tuple(tie(m, config.tied) for m in models)


class MarkovFixed(Experiment[Config]):
    title, paper, claim, presets = TITLE, PAPER, CLAIM, PRESETS

    def run_group(self, config: Config, runs) -> list[list[Check]]:
        return _run_group(config, runs)

    def analyse(self, config: Config, runs) -> Analysis:
        return figures.analyse(config, runs, MODELS)


EXPERIMENT = MarkovFixed()
