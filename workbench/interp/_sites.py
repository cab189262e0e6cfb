"""Site addressing for the instruments: (component, layer, head, position) -> hook name and mask.

Every instrument addresses activations through this module only. A site is a component at a layer,
optionally narrowed to one head and/or one (query) position; its mask is a boolean array that
broadcasts against the hook's value, so patching is `jnp.where(mask, source, value)`.
"""

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool

from workbench.models import TransformerConfig, sites

Component = Literal[
    "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out",
    "q", "k", "v", "z", "result", "attn_scores", "pattern", "mlp_pre", "mlp_post",
]
_RESID = {"resid_pre": sites.resid_pre, "resid_mid": sites.resid_mid, "resid_post": sites.resid_post,
          "attn_out": sites.attn_out, "mlp_out": sites.mlp_out}
_SEQ_HEAD = ("q", "k", "v", "z", "result")  # values [seq, head, d]
_HEAD_SEQ = ("attn_scores", "pattern")  # values [head, seq, kv]
EMBED = sites.EMBED
COMPONENTS: tuple[str, ...] = (*_RESID, *_SEQ_HEAD, *_HEAD_SEQ, "mlp_pre", "mlp_post")


def hook_name(component: Component, layer: int) -> str:
    """The TransformerLens hook name of `component` at `layer`."""
    if component in _RESID:
        return _RESID[component](layer)
    if component in _SEQ_HEAD or component in _HEAD_SEQ:
        return sites.attn(layer, component)  # type: ignore[arg-type]
    if component in ("mlp_pre", "mlp_post"):
        return sites.mlp(layer, component[4:])  # type: ignore[arg-type]
    raise ValueError(f"unknown component {component!r}; choose one of {', '.join(COMPONENTS)}")


def has_heads(component: Component) -> bool:
    return component in _SEQ_HEAD or component in _HEAD_SEQ


def mask_shape(config: TransformerConfig, component: Component, seq: int) -> tuple[int, ...]:
    """The shape of a site mask: the hook's shape with its feature axis reduced to 1."""
    if component in _SEQ_HEAD:
        return (seq, config.n_heads, 1)
    if component in _HEAD_SEQ:
        return (config.n_heads, seq, 1)
    return (seq, 1)


def site_mask(
    config: TransformerConfig, component: Component, seq: int, head: int | None = None, pos: int | None = None
) -> np.ndarray:
    """The boolean mask of one site (`head`/`pos` None: all heads/positions)."""
    if head is not None and not has_heads(component):
        raise ValueError(f"component {component!r} has no head axis; pass head=None")
    mask = np.zeros(mask_shape(config, component, seq), bool)
    heads = slice(None) if head is None else head
    positions = slice(None) if pos is None else pos
    if component in _SEQ_HEAD:
        mask[positions, heads] = True
    elif component in _HEAD_SEQ:
        mask[heads, positions] = True
    else:
        mask[positions] = True
    return mask


class SiteGrid(eqx.Module):
    """A batch of sites on a grid with named axes, as stacked masks (one per hook name).

    `masks[name]` is `[site, *mask_shape]`, true only at the sites that patch `name`; sites are in
    row-major order of `shape`, whose axes are `axes` with labels `labels`.
    """

    masks: dict[str, Bool[Array, "site ..."]]
    axes: tuple[str, ...] = eqx.field(static=True)
    labels: tuple[tuple, ...] = eqx.field(static=True)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(l) for l in self.labels)

    @property
    def n_sites(self) -> int:
        return int(np.prod(self.shape))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.masks)


def site_grid(
    config: TransformerConfig,
    component: Component,
    seq: int,
    *,
    layers: tuple[int, ...] | None = None,
    by_head: bool = True,
    by_pos: bool = True,
) -> SiteGrid:
    """Every site of `component` over `layers` (default all), split by head and/or position.

    Axes are `("layer", "head", "pos")`, dropping `head` (no head axis, or `by_head=False`) and
    `pos` (`by_pos=False`). `by_head=False, by_pos=False` patches the whole hook per layer.
    """
    layers = tuple(range(config.n_layers)) if layers is None else tuple(layers)
    by_head = by_head and has_heads(component)
    heads = tuple(range(config.n_heads)) if by_head else (None,)
    positions = tuple(range(seq)) if by_pos else (None,)
    cells = [(l, h, p) for l in layers for h in heads for p in positions]
    masks = {}
    for layer in layers:
        stack = np.zeros((len(cells), *mask_shape(config, component, seq)), bool)
        for i, (l, h, p) in enumerate(cells):
            if l == layer:
                stack[i] = site_mask(config, component, seq, h, p)
        masks[hook_name(component, layer)] = jnp.asarray(stack)
    axes, labels = ["layer"], [layers]
    if by_head:
        axes.append("head")
        labels.append(heads)
    if by_pos:
        axes.append("pos")
        labels.append(positions)
    return SiteGrid(masks, tuple(axes), tuple(labels))


def site_set(
    config: TransformerConfig, seq: int, members: list[tuple[Component, int, int | None, int | None]]
) -> dict[str, Bool[Array, "..."]]:
    """One set of sites `(component, layer, head, pos)` as a mask per hook name (their union)."""
    masks: dict[str, np.ndarray] = {}
    for component, layer, head, pos in members:
        name = hook_name(component, layer)
        mask = site_mask(config, component, seq, head, pos)
        masks[name] = masks[name] | mask if name in masks else mask
    return {name: jnp.asarray(mask) for name, mask in masks.items()}
