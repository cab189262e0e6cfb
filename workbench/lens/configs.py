"""Configs: which workbench `TransformerConfig`s TransformerLens 4.x can express, and back.

Maps a `TransformerConfig` to the `TransformerBridgeConfig` that `to_transformer_lens` boots, reads
a token-input config from a bridge's `cfg`, and raises a `ValueError` naming the field for anything
either side cannot express. Also holds the lazy import of torch and TransformerLens, so that
importing `workbench.lens` never imports torch.
"""

from typing import Any

from workbench.models import ACT_FNS, NORMALIZATION_TYPES, TransformerConfig

_INSTALL_HINT = "install the extra: pip install 'workbench[lens]' (transformer-lens>=4.3 and torch)"


def _import_tl():
    """torch, TransformerBridge, TransformerBridgeConfig and convert_tl_checkpoint (lazy)."""
    try:
        import torch
        from transformer_lens import TransformerBridge, TransformerBridgeConfig
        from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint
    except ImportError as e:
        raise ImportError(f"workbench.lens needs TransformerLens 4.x: {_INSTALL_HINT} ({e})") from e
    return torch, TransformerBridge, TransformerBridgeConfig, convert_tl_checkpoint


def check_exportable(config: TransformerConfig) -> None:
    """Raise a `ValueError` naming the field if TransformerLens 4.x cannot express `config`."""
    if config.attention_type != "softmax":
        raise ValueError(
            f"TransformerConfig.attention_type={config.attention_type!r} cannot be exported: TransformerLens "
            "has only softmax attention. Keep linear-attention models in the workbench."
        )
    if not config.use_attn_scale and config.d_head > 1:
        raise ValueError(
            "TransformerConfig.use_attn_scale=False cannot be exported with d_head > 1: TransformerLens 4.3's "
            "native attention always divides the scores by sqrt(d_head) (and refuses attn_scale=1). "
            "Use use_attn_scale=True, or d_head=1."
        )


def _shared_fields(c: TransformerConfig) -> dict[str, Any]:
    """The fields a workbench config and its bridge config share, with the bridge's values."""
    return dict(
        n_layers=c.n_layers, d_model=c.d_model, n_heads=c.n_heads, d_head=c.d_head, d_mlp=c.mlp_width,
        n_ctx=c.n_ctx, d_vocab=c.d_vocab if c.tokens_in else c.d_input, d_vocab_out=c.vocab_out, act_fn=c.act_fn,
        normalization_type=c.normalization_type, attention_dir=c.attention_dir, attn_only=c.attn_only, eps=c.eps,
    )  # fmt: skip


def bridge_config(config: TransformerConfig):
    """The `TransformerBridgeConfig` of the bridge that `to_transformer_lens` builds for `config`."""
    check_exportable(config)
    TransformerBridgeConfig = _import_tl()[2]
    return TransformerBridgeConfig(
        **_shared_fields(config), positional_embedding_type="standard", default_prepend_bos=False, seed=0
    )


# Features of TL 4.3's native model that the workbench lacks: (value meaning "off", what it is).
_UNSUPPORTED = {
    "positional_embedding_type": ("standard", "rotary positions"),
    "gated_mlp": (False, "gated MLPs"),
    "final_rms": (False, "final RMSNorm"),
    "n_key_value_heads": (None, "grouped-query attention"),
    "attn_scores_soft_cap": (-1.0, "soft-capped scores"),
    "output_logits_soft_cap": (-1.0, "soft-capped logits"),
}


def _bridge_fields(cfg: Any) -> dict[str, Any]:
    """`_shared_fields` read from a bridge's `cfg` (`d_vocab_out <= 0` means `d_vocab`)."""
    names = ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_ctx", "d_vocab", "d_vocab_out", "act_fn",
             "normalization_type", "attention_dir", "attn_only", "eps")  # fmt: skip
    out = {name: getattr(cfg, name) for name in names}
    if out["d_vocab_out"] is None or out["d_vocab_out"] <= 0:
        out["d_vocab_out"] = cfg.d_vocab
    return out


def _check_bridge_cfg(cfg: Any) -> None:
    """Raise a `ValueError` naming the first feature of a bridge's `cfg` the workbench cannot express."""
    for name, (off, what) in _UNSUPPORTED.items():
        value = getattr(cfg, name, off)
        harmless = (
            (name == "n_key_value_heads" and value == cfg.n_heads)
            or (name.endswith("cap") and value <= 0)
            or (name == "positional_embedding_type" and str(value or "standard").lower() == "standard")
        )
        if value != off and not harmless:
            raise ValueError(f"bridge.cfg.{name}={value!r} cannot be imported: the workbench has no {what}")
    if cfg.act_fn not in ACT_FNS:
        raise ValueError(f"bridge.cfg.act_fn={cfg.act_fn!r} cannot be imported: the workbench has relu, gelu, gelu_new")
    if cfg.normalization_type not in NORMALIZATION_TYPES:
        raise ValueError(
            f"bridge.cfg.normalization_type={cfg.normalization_type!r} cannot be imported: the workbench has "
            "LN, LNPre, RMS or None"
        )
    if cfg.use_attn_scale and cfg.attn_scale > 0 and cfg.attn_scale != cfg.d_head**0.5:
        raise ValueError(
            f"bridge.cfg.attn_scale={cfg.attn_scale} cannot be imported: the workbench divides scores by sqrt(d_head)"
        )


def config_from_bridge(cfg: Any) -> TransformerConfig:
    """The token-input `TransformerConfig` of a bridge's `cfg` (a `ValueError` names what cannot be expressed)."""
    _check_bridge_cfg(cfg)
    fields = _bridge_fields(cfg)
    if fields["d_vocab_out"] == fields["d_vocab"]:
        fields["d_vocab_out"] = None
    return TransformerConfig(**fields)


def _check_matches(config: TransformerConfig, cfg: Any) -> None:
    """One `ValueError` listing every field where a bridge's `cfg` disagrees with `config`."""
    _check_bridge_cfg(cfg)
    want, have = _shared_fields(config), _bridge_fields(cfg)
    diffs = [
        f"{name}: bridge {have[name]!r}, config {want[name]!r}"
        for name in want
        if have[name] != want[name] and not (name == "d_mlp" and config.attn_only)
    ]
    if diffs:
        raise ValueError(
            "the bridge does not match the TransformerConfig (" + "; ".join(diffs) + "). "
            "Pass the config the model was built with, or config=None to read it from the bridge."
        )
