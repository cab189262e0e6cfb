"""`Transformer`: a hooked decoder (or encoder) on one sequence, with TransformerLens names.

```python
model = Transformer(TransformerConfig(n_layers=2, d_model=64, n_heads=4, d_head=16, n_ctx=32, d_vocab=10), key=key)
logits = model(tokens)                                   # [seq, vocab_out]; jax.vmap(model)(batch)
logits, cache = run_with_cache(model, tokens, names=[sites.attn(0, "pattern")])
logits = run_with_hooks(model, tokens, hooks={sites.resid_pre(1): lambda x, name: 0 * x})
logits = run_with_hooks(model, tokens, hooks={Site(0, "z", head=1): lambda z, site: 0 * z})  # one head
```
"""

import difflib
from collections.abc import Iterable, Mapping

import equinox as eqx
import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from . import sites
from ._config import TransformerConfig
from ._hooks import NO_HOOKS, Cache, HookFn, Hooks, name_of
from ._layers import MLP, Attention, Embed, Norm, PosEmbed, Unembed
from .sites import Site


class Block(eqx.Module):
    ln1: Norm | None
    attn: Attention
    ln2: Norm | None
    mlp: MLP | None
    layer: int = eqx.field(static=True)

    def __init__(self, config: TransformerConfig, layer: int, *, key: PRNGKeyArray):
        k_attn, k_mlp = jax.random.split(key)
        norm = config.normalization_type
        self.ln1 = Norm(config.d_model, norm, config.eps) if norm else None
        self.attn = Attention(config, key=k_attn)
        has_mlp = not config.attn_only
        self.ln2 = Norm(config.d_model, norm, config.eps) if norm and has_mlp else None
        self.mlp = MLP(config, key=k_mlp) if has_mlp else None
        self.layer = layer

    def __call__(self, resid: Float[Array, "seq d_model"], hooks: Hooks) -> Float[Array, "seq d_model"]:
        l = self.layer
        resid_pre = hooks(sites.resid_pre(l), resid)
        x = self.ln1(resid_pre, hooks, l, "ln1") if self.ln1 is not None else resid_pre
        attn_out = hooks(sites.attn_out(l), self.attn(x, hooks, l))
        if self.mlp is None:
            return hooks(sites.resid_post(l), resid_pre + attn_out)
        resid_mid = hooks(sites.resid_mid(l), resid_pre + attn_out)
        x = self.ln2(resid_mid, hooks, l, "ln2") if self.ln2 is not None else resid_mid
        mlp_out = hooks(sites.mlp_out(l), self.mlp(x, hooks, l))
        return hooks(sites.resid_post(l), resid_mid + mlp_out)


class Transformer(eqx.Module):
    """A transformer acting on one sequence of tokens `[seq]` or vectors `[seq, d_input]`.

    Parameters carry TransformerLens names and shapes (`embed.W_E`, `pos_embed.W_pos`,
    `blocks[l].attn.W_Q`, ..., `unembed.W_U`). Batch with `jax.vmap(model)`.
    """

    embed: Embed
    pos_embed: PosEmbed | None
    blocks: tuple[Block, ...]
    ln_final: Norm | None
    unembed: Unembed
    config: TransformerConfig = eqx.field(static=True)

    def __init__(self, config: TransformerConfig, *, key: PRNGKeyArray):
        c = config
        k_embed, k_pos, k_blocks, k_unembed = jax.random.split(key, 4)
        n_in = c.d_vocab if c.tokens_in else c.d_input
        self.embed = Embed(n_in, c.d_model, c.tokens_in, c.init_range, key=k_embed)  # type: ignore[arg-type]
        self.pos_embed = (
            PosEmbed(c.n_ctx, c.d_model, c.init_range, key=k_pos) if c.positional_embedding_type == "standard" else None
        )
        keys = jax.random.split(k_blocks, c.n_layers)
        self.blocks = tuple(Block(c, l, key=k) for l, k in enumerate(keys))
        self.ln_final = Norm(c.d_model, c.normalization_type, c.eps) if c.normalization_type else None
        self.unembed = Unembed(c.d_model, c.vocab_out, c.init_range, key=k_unembed)
        self.config = c

    def __call__(self, x: Int[Array, " seq"] | Float[Array, "seq d_input"]) -> Float[Array, "seq vocab_out"]:
        return self.forward(x, NO_HOOKS)

    def batched(
        self, x: Int[Array, "batch seq"] | Float[Array, "batch seq d_input"]
    ) -> Float[Array, "batch seq vocab_out"]:
        """`jax.vmap(model)(x)` computed on the whole batch at once (no hooks): the same values to float32
        rounding, with every linear map one GEMM over batch x seq, which makes the backward pass about
        twice as fast on CPU. Use it in training losses."""
        self._check_input(x, batched=True)
        return self._forward(x, NO_HOOKS)

    def forward(self, x, hooks: Hooks) -> Float[Array, "seq vocab_out"]:
        """The forward pass on one example with every intermediate sent through `hooks`."""
        self._check_input(x)
        return self._forward(x, hooks)

    def _forward(self, x, hooks: Hooks):
        seq = x.shape[-1] if self.config.tokens_in else x.shape[-2]
        resid = hooks(sites.EMBED, self.embed(x))
        if self.pos_embed is not None:
            resid = resid + hooks(sites.POS_EMBED, self.pos_embed(seq))
        for block in self.blocks:
            resid = block(resid, hooks)
        if self.ln_final is not None:
            resid = self.ln_final(resid, hooks, None, "ln_final")
        return self.unembed(resid)

    def _check_input(self, x, batched: bool = False) -> None:
        c = self.config
        lead, what = ((1, "batch, ") if batched else (0, ""))
        if c.tokens_in:
            ok = x.ndim == 1 + lead and jax.numpy.issubdtype(x.dtype, jax.numpy.integer)
            expected = f"int tokens [{what}seq]"
        else:
            ok = x.ndim == 2 + lead and x.shape[-1] == c.d_input
            expected = f"vectors [{what}seq, {c.d_input}]"
        if not ok:
            how = "a batch; model(x) takes one example" if batched else "one example; use jax.vmap or model.batched for batches"
            raise ValueError(f"Transformer expects {expected} ({how}), got {x.dtype}{list(x.shape)}")
        seq = x.shape[lead]
        if seq > c.n_ctx:
            raise ValueError(f"sequence length {seq} exceeds n_ctx={c.n_ctx}")


def _check_keys(model: Transformer, keys: Iterable[Site | str]) -> frozenset[str]:
    """The hook names of `keys` (Sites or names), each checked against the model."""
    config = model.config
    valid = sites.hook_names(config)
    names = set()
    for key in keys:
        if not isinstance(key, Site | str):
            raise ValueError(f"hook keys are Site values or hook names, got {type(key).__name__} {key!r}")
        name = name_of(key)
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see workbench.models.sites.hook_names(config)"
            raise ValueError(f"no hook point {name!r} in this model{hint}")
        if isinstance(key, Site) and key.head is not None and key.head >= config.n_heads:
            raise ValueError(f"head {key.head} is out of range for {name} (n_heads={config.n_heads})")
        names.add(name)
    return frozenset(names)


def run_with_cache(
    model: Transformer, x, names: Iterable[Site | str] | None = None
) -> tuple[Float[Array, "seq vocab_out"], Cache]:
    """Run `model` on one example and return `(logits, cache)` with the activations at `names`.

    `names` are `Site` values or hook names; `names=None` caches every hook point. The cache holds
    whole activations by name; index it by a name, or by a `Site` to select its head / position.
    Pure: jit it with `eqx.filter_jit` (names are static).
    """
    record = _check_keys(model, sites.hook_names(model.config) if names is None else names)
    hooks = Hooks(record=record)
    out = model.forward(x, hooks)
    return out, hooks.cache


def run_with_hooks(model: Transformer, x, hooks: Mapping[Site | str, HookFn]) -> Float[Array, "seq vocab_out"]:
    """Run `model` on one example with `hooks[key](value, key) -> new value` applied at each key.

    A key is a hook name or a `Site`; a `Site` with a head or position gets and returns only that part.
    """
    _check_keys(model, hooks)
    return model.forward(x, Hooks(fns=hooks))
