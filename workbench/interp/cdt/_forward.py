"""The decomposed forward pass of a `Transformer`: (beta, gamma) pairs through every layer.

`walk` runs one example with one set of sources. Without a clean cache it is the reference
propagation: beta starts at 0 and gamma at the embedding, and both parts go through every rule,
so `beta + gamma == activation` is a property the tests check. With the clean cache (`fast`) it
starts at the first source layer from the clean residual stream and derives each gamma as the
cached total minus beta: the pattern, the norm statistics and every `W gamma` come from the cache,
so each source costs one pass of beta from its layer on.
"""

from collections.abc import Mapping

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

    def attention(self, attn, pair: Pair, ln1, l: int) -> Pair:
        x = self.norm(ln1, pair, l, "ln1") if ln1 is not None else pair
        qkv = {}
        for part, W, b in (("q", attn.W_Q, attn.b_Q), ("k", attn.W_K, attn.b_K), ("v", attn.W_V, attn.b_V)):
            name = sites.attn(l, part)
            qkv[part] = self.at(name, D.linear(x, lambda t, W=W: _heads_in(t, W), b, self.minus_bias(name, b)))
        return D.attention(qkv["q"], qkv["k"], qkv["v"], scale=attn.attn_scale, causal=attn.causal,
                           softmax=attn.softmax, fixed=self.fixed, total_pattern=self.total(sites.attn(l, "pattern")),
                           total_z=self.total(sites.attn(l, "z")))

    def block(self, block, pair: Pair) -> Pair:
        l, attn = block.layer, block.attn
        pair = self.at(sites.resid_pre(l), pair)
        resid = pair
        if self.skip(sites.attn(l, "z"), tuple(sites.attn(l, p) for p in "qkv")):
            z = self.at(sites.attn(l, "z"), self.clean_pair(sites.attn(l, "z")))
        else:
            z = self.at(sites.attn(l, "z"), self.attention(attn, pair, block.ln1, l))
        h, d, m = attn.W_O.shape
        out_name = sites.attn_out(l)
        out = D.linear(z, lambda t: _linear(t.reshape(*t.shape[:-2], h * d), attn.W_O.reshape(h * d, m)), attn.b_O,
                       self.minus_bias(out_name, attn.b_O))
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
    if model.ln_final is not None:
        pair = w.norm(model.ln_final, pair, None, "ln_final")
    out = D.linear(pair, lambda t: _linear(t, model.unembed.W_U), model.unembed.b_U, w.minus_bias(OUTPUT, model.unembed.b_U))
    if OUTPUT in record:
        w.records[OUTPUT] = out
    return out, w.records
