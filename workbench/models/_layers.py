"""Transformer components with TransformerLens parameter names and shapes.

Each acts on one sequence `[seq, ...]` and also on a batch `[batch, seq, ...]` (`Transformer.batched`).
Every linear map is one 2-D matmul over the flattened leading axes (`_linear`): XLA:CPU turns its
weight gradient into a single GEMM, where the same map under `jax.vmap` contracts over two axes and
runs about three times slower.
"""

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from . import sites
from ._hooks import Hooks


def _normal(key: PRNGKeyArray, shape: tuple[int, ...], std: float) -> Array:
    return std * jax.random.normal(key, shape)


def _linear(x: Float[Array, "*lead d_in"], w: Float[Array, "d_in d_out"]) -> Float[Array, "*lead d_out"]:
    """`x @ w` as one 2-D matmul over the flattened leading axes."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[-1])


def _heads_in(x: Float[Array, "*lead d_model"], w: Float[Array, "head d_model d_head"]) -> Float[Array, "*lead head d_head"]:
    """`einsum("...m,hmd->...hd")` as one matmul with the heads side by side."""
    h, m, d = w.shape
    return _linear(x, w.transpose(1, 0, 2).reshape(m, h * d)).reshape(*x.shape[:-1], h, d)


class Embed(eqx.Module):
    """Token embedding `W_E [d_vocab, d_model]`, or the read-in `W_E [d_input, d_model]` for vectors."""

    W_E: Float[Array, "vocab d_model"]
    tokens_in: bool = eqx.field(static=True)

    def __init__(self, n_in: int, d_model: int, tokens_in: bool, std: float, *, key: PRNGKeyArray):
        self.W_E = _normal(key, (n_in, d_model), std)
        self.tokens_in = tokens_in

    def __call__(self, x: Int[Array, " seq"] | Float[Array, "seq d_input"]) -> Float[Array, "seq d_model"]:
        return self.W_E[x] if self.tokens_in else _linear(x, self.W_E)


class PosEmbed(eqx.Module):
    W_pos: Float[Array, "n_ctx d_model"]

    def __init__(self, n_ctx: int, d_model: int, std: float, *, key: PRNGKeyArray):
        self.W_pos = _normal(key, (n_ctx, d_model), std)

    def __call__(self, seq: int) -> Float[Array, "seq d_model"]:
        return self.W_pos[:seq]


class Norm(eqx.Module):
    """LayerNorm (`LN`), LayerNorm without weights (`LNPre`) or `RMS`, as in TransformerLens."""

    w: Float[Array, " d_model"] | None
    b: Float[Array, " d_model"] | None
    kind: str = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(self, d_model: int, kind: str, eps: float):
        self.w = jnp.ones(d_model) if kind in ("LN", "RMS") else None
        self.b = jnp.zeros(d_model) if kind == "LN" else None
        self.kind = kind
        self.eps = eps

    def __call__(
        self, x: Float[Array, "seq d_model"], hooks: Hooks, layer: int | None, which: Literal["ln1", "ln2", "ln_final"]
    ) -> Float[Array, "seq d_model"]:
        """`which` is `ln1`, `ln2` (in block `layer`) or `ln_final` (`layer=None`)."""
        if self.kind != "RMS":
            x = x - x.mean(-1, keepdims=True)
        scale_name, normalized = sites.norm(layer, which, "scale"), sites.norm(layer, which, "normalized")
        scale = hooks(scale_name, jnp.sqrt((x**2).mean(-1, keepdims=True) + self.eps))
        if self.kind == "RMS":
            return hooks(normalized, x / scale) * self.w
        x = x / scale
        if self.kind == "LN":
            x = x * self.w + self.b
        return hooks(normalized, x)


class Attention(eqx.Module):
    W_Q: Float[Array, "head d_model d_head"]
    W_K: Float[Array, "head d_model d_head"]
    W_V: Float[Array, "head d_model d_head"]
    W_O: Float[Array, "head d_head d_model"]
    b_Q: Float[Array, "head d_head"]
    b_K: Float[Array, "head d_head"]
    b_V: Float[Array, "head d_head"]
    b_O: Float[Array, " d_model"]
    causal: bool = eqx.field(static=True)
    softmax: bool = eqx.field(static=True)
    attn_scale: float = eqx.field(static=True)

    def __init__(self, config, *, key: PRNGKeyArray):
        c = config
        kq, kk, kv, ko = jax.random.split(key, 4)
        shape = (c.n_heads, c.d_model, c.d_head)
        self.W_Q = _normal(kq, shape, c.init_range)
        self.W_K = _normal(kk, shape, c.init_range)
        self.W_V = _normal(kv, shape, c.init_range)
        self.W_O = _normal(ko, (c.n_heads, c.d_head, c.d_model), c.init_range)
        self.b_Q = jnp.zeros((c.n_heads, c.d_head))
        self.b_K = jnp.zeros((c.n_heads, c.d_head))
        self.b_V = jnp.zeros((c.n_heads, c.d_head))
        self.b_O = jnp.zeros(c.d_model)
        self.causal = c.attention_dir == "causal"
        self.softmax = c.attention_type == "softmax"
        self.attn_scale = math.sqrt(c.d_head) if c.use_attn_scale else 1.0

    def __call__(self, x: Float[Array, "seq d_model"], hooks: Hooks, layer: int) -> Float[Array, "seq d_model"]:
        q = hooks(sites.attn(layer, "q"), _heads_in(x, self.W_Q) + self.b_Q)
        k = hooks(sites.attn(layer, "k"), _heads_in(x, self.W_K) + self.b_K)
        v = hooks(sites.attn(layer, "v"), _heads_in(x, self.W_V) + self.b_V)
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / self.attn_scale
        if self.causal:
            seq = x.shape[-2]
            mask = jnp.tril(jnp.ones((seq, seq), dtype=bool))
            scores = jnp.where(mask, scores, -jnp.inf if self.softmax else 0.0)
        scores = hooks(sites.attn(layer, "attn_scores"), scores)
        pattern = jax.nn.softmax(scores, axis=-1) if self.softmax else scores
        pattern = hooks(sites.attn(layer, "pattern"), pattern)
        z = hooks(sites.attn(layer, "z"), jnp.einsum("...hqk,...khd->...qhd", pattern, v))
        result_name = sites.attn(layer, "result")
        if hooks.wants(result_name):
            result = hooks(result_name, jnp.einsum("...qhd,hdm->...qhm", z, self.W_O))
            return result.sum(-2) + self.b_O
        h, d, m = self.W_O.shape
        return _linear(z.reshape(*z.shape[:-2], h * d), self.W_O.reshape(h * d, m)) + self.b_O


_ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
}


class MLP(eqx.Module):
    W_in: Float[Array, "d_model d_mlp"]
    b_in: Float[Array, " d_mlp"]
    W_out: Float[Array, "d_mlp d_model"]
    b_out: Float[Array, " d_model"]
    act_fn: str = eqx.field(static=True)

    def __init__(self, config, *, key: PRNGKeyArray):
        c = config
        k_in, k_out = jax.random.split(key)
        self.W_in = _normal(k_in, (c.d_model, c.mlp_width), c.init_range)
        self.b_in = jnp.zeros(c.mlp_width)
        self.W_out = _normal(k_out, (c.mlp_width, c.d_model), c.init_range)
        self.b_out = jnp.zeros(c.d_model)
        self.act_fn = c.act_fn

    def __call__(self, x: Float[Array, "seq d_model"], hooks: Hooks, layer: int) -> Float[Array, "seq d_model"]:
        pre = hooks(sites.mlp(layer, "pre"), _linear(x, self.W_in) + self.b_in)
        post = hooks(sites.mlp(layer, "post"), _ACTIVATIONS[self.act_fn](pre))
        return _linear(post, self.W_out) + self.b_out


class Unembed(eqx.Module):
    W_U: Float[Array, "d_model vocab_out"]
    b_U: Float[Array, " vocab_out"]

    def __init__(self, d_model: int, d_vocab_out: int, std: float, *, key: PRNGKeyArray):
        self.W_U = _normal(key, (d_model, d_vocab_out), std)
        self.b_U = jnp.zeros(d_vocab_out)

    def __call__(self, x: Float[Array, "seq d_model"]) -> Float[Array, "seq vocab_out"]:
        return _linear(x, self.W_U) + self.b_U
