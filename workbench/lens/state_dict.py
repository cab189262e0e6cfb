"""State dicts: a `Transformer`'s parameters as a TransformerLens state dict, and back.

Export writes the legacy HookedTransformer format (`embed.W_E`, `blocks.{l}.attn.W_Q`, ...), whose
names and shapes the workbench parameters already carry; import also accepts the 4.x bridge format
(`embed.weight`, `blocks.{l}.attn.q.weight`, ...) by inverting `convert_tl_checkpoint`. Both
directions are exact: weights are only renamed, reshaped or transposed.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.models import Transformer, TransformerConfig
from workbench.models.params import from_named, named_params

from .configs import _import_tl, check_exportable

_LEGACY_BUFFERS = (".mask", ".IGNORE")  # HookedTransformer attention buffers; no parameters


def to_state_dict(model: Transformer, *, as_torch: bool = False) -> dict[str, Any]:
    """`model`'s parameters as a legacy HookedTransformer-format state dict (float32).

    Keys and shapes are those of `HookedTransformer.state_dict()` without the `mask`/`IGNORE`
    buffers: `embed.W_E`, `pos_embed.W_pos` (zeros for a model without positions),
    `blocks.{l}.ln1.w|b`, `blocks.{l}.attn.W_Q [n_heads, d_model, d_head]`, ..., `unembed.b_U`.
    Values are numpy arrays, or torch tensors with `as_torch=True`.
    """
    c = model.config
    check_exportable(c)
    state = {name: np.asarray(leaf, dtype=np.float32) for name, leaf in named_params(model).items()}
    if c.positional_embedding_type == "none":
        state["pos_embed.W_pos"] = np.zeros((c.n_ctx, c.d_model), np.float32)
    if as_torch:
        torch = _import_tl()[0]
        state = {key: torch.from_numpy(value.copy()) for key, value in state.items()}
    return state


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _split_in(w, h, d):  # [(h d), m] -> [h, m, d]
    return w.reshape(h, d, -1).transpose(0, 2, 1)


def _split_out(w, h, d):  # [m, (h d)] -> [h, d, m]
    return w.T.reshape(h, d, -1)


_same, _transpose, _split_bias = (lambda v, h, d: v), (lambda w, h, d: w.T), (lambda b, h, d: b.reshape(h, d))

# Bridge-format suffix -> (legacy suffix, inverse of `convert_tl_checkpoint`'s transform), most
# specific first (`unembed.weight` also ends in `embed.weight`; `.weight` is the norms' fallback).
_FROM_BRIDGE = (
    ("unembed.weight", "unembed.W_U", _transpose), ("unembed.bias", "unembed.b_U", _same),
    ("pos_embed.weight", "pos_embed.W_pos", _same), ("embed.weight", "embed.W_E", _same),
    (".q.weight", ".W_Q", _split_in), (".k.weight", ".W_K", _split_in), (".v.weight", ".W_V", _split_in),
    (".q.bias", ".b_Q", _split_bias), (".k.bias", ".b_K", _split_bias), (".v.bias", ".b_V", _split_bias),
    (".o.weight", ".W_O", _split_out), (".o.bias", ".b_O", _same),
    (".in.weight", ".W_in", _transpose), (".in.bias", ".b_in", _same),
    (".out.weight", ".W_out", _transpose), (".out.bias", ".b_out", _same),
    (".weight", ".w", _same), (".bias", ".b", _same),
)  # fmt: skip


def _legacy_from_bridge(state: Mapping[str, Any], n_heads: int, d_head: int) -> dict[str, np.ndarray]:
    """Invert `convert_tl_checkpoint`: bridge-format keys (`blocks.0.attn.q.weight`) to legacy ones."""
    out = {}
    for key, value in state.items():
        old, new, transform = next(((o, n, t) for o, n, t in _FROM_BRIDGE if key.endswith(o)), (key, key, _same))
        out[key[: len(key) - len(old)] + new] = transform(_to_numpy(value), n_heads, d_head)
    return out  # keys it does not know pass through unchanged, and from_state_dict reports them


def from_state_dict(state: Mapping[str, Any], config: TransformerConfig) -> Transformer:
    """A `Transformer` with `config` and the weights of a TransformerLens state dict.

    `state` is in the legacy HookedTransformer format (`embed.W_E`, `blocks.0.attn.W_Q`, ...;
    `mask`/`IGNORE` buffers are ignored) or in the 4.x bridge format (`embed.weight`,
    `blocks.0.attn.q.weight`, ...); values are numpy arrays or torch tensors. Missing, extra or
    misshapen keys raise one `ValueError` that lists them.
    """
    if "embed.weight" in state:
        state = _legacy_from_bridge(state, config.n_heads, config.d_head)
    state = {k: _to_numpy(v) for k, v in state.items() if not k.endswith(_LEGACY_BUFFERS)}
    if config.positional_embedding_type == "none" and np.any(state.pop("pos_embed.W_pos", 0) != 0):
        raise ValueError(
            "the state dict has a nonzero pos_embed.W_pos but config.positional_embedding_type='none'; "
            "use positional_embedding_type='standard'"
        )
    return from_named(config, state, hint="Check normalization_type, attn_only, d_mlp, d_vocab/d_input, "
                      "d_vocab_out, n_heads/d_head.")
