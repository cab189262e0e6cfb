"""Circuit discovery: the edge-masked forward is exact, faithfulness has its ends, ACDC recovers compiled circuits."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.experiments import circuit_benchmark
from workbench.interp import KL, MSE, path_patching, site_grid, site_set
from workbench.interp import circuits as C
from workbench.models import Circuit, Edge, Node, Site, Transformer, TransformerConfig
from workbench.models._hooks import NO_HOOKS

SEQ = 5
CONFIGS = {
    "LN-mlp-causal": dict(d_vocab=6),
    "noLN-attnonly-bidir": dict(d_vocab=6, normalization_type=None, attn_only=True, attention_dir="bidirectional"),
}


@functools.cache
def _model(label: str) -> Transformer:
    """Random weights of order 1 and random biases (a fresh model's biases are zero)."""
    config = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=SEQ, d_mlp=12, **CONFIGS[label])
    model = Transformer(config, key=jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(0)
    new = [jnp.asarray(rng.normal(size=l.shape) * (3 / np.sqrt(l.shape[-2]) if l.ndim >= 2 else 0.3), jnp.float32)
           for l in leaves]
    return eqx.combine(jax.tree.unflatten(tree, new), static)


def _xs(key: int, batch: int = 6):
    return jax.random.randint(jax.random.key(key), (batch, SEQ), 0, 6)


@pytest.mark.parametrize("label", list(CONFIGS))
def test_all_ones_is_the_model_and_only_the_direct_path_is_embed_to_logits(label):
    model = _model(label)
    lay = C.edge_layout(model.config)
    x = _xs(1)[0]
    masks = jnp.stack([jnp.ones(lay.n_edges), jnp.zeros(lay.n_edges),
                       jnp.zeros(lay.n_edges).at[lay.index(Edge(Node.input(), Node.logits(), "resid"))].set(1.0)])
    zeros = jnp.zeros((len(lay.senders), SEQ, model.config.d_model))
    outs = eqx.filter_jit(jax.vmap(lambda m: C.masked_forward(model, x, m, zeros)[0]))(masks)
    scale = float(jnp.abs(model(x)).max())
    np.testing.assert_allclose(outs[0], model(x), atol=1e-5 * scale)
    bias = sum(b.attn.b_O for b in model.blocks)  # the attention output biases reach every reader

    def readout(resid):
        resid = resid if model.ln_final is None else model.ln_final(resid, NO_HOOKS, None, "ln_final")
        return model.unembed(resid)

    embed = model.embed(x) + model.pos_embed(SEQ)
    np.testing.assert_allclose(outs[1], readout(jnp.zeros_like(embed) + bias), atol=1e-5 * scale)
    np.testing.assert_allclose(outs[2], readout(embed + bias), atol=1e-5 * scale)


def test_one_edge_resampled_is_path_patching_from_a_head_into_a_value():
    model = _model("LN-mlp-causal")
    clean, corrupted = _xs(2), _xs(3)
    metric = MSE()  # L2 to the clean output: it sees every position the query moves
    task = C.circuit_task(model, clean, metric, "resample", corrupted=corrupted)
    lay = task.layout
    edge = Edge(Node.attn(0, 0), Node.attn(1, 1), "v")
    masks = jnp.stack([jnp.ones(lay.n_edges), jnp.ones(lay.n_edges).at[lay.index(edge)].set(0.0)])
    ours = C.evaluate(task, masks)
    senders = site_grid(model.config, "z", SEQ, layers=(0,), by_pos=False)
    result = path_patching(model, clean, corrupted, metric, senders, site_set(model.config, SEQ, [Site(1, "v", head=1)]))
    np.testing.assert_allclose(float(ours[0]), float(result.clean), atol=1e-7)
    np.testing.assert_allclose(float(ours[1]), float(result.patched.values[0, 0]), rtol=1e-4)
    assert abs(float(ours[1] - ours[0])) > 1e-4  # the edge matters, so the agreement says something


@pytest.mark.parametrize("ablation", C.ABLATIONS)
def test_faithfulness_is_one_for_the_model_and_zero_for_the_empty_circuit(ablation):
    model = _model("LN-mlp-causal")
    task = C.circuit_task(model, _xs(4), KL(), ablation, corrupted=_xs(5))
    full = task.layout.complete
    half = full.restrict(full.edges[::2])
    f = C.faithfulness(task, full, full.restrict([]), half)
    assert f[0] == 1.0 and f[1] == 0.0 and np.isfinite(f[2]) and f[2] not in (0.0, 1.0)
    if ablation == "zero":
        with pytest.raises(ValueError, match="one or more Circuit"):
            C.faithfulness(task)
        with pytest.raises(ValueError, match="thresholds >= 0"):
            C.acdc(task, thresholds=())
        with pytest.raises(ValueError, match=r"masks must be \[n, 46\]"):
            C.evaluate(task, jnp.ones(46))
        with pytest.raises(ValueError, match="resample ablation needs corrupted"):
            C.circuit_task(model, _xs(4), KL(), "resample")


def test_completeness_and_minimality_of_the_full_model():
    model = _model("LN-mlp-causal")
    task = C.circuit_task(model, _xs(4), KL(), "mean", reference=_xs(6, 16))
    full = task.layout.complete
    assert C.completeness(task, full, jax.random.key(0)) == 0.0  # C = M: removing K from both is the same
    small = full.restrict(full.edges[:5])
    assert C.completeness(task, small, jax.random.key(0)) > 0.0
    per_edge = C.minimality(task, full)["per_edge"]
    assert len(per_edge) == len(full.edges) and max(per_edge.values()) > 0


def test_roc_auc_of_perfect_reversed_and_tied_scores():
    full = C.edge_layout(_model("noLN-attnonly-bidir").config).complete
    truth = full.restrict(full.edges[:4])
    good = {e: float(e in truth.edge_set) for e in full.edges}
    as_discovery = lambda s: C.Discovery("x", full.with_scores(s), 0.0)
    assert C.edge_roc(as_discovery(good), truth).auc == 1.0
    assert C.edge_roc(as_discovery({e: -s for e, s in good.items()}), truth).auc == 0.0
    assert C.edge_roc(as_discovery({e: 0.0 for e in full.edges}), truth).auc == 0.5
    with pytest.raises(ValueError, match="ground truth"):
        C.roc_from_scores(good, set(), set(full.edges))


def _compiled_task(name: str, ablation: str = "zero", count: int = 48):
    """The circuit-benchmark experiment's task: `count` random inputs of every length, L2 on the real positions."""
    return circuit_benchmark.compiled_task(name, jax.random.key(0), count, ablation)


@pytest.mark.parametrize("name", ["frac_prevs", pytest.param("reverse", marks=pytest.mark.slow)])
def test_acdc_recovers_the_compiled_circuit_with_zero_ablation_and_l2(name):
    program, task = _compiled_task(name)
    found = C.acdc(task)
    assert C.edge_roc(found, program.circuit).auc >= 0.99  # Conmy et al. 2023: 1.000
    # the circuit ACDC keeps at a mid threshold holds every true edge, evaluated under another ablation
    kept = found.circuit_at(C.THRESHOLDS[len(C.THRESHOLDS) // 2])
    assert program.circuit.edge_set <= kept.edge_set
    _, resampled = _compiled_task(name, "resample")  # the zero-ablation circuit under resample ablation
    f = float(C.faithfulness(resampled, kept)[0])
    assert 0.5 < f <= 1.0 + 1e-6, f
