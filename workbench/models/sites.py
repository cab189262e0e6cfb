"""Hook sites as values, and the one description of a model's hook points.

`HOOK_POINTS` is the architecture, described once: each row names a component, its
TransformerLens name template, its per-example axes and the features it needs (positional
embedding, normalisation, MLP). Hook names, shapes, the names the layers fire and every `Site`
derive from it; nothing here parses a string.

| component | name | shape |
|---|---|---|
| `embed`, `pos_embed` | `hook_embed`, `hook_pos_embed` | `[seq, d_model]` |
| `resid_pre`, `resid_mid`, `resid_post` | `blocks.{l}.hook_resid_pre` ... | `[seq, d_model]` |
| `ln1_scale` (`ln2_`, `ln_final_`) | `blocks.{l}.ln1.hook_scale` | `[seq, 1]` |
| `ln1_normalized` (`ln2_`, `ln_final_`) | `blocks.{l}.ln1.hook_normalized` | `[seq, d_model]` |
| `q`, `k`, `v`, `z` | `blocks.{l}.attn.hook_q` ... | `[seq, head, d_head]` |
| `attn_scores`, `pattern` | `blocks.{l}.attn.hook_pattern` ... | `[head, seq, kv]` |
| `result` | `blocks.{l}.attn.hook_result` | `[seq, head, d_model]` |
| `attn_out`, `mlp_out` | `blocks.{l}.hook_attn_out` ... | `[seq, d_model]` |
| `mlp_pre`, `mlp_post` | `blocks.{l}.mlp.hook_pre` ... | `[seq, d_mlp]` |

```python
site = Site(1, "q", head=3, position=5)  # head 3 of layer 1 at position 5, its q input
site.name                                 # "blocks.1.attn.hook_q"
cache[site]                               # == cache[site.name][..., 5, 3, :], shape [d_head]
```

The helpers (`resid_pre(l)`, `attn(l, "pattern")`, `mlp(l, "pre")`, `norm(l, "ln1", "scale")`,
`EMBED`, ...) return plain names, which are also TransformerLens' keys.
"""

import dataclasses
import difflib
import functools
import operator
from typing import Literal

import numpy as np

from ._config import TransformerConfig

Component = Literal[
    "embed", "pos_embed", "resid_pre", "ln1_scale", "ln1_normalized", "q", "k", "v", "attn_scores", "pattern",
    "z", "result", "attn_out", "resid_mid", "ln2_scale", "ln2_normalized", "mlp_pre", "mlp_post", "mlp_out",
    "resid_post", "ln_final_scale", "ln_final_normalized",
]
AttnPart = Literal["q", "k", "v", "z", "attn_scores", "pattern", "result"]
NormPart = Literal["scale", "normalized"]
MlpPart = Literal["pre", "post"]
Input = Literal["q", "k"]
Stage = Literal["embed", "block", "final"]
Feature = Literal["pos", "norm", "mlp"]


@dataclasses.dataclass(frozen=True)
class HookPoint:
    """One hook point of the architecture: `name` is a template in `layer`, `axes` its per-example shape."""

    component: str
    name: str
    axes: tuple[str, ...]
    stage: Stage = "block"
    needs: frozenset[Feature] = frozenset()


_RESID, _SCALE, _HEADS, _SCORES = ("seq", "d_model"), ("seq", "one"), ("seq", "head", "d_head"), ("head", "seq", "kv")
_NORM, _MLP, _NORM_MLP = frozenset({"norm"}), frozenset({"mlp"}), frozenset({"norm", "mlp"})

# Execution order: the embedding stage, then each block, then the final norm.
HOOK_POINTS: tuple[HookPoint, ...] = (
    HookPoint("embed", "hook_embed", _RESID, "embed"),
    HookPoint("pos_embed", "hook_pos_embed", _RESID, "embed", frozenset({"pos"})),
    HookPoint("resid_pre", "blocks.{layer}.hook_resid_pre", _RESID),
    HookPoint("ln1_scale", "blocks.{layer}.ln1.hook_scale", _SCALE, needs=_NORM),
    HookPoint("ln1_normalized", "blocks.{layer}.ln1.hook_normalized", _RESID, needs=_NORM),
    HookPoint("q", "blocks.{layer}.attn.hook_q", _HEADS),
    HookPoint("k", "blocks.{layer}.attn.hook_k", _HEADS),
    HookPoint("v", "blocks.{layer}.attn.hook_v", _HEADS),
    HookPoint("attn_scores", "blocks.{layer}.attn.hook_attn_scores", _SCORES),
    HookPoint("pattern", "blocks.{layer}.attn.hook_pattern", _SCORES),
    HookPoint("z", "blocks.{layer}.attn.hook_z", _HEADS),
    HookPoint("result", "blocks.{layer}.attn.hook_result", ("seq", "head", "d_model")),
    HookPoint("attn_out", "blocks.{layer}.hook_attn_out", _RESID),
    HookPoint("resid_mid", "blocks.{layer}.hook_resid_mid", _RESID, needs=_MLP),
    HookPoint("ln2_scale", "blocks.{layer}.ln2.hook_scale", _SCALE, needs=_NORM_MLP),
    HookPoint("ln2_normalized", "blocks.{layer}.ln2.hook_normalized", _RESID, needs=_NORM_MLP),
    HookPoint("mlp_pre", "blocks.{layer}.mlp.hook_pre", ("seq", "d_mlp"), needs=_MLP),
    HookPoint("mlp_post", "blocks.{layer}.mlp.hook_post", ("seq", "d_mlp"), needs=_MLP),
    HookPoint("mlp_out", "blocks.{layer}.hook_mlp_out", _RESID, needs=_MLP),
    HookPoint("resid_post", "blocks.{layer}.hook_resid_post", _RESID),
    HookPoint("ln_final_scale", "ln_final.hook_scale", _SCALE, "final", _NORM),
    HookPoint("ln_final_normalized", "ln_final.hook_normalized", _RESID, "final", _NORM),
)
_BY_COMPONENT = {point.component: point for point in HOOK_POINTS}
_ROW = {point.component: i for i, point in enumerate(HOOK_POINTS)}
_STAGES: tuple[Stage, ...] = ("embed", "block", "final")
COMPONENTS: tuple[str, ...] = tuple(_BY_COMPONENT)
HEAD_COMPONENTS: tuple[str, ...] = tuple(p.component for p in HOOK_POINTS if "head" in p.axes)


def _point(component: str) -> HookPoint:
    point = _BY_COMPONENT.get(component)
    if point is None:
        close = difflib.get_close_matches(str(component), COMPONENTS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(COMPONENTS)}"
        raise ValueError(f"unknown Site component {component!r}; {hint}")
    return point


def _int_or_none(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"Site {what} must be an int >= 0, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"Site {what} must be an int >= 0, got {value!r}") from None
    if value < 0:
        raise ValueError(f"Site {what} must be >= 0, got {value}")
    return value


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class Site:
    """A hook site: a component at a layer, optionally narrowed to one head and/or one position.

    `layer` is None for the model-level components (`embed`, `pos_embed`, `ln_final_*`). `head`
    needs a component with a head axis (`q`, `k`, `v`, `z`, `result`, `attn_scores`, `pattern`).
    `position` selects the sequence axis; on `[head, seq, kv]` sites (`attn_scores`, `pattern`)
    `input` says which of the head's inputs it indexes: `"q"` (query axis, the default) or `"k"`
    (key axis). A head's q, k and v inputs are the components `q`, `k`, `v`.

    Sites are frozen, hashable and ordered by execution (then head, position). `name` is the
    TransformerLens hook name; `index` selects the site inside an activation, counted from the
    last axis so it works with or without leading batch axes.
    """

    layer: int | None
    component: Component
    head: int | None = None
    position: int | None = None
    input: Input | None = None

    def __post_init__(self):
        point = _point(self.component)
        layer = _int_or_none(self.layer, "layer")
        if point.stage == "block" and layer is None:
            raise ValueError(f"Site {self.component!r} is in a block: pass its layer (an int >= 0)")
        if point.stage != "block" and layer is not None:
            raise ValueError(f"Site {self.component!r} is model-level: pass layer=None")
        head, position = _int_or_none(self.head, "head"), _int_or_none(self.position, "position")
        if head is not None and "head" not in point.axes:
            raise ValueError(
                f"Site {self.component!r} has no head axis; pass head=None "
                f"(heads live on {', '.join(HEAD_COMPONENTS)})"
            )
        inp = self.input
        if inp is not None or (position is not None and "kv" in point.axes):
            if "kv" not in point.axes:
                raise ValueError(f"Site input={inp!r} applies only to attn_scores and pattern; pass input=None")
            if position is None:
                raise ValueError("Site input says which axis position indexes: pass a position too")
            inp = "q" if inp is None else inp
            if inp not in ("q", "k"):
                raise ValueError(f"Site input must be 'q' (query axis) or 'k' (key axis), got {inp!r}")
        for field, value in (("layer", layer), ("head", head), ("position", position), ("input", inp)):
            object.__setattr__(self, field, value)

    @property
    def point(self) -> HookPoint:
        return _BY_COMPONENT[self.component]

    @property
    def name(self) -> str:
        """The TransformerLens hook name, e.g. `"blocks.1.attn.hook_q"`."""
        return self.point.name.format(layer=self.layer)

    @property
    def whole(self) -> "Site":
        """The same hook point without a head or position."""
        return Site(self.layer, self.component)

    @property
    def narrow(self) -> bool:
        """Whether the site selects a head or a position (a part of its hook point's activation)."""
        return self.head is not None or self.position is not None

    @property
    def index(self) -> tuple:
        """The index of this site in an activation `[..., *axes]`, e.g. `(..., 5, 3, slice(None))`."""
        axes = self.point.axes
        index: list = [slice(None)] * len(axes)
        if self.head is not None:
            index[axes.index("head")] = self.head
        if self.position is not None:
            index[axes.index("kv" if self.input == "k" else "seq")] = self.position
        return (Ellipsis, *index)

    def shape(self, config: TransformerConfig, seq: int) -> tuple[int, ...]:
        """The per-example shape of the whole hook point on `seq` tokens."""
        dims = {"seq": seq, "kv": seq, "d_model": config.d_model, "head": config.n_heads,
                "d_head": config.d_head, "d_mlp": config.mlp_width, "one": 1}
        return tuple(dims[axis] for axis in self.point.axes)

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise a ValueError if the head or position is out of range for an activation of `shape`."""
        axes = self.point.axes
        per_example = shape[len(shape) - len(axes):]
        for what, value, axis in (("head", self.head, "head"),
                                  ("position", self.position, "kv" if self.input == "k" else "seq")):
            if value is not None and value >= per_example[axes.index(axis)]:
                raise ValueError(f"{what} {value} is out of range for {self.name} of shape {tuple(per_example)}")

    def select(self, value):
        """This site's part of `value`, the activation at `self.name` (leading batch axes kept)."""
        if not self.narrow:
            return value
        self.check(value.shape)
        return value[self.index]

    def mask(self, config: TransformerConfig, seq: int) -> np.ndarray:
        """A boolean mask of the hook point's per-example shape, true on this site."""
        mask = np.zeros(self.shape(config, seq), bool)
        mask[self.index] = True
        return mask

    def _key(self) -> tuple:
        point = self.point
        input_rank = {None: -1, "q": 0, "k": 1}[self.input]
        return (_STAGES.index(point.stage), -1 if self.layer is None else self.layer, _ROW[self.component],
                -1 if self.head is None else self.head, -1 if self.position is None else self.position, input_rank)

    def __lt__(self, other: "Site") -> bool:
        if not isinstance(other, Site):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        parts = [f"head {self.head}"] if self.head is not None else []
        if self.position is not None:
            parts.append(f"{'key ' if self.input == 'k' else ''}position {self.position}")
        return f"{self.name}[{', '.join(parts)}]" if parts else self.name


def _features(config: TransformerConfig) -> frozenset[str]:
    features = set()
    if config.positional_embedding_type == "standard":
        features.add("pos")
    if config.normalization_type is not None:
        features.add("norm")
    if not config.attn_only:
        features.add("mlp")
    return frozenset(features)


def all_sites(config: TransformerConfig) -> tuple[Site, ...]:
    """Every hook point of a model with `config` as a whole-activation `Site`, in execution order."""
    features = _features(config)
    present = [p for p in HOOK_POINTS if p.needs <= features]
    out = [Site(None, p.component) for p in present if p.stage == "embed"]
    for layer in range(config.n_layers):
        out += [Site(layer, p.component) for p in present if p.stage == "block"]
    out += [Site(None, p.component) for p in present if p.stage == "final"]
    return tuple(out)


def every(config: TransformerConfig, component: Component, *, by_head: bool = False,
          seq: int | None = None, input: Input | None = None) -> tuple[Site, ...]:
    """Every site of `component` (each layer; each head if `by_head`; each position if `seq`), in order.

    `every(config, "z", by_head=True)` is every head of every layer; with `seq=5`, at each position.
    """
    point = _point(component)
    if not point.needs <= _features(config):
        raise ValueError(f"a model with this config has no {component!r} hook point")
    layers = range(config.n_layers) if point.stage == "block" else (None,)
    heads = range(config.n_heads) if by_head else (None,)
    positions = range(seq) if seq is not None else (None,)
    return tuple(Site(l, component, h, p, input) for l in layers for h in heads for p in positions)


def hook_shapes(config: TransformerConfig, seq: int) -> dict[str, tuple[int, ...]]:
    """Every hook point of a model with `config`, in execution order, with its shape on `seq` tokens."""
    return {site.name: site.shape(config, seq) for site in all_sites(config)}


def hook_names(config: TransformerConfig) -> tuple[str, ...]:
    """Every hook point of a model with `config`, in execution order."""
    return tuple(site.name for site in all_sites(config))


# --- name helpers (plain strings; also TransformerLens' keys)

_NORMS = {("ln1", "scale"): "ln1_scale", ("ln1", "normalized"): "ln1_normalized",
          ("ln2", "scale"): "ln2_scale", ("ln2", "normalized"): "ln2_normalized",
          ("ln_final", "scale"): "ln_final_scale", ("ln_final", "normalized"): "ln_final_normalized"}
_MLPS = {"pre": "mlp_pre", "post": "mlp_post"}

EMBED = Site(None, "embed").name
POS_EMBED = Site(None, "pos_embed").name


def resid_pre(layer: int) -> str:
    return Site(layer, "resid_pre").name


def resid_mid(layer: int) -> str:
    return Site(layer, "resid_mid").name


def resid_post(layer: int) -> str:
    return Site(layer, "resid_post").name


def attn_out(layer: int) -> str:
    return Site(layer, "attn_out").name


def mlp_out(layer: int) -> str:
    return Site(layer, "mlp_out").name


def attn(layer: int, part: AttnPart) -> str:
    """`blocks.{layer}.attn.hook_{part}`, e.g. `attn(0, "pattern")`."""
    if part not in ("q", "k", "v", "z", "attn_scores", "pattern", "result"):
        raise ValueError(f"unknown attention part {part!r}; choose q, k, v, z, attn_scores, pattern or result")
    return Site(layer, part).name


def mlp(layer: int, part: MlpPart) -> str:
    if part not in _MLPS:
        raise ValueError(f"unknown MLP part {part!r}; choose pre or post")
    return Site(layer, _MLPS[part]).name  # type: ignore[arg-type]


def norm(layer: int | None, which: Literal["ln1", "ln2", "ln_final"], part: NormPart) -> str:
    """A normalisation hook; `layer=None` with `which="ln_final"`."""
    component = _NORMS.get((which, part))
    if component is None:
        raise ValueError(f"unknown norm hook ({which!r}, {part!r}); use ln1, ln2 or ln_final with scale or normalized")
    return Site(layer, component).name  # type: ignore[arg-type]
