import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.interp import (
    MSE,
    LogitDiff,
    ablation,
    ablation_sources,
    activation_patching,
    attribution_patching,
    path_patching,
    site_grid,
    Loss,
    site_set,
)
from workbench.models import Site, Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites
from workbench.models._hooks import NO_HOOKS

SEQ, BATCH = 6, 4
CONFIG = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=SEQ, d_vocab=7)


@pytest.fixture(scope="module")
def model() -> Transformer:
    return Transformer(CONFIG, key=jax.random.key(0))


@pytest.fixture(scope="module")
def prompts():
    """`(clean, corrupted, metric)`: random token prompts `[4, 6]` and the next-token loss on clean."""
    k_clean, k_corr = jax.random.split(jax.random.key(1))
    clean = jax.random.randint(k_clean, (BATCH, SEQ), 0, CONFIG.d_vocab)
    corrupted = jax.random.randint(k_corr, (BATCH, SEQ), 0, CONFIG.d_vocab)
    targets = clean.at[:, :-1].set(clean[:, 1:]).at[:, -1].set(-1)
    return clean, corrupted, Loss(targets=targets)


@pytest.fixture(scope="module")
def z_grid():
    return site_grid(CONFIG, "z", SEQ)


@pytest.fixture(scope="module")
def z_sweep(model, prompts, z_grid):
    clean, corrupted, metric = prompts
    return activation_patching(model, clean, corrupted, metric, z_grid)


@eqx.filter_jit
def _loop_site(model, clean, source, metric, layer, head, pos):
    """One site patched by index (independent of the instruments' masks), mean metric over prompts."""

    def one(x, src, m):
        hook = {sites.attn(layer, "z"): lambda v, name: v.at[pos, head].set(src[pos, head])}
        return m(run_with_hooks(model, x, hook), model(x))

    return jax.vmap(one)(clean, source, metric).mean()


def test_clean_into_clean_changes_nothing_exactly(model, prompts, z_grid):
    clean, _, metric = prompts
    for grid in (z_grid, site_grid(CONFIG, "pattern", SEQ, by_pos=False)):
        # Sites one after another inside the program: every site gives the clean metric bit for bit.
        result = activation_patching(model, clean, clean, metric, grid, chunk=1)
        assert np.array_equal(np.asarray(result.patched.values), np.full(grid.shape, np.asarray(result.clean)))
    # Vmapped over all sites at once, XLA sums the batched matmuls in another order: float32 rounding.
    result = activation_patching(model, clean, clean, metric, z_grid)
    np.testing.assert_allclose(result.patched.values, np.full(z_grid.shape, result.clean), rtol=2e-6, atol=0)


def test_whole_residual_stream_from_corrupted_reproduces_corrupted_exactly(model, prompts):
    clean, corrupted, metric = prompts
    for component in ("resid_pre", "resid_post"):
        grid = site_grid(CONFIG, component, SEQ, by_pos=False)
        result = activation_patching(model, clean, corrupted, metric, grid)
        assert result.corrupted != result.clean
        assert np.array_equal(np.asarray(result.patched.values), np.full(2, np.asarray(result.corrupted)))
    # and the outputs themselves, patching one example's residual stream at layer 1
    _, cache = run_with_cache(model, corrupted[0], [sites.resid_pre(1)])
    patched = run_with_hooks(model, clean[0], {sites.resid_pre(1): lambda v, n: cache[sites.resid_pre(1)]})
    assert np.array_equal(np.asarray(patched), np.asarray(model(corrupted[0])))


def test_batched_patching_agrees_with_a_loop_of_run_with_hooks(model, prompts, z_sweep):
    clean, corrupted, metric = prompts
    names = [sites.attn(l, "z") for l in range(CONFIG.n_layers)]
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, names))(corrupted)
    looped = np.array([[[_loop_site(model, clean, cache[names[l]], metric, l, jnp.int32(h), jnp.int32(p))
                         for p in range(SEQ)] for h in range(CONFIG.n_heads)] for l in range(CONFIG.n_layers)])
    assert z_sweep.patched.axes == ("layer", "head", "pos") and z_sweep.patched.values.shape == (2, 2, SEQ)
    np.testing.assert_allclose(z_sweep.patched.values, looped, rtol=2e-6, atol=0)
    assert np.abs(np.asarray(z_sweep.effect.values)).max() > 1e-4  # the sites do matter


def test_chunked_sweep_matches_the_full_vmap(model, prompts, z_grid, z_sweep):
    clean, corrupted, metric = prompts
    chunked = activation_patching(model, clean, corrupted, metric, z_grid, chunk=5)  # 5 does not divide 26
    np.testing.assert_allclose(chunked.patched.values, z_sweep.patched.values, rtol=2e-6, atol=0)


def test_ablations_match_hand_written_hooks(model, prompts):
    clean, _, metric = prompts
    grid = site_grid(CONFIG, "attn_out", SEQ, by_pos=False)
    name = sites.attn_out(1)
    _, cache = jax.vmap(lambda x: run_with_cache(model, x, [name]))(clean)
    donors = ablation_sources(cache, "resample", jax.random.key(5))[name]
    donor_rows = [int(np.argmax([np.array_equal(donors[i], cache[name][j]) for j in range(4)])) for i in range(4)]
    assert sorted(donor_rows) == [0, 1, 2, 3] and all(d != i for i, d in enumerate(donor_rows))  # a derangement
    replacements = {"zero": lambda i: jnp.zeros_like(cache[name][i]), "mean": lambda i: cache[name].mean(0),
                    "resample": lambda i: cache[name][donor_rows[i]]}
    for kind, replace in replacements.items():
        result = ablation(model, clean, metric, grid, kind, key=jax.random.key(5))
        expected = np.mean([metric_at(metric, i)(run_with_hooks(model, clean[i], {name: lambda v, n, i=i: replace(i)}),
                                                  model(clean[i])) for i in range(4)])
        np.testing.assert_allclose(result.patched.values[1], expected, rtol=1e-5)
        assert result.corrupted is None


def metric_at(metric, i):
    return jax.tree.map(lambda a: a[i], metric)


def test_path_patching_empty_senders_is_the_identity(model, prompts):
    clean, corrupted, metric = prompts
    empty = site_grid(CONFIG, "z", SEQ, by_pos=False)
    empty = eqx.tree_at(lambda g: g.masks, empty, {n: jnp.zeros_like(m) for n, m in empty.masks.items()})
    receivers = site_set(CONFIG, SEQ, [Site(1, "q", head=0), Site(1, "k", head=1), Site(1, "v"),
                                       Site(1, "resid_post")])
    result = path_patching(model, clean, corrupted, metric, empty, receivers)
    np.testing.assert_allclose(result.patched.values, np.full((2, 2), result.clean), rtol=2e-6, atol=0)


def test_path_patching_direct_path_to_the_logits(model, prompts):
    """Sender head -> final residual stream: the clean run plus the head's change, and nothing else."""
    clean, corrupted, metric = prompts
    senders = site_grid(CONFIG, "z", SEQ, by_pos=False)
    receivers = site_set(CONFIG, SEQ, [Site(1, "resid_post")])
    result = path_patching(model, clean, corrupted, metric, senders, receivers)
    last = sites.resid_post(CONFIG.n_layers - 1)
    expected = np.zeros((2, 2))
    for layer in range(2):
        z = sites.attn(layer, "z")
        for head in range(2):
            values = []
            for i in range(4):
                _, c = run_with_cache(model, clean[i], [z, last])
                _, k = run_with_cache(model, corrupted[i], [z])
                delta = (k[z] - c[z])[:, head] @ model.blocks[layer].attn.W_O[head]
                out = model.unembed(model.ln_final(c[last] + delta, NO_HOOKS, None, "ln_final"))
                values.append(metric_at(metric, i)(out, model(clean[i])))
            expected[layer, head] = np.mean(values)
    np.testing.assert_allclose(result.patched.values, expected, rtol=1e-5)
    assert np.abs(expected - np.asarray(result.clean)).min() > 1e-6


VECTOR = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=SEQ, d_input=3, d_vocab_out=2)


def test_attribution_patching_is_first_order_activation_patching():
    """A small corruption (1e-2 of the input) keeps the linear approximation good: same signs and ranks."""
    model = Transformer(VECTOR, key=jax.random.key(2))
    k_x, k_noise, k_target = jax.random.split(jax.random.key(3), 3)
    clean = jax.random.normal(k_x, (4, SEQ, 3))
    corrupted = clean + 1e-2 * jax.random.normal(k_noise, clean.shape)
    metric = MSE(target=jax.random.normal(k_target, (4, SEQ, 2)))
    grid = site_grid(VECTOR, "z", SEQ)
    exact = np.asarray(activation_patching(model, clean, corrupted, metric, grid).effect.values).ravel()
    approx = np.asarray(attribution_patching(model, clean, corrupted, metric, grid).effect.values).ravel()
    scale = np.abs(exact).max()
    assert scale > 0
    np.testing.assert_allclose(approx, exact, rtol=0, atol=0.05 * scale)
    big = np.abs(exact) > 0.1 * scale
    assert big.sum() >= 4 and np.array_equal(np.sign(approx[big]), np.sign(exact[big]))
    ranks = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    assert np.corrcoef(ranks(approx), ranks(exact))[0, 1] > 0.9


def test_integrated_attribution_adds_up_to_patching_each_whole_hook(model, prompts):
    """With one site per hook the integrated path is the patch itself: the midpoint rule converges to
    activation patching, far closer than the clean-run gradient on this large (random-token) corruption."""
    clean, corrupted, metric = prompts
    grid = site_grid(CONFIG, "z", SEQ, by_head=False, by_pos=False)
    exact = np.asarray(activation_patching(model, clean, corrupted, metric, grid).effect.values)
    ig = np.asarray(attribution_patching(model, clean, corrupted, metric, grid, ig_steps=16).effect.values)
    plain = np.asarray(attribution_patching(model, clean, corrupted, metric, grid).effect.values)
    scale = np.abs(exact).max()
    assert scale > 0
    np.testing.assert_allclose(ig, exact, rtol=0, atol=0.01 * scale)
    assert np.abs(ig - exact).max() < 0.2 * np.abs(plain - exact).max()
    with pytest.raises(ValueError, match="ig_steps"):
        attribution_patching(model, clean, corrupted, metric, grid, ig_steps=-1)


def test_logit_diff_metric_and_normalisation(model, prompts, z_grid):
    clean, corrupted, _ = prompts
    metric = LogitDiff(correct=clean[:, -1], wrong=corrupted[:, -1])
    grid = site_grid(CONFIG, "resid_pre", SEQ, by_pos=False)
    result = activation_patching(model, clean, corrupted, metric, grid)
    np.testing.assert_allclose(result.normalized.values, np.zeros(2), atol=1e-6)  # all of resid_pre: corrupted
    expected = np.mean([model(x)[-1, a] - model(x)[-1, b] for x, a, b in zip(clean, clean[:, -1], corrupted[:, -1])])
    np.testing.assert_allclose(result.clean, expected, rtol=1e-5)


def test_bad_input_is_named(model, prompts, z_grid):
    clean, corrupted, metric = prompts
    with pytest.raises(ValueError, match="same shape"):
        activation_patching(model, clean, corrupted[:, :4], metric, z_grid)
    with pytest.raises(ValueError, match="senders must be heads"):
        path_patching(model, clean, corrupted, metric, site_grid(CONFIG, "resid_pre", SEQ), {})
    with pytest.raises(ValueError, match="resample ablation needs a key"):
        ablation(model, clean, metric, z_grid, "resample")
    with pytest.raises(ValueError, match="no head axis"):
        site_set(CONFIG, SEQ, [Site(0, "resid_pre", head=1)])
