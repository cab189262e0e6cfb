import json

import jax.numpy as jnp
import numpy as np
import pytest

from workbench.interp import KL, MSE, LogitDiff, Loss, Named, PatchResult, heatmap, layer_head_heatmap, site_grid
from workbench.interp import pos_layer_heatmap, site_set
from workbench.models import Site, TransformerConfig, sites

CONFIG = TransformerConfig(n_layers=2, d_model=8, n_heads=3, d_head=4, n_ctx=5, d_vocab=6)
GRID_VALUES = jnp.arange(12.0).reshape(2, 3, 2)  # [layer, head, pos]


def named() -> Named:
    return Named(GRID_VALUES, ("layer", "head", "pos"), ((0, 1), (0, 1, 2), (0, 1)))


def test_site_grid_masks_are_one_hot_per_site():
    grid = site_grid(CONFIG, "z", 5)
    assert grid.axes == ("layer", "head", "pos") and grid.shape == (2, 3, 5) and grid.n_sites == 30
    z0, z1 = sites.attn(0, "z"), sites.attn(1, "z")
    assert grid.masks[z0].shape == (30, 5, 3, 1)
    counts = np.asarray(grid.masks[z0]).sum((1, 2, 3)) + np.asarray(grid.masks[z1]).sum((1, 2, 3))
    assert np.array_equal(counts, np.ones(30))
    # site (layer 1, head 2, pos 3) is row 1*15 + 2*5 + 3, and sets z[3, 2] at layer 1
    assert bool(grid.masks[z1][28, 3, 2, 0]) and not bool(grid.masks[z0][28].any())
    pattern = site_grid(CONFIG, "pattern", 5, by_pos=False)  # [head, seq, kv]: the head axis comes first
    assert pattern.axes == ("layer", "head") and bool(pattern.masks[sites.attn(0, "pattern")][1, 1].all())
    resid = site_grid(CONFIG, "resid_pre", 5, by_pos=False)
    assert resid.axes == ("layer",) and bool(resid.masks[sites.resid_pre(1)][1].all())
    union = site_set(CONFIG, 5, [Site(1, "q", head=0), Site(1, "q", head=2, position=4)])
    assert np.asarray(union[sites.attn(1, "q")]).sum() == 6


def test_named_select_sum_and_tidy_table():
    n = named()
    assert np.array_equal(n.sel(pos=-1).values, GRID_VALUES[:, :, -1]) and n.sel(pos=-1).axes == ("layer", "head")
    assert np.array_equal(n.sel(layer=1, head=2).values, GRID_VALUES[1, 2])
    assert np.array_equal(n.sum("head").values, GRID_VALUES.sum(1))
    rows = n.table()
    assert len(rows) == 12 and rows[7] == {"layer": 1, "head": 0, "pos": 1, "value": 7.0}
    with pytest.raises(ValueError, match="do not match"):
        Named(GRID_VALUES, ("layer", "head"), ((0, 1), (0, 1, 2)))


def test_patch_result_effect_and_normalisation():
    result = PatchResult(Named(jnp.array([1.0, 3.0]), ("layer",), ((0, 1),)), jnp.float32(3.0), jnp.float32(1.0))
    np.testing.assert_allclose(result.effect.values, [-2.0, 0.0])
    np.testing.assert_allclose(result.normalized.values, [0.0, 1.0])
    with pytest.raises(ValueError, match="ablations have none"):
        _ = PatchResult(result.patched, result.clean, None).normalized


def test_heatmaps_are_json_ready_and_oriented():
    fig = layer_head_heatmap(named().sel(pos=0), title="z")
    json.dumps(fig)
    trace = fig["data"][0]
    assert trace["y"] == ["0", "1"] and trace["x"] == ["0", "1", "2"]
    assert trace["z"] == np.asarray(GRID_VALUES[:, :, 0]).tolist() and trace["zmax"] == 10.0
    transposed = heatmap(Named(GRID_VALUES[0].T, ("pos", "head"), ((0, 1), (0, 1, 2))), rows="head", cols="pos")
    assert transposed["data"][0]["z"] == np.asarray(GRID_VALUES[0]).tolist()
    assert pos_layer_heatmap(named().sel(head=1))["layout"]["xaxis"]["title"]["text"] == "pos"
    with pytest.raises(ValueError, match="use sel or sum"):
        layer_head_heatmap(named())


def test_metrics_on_one_example():
    out = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    clean = jnp.log(jnp.array([[0.25, 0.5, 0.25], [0.1, 0.8, 0.1]]))
    assert LogitDiff(correct=jnp.int32(1), wrong=jnp.int32(0))(out, clean) == pytest.approx(np.log(8))
    assert Loss(targets=jnp.array([2, -1]))(out, clean) == pytest.approx(np.log(4))
    assert KL()(clean, clean) == 0.0
    assert KL(position=0)(out, clean) == pytest.approx(0.25 * np.log(0.5) + 0.5 * np.log(2), rel=1e-5)
    assert KL(position=1)(out, clean) == pytest.approx(0.0, abs=1e-6)
    assert MSE()(out, out + 1.0) == pytest.approx(1.0)
    assert MSE(target=jnp.zeros((2, 3)))(jnp.full((2, 3), 2.0), out) == pytest.approx(4.0)
