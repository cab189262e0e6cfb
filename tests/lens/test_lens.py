"""TransformerLens 4.x bridge: hook parity on random configurations, exact round trips, errors.

Relative error (see `workbench.lens.HookError`): per hook, `max |tl - wb| / max(max |wb|, 1e-30)`
over the finite entries (non-finite entries, i.e. masked `-inf` scores, must be equal).
"""

import dataclasses
import importlib.metadata
import math
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("transformer_lens", reason="needs the lens extra: pip install -e '.[lens]'")
import torch  # noqa: E402  (installed with transformer_lens)
from transformer_lens import TransformerBridge, TransformerBridgeConfig  # noqa: E402

from workbench import lens  # noqa: E402
from workbench.models import Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites  # noqa: E402

TOL = 1e-5
N_CONFIGS = 16
OPTIONS = {
    "normalization_type": ["LN", "LNPre", "RMS", None],
    "mlp": ["attn_only", "relu", "gelu", "gelu_new"],
    "positional_embedding_type": ["standard", "none"],
    "attention_dir": ["causal", "bidirectional"],
    "d_vocab_out": ["same", "other"],
    "inputs": ["tokens", "vectors"],
}


def draw_cases(seed: int = 0, n: int = N_CONFIGS) -> list[tuple[TransformerConfig, np.ndarray]]:
    """`n` (config, input) pairs; each option value appears in at least `n // len(values)` configs."""
    rng = np.random.default_rng(seed)
    columns = {k: rng.permutation(np.resize(np.arange(len(v)), n)) for k, v in OPTIONS.items()}
    cases = []
    for i in range(n):
        pick = {k: OPTIONS[k][columns[k][i]] for k in OPTIONS}
        tokens = pick["inputs"] == "tokens"
        d_vocab = int(rng.integers(3, 20))
        n_ctx = int(rng.integers(2, 13))
        config = TransformerConfig(
            n_layers=int(rng.integers(1, 4)),
            d_model=int(rng.integers(4, 25)),
            n_heads=int(rng.integers(1, 4)),
            d_head=int(rng.integers(1, 9)),
            n_ctx=n_ctx,
            d_vocab=d_vocab if tokens else None,
            d_input=None if tokens else int(rng.integers(1, 6)),
            d_vocab_out=int(rng.integers(2, 20)) if pick["d_vocab_out"] == "other" or not tokens else None,
            d_mlp=None if rng.random() < 0.3 else int(rng.integers(4, 40)),
            attn_only=pick["mlp"] == "attn_only",
            act_fn="gelu" if pick["mlp"] == "attn_only" else pick["mlp"],
            normalization_type=pick["normalization_type"],
            positional_embedding_type=pick["positional_embedding_type"],
            attention_dir=pick["attention_dir"],
            eps=float(rng.choice([1e-5, 1e-3])),
        )
        seq = int(rng.integers(2, n_ctx + 1))
        x = rng.integers(0, d_vocab, seq) if tokens else rng.normal(size=(seq, config.d_input)).astype(np.float32)
        cases.append((config, x))
    return cases


def random_model(config: TransformerConfig, seed: int) -> Transformer:
    """Random weights everywhere, norm weights and biases included (scaled to keep activations O(1))."""
    rng = np.random.default_rng(seed)
    template = eqx.filter_eval_shape(Transformer, config, key=jax.random.key(0))
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    new = []
    for path, leaf in flat:
        name = jax.tree_util.keystr(path)
        z = rng.normal(size=leaf.shape)
        if name.endswith(".w"):  # norm weights
            value = 1.0 + 0.5 * z
        elif name.endswith((".b", "b_Q", "b_K", "b_V", "b_O", "b_in", "b_out", "b_U")):
            value = 0.5 * z
        elif name.endswith(("W_E", "W_pos")):
            value = z
        else:  # W_Q, W_K, W_V, W_O, W_in, W_out, W_U: fan-in is the second-to-last axis
            value = z / math.sqrt(leaf.shape[-2])
        new.append(jnp.asarray(value, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, new)


CASES = draw_cases()


@dataclasses.dataclass
class Case:
    config: TransformerConfig
    x: jax.Array
    model: Transformer
    bridge: object
    wb: tuple  # (logits, cache) of the workbench
    tl: tuple  # (logits, cache) of TransformerLens, batch axis removed


@pytest.fixture(scope="module")
def exported() -> list[Case]:
    out = []
    for i, (config, x) in enumerate(CASES):
        model, x = random_model(config, seed=i), jnp.asarray(x)
        bridge = lens.to_transformer_lens(model)
        wb = eqx.filter_jit(run_with_cache)(model, x)
        out.append(Case(config, x, model, bridge, wb, lens.run_tl_with_cache(bridge, model, x)))
    return out


def test_cases_cover_every_option():
    assert len(CASES) >= 12
    seen = {
        "normalization_type": {c.normalization_type for c, _ in CASES},
        "mlp": {"attn_only" if c.attn_only else c.act_fn for c, _ in CASES},
        "positional_embedding_type": {c.positional_embedding_type for c, _ in CASES},
        "attention_dir": {c.attention_dir for c, _ in CASES},
        "d_vocab_out": {"same" if c.d_vocab_out is None else "other" for c, _ in CASES if c.tokens_in},
        "inputs": {"tokens" if c.tokens_in else "vectors" for c, _ in CASES},
    }
    assert seen == {k: set(v) for k, v in OPTIONS.items()}


def test_logits_and_every_shared_hook_agree(exported):
    for case in exported:
        report = lens.compare(case.config, case.wb, case.tl)
        # Every workbench hook is compared except attn.hook_result (never fired by TL 4.3's native
        # bridge) and, for vector inputs, hook_embed (computed outside the bridge).
        names = sites.hook_names(case.config)
        expected = {n for n in names if not n.endswith("attn.hook_result")}
        if not case.config.tokens_in:
            expected.discard(sites.EMBED)
        assert set(report.errors) == expected | {"logits"}, case.config
        assert set(report.workbench_only) == set(names) - expected
        assert report.failures(TOL) == {}, f"{case.config}\n{report}"


def test_random_weights_are_not_degenerate(exported):
    """The parity test means something: some attention is sharp, activations are O(1)."""
    sharpest = max(float(np.max(case.wb[1][sites.attn(0, "pattern")])) for case in exported)
    assert sharpest > 0.9
    for case in exported:
        assert 0.1 < float(np.abs(case.wb[1][sites.resid_post(0)]).max()) < 100, case.config


def test_compare_caches_runs_both_models(exported):
    case = exported[0]
    report = lens.compare_caches(case.model, case.bridge, case.x)
    assert report.errors == lens.compare(case.config, case.wb, case.tl).errors


def _leaves_equal(a: Transformer, b: Transformer) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    same_tree = jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    return same_tree and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb))


def test_round_trip_workbench_tl_workbench_is_exact(exported):
    for case in exported:
        model, config = case.model, case.config
        assert _leaves_equal(lens.from_transformer_lens(case.bridge, config), model), config
        assert _leaves_equal(lens.from_transformer_lens(case.bridge.state_dict(), config), model)
        assert _leaves_equal(lens.from_transformer_lens(lens.to_state_dict(model), config), model)
        assert _leaves_equal(lens.from_transformer_lens(lens.to_state_dict(model, as_torch=True), config), model)


def test_round_trip_tl_workbench_tl_is_exact():
    """A TransformerLens-native model (TL's own random init) survives the trip through the workbench."""
    for norm in ("LN", "LNPre", "RMS", None):
        cfg = TransformerBridgeConfig(
            n_layers=2, d_model=12, n_heads=3, d_head=4, d_mlp=20, n_ctx=9, d_vocab=11, d_vocab_out=7,
            act_fn="gelu_new", normalization_type=norm, seed=3,
        )  # fmt: skip
        bridge = TransformerBridge.boot_native(cfg)
        model = lens.from_transformer_lens(bridge)  # config read from bridge.cfg
        assert model.config.normalization_type == norm and model.config.vocab_out == 7
        before, after = bridge.state_dict(), lens.to_transformer_lens(model).state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_legacy_checkpoint_with_buffers_loads(exported):
    """A HookedTransformer-style dict (with the mask/IGNORE buffers) loads; the buffers are dropped."""
    case = exported[0]
    state = lens.to_state_dict(case.model, as_torch=True)
    n_ctx = case.config.n_ctx
    for l in range(case.config.n_layers):
        state[f"blocks.{l}.attn.mask"] = torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool))
        state[f"blocks.{l}.attn.IGNORE"] = torch.tensor(-float("inf"))
    assert _leaves_equal(lens.from_transformer_lens(state, case.config), case.model)


def test_vector_inputs_via_start_at_layer(exported):
    """Feeding the full residual at block 0 (HookedTransformer's start_at_layer) gives the same logits."""
    vector_cases = [case for case in exported if not case.config.tokens_in]
    assert vector_cases
    for case in vector_cases:
        resid = torch.tensor(np.asarray(case.wb[1][sites.resid_pre(0)]))[None]
        with torch.no_grad():
            logits = case.bridge(resid, start_at_layer=0).numpy()[0]
        assert lens.hook_error(logits, case.wb[0]).rel <= TOL, case.config


def test_interventions_agree(exported):
    """The same edit through `run_with_hooks` (workbench) and `bridge.run_with_hooks` (TL) agrees."""
    case = next(c for c in exported if c.config.n_layers >= 2 and c.config.n_heads >= 2)

    def tl_zero_head(value, hook):  # hook_z [batch, seq, head, d_head]
        value[:, :, 0] = 0.0
        return value

    edits = {
        sites.attn(0, "pattern"): (lambda v, n: 0.5 * v, lambda v, hook: 0.5 * v),
        sites.attn(0, "z"): (lambda v, n: v.at[:, 0].set(0.0), tl_zero_head),
        sites.attn(0, "q"): (lambda v, n: 2.0 * v, lambda v, hook: 2.0 * v),
        sites.resid_pre(1): (lambda v, n: 2.0 * v, lambda v, hook: 2.0 * v),
    }
    for name, (wb_fn, tl_fn) in edits.items():
        wb = run_with_hooks(case.model, case.x, {name: wb_fn})
        assert float(jnp.abs(wb - case.wb[0]).max()) > 1e-2, name  # the edit matters
        with torch.no_grad():
            tl = case.bridge.run_with_hooks(lens.tl_input(case.model, case.x), fwd_hooks=[(name, tl_fn)])
        assert lens.hook_error(tl.numpy()[0], wb).rel <= TOL, name


# --- TL 4.3 semantics that differ from HookedTransformer. These pin the behaviour of the installed
# --- TransformerLens: if one fails after an upgrade, update `workbench.lens` (and its docstring).


def test_tl_hook_attn_scores_is_the_pattern_and_our_scores_match_tl_q_k(exported):
    for case in exported:
        wb, tl = case.wb[1], case.tl[1]
        for l in range(case.config.n_layers):
            scores = sites.attn(l, "attn_scores")
            assert lens.hook_error(tl[scores], wb[sites.attn(l, "pattern")]).rel <= TOL
            # the pre-softmax scores from TL's own q, k and attention scale
            q, k = tl[sites.attn(l, "q")], tl[sites.attn(l, "k")]
            ref = np.einsum("qhd,khd->hqk", q, k) / case.bridge.blocks[l].attn.original_component.scale
            if case.config.attention_dir == "causal":
                ref = np.where(np.tril(np.ones(ref.shape[1:], bool)), ref, -np.inf)
            assert lens.hook_error(ref, wb[scores]).rel <= TOL, case.config


def test_tl_ln_hook_normalized_is_before_the_affine(exported):
    ln_cases = [case for case in exported if case.config.normalization_type == "LN"]
    assert ln_cases
    for case in ln_cases:
        name = sites.norm(0, "ln1", "normalized")
        w, b = np.asarray(case.model.blocks[0].ln1.w), np.asarray(case.model.blocks[0].ln1.b)
        tl, wb = case.tl[1][name], case.wb[1][name]
        assert lens.hook_error(tl, wb).rel > 1e-2  # raw: different quantities
        assert lens.hook_error(tl * w + b, wb).rel <= TOL


# --- errors


def _tiny(**kw) -> TransformerConfig:
    return TransformerConfig(**{**dict(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=5), **kw})


def test_unsupported_configs_raise_one_clear_error():
    with pytest.raises(ValueError, match="attention_type='linear'"):
        lens.to_transformer_lens(random_model(_tiny(attention_type="linear"), seed=0))
    with pytest.raises(ValueError, match="use_attn_scale=False"):
        lens.to_state_dict(random_model(_tiny(use_attn_scale=False), seed=0))


def test_unscaled_attention_with_d_head_1_is_exported():
    model = random_model(_tiny(use_attn_scale=False, d_head=1, n_heads=3), seed=0)
    report = lens.compare_caches(model, lens.to_transformer_lens(model), jnp.array([0, 3, 1, 4]))
    assert report.failures(TOL) == {}


def test_mismatched_config_lists_every_disagreeing_field():
    bridge = lens.to_transformer_lens(random_model(_tiny(), seed=0))
    with pytest.raises(ValueError, match=r"d_mlp: bridge 32, config 16.*normalization_type: bridge 'LN', config 'RMS'"):
        lens.from_transformer_lens(bridge, _tiny(d_mlp=16, normalization_type="RMS"))


def test_state_dict_that_does_not_fit_the_config():
    state = lens.to_state_dict(random_model(_tiny(normalization_type="LNPre"), seed=0))
    with pytest.raises(ValueError, match=r"missing \['blocks.0.ln1.b'"):
        lens.from_transformer_lens(state, _tiny())
    with pytest.raises(ValueError, match=r"wrong shape: blocks.0.mlp.W_in \(8, 32\) \(expected \(8, 16\)\)"):
        lens.from_transformer_lens(state, _tiny(normalization_type="LNPre", d_mlp=16))
    with pytest.raises(ValueError, match="nonzero pos_embed.W_pos"):
        lens.from_transformer_lens(state, _tiny(normalization_type="LNPre", positional_embedding_type="none"))
    with pytest.raises(ValueError, match="needs the TransformerConfig"):
        lens.from_transformer_lens(state)
    with pytest.raises(ValueError, match=r"unexpected \['blocks.0.mlp.W_gate'\]"):
        gated = {**state, "blocks.0.mlp.W_gate": state["blocks.0.mlp.W_in"]}
        lens.from_transformer_lens(gated, _tiny(normalization_type="LNPre"))


def test_bridges_with_features_the_workbench_lacks_are_refused():
    boot, Config = TransformerBridge.boot_native, TransformerBridgeConfig
    base = dict(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=5, act_fn="gelu")
    for extra, match in [
        (dict(positional_embedding_type="rotary"), "rotary"),
        (dict(gated_mlp=True, act_fn="silu"), "gated_mlp"),
        (dict(act_fn="silu"), "act_fn='silu'"),
        (dict(normalization_type="RMSPre"), "RMSPre"),
        (dict(n_key_value_heads=1), "grouped-query"),
        (dict(attn_scores_soft_cap=30.0), "soft-capped scores"),
        (dict(attn_scale=3.0), "attn_scale=3.0"),
    ]:
        with pytest.raises(ValueError, match=match):
            lens.from_transformer_lens(boot(Config(**{**base, **extra})))


def test_wrong_input_is_refused():
    model = random_model(_tiny(), seed=0)
    with pytest.raises(ValueError, match="int tokens"):
        lens.tl_input(model, jnp.ones((3, 2)))


def test_import_workbench_does_not_import_torch():
    code = "import sys, workbench, workbench.models, workbench.lens; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_transformer_lens_is_4x():
    assert importlib.metadata.version("transformer-lens").split(".")[0] == "4"
