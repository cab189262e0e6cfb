"""`TransformerConfig`: the architecture switches, with TransformerLens' field names."""

import dataclasses
from typing import Literal, get_args

_Norm = Literal["LN", "LNPre", "RMS"]
NormType = _Norm | None
ActFn = Literal["relu", "gelu", "gelu_new"]
NORMALIZATION_TYPES = (*get_args(_Norm), None)
ACT_FNS = get_args(ActFn)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a `Transformer`. Field names follow TransformerLens' `HookedTransformerConfig`.

    Exactly one of `d_vocab` (token inputs, embedding `W_E [d_vocab, d_model]`) and `d_input`
    (continuous vector inputs, read-in `W_E [d_input, d_model]`) is set. `d_vocab_out` defaults to
    `d_vocab`. `positional_embedding_type` is `"standard"` (learned `W_pos`) or `"none"`.
    `attention_type="linear"` uses the masked scores as the pattern (no softmax).
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    n_ctx: int
    d_vocab: int | None = None
    d_input: int | None = None
    d_vocab_out: int | None = None
    d_mlp: int | None = None
    attn_only: bool = False
    act_fn: ActFn = "gelu"
    normalization_type: NormType = "LN"
    positional_embedding_type: Literal["standard", "none"] = "standard"
    attention_dir: Literal["causal", "bidirectional"] = "causal"
    attention_type: Literal["softmax", "linear"] = "softmax"
    use_attn_scale: bool = True
    eps: float = 1e-5
    init_range: float = 0.02

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "d_head", "n_ctx"):
            if getattr(self, name) < 1:
                raise ValueError(f"TransformerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if (self.d_vocab is None) == (self.d_input is None):
            raise ValueError("TransformerConfig: set exactly one of d_vocab (tokens) and d_input (vectors)")
        if self.d_vocab is None and self.d_vocab_out is None:
            raise ValueError("TransformerConfig: vector inputs need d_vocab_out (the output width)")
        if self.d_mlp is not None and self.d_mlp < 1:
            raise ValueError(f"TransformerConfig.d_mlp must be >= 1, got {self.d_mlp}")
        if self.act_fn not in ACT_FNS:
            raise ValueError(f"TransformerConfig.act_fn must be relu, gelu or gelu_new, got {self.act_fn!r}")
        if self.normalization_type not in NORMALIZATION_TYPES:
            raise ValueError(
                f"TransformerConfig.normalization_type must be LN, LNPre, RMS or None, got {self.normalization_type!r}"
            )

    @property
    def tokens_in(self) -> bool:
        return self.d_vocab is not None

    @property
    def vocab_out(self) -> int:
        return self.d_vocab_out if self.d_vocab_out is not None else self.d_vocab  # type: ignore[return-value]

    @property
    def mlp_width(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model
