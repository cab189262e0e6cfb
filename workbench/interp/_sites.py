"""Site addressing for the instruments: `workbench.models.Site` values as masks.

Every instrument addresses activations through this module only. A site is a component at a layer,
optionally narrowed to one head and/or one (query) position (`Site(1, "z", head=0, position=3)`);
its mask is a boolean array that broadcasts against the hook's value, so patching is
`jnp.where(mask, source, value)`, and a batch of sites is a stack of masks passed to `vmap`.
"""

from collections.abc import Iterable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool

from workbench.models import Site, TransformerConfig, sites
from workbench.models.sites import Component

EMBED = sites.EMBED
# The components an instrument patches: the block-level hook points (norm statistics excluded).
COMPONENTS: tuple[str, ...] = tuple(
    p.component for p in sites.HOOK_POINTS if p.stage == "block" and not p.component.startswith(("ln1", "ln2"))
)


def hook_name(component: Component, layer: int) -> str:
    """The TransformerLens hook name of `component` at `layer`."""
    return Site(layer, component).name


def has_heads(component: Component) -> bool:
    return component in sites.HEAD_COMPONENTS


def site_mask(site: Site, config: TransformerConfig, seq: int) -> np.ndarray:
    """The boolean mask of `site` (its head and/or query position; all of them when unset), with the
    hook's feature axis reduced to 1 so that it broadcasts against the value."""
    return site.mask(config, seq).any(-1, keepdims=True)


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
    cells = [Site(l, component, h, p) for l in layers for h in heads for p in positions]
    shape = site_mask(cells[0].whole, config, seq).shape
    masks = {}
    for layer in layers:
        stack = np.zeros((len(cells), *shape), bool)
        for i, site in enumerate(cells):
            if site.layer == layer:
                stack[i] = site_mask(site, config, seq)
        masks[hook_name(component, layer)] = jnp.asarray(stack)
    axes, labels = ["layer"], [layers]
    if by_head:
        axes.append("head")
        labels.append(heads)
    if by_pos:
        axes.append("pos")
        labels.append(positions)
    return SiteGrid(masks, tuple(axes), tuple(labels))


def site_set(config: TransformerConfig, seq: int, members: Iterable[Site]) -> dict[str, Bool[Array, "..."]]:
    """One set of `Site` values as a mask per hook name (their union)."""
    masks: dict[str, np.ndarray] = {}
    for site in members:
        if not isinstance(site, Site):
            raise TypeError(f"site_set takes Site values, e.g. Site(1, 'q', head=0), got {site!r}")
        name = site.name
        mask = site_mask(site, config, seq)
        masks[name] = masks[name] | mask if name in masks else mask
    return {name: jnp.asarray(mask) for name, mask in masks.items()}
