"""Attention analyses: pattern scores (previous-token, induction, sink mass), QK/OV circuits from the
weights, copying scores and composition scores between heads (Elhage et al. 2021).

Pattern scores act on one example's `pattern [head, seq, kv]` (from `run_with_cache`, the hook
`sites.attn(l, "pattern")`) and return one score per head; vmap them over a batch and average.
Weight analyses read `model.blocks[l].attn` and ignore normalisation and biases.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from workbench.models import Transformer, run_with_cache

from ._sites import hook_name
from .results import Named


def prev_token_score(pattern: Float[Array, "head seq kv"]) -> Float[Array, " head"]:
    """Mean attention from each position to the one before it (positions 1..seq-1)."""
    return jnp.diagonal(pattern, offset=-1, axis1=1, axis2=2).mean(-1)


def induction_score(pattern: Float[Array, "head seq kv"], tokens: Int[Array, " seq"]) -> Float[Array, " head"]:
    """Mean attention from each position to the tokens that followed earlier copies of its token.

    Query `q` is scored on keys `k <= q` with `tokens[k - 1] == tokens[q]` (and `k - 1 < q`); queries
    with no such key are left out. On a repeated random sequence `[A, A]` these keys are the
    classic `q - len(A) + 1`; on a Markov chain they are the statistical induction head's targets.
    """
    seq = tokens.shape[0]
    q, k = jnp.arange(seq)[:, None], jnp.arange(seq)[None, :]
    prev = jnp.concatenate([jnp.full(1, -1, tokens.dtype), tokens[:-1]])  # token before each key
    targets = (prev[None, :] == tokens[:, None]) & (k >= 1) & (k <= q)
    has = targets.any(-1)
    mass = jnp.sum(jnp.where(targets[None], pattern, 0.0), -1)  # [head, seq]
    return jnp.sum(jnp.where(has[None], mass, 0.0), -1) / jnp.maximum(has.sum(), 1)


def sink_mass(pattern: Float[Array, "head seq kv"]) -> Float[Array, " head"]:
    """Mean attention on the first token (the attention sink), over all query positions."""
    return pattern[:, :, 0].mean(-1)


def sink_share(pattern: Float[Array, "head seq kv"]) -> Float[Array, "head seq"]:
    """|pattern[q, 0]| / sum_k |pattern[q, k]| per head and query: the attention on the first token for a
    softmax pattern, and the same share of the (unnormalised) weights of linear attention."""
    a = jnp.abs(pattern)
    return a[:, :, 0] / jnp.maximum(a.sum(-1), 1e-12)


PatternScore = Literal["prev_token", "induction", "sink"]


@eqx.filter_jit
def head_scores(model: Transformer, xs: Int[Array, "batch seq"], score: PatternScore) -> Named:
    """A pattern score of every head on a batch of prompts, averaged: `Named [layer, head]`."""
    layers = tuple(range(model.config.n_layers))
    names = tuple(hook_name("pattern", l) for l in layers)
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, names))(xs)
    fns = {"prev_token": lambda p, x: prev_token_score(p), "induction": induction_score,
           "sink": lambda p, x: sink_mass(p)}
    per_layer = [jax.vmap(fns[score])(cache[n], xs).mean(0) for n in names]
    return Named(jnp.stack(per_layer), ("layer", "head"), (layers, tuple(range(model.config.n_heads))))


def qk_circuit(model: Transformer, layer: int) -> Float[Array, "head d_model d_model"]:
    """`W_QK = W_Q W_K^T` per head: the score of query `x_q` on key `x_k` is `x_q W_QK x_k^T`."""
    attn = model.blocks[layer].attn
    return jnp.einsum("hmd,hnd->hmn", attn.W_Q, attn.W_K)


def ov_circuit(model: Transformer, layer: int) -> Float[Array, "head d_model d_model"]:
    """`W_OV = W_V W_O` per head: a key `x` writes `x W_OV` (times its attention weight)."""
    attn = model.blocks[layer].attn
    return jnp.einsum("hmd,hdn->hmn", attn.W_V, attn.W_O)


def full_ov_circuit(model: Transformer, layer: int) -> Float[Array, "head vocab vocab_out"]:
    """`W_E W_OV W_U`: the logits a head writes for each attended token, from the token embedding."""
    return jnp.einsum("vm,hmn,no->hvo", model.embed.W_E, ov_circuit(model, layer), model.unembed.W_U)


def full_qk_circuit(model: Transformer, layer: int) -> Float[Array, "head vocab vocab"]:
    """`W_E W_QK W_E^T`: the attention score of each query token on each key token (no positions)."""
    return jnp.einsum("vm,hmn,wn->hvw", model.embed.W_E, qk_circuit(model, layer), model.embed.W_E)


def copying_score(model: Transformer, layer: int) -> Float[Array, " head"]:
    """Elhage et al.'s copying score: `sum(eig) / sum(|eig|)` of the full OV circuit `W_E W_OV W_U`.

    Near 1 when a head raises the logit of the token it attends to. The nonzero eigenvalues are
    taken from the small `[d_head, d_head]` matrix `W_O W_U W_E W_V` (same nonzero spectrum).
    Needs `d_vocab == d_vocab_out`; computed on the host (NumPy), as JAX's `eig` is CPU-only.
    """
    c = model.config
    if not c.tokens_in or c.vocab_out != c.d_vocab:
        raise ValueError("copying_score needs token inputs with d_vocab == d_vocab_out")
    attn = model.blocks[layer].attn
    small = jnp.einsum("hdm,mv,vn,hne->hde", attn.W_O, model.unembed.W_U, model.embed.W_E, attn.W_V)
    eig = np.linalg.eigvals(np.asarray(small, np.float64))
    return jnp.asarray(eig.real.sum(-1) / np.abs(eig).sum(-1), jnp.float32)


Composition = Literal["q", "k", "v"]


def composition_score(left: Float[Array, "m n"], right: Float[Array, "n p"]) -> Float[Array, ""]:
    """`||left right||_F / (||left||_F ||right||_F)`, in [0, 1]."""
    return jnp.linalg.norm(left @ right) / (jnp.linalg.norm(left) * jnp.linalg.norm(right))


def composition_scores(model: Transformer, kind: Composition, layer_a: int, layer_b: int) -> Named:
    """Q-, K- or V-composition of each head of `layer_a` into each head of a later `layer_b`.

    Head A writes `x W_OV^A`; head B reads it as its query (`W_OV^A W_QK^B`), its key
    (`W_OV^A W_QK^B^T`) or its value (`W_OV^A W_OV^B`). **Returns:** `Named [head_a, head_b]`.
    """
    if not layer_a < layer_b:
        raise ValueError(f"composition needs layer_a < layer_b, got {layer_a} and {layer_b}")
    ov_a = ov_circuit(model, layer_a)
    right = {"q": qk_circuit(model, layer_b), "k": jnp.swapaxes(qk_circuit(model, layer_b), 1, 2),
             "v": ov_circuit(model, layer_b)}[kind]
    scores = jax.vmap(lambda a: jax.vmap(lambda b: composition_score(a, b))(right))(ov_a)
    heads = tuple(range(model.config.n_heads))
    return Named(scores, ("head_a", "head_b"), (heads, heads))
