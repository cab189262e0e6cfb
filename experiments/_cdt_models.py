"""The three models of `cdt-attribution`: the icl-gd LSA as a `Transformer`, a trained 2-layer
attention-only induction model, and compiled RASP programs; with their prompts and metrics."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from workbench.interp import LogitDiff, Output
from workbench.models import Transformer, TransformerConfig
from workbench.rasp import compile_program
from workbench.rasp import library as lib
from workbench.rasp.compiler import all_inputs
from workbench.tasks import Induction, LinearRegression
from workbench.tasks.regression import best_gd_eta
from workbench.theory import lsa_gd


def lsa_transformer(d: int, n: int, eta: float) -> Transformer:
    """The icl-gd LSA at the Prop. 1 construction (one GD step with `eta`) as a vector-input `Transformer`
    with causal linear attention over `[e_1..e_n, e_query]`; the output is the prediction."""
    config = TransformerConfig(n_layers=1, d_model=d + 1, n_heads=1, d_head=d + 1, n_ctx=n + 1, d_input=d + 1,
                               d_vocab_out=1, attn_only=True, normalization_type=None,
                               positional_embedding_type="none", attention_type="linear", use_attn_scale=False)
    lsa = lsa_gd.construction(d, n, eta)
    model = Transformer(config, key=jax.random.key(0))
    read_out = jnp.zeros((d + 1, 1)).at[d, 0].set(-1.0)  # prediction = minus the query's updated y-slot
    weights = (jnp.eye(d + 1), lsa.W_Q.T[None], lsa.W_K.T[None], lsa.W_V.T[None], lsa.P.T[None], read_out)
    return eqx.tree_at(lambda m: (m.embed.W_E, m.blocks[0].attn.W_Q, m.blocks[0].attn.W_K, m.blocks[0].attn.W_V,
                                  m.blocks[0].attn.W_O, m.unembed.W_U), model, weights)


def lsa_prompts(d: int, n: int, key, count: int):
    """`(prompts [count, n+1, d+1], eta)`: icl-gd's task (x ~ U(-1/2, 1/2), w ~ N(0, I)), the query last
    with y = 0, and the line-searched GD step eta*."""
    task = LinearRegression(d=d, n_points=n, noise=0.0, x_dist="uniform", x_range=1.0)
    k_eta, k_data = jax.random.split(key)
    eta = best_gd_eta(task.sample(k_eta, 4096))
    batch = task.sample(k_data, count)
    context = jnp.concatenate([batch.context_xs, batch.context_ys[..., None]], -1)
    query = jnp.concatenate([batch.query_x, jnp.zeros((count, 1))], -1)[:, None]
    return jnp.concatenate([context, query], 1), float(eta)


def gd_terms(prompts, eta: float) -> jax.Array:
    """One GD step's prediction split over the context points: `eta / n * y_i x_i . x_q` `[count, n]`."""
    n = prompts.shape[1] - 1
    xs, ys, xq = prompts[:, :n, :-1], prompts[:, :n, -1], prompts[:, n, :-1]
    return eta / n * ys * jnp.einsum("bnd,bd->bn", xs, xq)


def induction_config(d_model: int, n_heads: int, n_symbols: int, length: int) -> TransformerConfig:
    return TransformerConfig(n_layers=2, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
                             n_ctx=length + 1, d_vocab=n_symbols + 1, d_vocab_out=n_symbols, attn_only=True,
                             init_range=0.1)


def _loss(model, tokens, labels):
    logits = model.batched(tokens)
    keep = labels >= 0
    logp = jax.nn.log_softmax(logits, -1)
    ll = jnp.take_along_axis(logp, jnp.maximum(labels, 0)[..., None], -1)[..., 0]
    return -jnp.sum(jnp.where(keep, ll, 0.0)) / jnp.maximum(keep.sum(), 1)


def train_induction(config: TransformerConfig, task: Induction, key, steps: int, batch: int, lr: float):
    """Adam on the induction task's labelled positions; returns the model and its final loss."""
    k_init, k_data = jax.random.split(key)
    model = Transformer(config, key=k_init)
    opt = optax.adam(lr)
    state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def run(model, state):
        def step(carry, t):
            model, state = carry
            b = task.sample(jax.random.fold_in(k_data, t), batch)
            loss, grads = eqx.filter_value_and_grad(_loss)(model, b.tokens, b.labels)
            updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
            return (eqx.apply_updates(model, updates), state), loss

        params, static = eqx.partition(model, eqx.is_array)

        def body(carry, t):
            (p, s), loss = step((eqx.combine(carry[0], static), carry[1]), t)
            return (eqx.filter(p, eqx.is_array), s), loss

        (params, state), losses = jax.lax.scan(body, (params, state), jnp.arange(steps))
        return eqx.combine(params, static), losses

    model, losses = run(model, state)
    return model, losses


def induction_prompts(task: Induction, key, count: int):
    """Prompts whose last symbol occurred before (its label is defined), with the metric
    `logit(label) - logit(most likely other symbol under the clean run)` at the last position."""
    b = task.sample(key, 4 * count)
    keep = np.flatnonzero(np.asarray(b.labels[:, -1]) >= 0)[:count]
    return b.tokens[keep], b.labels[keep, -1]


def induction_metric(model, tokens, correct):
    logits = jax.vmap(model)(tokens)[:, -1]
    wrong = jnp.argmax(jnp.where(jax.nn.one_hot(correct, logits.shape[-1], dtype=bool), -jnp.inf, logits), -1)
    return LogitDiff(correct=correct, wrong=wrong)


def rasp_program(name: str):
    entry = lib.entry(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile_program(entry.program(entry.max_seq_len), entry.vocab, entry.max_seq_len)
    n = entry.max_seq_len
    inputs = list(all_inputs(entry.vocab, n, min_len=n))
    return compiled, inputs


__all__ = ["Output", "gd_terms", "induction_config", "induction_metric", "induction_prompts", "lsa_prompts",
           "lsa_transformer", "rasp_program", "train_induction"]
