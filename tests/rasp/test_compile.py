"""Compiled library programs: exhaustive agreement with the interpreter, sizes, residual labels,
hooks, padding and the TransformerLens export."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench.models import Circuit, Edge, circuit_figure, run_with_cache, run_with_hooks, sites
from workbench.rasp import agreement, all_inputs, compile_program, outputs_agree, tokens, trace
from workbench.rasp import library as lib
from workbench.rasp.language import is_numerical


@pytest.fixture(scope="module")
def compiled():
    """Every library program, compiled once for this module."""
    return {e.name: compile_program(e.program(), e.vocab, e.max_seq_len) for e in lib.LIBRARY}


@pytest.mark.parametrize("name", [e.name for e in lib.LIBRARY])
def test_library_program_agrees_with_interpreter_on_every_input(compiled, name):
    c = compiled[name]
    assert c.validation.startswith("exhaustive")
    result = agreement(c)
    e = lib.entry(name)
    assert result.n_inputs == sum(len(e.vocab) ** n for n in range(1, e.max_seq_len + 1))
    assert result.n_agree == result.n_inputs, result.mismatches


def test_agreement_check_can_fail(compiled):
    """Perturbing one attention weight of reverse must show up as disagreements."""
    c = compiled["reverse"]
    broken = eqx.tree_at(lambda m: m.blocks[3].attn.W_O, c.model, 0.5 * c.model.blocks[3].attn.W_O)
    result = agreement(dataclasses.replace(c, model=broken))
    assert result.n_agree < result.n_inputs


def test_layer_counts_match_tracr():
    """tracr: reverse over {1,2,3}, max_seq_len 5 -> 4 layers, 1 head each; frac_prevs(token == "x")
    over {w,x,y,z}, max_seq_len 5 -> 2 layers (read off ACDC's ground-truth edge lists)."""
    reverse = compile_program(lib.make_reverse(tokens), {1, 2, 3}, 5)
    assert (reverse.model.config.n_layers, reverse.model.config.n_heads) == (4, 1)
    assert [h.layer for h in reverse.layout.heads] == [0, 3]
    frac = compile_program(lib.make_frac_prevs(tokens == "x"), {"w", "x", "y", "z"}, 5)
    assert frac.model.config.n_layers == 2
    assert [(h.layer, h.head) for h in frac.layout.heads] == [(1, 0)]
    assert [m.layer for m in frac.layout.mlps] == [0]


@eqx.filter_jit
def final_resid(model, tokens):
    """`resid_post` of the last layer for a batch of token sequences, via `run_with_cache`."""
    name = sites.resid_post(model.config.n_layers - 1)
    return jax.vmap(lambda x: run_with_cache(model, x, [name])[1][name])(tokens)


def test_residual_labels_decode_every_intermediate(compiled):
    """Each SOp's residual block, read after the last layer, equals the interpreter's value of it."""
    for name in ("reverse", "shuffle_dyck2", "most_freq"):
        c = compiled[name]
        assert len(c.residual_labels) == c.model.config.d_model
        inputs = list(all_inputs(c.vocab, c.max_seq_len))[::5]
        resid = final_resid(c.model, jnp.stack([c.encode(xs, pad_to=c.max_seq_len) for xs in inputs]))
        for xs, r in zip(inputs, np.asarray(resid)):
            read = c.decode_residual(r, len(xs))
            values = trace(c.program, xs)
            for sop in c.graph.sops:
                label = c.graph.label(sop)
                assert outputs_agree(values[sop.uid], read[label], is_numerical(sop)), (name, label, xs)


def test_run_with_cache_sees_the_usual_hooks_and_the_compiled_attention(compiled):
    c = compiled["reverse"]
    xs = [1, 2, 3, 3]
    names = [sites.attn(3, "pattern"), sites.mlp_out(0), sites.resid_post(3)]
    logits, cache = run_with_cache(c.model, c.encode(xs), names)
    assert c.decode(logits) == [3, 3, 2, 1]
    pattern = np.asarray(cache[sites.attn(3, "pattern")])[0]  # [query, key], position 0 is BOS
    n = len(xs)
    for q in range(1, n + 1):
        assert pattern[q, n + 1 - q] == pytest.approx(1.0, abs=1e-6)  # query i reads key n-1-i
    assert pattern[0, 0] == pytest.approx(1.0, abs=1e-6)  # BOS reads BOS


def test_ablating_a_circuit_head_breaks_the_output(compiled):
    c = compiled["reverse"]
    xs = [1, 2, 3]
    zero = lambda v, name: 0 * v  # noqa: E731
    logits = run_with_hooks(c.model, c.encode(xs), {sites.attn(3, "z"): zero})
    assert c.decode(logits) != c(xs)


def test_padding_does_not_change_outputs(compiled):
    """Same-length batches (no padding) and one batch padded to the longest input agree."""
    c = compiled["most_freq"]
    inputs = list(all_inputs(c.vocab, c.max_seq_len))[::3]
    padded = c.run_batch(inputs)
    for n in (2, 4):
        same = [xs for xs in inputs if len(xs) == n]
        unpadded = c.run_batch(same)
        assert unpadded == [p for xs, p in zip(inputs, padded) if len(xs) == n]


def test_encode_rejects_bad_input(compiled):
    c = compiled["reverse"]
    with pytest.raises(ValueError, match="not in the compiled vocab"):
        c.encode([1, 7])
    with pytest.raises(ValueError, match="max_seq_len=5"):
        c.encode([1] * 6)


def test_circuit_of_reverse(compiled):
    c = compiled["reverse"]
    g = c.circuit
    assert {n.name for n in g.nodes} == {"input", "a0.h0", "m0", "m1", "m2", "a3.h0", "logits"}
    assert c.sites["length"] == ("a0.h0", "m0")
    assert c.sites["opp_idx"] == ("m1",) and c.sites["opp_idx-1"] == ("m2",) and c.sites["reverse"] == ("a3.h0",)
    expected = {
        ("input", "a0.h0"), ("a0.h0", "m0"), ("m0", "m1"), ("input", "m1"), ("m1", "m2"),
        ("m2", "a3.h0"), ("input", "a3.h0"), ("a3.h0", "logits"),
    }  # fmt: skip
    assert {(e.sender.name, e.receiver.name) for e in g.edges} == expected
    kinds = {(e.sender.name, e.receiver.name): [] for e in g.edges}
    for e in g.edges:
        kinds[e.sender.name, e.receiver.name].append(e.kind)
    assert sorted(kinds["input", "a3.h0"]) == ["k", "v"]
    assert kinds["m2", "a3.h0"] == ["q"]
    assert g.edge_data[Edge(g.node("m2"), g.node("a3.h0"), "q")] == {"sops": ("opp_idx-1",)}


def test_ground_truth_is_a_subgraph_of_the_complete_graph_and_survives_json(compiled):
    for name, c in compiled.items():
        complete = Circuit.complete(c.model.config)
        assert type(c.circuit) is type(complete) is Circuit
        assert c.circuit.is_subgraph_of(complete), name
        assert not complete.is_subgraph_of(c.circuit), name
        assert Circuit.from_json(json.loads(json.dumps(c.circuit.to_json()))) == c.circuit, name


def test_circuit_figure_is_plotly_json(compiled):
    circuit = compiled["most_freq"].circuit
    fig = circuit_figure(circuit, title="most_freq")
    names = {t["name"] for t in fig["data"]}
    assert names == {"input", "attn", "mlp", "logits"}
    assert len(fig["layout"]["annotations"]) == len({(e.sender, e.receiver) for e in circuit.edges})


def test_transformer_lens_export(compiled):
    pytest.importorskip("transformer_lens", reason="needs the lens extra")
    from workbench import lens

    for name in ("reverse",):
        c = compiled[name]
        bridge = lens.to_transformer_lens(c.model)
        xs = list(c.vocab)[:3]
        report = lens.compare_caches(c.model, bridge, c.encode(xs))
        assert report.max_rel < 1e-5, report  # logits and every hook both libraries fire
        tl_logits, _ = lens.run_tl_with_cache(bridge, c.model, c.encode(xs))
        assert outputs_agree(c(xs), c.decode(tl_logits), c.numerical)
