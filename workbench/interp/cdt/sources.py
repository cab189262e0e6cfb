"""CD-T sources as `SiteGrid`s (one site = one source), and the reference of "deviation from the mean".

A source is a set of positions of a hook where beta starts: input positions (the residual stream
entering layer 0), a head output `z` at a position, an MLP output. The grids are those of patching
(`workbench.interp.site_grid`), so a CD-T map and a patching map share their axes.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from workbench.models import Transformer, TransformerConfig, run_with_cache, sites

from .._sites import SiteGrid, site_grid
from ._forward import SOURCE_COMPONENTS


def input_sources(config: TransformerConfig, seq: int) -> SiteGrid:
    """Each input position as a source (token + positional embedding there): axis `pos`."""
    grid = site_grid(config, "resid_pre", seq, layers=(0,))
    return SiteGrid(grid.masks, ("pos",), grid.labels[1:])


def head_sources(config: TransformerConfig, seq: int, *, by_pos: bool = True,
                 layers: tuple[int, ...] | None = None) -> SiteGrid:
    """Each head output `z` (at each position when `by_pos`): axes `(layer, head[, pos])`."""
    return site_grid(config, "z", seq, layers=layers, by_pos=by_pos)


def mlp_sources(config: TransformerConfig, seq: int, *, by_pos: bool = False) -> SiteGrid:
    """Each MLP output (at each position when `by_pos`): axes `(layer[, pos])`."""
    if config.attn_only:
        raise ValueError("mlp_sources: this model is attention-only (no MLP outputs); use head_sources")
    return site_grid(config, "mlp_out", seq, by_pos=by_pos)


@eqx.filter_jit
def _means(model: Transformer, xs: Array, names: tuple[str, ...]) -> dict[str, Array]:
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, names))(xs)
    return {n: v.mean(0) for n, v in cache.items()}


def mean_reference(model: Transformer, xs: Array, grid: SiteGrid) -> dict[str, Array]:
    """The mean activation over the reference prompts `xs [batch, seq]` at each hook of `grid`: with it
    as `reference`, a source's beta is its deviation from this mean (the authors' `set_irrel_to_mean`)."""
    return _means(model, xs, grid.names)


def source_layers(config: TransformerConfig) -> dict[str, int]:
    """Hook name -> layer, for every hook a source may sit on."""
    return {name: l for l in range(config.n_layers) for name in
            (sites.resid_pre(l), sites.attn(l, "z"), sites.attn_out(l), sites.resid_mid(l), sites.mlp_out(l),
             sites.resid_post(l))}


def by_start_layer(config: TransformerConfig, grid: SiteGrid) -> list[tuple[int, np.ndarray, dict[str, Array]]]:
    """The grid's sources grouped by their first layer: `(layer, source indices, masks)` per group, each
    group's masks restricted to the hooks some of its sources use."""
    layers = source_layers(config)
    unknown = [n for n in grid.names if n not in layers]
    if unknown:
        raise ValueError(f"CD-T sources sit on {', '.join(SOURCE_COMPONENTS)}; got hooks {unknown}")
    used = {n: np.asarray(m).reshape(m.shape[0], -1).any(1) for n, m in grid.masks.items()}
    start = np.full(grid.n_sites, np.iinfo(np.int32).max)
    for n, u in used.items():
        start = np.where(u, np.minimum(start, layers[n]), start)
    groups = []
    for layer in sorted(set(start.tolist())):
        idx = np.flatnonzero(start == layer)
        masks = {n: jnp.asarray(np.asarray(grid.masks[n])[idx]) for n in grid.names if used[n][idx].any()}
        groups.append((min(layer, config.n_layers - 1), idx, masks))
    return groups


def after_attention(layer: int) -> frozenset[str]:
    """The source hooks of `layer` after its attention (its head outputs on): from there to the next
    layer's q, k, v every rule acts on each position alone (linear maps, norms, activations, adds, clean-up)."""
    l = layer
    return frozenset((sites.attn(l, "z"), sites.attn_out(l), sites.resid_mid(l), sites.mlp_out(l), sites.resid_post(l)))


def single_positions(layer: int, masks: dict[str, Array]) -> np.ndarray | None:
    """For a group of sources of `layer` (`by_start_layer`'s masks) that all sit after its attention, each
    confined to one position: that position per source `[n]`; None otherwise. The beta of such a source
    is exactly 0 at every other position up to the next attention, so that stretch needs its position alone."""
    if not masks or not set(masks) <= after_attention(layer):
        return None
    rows = sum(np.asarray(m).reshape(*m.shape[:2], -1).any(-1).astype(int) for m in masks.values())  # [n, seq]
    if not np.all((rows > 0).sum(1) == 1):
        return None
    return np.argmax(rows > 0, axis=1).astype(np.int32)
