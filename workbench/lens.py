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

import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from workbench.models import Transformer, TransformerConfig, run_with_cache, sites

_INSTALL_HINT = "install the extra: pip install 'workbench[lens]' (transformer-lens>=4.3 and torch)"
_LEGACY_BUFFERS = (".mask", ".IGNORE")  # HookedTransformer attention buffers; no parameters


def _import_tl():
    """torch, TransformerBridge, TransformerBridgeConfig and convert_tl_checkpoint (lazy)."""
    try:
        import torch
        from transformer_lens import TransformerBridge, TransformerBridgeConfig
        from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint
    except ImportError as e:
        raise ImportError(f"workbench.lens needs TransformerLens 4.x: {_INSTALL_HINT} ({e})") from e
    return torch, TransformerBridge, TransformerBridgeConfig, convert_tl_checkpoint


# ---------------------------------------------------------------------------------------------
# Configs


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
    if cfg.act_fn not in ("relu", "gelu", "gelu_new"):
        raise ValueError(f"bridge.cfg.act_fn={cfg.act_fn!r} cannot be imported: the workbench has relu, gelu, gelu_new")
    if cfg.normalization_type not in ("LN", "LNPre", "RMS", None):
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


# ---------------------------------------------------------------------------------------------
# State dicts

def _legacy_key(path: tuple) -> str:
    """`blocks.0.attn.W_Q` from the pytree path `.blocks[0].attn.W_Q` (the fields carry TL names)."""
    return ".".join(str(getattr(k, "name", getattr(k, "idx", k))) for k in path)


def _template(config: TransformerConfig) -> Transformer:
    """A `Transformer` with `config` whose leaves are shapes only (nothing is computed)."""
    return eqx.filter_eval_shape(Transformer, config, key=jax.random.key(0))


def to_state_dict(model: Transformer, *, as_torch: bool = False) -> dict[str, Any]:
    """`model`'s parameters as a legacy HookedTransformer-format state dict (float32).

    Keys and shapes are those of `HookedTransformer.state_dict()` without the `mask`/`IGNORE`
    buffers: `embed.W_E`, `pos_embed.W_pos` (zeros for a model without positions),
    `blocks.{l}.ln1.w|b`, `blocks.{l}.attn.W_Q [n_heads, d_model, d_head]`, ..., `unembed.b_U`.
    Values are numpy arrays, or torch tensors with `as_torch=True`.
    """
    c = model.config
    check_exportable(c)
    leaves = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))[0]
    state = {_legacy_key(path): np.asarray(leaf, dtype=np.float32) for path, leaf in leaves}
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
    leaves, treedef = jax.tree_util.tree_flatten_with_path(_template(config))
    want = {_legacy_key(path): leaf for path, leaf in leaves}
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    wrong = [k for k in want if k in state and state[k].shape != want[k].shape]
    shapes = [f"{k} {state[k].shape} (expected {want[k].shape})" for k in wrong]
    if missing or extra or shapes:
        problems = [f"missing {missing}"] * bool(missing) + [f"unexpected {extra}"] * bool(extra)
        problems += [f"wrong shape: {', '.join(shapes)}"] * bool(shapes)
        raise ValueError(
            "the state dict does not fit the TransformerConfig: " + "; ".join(problems) + ". Check "
            "normalization_type, attn_only, d_mlp, d_vocab/d_input, d_vocab_out, n_heads/d_head."
        )
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(state[k], dtype=w.dtype) for k, w in want.items()])


# ---------------------------------------------------------------------------------------------
# Bridges


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


# ---------------------------------------------------------------------------------------------
# Comparison


@dataclasses.dataclass(frozen=True)
class HookError:
    """Disagreement at one hook: `max_abs = max|tl - wb|`, `rel = max_abs / max(max|wb|, tiny)`.

    Maxima run over the finite entries; entries where either side is not finite must be equal
    (e.g. both `-inf` in masked scores), else `rel` is `inf`. `note` says when the workbench
    value was translated into TL 4.3's meaning of the hook.
    """

    max_abs: float
    rel: float
    note: str = ""


@dataclasses.dataclass(frozen=True)
class LensReport:
    """Per-hook errors of a bridge against the workbench model (`"logits"` included).

    `workbench_only`: hook points the workbench has and TransformerLens does not fire.
    """

    errors: dict[str, HookError]
    workbench_only: tuple[str, ...]

    @property
    def max_rel(self) -> float:
        return max(e.rel for e in self.errors.values())

    def failures(self, tol: float) -> dict[str, HookError]:
        return {name: e for name, e in self.errors.items() if not e.rel <= tol}

    def __str__(self) -> str:
        lines = [f"{'hook':45s} {'max_abs':>10s} {'rel':>10s}"]
        for name, e in self.errors.items():
            lines.append(f"{name:45s} {e.max_abs:10.2e} {e.rel:10.2e}{'  (' + e.note + ')' if e.note else ''}")
        if self.workbench_only:
            lines.append("workbench only: " + ", ".join(self.workbench_only))
        return "\n".join(lines)


def hook_error(tl: Any, wb: Any, *, tiny: float = 1e-30, note: str = "") -> HookError:
    """The `HookError` of `tl` against the reference `wb` (same shape)."""
    a, b = np.asarray(tl, np.float64), np.asarray(wb, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: TransformerLens {a.shape}, workbench {b.shape}")
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(a[~finite], b[~finite]):
        return HookError(float("inf"), float("inf"), note)
    a, b = np.where(finite, a, 0.0), np.where(finite, b, 0.0)
    max_abs, scale = float(np.max(np.abs(a - b), initial=0.0)), float(np.max(np.abs(b), initial=0.0))
    return HookError(max_abs, max_abs / max(scale, tiny), note)


_NOTE_SCORES = "TL 4.3 fires the post-softmax pattern here; compared with the workbench pattern"
_NOTE_NORMALIZED = "TL 4.3 takes LN hook_normalized before w, b; compared with (x - mean) / scale"


def _norm_input(name: str, wb_cache: Mapping[str, Array], n_layers: int) -> Array:
    """The residual entering the norm whose hook is `name`."""
    if name.startswith("ln_final."):
        return wb_cache[sites.resid_post(n_layers - 1)]
    layer = int(name.split(".")[1])
    return wb_cache[sites.resid_pre(layer) if ".ln1." in name else sites.resid_mid(layer)]


def _tl_reference(name: str, wb_cache: Mapping[str, Array], config: TransformerConfig) -> tuple[Array, str]:
    """The workbench value of hook `name` in TL 4.3's meaning of that hook, and a note if it differs."""
    if name.endswith("attn.hook_attn_scores"):
        return wb_cache[name.replace("hook_attn_scores", "hook_pattern")], _NOTE_SCORES
    if name.endswith("hook_normalized") and config.normalization_type == "LN":
        x = _norm_input(name, wb_cache, config.n_layers)
        return (x - x.mean(-1, keepdims=True)) / wb_cache[name.replace("normalized", "scale")], _NOTE_NORMALIZED
    return wb_cache[name], ""


def compare(
    config: TransformerConfig,
    wb: tuple[Any, Mapping[str, Array]],
    tl: tuple[np.ndarray, Mapping[str, np.ndarray]],
    *,
    tiny: float = 1e-30,
) -> LensReport:
    """Compare precomputed `(logits, cache)` pairs of the workbench (`wb`) and the bridge (`tl`, batch axis removed)."""
    (wb_logits, wb_cache), (tl_logits, tl_cache) = wb, tl
    wb_cache = {name: np.asarray(value) for name, value in wb_cache.items()}
    errors = {"logits": hook_error(tl_logits, wb_logits, tiny=tiny)}
    only = []
    for name in sites.hook_names(config):
        if name not in tl_cache:
            only.append(name)
            continue
        ref, note = _tl_reference(name, wb_cache, config)
        errors[name] = hook_error(tl_cache[name], ref, tiny=tiny, note=note)
    return LensReport(errors, tuple(only))


_run_with_cache = eqx.filter_jit(run_with_cache)


def compare_caches(model: Transformer, bridge: Any, x: Any, *, tiny: float = 1e-30) -> LensReport:
    """Run `model` and `bridge` on `x` (one example) and compare the logits and every shared hook.

    Hooks are compared in execution order; see `HookError` for the error definitions and the
    module docstring for the hooks whose TL 4.3 meaning differs from HookedTransformer's.
    """
    return compare(model.config, _run_with_cache(model, x), run_tl_with_cache(bridge, model, x), tiny=tiny)
