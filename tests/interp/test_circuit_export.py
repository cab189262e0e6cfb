"""Circuit export: JSON round trip, DOT text, EAP-IG's graph format both ways (its writer's output and a file
written by hand to its documented schema)."""

import json
import pathlib

import pytest

from workbench.core.errors import WorkbenchError
from workbench.interp import circuits as C
from workbench.models import Circuit, Edge, Node, TransformerConfig

CONFIG = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=5, d_vocab=6)
HAND_WRITTEN = pathlib.Path(__file__).parent / "data" / "eap_ig_1layer.json"


def _scored_circuit() -> Circuit:
    full = Circuit.complete(CONFIG)
    edges = full.edges[::3]
    return full.restrict(edges).with_scores({e: 0.1 * i - 1.0 for i, e in enumerate(edges)})


def test_a_scored_circuit_round_trips_through_json_and_eap_ig():
    circuit = _scored_circuit()
    assert Circuit.from_json(json.loads(json.dumps(circuit.to_json()))) == circuit
    written = json.loads(json.dumps(C.to_eap_ig(circuit, CONFIG.n_layers, CONFIG.n_heads, CONFIG.d_model)))
    assert len(written["edges"]) == len(Circuit.complete(CONFIG).edges)  # EAP-IG lists its complete graph
    back, scored = C.from_eap_ig(written)
    assert back == circuit and back.scores == circuit.scores
    assert set(scored.edges) == set(Circuit.complete(CONFIG).edges)


def test_an_attention_only_circuit_gets_eap_igs_mlp_nodes_out_of_graph():
    config = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=5, d_vocab=6, attn_only=True)
    circuit = Circuit.complete(config)
    written = C.to_eap_ig(circuit, 2, 2, 8)
    assert written["nodes"]["m0"] == {"in_graph": False} and not written["edges"]["m0->logits"]["in_graph"]
    assert C.from_eap_ig(written)[0] == circuit.with_scores({e: 0.0 for e in circuit.edges})  # EAP-IG scores every edge


def test_a_hand_written_eap_ig_graph_reads_as_documented():
    circuit, scored = C.from_eap_ig(json.loads(HAND_WRITTEN.read_text()))
    assert {e.name for e in circuit.edges} == {"input->a0.h0<q>", "input->a0.h0<k>", "a0.h0->logits"}
    assert circuit.scores[Edge(Node.attn(0, 0), Node.logits(), "resid")] == 1.5
    assert len(scored.edges) == 8 and scored.scores[Edge(Node.input(), Node.logits(), "resid")] == 0.02
    rewritten = C.to_eap_ig(circuit, 1, 1, 8, scores=scored.scores)
    assert rewritten == json.loads(HAND_WRITTEN.read_text())


def test_bad_eap_ig_graphs_are_one_clear_error():
    good = json.loads(HAND_WRITTEN.read_text())
    broken = [{**good, "edges": {"a0.h0->a1.h0": {"score": 0, "in_graph": True}}},
              {**good, "edges": {"a0.h0->blah": {"score": 0, "in_graph": True}}},
              {**good, "cfg": {**good["cfg"], "parallel_attn_mlp": True}},
              {k: v for k, v in good.items() if k != "cfg"}]
    for obj in broken:
        with pytest.raises(WorkbenchError, match="not an EAP-IG graph"):
            C.from_eap_ig(obj)
    with pytest.raises(ValueError, match="outside a 1-layer"):
        C.to_eap_ig(_scored_circuit(), 1, 1, 8)


def test_dot_text_names_every_node_and_edge():
    circuit = _scored_circuit()
    dot = C.to_dot(circuit, title="found")
    assert dot.startswith("digraph circuit {") and dot.rstrip().endswith("}")
    assert all(f'"{n.name}";' in dot for n in circuit.nodes)
    assert sum(" -> " in line for line in dot.splitlines()) == len(circuit.edges)
    assert "penwidth=5.00" in dot  # the largest |score|
