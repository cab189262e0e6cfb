"""The edge-masked forward pass: every edge of `Circuit.complete(config)` weighted by a float mask.

Each receiver input (a head's q, k or v input, an MLP's input, the final residual the logits read)
is rebuilt from its senders' outputs: `sum_s mask[e] * out[s] + (1 - mask[e]) * ablated[s]`, plus
the attention output biases of the layers before it (constants, not a node: every reader keeps
them). `out[s]` is the sender's output in this (masked) pass and `ablated[s]` its ablation value
(`ablation.ablated`). The norm of a block is applied to each rebuilt input separately. The mask
is an array argument, so one compile serves every circuit; `vmap` over masks scores many circuits
at once and `jax.grad` with respect to the mask is edge attribution patching.

Senders are indexed `0` (the embeddings), then per layer its heads and its MLP (`EdgeLayout`).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from workbench.models import Circuit, Edge, Node, Transformer, TransformerConfig
from workbench.models._hooks import NO_HOOKS


@dataclasses.dataclass(frozen=True, eq=False)
class EdgeLayout:
    """Where each edge of the complete graph sits: per receiver group, the edge index of each sender.

    `q[l]`, `k[l]`, `v[l]`: `[n_heads, n_senders_before(l)]`; `mlp[l]`: `[n_senders_before_mlp(l)]`;
    `logits`: `[n_senders]`. `senders`: the sender nodes in index order.
    """

    config: TransformerConfig
    complete: Circuit
    senders: tuple[Node, ...]
    q: tuple[np.ndarray, ...]
    k: tuple[np.ndarray, ...]
    v: tuple[np.ndarray, ...]
    mlp: tuple[np.ndarray, ...]
    logits: np.ndarray

    @property
    def edges(self) -> tuple[Edge, ...]:
        return self.complete.edges

    @property
    def n_edges(self) -> int:
        return len(self.complete.edges)

    def index(self, edge: Edge) -> int:
        return self._index[edge]

    @functools.cached_property
    def _index(self) -> dict[Edge, int]:
        return {e: i for i, e in enumerate(self.complete.edges)}

    def mask(self, circuit: Circuit) -> Float[Array, " edge"]:
        """The 0/1 mask of `circuit`'s edges (a subgraph of the complete graph)."""
        unknown = [e.name for e in circuit.edges if e not in self._index]
        if unknown:
            raise ValueError(f"edges not in the complete graph of this model: {unknown[:3]}; "
                             "circuits here have no positions (per-position circuits are not supported)")
        m = np.zeros(self.n_edges, np.float32)
        m[[self._index[e] for e in circuit.edges]] = 1.0
        return jnp.asarray(m)

    def circuit(self, mask) -> Circuit:
        """The circuit of the edges whose mask is > 1/2."""
        keep = np.asarray(mask) > 0.5
        return self.complete.restrict(e for e, k in zip(self.complete.edges, keep) if k)


@functools.cache
def edge_layout(config: TransformerConfig) -> EdgeLayout:
    """The `EdgeLayout` of a model config (cached: configs are frozen and hashable)."""
    complete = Circuit.complete(config)
    index = {e: i for i, e in enumerate(complete.edges)}
    senders = [Node.input()]
    q, k, v, mlp = [], [], [], []
    for l in range(config.n_layers):
        heads = [Node.attn(l, h) for h in range(config.n_heads)]
        for kind, out in (("q", q), ("k", k), ("v", v)):
            out.append(np.array([[index[Edge(s, h, kind)] for s in senders] for h in heads], np.int32))
        senders += heads
        if not config.attn_only:
            mlp.append(np.array([index[Edge(s, Node.mlp(l), "mlp")] for s in senders], np.int32))
            senders.append(Node.mlp(l))
    logits = np.array([index[Edge(s, Node.logits(), "resid")] for s in senders], np.int32)
    return EdgeLayout(config, complete, tuple(senders), tuple(q), tuple(k), tuple(v), tuple(mlp), logits)


def _read(weights, outs, ablated, bias):
    """`bias + sum_s w[s] out[s] + (1 - w[s]) ablated[s]` for each row of `weights [..., n]`."""
    n = weights.shape[-1]
    return bias + jnp.einsum("...s,spm->...pm", weights, outs[:n]) + jnp.einsum("...s,spm->...pm", 1 - weights,
                                                                                  ablated[:n])


def _attention(attn, xq, xk, xv) -> Float[Array, "head seq d_model"]:
    """Each head's output `z_h W_O[h]` (no bias) from its own q, k, v inputs `[head, seq, d_model]`."""
    q = jnp.einsum("hpm,hmd->hpd", xq, attn.W_Q) + attn.b_Q[:, None]
    k = jnp.einsum("hpm,hmd->hpd", xk, attn.W_K) + attn.b_K[:, None]
    v = jnp.einsum("hpm,hmd->hpd", xv, attn.W_V) + attn.b_V[:, None]
    scores = jnp.einsum("hqd,hkd->hqk", q, k) / attn.attn_scale
    if attn.causal:
        seq = scores.shape[-1]
        causal = jnp.tril(jnp.ones((seq, seq), bool))
        scores = jnp.where(causal, scores, -jnp.inf if attn.softmax else 0.0)
    pattern = jax.nn.softmax(scores, axis=-1) if attn.softmax else scores
    z = jnp.einsum("hqk,hkd->hqd", pattern, v)
    return jnp.einsum("hqd,hdm->hqm", z, attn.W_O)


def masked_forward(
    model: Transformer, x, mask: Float[Array, " edge"], ablated: Float[Array, "sender seq d_model"]
) -> tuple[Float[Array, "seq vocab_out"], Float[Array, "sender seq d_model"]]:
    """One example through the edge-masked model: `(logits, every sender's output in this pass)`.

    `mask` is over `edge_layout(model.config).edges` (1 keeps an edge, 0 ablates it, values between
    interpolate); `ablated` holds each sender's ablation value. With `mask` all ones this is
    `model(x)`.
    """
    lay = edge_layout(model.config)
    resid = model.embed(x)
    seq = resid.shape[0]
    if model.pos_embed is not None:
        resid = resid + model.pos_embed(seq)
    outs = jnp.zeros((len(lay.senders), seq, resid.shape[-1]), resid.dtype).at[0].set(resid)
    bias = jnp.zeros_like(resid)
    n = 1
    for l, block in enumerate(model.blocks):
        xq, xk, xv = (_read(mask[idx[l]], outs, ablated, bias) for idx in (lay.q, lay.k, lay.v))
        if block.ln1 is not None:
            xq, xk, xv = (block.ln1(t, NO_HOOKS, l, "ln1") for t in (xq, xk, xv))
        heads = _attention(block.attn, xq, xk, xv)
        outs = outs.at[n:n + heads.shape[0]].set(heads)
        n += heads.shape[0]
        bias = bias + block.attn.b_O
        if block.mlp is not None:
            xm = _read(mask[lay.mlp[l]], outs, ablated, bias)
            if block.ln2 is not None:
                xm = block.ln2(xm, NO_HOOKS, l, "ln2")
            outs = outs.at[n].set(block.mlp(xm, NO_HOOKS, l))
            n += 1
    final = _read(mask[lay.logits], outs, ablated, bias)
    if model.ln_final is not None:
        final = model.ln_final(final, NO_HOOKS, None, "ln_final")
    return model.unembed(final), outs


def sender_outputs(model: Transformer, x) -> Float[Array, "sender seq d_model"]:
    """Every sender's output on `x` in the unmasked model (the resample / mean ablation values)."""
    lay = edge_layout(model.config)
    seq = x.shape[0]
    zeros = jnp.zeros((len(lay.senders), seq, model.config.d_model))
    return masked_forward(model, x, jnp.ones(lay.n_edges), zeros)[1]
