"""Hook-point names, built by small helpers (TransformerLens names; no string parsing).

Per-example shapes (TransformerLens' shapes without the batch axis):

| name | shape |
|---|---|
| `hook_embed`, `hook_pos_embed` | `[seq, d_model]` |
| `blocks.{l}.hook_resid_pre|hook_resid_mid|hook_resid_post` | `[seq, d_model]` |
| `blocks.{l}.ln1.hook_scale` (`ln2`, `ln_final`) | `[seq, 1]` |
| `blocks.{l}.ln1.hook_normalized` | `[seq, d_model]` |
| `blocks.{l}.attn.hook_q|hook_k|hook_v|hook_z` | `[seq, head, d_head]` |
| `blocks.{l}.attn.hook_attn_scores|hook_pattern` | `[head, seq, kv]` |
| `blocks.{l}.attn.hook_result` | `[seq, head, d_model]` |
| `blocks.{l}.hook_attn_out|hook_mlp_out` | `[seq, d_model]` |
| `blocks.{l}.mlp.hook_pre|hook_post` | `[seq, d_mlp]` |
"""

from typing import Literal

from ._config import TransformerConfig

AttnPart = Literal["q", "k", "v", "z", "attn_scores", "pattern", "result"]
NormPart = Literal["scale", "normalized"]
MlpPart = Literal["pre", "post"]

EMBED = "hook_embed"
POS_EMBED = "hook_pos_embed"
ATTN_PARTS: tuple[AttnPart, ...] = ("q", "k", "v", "attn_scores", "pattern", "z", "result")


def block(layer: int) -> str:
    """The prefix `blocks.{layer}.`."""
    return f"blocks.{layer}."


def resid_pre(layer: int) -> str:
    return f"{block(layer)}hook_resid_pre"


def resid_mid(layer: int) -> str:
    return f"{block(layer)}hook_resid_mid"


def resid_post(layer: int) -> str:
    return f"{block(layer)}hook_resid_post"


def attn_out(layer: int) -> str:
    return f"{block(layer)}hook_attn_out"


def mlp_out(layer: int) -> str:
    return f"{block(layer)}hook_mlp_out"


def attn(layer: int, part: AttnPart) -> str:
    """`blocks.{layer}.attn.hook_{part}`, e.g. `attn(0, "pattern")`."""
    return f"{block(layer)}attn.hook_{part}"


def mlp(layer: int, part: MlpPart) -> str:
    return f"{block(layer)}mlp.hook_{part}"


def norm(layer: int | None, which: Literal["ln1", "ln2", "ln_final"], part: NormPart) -> str:
    """A normalisation hook; `layer=None` with `which="ln_final"`."""
    if which == "ln_final":
        return f"ln_final.hook_{part}"
    return f"{block(layer)}{which}.hook_{part}"  # type: ignore[arg-type]


def hook_shapes(config: TransformerConfig, seq: int) -> dict[str, tuple[int, ...]]:
    """Every hook point of a model with `config`, in execution order, with its shape on `seq` tokens."""
    c = config
    d_model, heads, d_head = c.d_model, c.n_heads, c.d_head
    shapes: dict[str, tuple[int, ...]] = {EMBED: (seq, d_model)}
    if c.positional_embedding_type == "standard":
        shapes[POS_EMBED] = (seq, d_model)
    norms = c.normalization_type is not None
    for layer in range(c.n_layers):
        shapes[resid_pre(layer)] = (seq, d_model)
        if norms:
            shapes[norm(layer, "ln1", "scale")] = (seq, 1)
            shapes[norm(layer, "ln1", "normalized")] = (seq, d_model)
        for part in ("q", "k", "v"):
            shapes[attn(layer, part)] = (seq, heads, d_head)
        shapes[attn(layer, "attn_scores")] = (heads, seq, seq)
        shapes[attn(layer, "pattern")] = (heads, seq, seq)
        shapes[attn(layer, "z")] = (seq, heads, d_head)
        shapes[attn(layer, "result")] = (seq, heads, d_model)
        shapes[attn_out(layer)] = (seq, d_model)
        if not c.attn_only:
            shapes[resid_mid(layer)] = (seq, d_model)
            if norms:
                shapes[norm(layer, "ln2", "scale")] = (seq, 1)
                shapes[norm(layer, "ln2", "normalized")] = (seq, d_model)
            shapes[mlp(layer, "pre")] = (seq, c.mlp_width)
            shapes[mlp(layer, "post")] = (seq, c.mlp_width)
            shapes[mlp_out(layer)] = (seq, d_model)
        shapes[resid_post(layer)] = (seq, d_model)
    if norms:
        shapes[norm(None, "ln_final", "scale")] = (seq, 1)
        shapes[norm(None, "ln_final", "normalized")] = (seq, d_model)
    return shapes


def hook_names(config: TransformerConfig) -> tuple[str, ...]:
    """Every hook point of a model with `config`, in execution order."""
    return tuple(hook_shapes(config, 1))
