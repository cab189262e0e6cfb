"""The decomposed forward pass of a `Transformer`: (beta, gamma) pairs through every layer.

`walk` runs one example with one set of sources. Without a clean cache it is the reference
propagation: beta starts at 0 and gamma at the embedding, and both parts go through every rule,
so `beta + gamma == activation` is a property the tests check. With the clean cache (`fast`) it
starts at the first source layer from the clean residual stream and derives each gamma as the
cached total minus beta: the pattern, the norm statistics and every `W gamma` come from the cache,
so each source costs one pass of beta from its layer on.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jaxtyping import Array

from workbench.models import Transformer, sites
from workbench.models._layers import _ACTIVATIONS, _heads_in, _linear

from . import _decomp as D
from ._decomp import Pair

# Components a source may sit on (its mask broadcasts against the hook's value).
SOURCE_COMPONENTS = ("resid_pre", "z", "attn_out", "resid_mid", "mlp_out", "resid_post")
OUTPUT = "logits"


def clean_names(model: Transformer) -> tuple[str, ...]:
    """The hook names the fast walk reads from the clean cache (the per-head `result` is not needed)."""
    skip = {sites.EMBED, sites.POS_EMBED}
    return tuple(n for n in sites.hook_names(model.config) if not n.endswith(("hook_result", "hook_attn_scores"))
                 and n not in skip)


class _Walk:
    """One decomposed pass: source injection, records, and the totals of the clean cache (fast)."""

    def __init__(self, masks, refs, clean, fixed: bool, cleanup: bool, record: frozenset[str], shapley: bool = False):
        self.masks, self.refs, self.clean = masks, refs or {}, clean
        self.fixed, self.do_cleanup, self.record, self.shapley = fixed, cleanup, record, shapley
        self.records: dict[str, Pair] = {}
        self.zero = clean is not None  # fast walk: beta is exactly 0 until the first source, so skip the rules

    def skip(self, name: str, names: tuple[str, ...]) -> bool:
        """Whether the rules up to hook `name` may be skipped: beta is 0 and no source sits on `names`."""
        return self.zero and not any(n in self.masks for n in names)

    def clean_pair(self, name: str) -> Pair:
        total = self.clean[name]
        return jnp.zeros_like(total), total

    def total(self, name: str, pair: Pair | None = None) -> Array | None:
        if self.clean is not None:
            return self.clean[name]
        return None if pair is None else pair[0] + pair[1]

    def at(self, name: str, pair: Pair) -> Pair:
        """The hook point `name`: a source there sets beta to (total - reference) inside its mask."""
        if name in self.masks:
            total = self.total(name, pair)
            ref = self.refs.get(name, 0.0)
            mask = self.masks[name]
            pair = jnp.where(mask, total - ref, pair[0]), jnp.where(mask, ref, pair[1])
            self.zero = False
        if name in self.record:
            self.records[name] = pair
        return pair

    def cleanup(self, pair: Pair) -> Pair:
        return D.cleanup(pair) if self.do_cleanup else pair

    def minus_bias(self, name: str, b: Array | None) -> Array | None:
        if self.clean is None:
            return None
        return self.clean[name] if b is None else self.clean[name] - b

    def norm(self, norm, pair: Pair, layer: int | None, which: str) -> Pair:
        scale_name = sites.norm(layer, which, "scale")
        scale = self.total(scale_name)
        if scale is None:
            total = pair[0] + pair[1]
            centred = total if norm.kind == "RMS" else total - total.mean(-1, keepdims=True)
            scale = jnp.sqrt((centred**2).mean(-1, keepdims=True) + norm.eps)
        pair = D.norm(pair, scale, norm.w, norm.b, norm.kind)
        if norm.kind != "RMS":  # RMS's hook_normalized is before the weight
            name = sites.norm(layer, which, "normalized")
            if name in self.record:
                self.records[name] = pair
        return pair

    def qkv(self, attn, pair: Pair, ln1, l: int) -> dict[str, Pair]:
        """The q, k, v pairs of layer `l` from the residual pair entering it."""
        x = self.norm(ln1, pair, l, "ln1") if ln1 is not None else pair
        qkv = {}
        for part, W, b in (("q", attn.W_Q, attn.b_Q), ("k", attn.W_K, attn.b_K), ("v", attn.W_V, attn.b_V)):
            name = sites.attn(l, part)
            qkv[part] = self.at(name, D.linear(x, lambda t, W=W: _heads_in(t, W), b, self.minus_bias(name, b)))
        return qkv

    def attention(self, attn, qkv: dict[str, Pair], l: int) -> Pair:
        return D.attention(qkv["q"], qkv["k"], qkv["v"], scale=attn.attn_scale, causal=attn.causal,
                           softmax=attn.softmax, fixed=self.fixed, total_pattern=self.total(sites.attn(l, "pattern")),
                           total_z=self.total(sites.attn(l, "z")))

    def block(self, block, pair: Pair) -> Pair:
        l, attn = block.layer, block.attn
        pair = self.at(sites.resid_pre(l), pair)
        if self.skip(sites.attn(l, "z"), tuple(sites.attn(l, p) for p in "qkv")):
            z = self.at(sites.attn(l, "z"), self.clean_pair(sites.attn(l, "z")))
        else:
            z = self.at(sites.attn(l, "z"), self.attention(attn, self.qkv(attn, pair, block.ln1, l), l))
        return self.after_z(block, pair, z)

    def after_z(self, block, resid: Pair, z: Pair | None, out_beta: Array | None = None) -> Pair:
        """The rest of a block from its head outputs: W_O, the residual add, the MLP. `out_beta`: beta of
        `W_O z` (bias-free) given instead of `z` (the fast walk, gamma from the cache)."""
        l, attn = block.layer, block.attn
        h, d, m = attn.W_O.shape
        out_name = sites.attn_out(l)
        if out_beta is None:
            out = D.linear(z, lambda t: _linear(t.reshape(*t.shape[:-2], h * d), attn.W_O.reshape(h * d, m)),
                           attn.b_O, self.minus_bias(out_name, attn.b_O))
        else:
            out = D.bias_split(out_beta, self.minus_bias(out_name, attn.b_O) - out_beta, attn.b_O)
        out = self.at(out_name, out)
        if block.mlp is None:
            return self.at(sites.resid_post(l), self.cleanup((resid[0] + out[0], resid[1] + out[1])))
        resid = self.at(sites.resid_mid(l), self.cleanup((resid[0] + out[0], resid[1] + out[1])))
        x = self.norm(block.ln2, resid, l, "ln2") if block.ln2 is not None else resid
        if self.skip(sites.mlp_out(l), (sites.mlp(l, "pre"), sites.mlp(l, "post"))):
            out = self.at(sites.mlp_out(l), self.clean_pair(sites.mlp_out(l)))
            return self.at(sites.resid_post(l), self.cleanup((resid[0] + out[0], resid[1] + out[1])))
        mlp, pre_name, post_name = block.mlp, sites.mlp(l, "pre"), sites.mlp(l, "post")
        pre = self.at(pre_name, self.cleanup(D.linear(x, lambda t: _linear(t, mlp.W_in), mlp.b_in,
                                                        self.minus_bias(pre_name, mlp.b_in))))
        post = self.at(post_name, D.activation(pre, _ACTIVATIONS[mlp.act_fn], self.total(post_name), self.shapley))
        out_name = sites.mlp_out(l)
        out = self.at(out_name, self.cleanup(D.linear(post, lambda t: _linear(t, mlp.W_out), mlp.b_out,
                                                        self.minus_bias(out_name, mlp.b_out))))
        return self.at(sites.resid_post(l), self.cleanup((resid[0] + out[0], resid[1] + out[1])))

    def output(self, model: Transformer, pair: Pair) -> Pair:
        """The final norm and the unembedding."""
        if model.ln_final is not None:
            pair = self.norm(model.ln_final, pair, None, "ln_final")
        out = D.linear(pair, lambda t: _linear(t, model.unembed.W_U), model.unembed.b_U,
                       self.minus_bias(OUTPUT, model.unembed.b_U))
        if OUTPUT in self.record:
            self.records[OUTPUT] = out
        return out


def walk(
    model: Transformer,
    x: Array,
    masks: Mapping[str, Array],
    refs: Mapping[str, Array] | None = None,
    *,
    clean: Mapping[str, Array] | None = None,
    start: int = 0,
    fixed: bool = False,
    cleanup: bool = True,
    record: frozenset[str] = frozenset(),
    shapley: bool = False,
) -> tuple[Pair, dict[str, Pair]]:
    """The decomposed forward of one example `x` with the sources `masks` (hook name -> mask).

    **Arguments:**

    - `masks`: where beta is set, one boolean mask per hook name (broadcasting against its value).
    - `refs`: per hook name, the reference (e.g. a mean activation) that stays in gamma at a source;
      absent: 0, the whole activation is beta.
    - `clean`: the clean cache of `x` (`clean_names(model)` and the output under `"logits"`) for the
      fast walk from layer `start` (no source may sit before it); None: the reference walk from the embedding.
    - `fixed`: hold the attention pattern at the total's (the BERT rule) instead of decomposing it.
    - `cleanup`: the sign clean-up after the MLP linear maps and the residual adds (the authors' default).
    - `record`: hook names whose pairs to return.
    - `shapley`: the two-order (Shapley) activation rule instead of the authors' `act(beta + gamma) - act(gamma)`.

    **Returns:** `((beta, gamma) of the output [seq, vocab_out], {name: (beta, gamma)})`.
    """
    w = _Walk(masks, refs, clean, fixed, cleanup, record, shapley)
    if clean is None:
        embed = model.embed(x)
        if model.pos_embed is not None:
            embed = embed + model.pos_embed(embed.shape[0])
        pair, start = (jnp.zeros_like(embed), embed), 0
    else:
        resid = clean[sites.resid_pre(start)]
        pair = jnp.zeros_like(resid), resid
    for block in model.blocks[start:]:
        pair = w.block(block, pair)
    return w.output(model, pair), w.records


def walk_at_position(
    model: Transformer, masks: Mapping[str, Array], refs: Mapping[str, Array] | None, clean: Mapping[str, Array],
    p: Array, start: int, *, fixed: bool = False, cleanup: bool = True, shapley: bool = False,
) -> Pair:
    """The fast walk's output pair for sources of layer `start` (not before its head outputs) that all sit at
    position `p`, exactly as `walk` gives it: up to the next layer's q, k, v every rule acts on each
    position alone and beta is 0 off `p`, so that stretch runs on position `p` only (`masks`, `refs` are
    given at `p`, `[1, ...]`); the attention of that layer acts on a beta with one nonzero position
    (`_one_position_attention`), and the rest runs on every position (or, with no attention left, the
    output is computed at `p` alone)."""
    row = {n: jax.lax.dynamic_slice_in_dim(v, p, 1, 0) for n, v in clean.items() if ".attn.hook_pattern" not in n}
    w_row = _Walk(masks, refs, row, fixed, cleanup, frozenset(), shapley)
    resid = row[sites.resid_pre(start)]
    pair = w_row.block(model.blocks[start], (jnp.zeros_like(resid), resid))
    w = _Walk({}, None, clean, fixed, cleanup, frozenset(), shapley)
    w.zero = False

    def scatter(beta_row, name):
        beta = jax.lax.dynamic_update_slice_in_dim(jnp.zeros_like(clean[name]), beta_row, p, 0)
        return beta, clean[name] - beta

    if start + 1 == len(model.blocks):  # no attention after the sources: the output at `p` alone
        return scatter(w_row.output(model, pair)[0], OUTPUT)
    block = model.blocks[start + 1]
    l, attn = block.layer, block.attn
    pair = w_row.at(sites.resid_pre(l), pair)
    qkv = w_row.qkv(attn, pair, block.ln1, l)
    out_beta = _one_position_attention(attn, {k: b[0] for k, (b, _) in qkv.items()}, p, clean[sites.attn(l, "pattern")],
                                       fixed)
    pair = w.after_z(block, scatter(pair[0], sites.resid_pre(l)), None, out_beta)
    for block in model.blocks[start + 2:]:
        pair = w.block(block, pair)
    return w.output(model, pair)



def _one_position_attention(attn, beta: dict[str, Array], p: Array, total_pattern: Array, fixed: bool) -> Array:
    """`W_O z_beta` (bias-free, `[seq, d_model]`) of the GPT (or `fixed`) rule when q, k, v's beta are 0 off
    position `p` (`beta[part]` is their row there, `[head, d_head]`): the beta scores are 0 but at (p, p),
    and `z_beta[q, h] = A_beta[h, q, p] v_beta[p, h]`, so `W_O z_beta` is `A_beta[:, :, p]` times each
    head's `v_beta[p] W_O`, the same sums as the dense rule in another order."""
    if fixed:
        column = total_pattern[:, :, p]
    else:
        seq = total_pattern.shape[-1]
        s_pp = jnp.einsum("hd,hd->h", beta["q"], beta["k"]) / attn.attn_scale
        at_p = (jnp.arange(seq) == p)[:, None] & (jnp.arange(seq) == p)[None, :]
        scores = jnp.where(at_p[None], s_pp[:, None, None], 0.0)
        column = D.pattern(scores, attn.causal, attn.softmax)[:, :, p]  # [head, seq]
    per_head = jnp.einsum("hd,hdm->hm", beta["v"], attn.W_O)
    return jnp.einsum("hq,hm->qm", column, per_head)
