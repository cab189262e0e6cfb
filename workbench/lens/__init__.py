"""TransformerLens 4.x bridge: export a workbench `Transformer` to a `TransformerBridge`, and back.

TransformerLens 4.x has no `HookedTransformer`. A small custom model enters it as a state dict in
the legacy HookedTransformer format (`embed.W_E`, `blocks.{l}.attn.W_Q [n_heads, d_model, d_head]`,
...), which `convert_tl_checkpoint` turns into the bridge's own format for
`TransformerBridge.boot_native(cfg).load_state_dict(..., strict=True)`. The workbench parameters
already carry those names and shapes, so export and import are exact (no arithmetic on weights).

```python
bridge = to_transformer_lens(model)                       # torch float32 on CPU, no hub access
logits, cache = bridge.run_with_cache(tl_input(model, x))  # TransformerLens' own tools
model2 = from_transformer_lens(bridge, model.config)      # bit-exact round trip
print(compare_caches(model, bridge, x))                   # max abs / rel error per hook
```

**Supported:** token or vector inputs; LN / LNPre / RMS / no normalisation; attention-only or MLP
with relu / gelu (exact) / gelu_new; learned or no positions; causal or bidirectional; `d_vocab_out`.

- Vector inputs: the read-in `W_E [d_input, d_model]` is stored as the bridge's embedding matrix
  (so the state dict round-trips), but it is applied *outside* the bridge: `tl_input` returns
  `x @ W_E` (the workbench's `hook_embed`) as a float `[1, seq, d_model]` tensor, which the bridge
  treats as `inputs_embeds` (it adds `W_pos` and fires `hook_pos_embed` itself). Feeding the
  full residual with `bridge(resid, start_at_layer=0)` works too.
- No positions: TransformerLens has no such option (only standard or rotary), so `W_pos` is
  exported as zeros; `hook_pos_embed` then fires zeros in TransformerLens.

**Unsupported** (a `ValueError` naming the field): `attention_type="linear"` (TransformerLens has
only softmax attention) and `use_attn_scale=False` with `d_head > 1` (TL 4.3's native attention
always divides by `sqrt(d_head)` then). On import: rotary positions, gated MLPs, GQA, `final_rms`,
soft-capping, a custom `attn_scale`, RMSPre, activations other than relu/gelu/gelu_new.

**Where TL 4.3's bridge deviates from HookedTransformer's hook semantics** (measured on 4.3.0;
`compare_caches` compares these against the workbench value in TL 4.3's meaning, with a note):

- `blocks.{l}.attn.hook_attn_scores` carries the post-softmax pattern (the native attention
  exposes only its pattern to the bridge), not the pre-softmax scores; edits to it are discarded
  with a warning. Edits at `hook_pattern`, `hook_q|k|v|z`, norms and residuals do propagate.
- `*.hook_normalized` of an `LN` norm is taken before the affine `w, b`; HookedTransformer (and
  the workbench) take it after. RMS and LNPre agree.
- `blocks.{l}.attn.hook_result` never fires on the native bridge (even with `use_attn_result`).
"""

from .bridge import from_transformer_lens as from_transformer_lens
from .bridge import run_tl_with_cache as run_tl_with_cache
from .bridge import tl_input as tl_input
from .bridge import to_transformer_lens as to_transformer_lens
from .comparison import HookError as HookError
from .comparison import LensReport as LensReport
from .comparison import compare as compare
from .comparison import compare_caches as compare_caches
from .comparison import hook_error as hook_error
from .configs import bridge_config as bridge_config
from .configs import check_exportable as check_exportable
from .configs import config_from_bridge as config_from_bridge
from .state_dict import from_state_dict as from_state_dict
from .state_dict import to_state_dict as to_state_dict
