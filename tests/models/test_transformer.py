import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.models import Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites

BASE = dict(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=6, d_vocab=7)
TOKENS = jnp.array([1, 2, 3, 4, 5])

# TransformerLens 4.x hook names for a 2-layer LN + MLP model (without the opt-in use_attn_result,
# use_split_qkv_input and use_hook_mlp_in hooks, which workbench does not emit except hook_result).
TL_NAMES_2L = ["hook_embed", "hook_pos_embed"] + [
    f"blocks.{l}.{name}"
    for l in range(2)
    for name in (
        "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
        "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_result", "hook_attn_out",
        "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post",
        "hook_mlp_out", "hook_resid_post",
    )
] + ["ln_final.hook_scale", "ln_final.hook_normalized"]


def model_for(**overrides) -> Transformer:
    return Transformer(TransformerConfig(**{**BASE, **overrides}), key=jax.random.key(0))


@pytest.fixture(scope="module")
def model() -> Transformer:
    return model_for()


def test_hook_names_match_transformer_lens(model):
    assert list(sites.hook_names(model.config)) == TL_NAMES_2L


def test_attn_only_without_norm_has_no_mlp_or_norm_hooks():
    names = sites.hook_names(TransformerConfig(**{**BASE, "attn_only": True, "normalization_type": None,
                                                  "positional_embedding_type": "none"}))
    assert not [n for n in names if "mlp" in n or "ln" in n or "resid_mid" in n or "pos_embed" in n]
    assert "blocks.1.hook_resid_post" in names


def test_cache_has_every_hook_with_its_shape(model):
    _, cache = run_with_cache(model, TOKENS)
    expected = sites.hook_shapes(model.config, len(TOKENS))
    assert {k: v.shape for k, v in cache.items()} == expected
    assert cache[sites.attn(0, "pattern")].sum(-1) == pytest.approx(np.ones((2, 5)), abs=1e-6)


def test_parameter_names_and_shapes(model):
    attn = model.blocks[0].attn
    assert model.embed.W_E.shape == (7, 16) and model.pos_embed.W_pos.shape == (6, 16)
    assert attn.W_Q.shape == (2, 16, 8) and attn.b_Q.shape == (2, 8) and attn.W_O.shape == (2, 8, 16)
    assert model.blocks[0].mlp.W_in.shape == (16, 64) and model.unembed.W_U.shape == (16, 7)


def test_identity_hooks_leave_logits_unchanged(model):
    names = [n for n in sites.hook_names(model.config) if not n.endswith("hook_result")]
    hooks = {name: (lambda x, name: x) for name in names}
    np.testing.assert_array_equal(run_with_hooks(model, TOKENS, hooks), model(TOKENS))
    # Observing hook_result splits the output projection per head: same values up to float rounding.
    result = {sites.attn(l, "result"): (lambda x, name: x) for l in range(2)}
    np.testing.assert_allclose(run_with_hooks(model, TOKENS, result), model(TOKENS), rtol=1e-5, atol=1e-6)


def test_patching_resid_pre_propagates(model):
    corrupted = jnp.array([6, 5, 4, 3, 2])
    _, cache = run_with_cache(model, corrupted, names=[sites.resid_pre(1)])
    patched = run_with_hooks(model, TOKENS, {sites.resid_pre(1): lambda x, name: cache[name]})
    np.testing.assert_allclose(patched, model(corrupted), atol=1e-5)
    assert not np.allclose(patched, model(TOKENS), atol=1e-3)


def test_patching_pattern_changes_z(model):
    uniform = lambda x, name: jnp.tril(jnp.ones_like(x)) / jnp.arange(1, 6)[:, None]
    _, cache = run_with_cache(model, TOKENS, names=[sites.attn(0, "v")])
    _, patched = run_with_cache(model, TOKENS, names=[sites.attn(0, "z")])
    out = run_with_hooks(model, TOKENS, {sites.attn(0, "pattern"): uniform})
    v = cache[sites.attn(0, "v")]
    expected_z = jnp.cumsum(v, 0) / jnp.arange(1, 6)[:, None, None]
    _, z_cache = eqx.filter_jit(_cache_with_hook)(model, TOKENS, uniform)
    np.testing.assert_allclose(z_cache, expected_z, atol=1e-5)
    assert not np.allclose(out, model(TOKENS), atol=1e-4)


def _cache_with_hook(model, tokens, fn):
    from workbench.models import Hooks

    hooks = Hooks(fns={sites.attn(0, "pattern"): fn}, record=frozenset({sites.attn(0, "z")}))
    out = model.forward(tokens, hooks)
    return out, hooks.cache[sites.attn(0, "z")]


def test_jit_and_vmap_agree_with_eager(model):
    batch = jnp.stack([TOKENS, TOKENS[::-1]])
    eager = jnp.stack([model(t) for t in batch])
    np.testing.assert_allclose(eqx.filter_jit(lambda m, b: jax.vmap(m)(b))(model, batch), eager, atol=1e-5)
    names = (sites.attn(1, "pattern"), sites.resid_post(1))
    out, cache = eqx.filter_jit(jax.vmap(run_with_cache, in_axes=(None, 0, None)))(model, batch, names)
    assert cache[names[0]].shape == (2, 2, 5, 5)
    np.testing.assert_allclose(out, eager, atol=1e-5)


@pytest.mark.parametrize("overrides", [
    dict(normalization_type="LNPre", act_fn="relu"),
    dict(normalization_type="RMS", act_fn="gelu_new", attention_dir="bidirectional"),
    dict(normalization_type=None, attn_only=True, positional_embedding_type="none", attention_type="linear"),
    dict(d_vocab=None, d_input=3, d_vocab_out=1),
])
def test_configurations_run_with_expected_shapes(overrides):
    model = model_for(**overrides)
    x = jax.random.normal(jax.random.key(1), (5, 3)) if overrides.get("d_input") else TOKENS
    out, cache = run_with_cache(model, x)
    assert out.shape == (5, model.config.vocab_out)
    assert {k: v.shape for k, v in cache.items()} == sites.hook_shapes(model.config, 5)


def test_causal_mask(model):
    later_changed = TOKENS.at[-1].set(0)
    np.testing.assert_allclose(model(TOKENS)[:-1], model(later_changed)[:-1], atol=1e-6)
    bidirectional = model_for(attention_dir="bidirectional")
    assert not np.allclose(bidirectional(TOKENS)[0], bidirectional(later_changed)[0], atol=1e-6)


def test_layer_norm_follows_transformer_lens(model):
    _, cache = run_with_cache(model, TOKENS)
    x = cache[sites.resid_pre(0)]
    centred = x - x.mean(-1, keepdims=True)
    scale = jnp.sqrt((centred**2).mean(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(cache["blocks.0.ln1.hook_scale"], scale, rtol=1e-5)
    ln = model.blocks[0].ln1
    np.testing.assert_allclose(cache["blocks.0.ln1.hook_normalized"], centred / scale * ln.w + ln.b, atol=1e-5)


def test_gelu_variants_differ():
    exact, tanh = model_for(act_fn="gelu"), model_for(act_fn="gelu_new")
    _, a = run_with_cache(exact, TOKENS, names=["blocks.0.mlp.hook_post"])
    _, b = run_with_cache(tanh, TOKENS, names=["blocks.0.mlp.hook_post"])
    pre = run_with_cache(exact, TOKENS, names=["blocks.0.mlp.hook_pre"])[1]["blocks.0.mlp.hook_pre"]
    np.testing.assert_allclose(a["blocks.0.mlp.hook_post"], jax.nn.gelu(pre, approximate=False), atol=1e-6)
    assert not np.array_equal(a["blocks.0.mlp.hook_post"], b["blocks.0.mlp.hook_post"])


def test_bad_inputs_give_clear_errors(model):
    with pytest.raises(ValueError, match="int tokens"):
        model(jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="exceeds n_ctx"):
        model(jnp.zeros(9, dtype=jnp.int32))
    with pytest.raises(ValueError, match="did you mean blocks.0.attn.hook_pattern"):
        run_with_cache(model, TOKENS, names=["blocks.0.attn.hook_patern"])
    with pytest.raises(ValueError, match="exactly one of d_vocab"):
        TransformerConfig(**{**BASE, "d_input": 3})
    with pytest.raises(ValueError, match="returned shape"):
        run_with_hooks(model, TOKENS, {sites.resid_pre(0): lambda x, name: x[:2]})


@pytest.mark.parametrize("overrides", [
    {},
    {"attn_only": True, "normalization_type": None, "attention_type": "linear"},
    {"d_vocab": None, "d_input": 3, "d_vocab_out": 2, "normalization_type": "RMS", "act_fn": "relu"},
])
def test_batched_forward_equals_vmap(overrides):
    m = model_for(**overrides)
    if m.config.tokens_in:
        x = jax.random.randint(jax.random.key(1), (3, 5), 0, m.config.d_vocab)
    else:
        x = jax.random.normal(jax.random.key(1), (3, 5, m.config.d_input))
    np.testing.assert_allclose(m.batched(x), jax.vmap(m)(x), rtol=1e-5, atol=1e-6)


def test_training_with_the_batched_forward_follows_the_vmapped_losses(model):
    """Five AdamW steps on a fixed batch: the batched loss path gives the same losses as vmap."""
    import optax

    tokens = jax.random.randint(jax.random.key(2), (4, 6), 0, 7)
    opt = optax.adamw(1e-2)

    def losses(forward):
        def loss_fn(m):
            logp = jax.nn.log_softmax(forward(m, tokens[:, :-1]), -1)
            return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()

        @eqx.filter_jit
        def step(m, state):
            loss, grads = eqx.filter_value_and_grad(loss_fn)(m)
            updates, state = opt.update(grads, state, eqx.filter(m, eqx.is_array))
            return eqx.apply_updates(m, updates), state, loss

        m, state, out = model, opt.init(eqx.filter(model, eqx.is_array)), []
        for _ in range(5):
            m, state, loss = step(m, state)
            out.append(float(loss))
        return np.array(out)

    vmapped = losses(lambda m, t: jax.vmap(m)(t))
    np.testing.assert_allclose(losses(lambda m, t: m.batched(t)), vmapped, rtol=1e-5)
    assert vmapped[-1] < vmapped[0]


def test_batched_rejects_a_single_example(model):
    with pytest.raises(ValueError, match=r"int tokens \[batch, seq\]"):
        model.batched(TOKENS)
