"""Compiler stage 6: the placed components as the weights of a plain `workbench.models.Transformer`.

The model has no normalisation, ReLU MLPs, softmax attention in both directions, learned
(here: set) positional embeddings, and no biases. Token 0 is BOS; token `i` in `1..len(vocab)` is
`vocab[i - 1]`; the last token, `len(vocab) + 1`, is padding. Position `p >= 1` carries
`indices = p - 1`. The attention scale `1/sqrt(d_head)` is folded into
`W_Q`. The unembedding reads the output SOp: one logit per output value (categorical) or the value
itself (numerical, `d_vocab_out = 1`).
"""

import math
from collections.abc import Sequence

import numpy as np

from ..models import Transformer, TransformerConfig
from ..models.params import from_named, param_shapes
from . import language as L
from .components import BOS, ONE, PAD, Dir, code, space
from .graph import ProgramGraph
from .language import Value
from .layout import Layout
from .values import ValueSets


def config_for(layout: Layout, n_vocab: int, max_seq_len: int, d_vocab_out: int) -> TransformerConfig:
    return TransformerConfig(
        n_layers=layout.n_layers,
        d_model=len(layout.dirs),
        n_heads=layout.n_heads,
        d_head=layout.d_head,
        n_ctx=max_seq_len + 1,
        d_vocab=n_vocab + 2,
        d_vocab_out=d_vocab_out,
        d_mlp=max(layout.d_mlp, 1),
        attn_only=layout.d_mlp == 0,
        act_fn="relu",
        normalization_type=None,
        positional_embedding_type="standard",
        attention_dir="bidirectional",
    )


def _row(index: dict[Dir, int], dirs: tuple[Dir, ...], value: Value) -> np.ndarray:
    """`value`'s residual code (`components.code`) as a `[d_model]` row."""
    v = np.zeros(len(index))
    for d, w in code(dirs, value).items():
        v[index[d]] = w
    return v


def assemble(
    graph: ProgramGraph, values: ValueSets, layout: Layout, vocab: Sequence[Value], max_seq_len: int
) -> Transformer:
    """Write every component into the weight matrices of a fresh `Transformer`."""
    index = {d: i for i, d in enumerate(layout.dirs)}
    out_sop = graph.program
    out_dirs = space(graph.label(out_sop), out_sop, values[out_sop.uid])
    d_vocab_out = max(len(out_dirs), 1)
    config = config_for(layout, len(vocab), max_seq_len, d_vocab_out)
    d_model, d_head = config.d_model, config.d_head

    W_E = np.zeros((config.d_vocab, d_model))
    W_E[0, index[BOS]] = 1.0
    W_E[len(vocab) + 1, index[PAD]] = 1.0
    W_pos = np.zeros((config.n_ctx, d_model))
    for sop in graph.sops:
        dirs = space(graph.label(sop), sop, values[sop.uid])
        if isinstance(sop, L.TokensType):
            for i, tok in enumerate(vocab):
                W_E[i + 1] += _row(index, dirs, tok)
        elif isinstance(sop, L.Full):
            W_E[1 : len(vocab) + 1] += _row(index, dirs, sop.fill)
        elif isinstance(sop, L.IndicesType):
            for p in range(max_seq_len):
                W_pos[p + 1] += _row(index, dirs, p)
    W_E[1 : len(vocab) + 1, index[ONE]] = 1.0

    shape = (config.n_layers, config.n_heads, d_model, d_head)
    W_Q, W_K, W_V = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    W_O = np.zeros((config.n_layers, config.n_heads, d_head, d_model))
    for placed in layout.heads:
        h, l = placed.part, placed.layer
        q_idx = [index[d] for d in h.q_dirs]
        k_idx = [index[d] for d in h.k_dirs]
        scale = math.sqrt(d_head)
        if len(k_idx) <= len(q_idx):  # W_K selects the key dims; W_Q carries the scores
            W_Q[l, placed.head][np.ix_(q_idx, range(len(k_idx)))] = scale * h.w_qk
            W_K[l, placed.head][k_idx, range(len(k_idx))] = 1.0
        else:
            W_Q[l, placed.head][q_idx, range(len(q_idx))] = scale
            W_K[l, placed.head][np.ix_(k_idx, range(len(q_idx)))] = h.w_qk.T
        v_idx = [index[d] for d in h.v_dirs]
        o_idx = [index[d] for d in h.o_dirs]
        W_V[l, placed.head][v_idx, range(len(v_idx))] = 1.0
        W_O[l, placed.head][np.ix_(range(len(v_idx)), o_idx)] = h.w_ov

    W_in = np.zeros((config.n_layers, d_model, config.mlp_width))
    W_out = np.zeros((config.n_layers, config.mlp_width, d_model))
    for placed in layout.mlps:
        m, (start, stop) = placed.part, placed.neurons
        W_in[placed.layer][np.ix_([index[d] for d in m.in_dirs], range(start, stop))] = m.w_in
        W_out[placed.layer][np.ix_(range(start, stop), [index[d] for d in m.out_dirs])] = m.w_out

    W_U = np.zeros((d_model, d_vocab_out))
    for j, d in enumerate(out_dirs):
        W_U[index[d], j] = 1.0

    weights = {"embed.W_E": W_E, "pos_embed.W_pos": W_pos, "unembed.W_U": W_U}
    for l in range(config.n_layers):
        for name, w in (("W_Q", W_Q), ("W_K", W_K), ("W_V", W_V), ("W_O", W_O)):
            weights[f"blocks.{l}.attn.{name}"] = w[l]
        if not config.attn_only:
            weights[f"blocks.{l}.mlp.W_in"] = W_in[l]
            weights[f"blocks.{l}.mlp.W_out"] = W_out[l]
    return _fill(config, weights)


def _fill(config: TransformerConfig, weights: dict[str, np.ndarray]) -> Transformer:
    """A `Transformer` with the named weights and every other parameter (the biases) zero.

    Built from the abstract shapes, so no random initialisation runs."""
    shapes = param_shapes(config)
    unset = [name for name in shapes if name not in weights and not name.split(".")[-1].startswith("b_")]
    if unset:
        raise AssertionError(f"the compiler set no value for {unset}")
    biases = {name: np.zeros(s.shape, s.dtype) for name, s in shapes.items() if name not in weights}
    try:
        return from_named(config, weights | biases)
    except ValueError as e:
        raise AssertionError(f"the compiled weights do not fit the model: {e}") from e
