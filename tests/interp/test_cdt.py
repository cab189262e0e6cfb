"""CD-T: exact invariants on random models of every configuration, the linear case, RASP circuits."""

import functools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.interp import L1, LogitDiff, Output, cdt, site_set
from workbench.models import Node, Site, Transformer, TransformerConfig, run_with_cache, run_with_hooks, sites
from workbench.rasp import compile_program
from workbench.rasp import library as lib
from workbench.rasp.compiler import all_inputs

SEQ = 5
BASE = dict(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=SEQ, d_mlp=12)
CONFIGS = {  # between them every switch of TransformerConfig
    "tokens-LN-softmax-causal-gelu": dict(d_vocab=6),
    "vectors-noLN-linear-bidir-attnonly-nopos": dict(d_input=3, d_vocab_out=2, normalization_type=None,
                                                    attention_type="linear", attention_dir="bidirectional",
                                                    attn_only=True, positional_embedding_type="none"),
    "tokens-RMS-softmax-bidir-relu": dict(d_vocab=6, normalization_type="RMS", attention_dir="bidirectional",
                                          act_fn="relu"),
    "tokens-LNPre-linear-causal-gelu_new": dict(d_vocab=6, normalization_type="LNPre", attention_type="linear",
                                                act_fn="gelu_new", use_attn_scale=False),
    "vectors-LN-softmax-causal-attnonly": dict(d_input=3, d_vocab_out=4, attn_only=True),
}
RTOL = 1e-5
LN_MLP = "tokens-LN-softmax-causal-gelu"


def _random_model(config: TransformerConfig, seed: int = 0) -> Transformer:
    """Random weights of order 1 and random biases (a fresh model has zero biases and tiny weights)."""
    model = Transformer(config, key=jax.random.key(seed))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    new = [jnp.asarray(rng.normal(size=l.shape) * (3 / np.sqrt(l.shape[-2]) if l.ndim >= 2 else 0.3), jnp.float32)
           for l in leaves]
    return eqx.combine(jax.tree.unflatten(tree, new), static)


def _inputs(config: TransformerConfig, key, batch: int):
    if config.tokens_in:
        return jax.random.randint(key, (batch, SEQ), 0, config.d_vocab)
    return jax.random.normal(key, (batch, SEQ, config.d_input))


def _names(config: TransformerConfig) -> list[str]:
    skip = ("hook_result", "hook_attn_scores", "hook_pattern", "hook_scale", "hook_embed", "hook_pos_embed")
    names = [n for n in sites.hook_names(config) if not n.endswith(skip)]
    if config.normalization_type == "RMS":
        names = [n for n in names if not n.endswith("hook_normalized")]
    return names


def _rel(a, b) -> float:
    return float(jnp.abs(a - b).max() / jnp.maximum(jnp.abs(b).max(), 1e-30))


@pytest.fixture(scope="module", params=list(CONFIGS))
def case(request):
    """A random model of one configuration (a label of CONFIGS), its input and its clean cache; a test on
    some configurations only names them with `@pytest.mark.parametrize("case", [...], indirect=True)`."""
    return _case(request.param)


@functools.cache
def _case(label: str):
    """Built once per configuration, however pytest orders the tests that use it."""
    config = TransformerConfig(**BASE, **CONFIGS[label])
    model = _random_model(config)
    x = _inputs(config, jax.random.key(3), 1)[0]
    out, cache = eqx.filter_jit(run_with_cache)(model, x, tuple(_names(config)))
    return config, model, x, {**cache, "logits": out}


def _masks(config, members):
    """`site_set` of `members` with every source hook of the model present (all-false where unused), so
    each configuration compiles one decomposition for all source sets."""
    full = {s.name: jnp.zeros_like(m) for s, m in
            ((s, v) for s in [Site(l, c) for l in range(config.n_layers) for c in ("resid_pre", "z", "mlp_out")
                              if not (c == "mlp_out" and config.attn_only)]
             for v in site_set(config, SEQ, [s]).values())}
    return {**full, **site_set(config, SEQ, members)}


def _source_sets(config):
    sets = {"input@1": [Site(0, "resid_pre", position=1)], "head": [Site(0, "z", head=1, position=2)],
            "heads-two-layers": [Site(0, "z", head=0), Site(1, "z", head=1, position=3)]}
    if not config.attn_only:
        sets["mlp"] = [Site(0, "mlp_out", position=4)]
    return sets


# The default rules on every configuration; each rule variant (one compile each) on the LN + MLP one.
RULE_CASES = [pytest.param(label, {}, id=f"{label}-default") for label in CONFIGS] + [
    pytest.param(LN_MLP, rules, id=f"{LN_MLP}-{name}")
    for name, rules in (("fixed", dict(fixed=True)), ("nocleanup", dict(cleanup=False)), ("shapley", dict(shapley=True)))]


@pytest.mark.parametrize("case, rules", RULE_CASES, indirect=["case"])
def test_beta_plus_gamma_is_the_activation_at_every_site(case, rules):
    config, model, x, cache = case
    names = _names(config)
    for label, members in _source_sets(config).items():
        d = cdt.decompose(model, x, _masks(config, members), record=names, **rules)
        assert set(d.beta) == {*names, "logits"}
        bad = {n: _rel(d.beta[n] + d.gamma[n], cache[n]) for n in d.beta}
        assert max(bad.values()) <= RTOL, (label, sorted(bad.items(), key=lambda t: -t[1])[:3])
        assert float(jnp.abs(d.beta["logits"]).max()) > 0, label


def test_every_input_as_source_gives_all_beta_and_no_source_gives_zero(case):
    config, model, x, cache = case
    names = _names(config)
    everything = cdt.decompose(model, x, _masks(config, [Site(0, "resid_pre")]), record=names)
    nothing = cdt.decompose(model, x, _masks(config, []), record=names)
    for n in everything.beta:
        assert _rel(everything.beta[n], cache[n]) <= RTOL, n
        assert float(jnp.abs(everything.gamma[n]).max()) == 0.0, n
        assert float(jnp.abs(nothing.beta[n]).max()) == 0.0, n
        assert _rel(nothing.gamma[n], cache[n]) <= RTOL, n


def test_the_cached_walk_from_the_source_layer_equals_the_reference_walk(case):
    config, model, x, cache = case
    names = _names(config)
    for label, members in _source_sets(config).items():
        masks = _masks(config, members)
        ref = cdt.decompose(model, x, masks, record=names)
        fast = cdt.decompose(model, x, masks, record=names, fast=True)
        for n in fast.beta:
            assert _rel(fast.beta[n], ref.beta[n]) <= 1e-4 or float(jnp.abs(fast.beta[n] - ref.beta[n]).max()) <= \
                RTOL * float(jnp.abs(cache[n]).max()), (label, n)


@pytest.mark.parametrize("case, rules", [(LN_MLP, {}), ("vectors-noLN-linear-bidir-attnonly-nopos", {}),
                                         (LN_MLP, dict(fixed=True))], indirect=["case"])
def test_contributions_batch_the_per_source_decompositions(case, rules):
    """`contributions` (vmapped over sources, grouped by layer; one position each, so decomposed at that
    position up to the next attention) = one `decompose` per source; on two configurations and the held
    pattern (one compile each)."""
    config, model, x, cache = case
    grid = cdt.head_sources(config, SEQ)
    result = cdt.contributions(model, x[None], grid, **rules)  # the beta-logits of each source
    assert result.scores.axes[:3] == ("layer", "head", "pos")
    for layer, head, pos in [(0, 0, 0), (0, 1, 3), (1, 1, 4)]:
        d = cdt.decompose(model, x, _masks(config, [Site(layer, "z", head=head, position=pos)]), **rules)
        got = result.scores.values[layer, head, pos]
        assert float(jnp.abs(got - d.beta["logits"]).max()) <= 1e-4 * float(jnp.abs(cache["logits"]).max())


@pytest.mark.parametrize("case", [LN_MLP], indirect=True)
def test_mean_reference_makes_beta_the_deviation_from_the_mean(case):
    config, model, x, cache = case
    xs = _inputs(config, jax.random.key(4), 8)
    grid = cdt.head_sources(config, SEQ, by_pos=False)
    ref = cdt.mean_reference(model, xs, grid)
    site = Site(0, "z", head=1)
    d = cdt.decompose(model, x, _masks(config, [site]), reference=ref, record=_names(config))
    np.testing.assert_allclose(d.beta[site.name][:, 1], cache[site.name][:, 1] - ref[site.name][:, 1], atol=1e-5)
    np.testing.assert_allclose(d.gamma[site.name][:, 1], ref[site.name][:, 1], atol=1e-5)
    assert _rel(d.beta["logits"] + d.gamma["logits"], cache["logits"]) <= RTOL


def test_linear_model_decomposition_is_the_exact_additive_attribution():
    """Linear attention with a fixed pattern, no LN, no MLP, no biases: beta of each input position is
    the model's output on that position's embedding alone (pattern held), and the parts add up."""
    config = TransformerConfig(**{**BASE, **CONFIGS["vectors-noLN-linear-bidir-attnonly-nopos"],
                                  "positional_embedding_type": "standard"})
    model = _random_model(config)
    zero_bias = lambda m: jax.tree.map(lambda a: jnp.zeros_like(a) if a.ndim == 1 or a.shape == (2, 4) else a, m)
    model = eqx.tree_at(lambda m: [b.attn for b in m.blocks] + [m.unembed], model,
                        [zero_bias(b.attn) for b in model.blocks] + [zero_bias(model.unembed)])
    x = _inputs(config, jax.random.key(5), 1)[0]
    result = cdt.contributions(model, x[None], cdt.input_sources(config, SEQ), fixed=True, cleanup=False)
    parts = result.scores.values  # [pos, seq, vocab_out]
    out, cache = run_with_cache(model, x, [sites.attn(l, "pattern") for l in range(2)] + [sites.resid_pre(0)])
    resid0 = cache[sites.resid_pre(0)]
    for pos in range(SEQ):
        hooks = {sites.resid_pre(0): lambda v, n, pos=pos: jnp.where(jnp.arange(SEQ)[:, None] == pos, resid0, 0.0)}
        hooks |= {sites.attn(l, "pattern"): lambda v, n: cache[n] for l in range(2)}
        alone = run_with_hooks(model, x, hooks)
        np.testing.assert_allclose(parts[pos], alone, rtol=1e-4, atol=1e-5 * float(jnp.abs(out).max()))
    np.testing.assert_allclose(parts.sum(0), out, rtol=1e-4, atol=1e-5 * float(jnp.abs(out).max()))


def test_regression_target_and_bad_sources_are_loud():
    config = TransformerConfig(**BASE, **CONFIGS["vectors-LN-softmax-causal-attnonly"])
    model = _random_model(config)
    xs = _inputs(config, jax.random.key(6), 3)
    result = cdt.contributions(model, xs, cdt.head_sources(config, SEQ), Output(index=1))
    assert result.scores.values.shape == (2, 2, SEQ) and np.isfinite(result.clean)
    with pytest.raises(ValueError, match="attention-only"):
        cdt.mlp_sources(config, SEQ)
    with pytest.raises(ValueError, match="CD-T sources sit on"):
        cdt.contributions(model, xs, cdt.sources.site_grid(config, "q", SEQ))
    with pytest.raises(ValueError, match="choose l1 or dot"):
        cdt.contributions(model, xs, cdt.head_sources(config, SEQ), kind="l2")


def test_target_scores_read_a_head_input():
    config = TransformerConfig(**BASE, **CONFIGS[LN_MLP])
    model = _random_model(config)
    xs = _inputs(config, jax.random.key(7), 4)
    target = site_set(config, SEQ, [Site(1, "q", head=0)])
    result = cdt.contributions(model, xs, cdt.head_sources(config, SEQ, by_pos=False), targets=target)
    values = np.asarray(result.scores.values)
    assert np.all(values[1] == 0.0)  # layer-1 heads come after layer 1's q
    assert np.all((values[0] > 0) & (values[0] <= 1))


# RASP programs: (name, whether CD-T's top heads are the ground truth's). In `reverse` head a0.h0
# computes the length, which reaches the output only through three MLPs and then the query of a3.h0;
# a query-only source gives a head's output no beta (GPT rule: z_beta = A_beta v_beta), so a0.h0
# scores 0 for the output with every rule variant (shapley, cleanup=False and fixed alike).
RASP = [("hist", True), ("frac_prevs", True), ("reverse", False)]


@pytest.fixture(scope="module")
def compiled():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, _ in RASP:
            entry = lib.entry(name)
            out[name] = compile_program(entry.program(entry.max_seq_len), entry.vocab, entry.max_seq_len)
    return out


def _all_inputs(program, name, count=16):
    entry = lib.entry(name)
    n = entry.max_seq_len
    return jnp.stack([program.encode(list(v)) for v in list(all_inputs(entry.vocab, n, min_len=n))[:count]])


@pytest.mark.parametrize("name, recovered", RASP)
def test_rasp_heads_ranked_highest_are_the_ground_truth_heads(compiled, name, recovered):
    program = compiled[name]
    scores = cdt.node_scores(program.model, _all_inputs(program, name), L1())
    truth = {nd for nd in program.circuit.nodes if nd.kind == "attn"}
    ranked = sorted((nd for nd in scores if nd.kind == "attn"), key=lambda nd: -abs(scores[nd]))
    top = set(ranked[:len(truth)])
    assert ranked[0] in truth and scores[ranked[0]] > 0
    if recovered:
        assert top == truth and all(scores[nd] > 0 for nd in truth)
    else:  # a0.h0 scores 0, tied with the empty heads a1.h0 and a2.h0
        assert {nd.name for nd in truth if scores[nd] == 0} == {"a0.h0"}


def test_discovery_returns_the_ground_truth_circuit_of_hist(compiled):
    program = compiled["hist"]
    found = cdt.discover(program.model, _all_inputs(program, "hist"), L1())
    assert set(found.nodes) == set(program.circuit.nodes) - {Node.input()}
    assert {e.name for e in found.edges} == {"a0.h0->m0", "a0.h0->logits", "m0->logits"}
    assert all(s > 0 for s in found.scores.values())
