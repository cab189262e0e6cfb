"""Comparison: per-hook errors of a `TransformerBridge` against the workbench model.

`compare_caches` runs both on one example and reports, for the logits and every hook the bridge
fires, the max abs / relative error (`HookError`, collected in a `LensReport`). Hooks whose TL 4.3
meaning differs from HookedTransformer's are compared in TL 4.3's meaning, with a note.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Array

from workbench.models import Transformer, TransformerConfig, run_with_cache, sites

from .bridge import run_tl_with_cache


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
    `workbench.lens` docstring for the hooks whose TL 4.3 meaning differs from HookedTransformer's.
    """
    return compare(model.config, _run_with_cache(model, x), run_tl_with_cache(bridge, model, x), tiny=tiny)
