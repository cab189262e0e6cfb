import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.models import Cache, Site, Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites

CONFIG = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=7)
TOKENS = jnp.array([1, 2, 3, 4, 5])

# Every component with the TransformerLens name it renders at layer 1 (model-level: layer None).
NAMES = {
    (None, "embed"): "hook_embed",
    (None, "pos_embed"): "hook_pos_embed",
    (1, "resid_pre"): "blocks.1.hook_resid_pre",
    (1, "ln1_scale"): "blocks.1.ln1.hook_scale",
    (1, "ln1_normalized"): "blocks.1.ln1.hook_normalized",
    (1, "q"): "blocks.1.attn.hook_q",
    (1, "k"): "blocks.1.attn.hook_k",
    (1, "v"): "blocks.1.attn.hook_v",
    (1, "attn_scores"): "blocks.1.attn.hook_attn_scores",
    (1, "pattern"): "blocks.1.attn.hook_pattern",
    (1, "z"): "blocks.1.attn.hook_z",
    (1, "result"): "blocks.1.attn.hook_result",
    (1, "attn_out"): "blocks.1.hook_attn_out",
    (1, "resid_mid"): "blocks.1.hook_resid_mid",
    (1, "ln2_scale"): "blocks.1.ln2.hook_scale",
    (1, "ln2_normalized"): "blocks.1.ln2.hook_normalized",
    (1, "mlp_pre"): "blocks.1.mlp.hook_pre",
    (1, "mlp_post"): "blocks.1.mlp.hook_post",
    (1, "mlp_out"): "blocks.1.hook_mlp_out",
    (1, "resid_post"): "blocks.1.hook_resid_post",
    (None, "ln_final_scale"): "ln_final.hook_scale",
    (None, "ln_final_normalized"): "ln_final.hook_normalized",
}


@pytest.fixture(scope="module")
def model() -> Transformer:
    return Transformer(CONFIG, key=jax.random.key(0))


@pytest.fixture(scope="module")
def cache(model) -> Cache:
    return run_with_cache(model, TOKENS)[1]


def test_every_component_renders_its_transformer_lens_name():
    assert set(component for _, component in NAMES) == set(sites.COMPONENTS)
    for (layer, component), name in NAMES.items():
        assert Site(layer, component).name == name
        assert Site(layer, component, position=2).name == name  # narrowing does not change the hook
    assert [s.name for s in sites.all_sites(CONFIG)] == list(sites.hook_names(CONFIG))


def test_helpers_and_sites_agree():
    assert sites.attn(1, "pattern") == Site(1, "pattern").name
    assert sites.mlp(0, "post") == Site(0, "mlp_post").name
    assert sites.norm(None, "ln_final", "scale") == Site(None, "ln_final_scale").name
    assert sites.norm(0, "ln2", "normalized") == Site(0, "ln2_normalized").name
    assert (sites.EMBED, sites.POS_EMBED) == ("hook_embed", "hook_pos_embed")


def test_sites_hash_compare_and_sort_in_execution_order():
    a, b = Site(1, "q", head=3, position=5), Site(1, "q", head=3, position=5)
    assert a == b and hash(a) == hash(b) and len({a, b, Site(1, "q", head=2)}) == 2
    assert {a: 1}[b] == 1
    assert a != Site(1, "q", head=3) and Site(1, "q") != sites.attn(1, "q")
    everything = list(sites.all_sites(CONFIG))
    assert sorted(reversed(everything)) == everything
    assert Site(None, "embed") < Site(0, "resid_pre") < Site(0, "resid_post") < Site(1, "resid_pre")
    assert Site(1, "resid_post") < Site(None, "ln_final_scale")
    assert Site(0, "z") < Site(0, "z", head=0) < Site(0, "z", head=0, position=1) < Site(0, "z", head=1)
    assert Site(0, "pattern", head=0, position=1) < Site(0, "pattern", head=0, position=1, input="k")
    with pytest.raises(TypeError):
        _ = Site(0, "z") < "blocks.0.attn.hook_z"


def test_defaults_are_canonical():
    assert Site(0, "pattern", head=1, position=2) == Site(0, "pattern", head=1, position=2, input="q")
    assert Site(np.int64(1), "q", head=np.int32(0)) == Site(1, "q", head=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(layer=0, component="resid_pre", head=1), "has no head axis"),
    (dict(layer=0, component="mlp_post", head=0), "has no head axis"),
    (dict(layer=0, component="patern"), "unknown Site component 'patern'; did you mean 'pattern'"),
    (dict(layer=0, component="hook_q"), "unknown Site component 'hook_q'; choose one of embed"),
    (dict(layer=0, component="ln3_scale"), "unknown Site component"),
    (dict(layer=None, component="q"), "pass its layer"),
    (dict(layer=0, component="embed"), "model-level"),
    (dict(layer=-1, component="q"), "layer must be >= 0"),
    (dict(layer=0, component="q", head=1.5), "head must be an int"),
    (dict(layer=0, component="q", position=True), "position must be an int"),
    (dict(layer=0, component="q", position=1, input="k"), "applies only to attn_scores and pattern"),
    (dict(layer=0, component="pattern", input="k"), "pass a position too"),
    (dict(layer=0, component="pattern", position=1, input="v"), "'q' \\(query axis\\) or 'k'"),
])
def test_bad_construction_raises_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Site(**kwargs)


def test_a_site_indexes_its_part_of_a_cached_activation(cache):
    q = cache["blocks.1.attn.hook_q"]  # [seq, head, d_head]
    np.testing.assert_array_equal(cache[Site(1, "q", head=1, position=3)], q[3, 1])
    np.testing.assert_array_equal(cache[Site(1, "q", head=1)], q[:, 1])
    np.testing.assert_array_equal(cache[Site(1, "q")], q)
    pattern = cache[sites.attn(0, "pattern")]  # [head, query, key]
    np.testing.assert_array_equal(cache[Site(0, "pattern", head=0, position=2)], pattern[0, 2])
    np.testing.assert_array_equal(cache[Site(0, "pattern", head=0, position=2, input="k")], pattern[0, :, 2])
    np.testing.assert_array_equal(cache[Site(0, "resid_post", position=4)], cache[sites.resid_post(0)][4])
    assert Site(0, "z", head=1) in cache and sites.attn(0, "z") in cache and "nope" not in cache
    assert cache.get(Site(0, "q", head=0)).shape == (5, 4) and cache.get("nope") is None
    with pytest.raises(ValueError, match="position 5 is out of range for blocks.0.hook_resid_pre"):
        _ = cache[Site(0, "resid_pre", position=5)]


def test_cache_is_a_pytree_and_sites_index_through_batch_axes(cache):
    site = Site(1, "z", head=1, position=2)
    batched = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), cache)  # as jax.vmap would return it
    assert isinstance(batched, Cache) and set(batched) == set(cache)
    np.testing.assert_array_equal(batched[site], batched[site.name][:, 2, 1])
    np.testing.assert_array_equal(batched[site][1], 2 * cache[site])
    mask = site.mask(CONFIG, 5)
    assert mask.shape == site.shape(CONFIG, 5) == (5, 2, 4) and mask.sum() == 4 and mask[2, 1].all()


def test_cache_and_hooks_accept_sites(model, cache):
    _, by_site = run_with_cache(model, TOKENS, names=[Site(0, "z", head=1), Site(None, "ln_final_scale")])
    assert set(by_site) == {"blocks.0.attn.hook_z", "ln_final.hook_scale"}
    np.testing.assert_array_equal(by_site["blocks.0.attn.hook_z"], cache["blocks.0.attn.hook_z"])

    def zero_head_1(z, key):
        assert key == sites.attn(0, "z")
        return z.at[:, 1].set(0.0)

    by_name = run_with_hooks(model, TOKENS, {sites.attn(0, "z"): zero_head_1})
    seen = []

    def zero(part, key):
        seen.append(key)
        return jnp.zeros_like(part)

    site = Site(0, "z", head=1)
    np.testing.assert_array_equal(run_with_hooks(model, TOKENS, {site: zero}), by_name)
    assert seen == [site] and not np.allclose(by_name, model(TOKENS), atol=1e-4)
    both = {Site(0, "z", head=0): zero, Site(0, "z", head=1): zero}
    np.testing.assert_array_equal(run_with_hooks(model, TOKENS, both),
                                  run_with_hooks(model, TOKENS, {sites.attn(0, "z"): lambda z, n: 0 * z}))


def test_a_position_hook_patches_only_that_position(model):
    corrupted = jnp.array([6, 5, 4, 3, 2])
    _, source = run_with_cache(model, corrupted, names=[sites.resid_pre(1)])
    site = Site(1, "resid_pre", position=2)
    hooks = {site: lambda x, key: source[key]}
    patched, clean = run_with_hooks(model, TOKENS, hooks), model(TOKENS)
    np.testing.assert_array_equal(patched[:2], clean[:2])  # causal: earlier positions untouched
    assert not np.allclose(patched[2], clean[2], atol=1e-4)
    manual = run_with_hooks(model, TOKENS, {sites.resid_pre(1): lambda x, n: x.at[2].set(source[site])})
    np.testing.assert_array_equal(patched, manual)
    np.testing.assert_allclose(eqx.filter_jit(run_with_hooks)(model, TOKENS, hooks), patched, atol=1e-6)


def test_bad_site_keys_give_clear_errors(model):
    with pytest.raises(ValueError, match="head 2 is out of range for blocks.0.attn.hook_z"):
        run_with_cache(model, TOKENS, names=[Site(0, "z", head=2)])
    with pytest.raises(ValueError, match="no hook point 'blocks.2.attn.hook_z'"):
        run_with_hooks(model, TOKENS, {Site(2, "z"): lambda z, s: z})
    with pytest.raises(ValueError, match="position 5 is out of range"):
        run_with_hooks(model, TOKENS, {Site(0, "q", position=5): lambda q, s: q})
    with pytest.raises(ValueError, match=r"returned shape \(5, 4\), expected \(4,\)"):
        run_with_hooks(model, TOKENS, {Site(0, "q", head=0, position=1): lambda q, s: jnp.zeros((5, 4))})
    with pytest.raises(ValueError, match="Site values or hook names"):
        run_with_cache(model, TOKENS, names=[(0, "q")])


def test_every_enumerates_heads_and_positions():
    heads = sites.every(CONFIG, "z", by_head=True)
    assert heads == tuple(Site(l, "z", head=h) for l in range(2) for h in range(2))
    grid = sites.every(CONFIG, "pattern", by_head=True, seq=3, input="k")
    assert len(grid) == 2 * 2 * 3 and list(grid) == sorted(grid) and grid[1] == Site(0, "pattern", 0, 1, "k")
    assert sites.every(CONFIG, "ln_final_scale") == (Site(None, "ln_final_scale"),)
    assert len(sites.every(CONFIG, "resid_post", seq=4)) == 8
    with pytest.raises(ValueError, match="has no head axis"):
        sites.every(CONFIG, "resid_pre", by_head=True)
    attn_only = TransformerConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=7, attn_only=True)
    with pytest.raises(ValueError, match="no 'mlp_out' hook point"):
        sites.every(attn_only, "mlp_out")
