"""Bridges: build a TransformerLens 4.x `TransformerBridge` from a `Transformer`, and back.

`to_transformer_lens` boots a native bridge and loads the converted state dict; `from_transformer_lens`
reads a bridge or a state dict back into a `Transformer`; `tl_input` and `run_tl_with_cache` feed the
bridge a workbench input (one example) and return its outputs as numpy.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.models import Transformer, TransformerConfig

from .configs import _check_matches, _import_tl, bridge_config, config_from_bridge
from .state_dict import _to_numpy, from_state_dict, to_state_dict


def to_transformer_lens(model: Transformer):
    """A TransformerLens 4.x `TransformerBridge` (float32, CPU) computing the same function as `model`.

    Built with `TransformerBridge.boot_native`, loaded with `convert_tl_checkpoint(to_state_dict(model))`
    and `load_state_dict(strict=True)`. For vector-input models, feed `tl_input(model, x)`.
    """
    torch, TransformerBridge, _, convert_tl_checkpoint = _import_tl()
    cfg = bridge_config(model.config)
    bridge = TransformerBridge.boot_native(cfg)
    converted = convert_tl_checkpoint(to_state_dict(model, as_torch=True), bridge.cfg)
    bridge.load_state_dict(converted, strict=True)
    bridge.eval()
    return bridge


def from_transformer_lens(source: Any, config: TransformerConfig | None = None) -> Transformer:
    """A workbench `Transformer` from a `TransformerBridge` or a TransformerLens state dict.

    For a bridge, `config=None` reads a token-input config from `bridge.cfg`; a given `config`
    must agree with it (one `ValueError` lists every disagreeing field). A state dict (legacy
    HookedTransformer format or bridge format) needs `config`.
    """
    if isinstance(source, Mapping):
        if config is None:
            raise ValueError("from_transformer_lens(state_dict, config): a state dict needs the TransformerConfig")
        return from_state_dict(source, config)
    if not (hasattr(source, "cfg") and hasattr(source, "state_dict")):
        raise TypeError(f"expected a TransformerBridge or a state dict, got {type(source).__name__}")
    if config is None:
        config = config_from_bridge(source.cfg)
    else:
        _check_matches(config, source.cfg)
    return from_state_dict(source.state_dict(), config)


def tl_input(model: Transformer, x: Any):
    """What to feed the bridge for the workbench input `x` (one example, no batch axis).

    Tokens `[seq]` -> int64 tensor `[1, seq]`. Vectors `[seq, d_input]` -> the read-in
    `x @ W_E` as a float32 tensor `[1, seq, d_model]`, which the bridge takes as `inputs_embeds`.
    """
    torch = _import_tl()[0]
    model._check_input(x)
    if model.config.tokens_in:
        return torch.tensor(np.asarray(x), dtype=torch.int64)[None]
    return torch.tensor(np.asarray(model.embed(x)), dtype=torch.float32)[None]


def run_tl_with_cache(bridge: Any, model: Transformer, x: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`bridge.run_with_cache` on `x` as numpy, with the batch axis removed: `(logits, cache)`."""
    torch = _import_tl()[0]
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tl_input(model, x))
    return _to_numpy(logits)[0], {name: _to_numpy(value)[0] for name, value in cache.items()}
