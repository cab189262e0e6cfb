"""The circuit graph type: node and edge names, the complete graph of a config, sub-circuits,
edge-set comparisons, JSON, networkx and the plotly drawing."""

import json

import pytest

from workbench.core import WorkbenchError
from workbench.models import Circuit, Edge, Node, TransformerConfig, circuit_figure

CONFIG = TransformerConfig(n_layers=3, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=5)
ATTN_ONLY = TransformerConfig(n_layers=2, d_model=8, n_heads=3, d_head=4, n_ctx=6, d_vocab=5, attn_only=True)


def expected_edges(config: TransformerConfig, seq: int | None = None, causal: bool = True) -> int:
    """Edge count of the complete graph, counted layer by layer (not by building edges)."""
    L, H, M = config.n_layers, config.n_heads, 0 if config.attn_only else 1
    same = 1 if seq is None else seq  # q, mlp and resid edges: one position
    pairs = 1 if seq is None else (seq * (seq + 1) // 2 if causal else seq * seq)  # k and v: (key, query)
    heads = sum(H * (1 + l * (H + M)) * (same + 2 * pairs) for l in range(L))
    mlps = M * sum(1 + (l + 1) * H + l for l in range(L))
    return heads + same * mlps + same * (1 + L * (H + M))


def test_node_and_edge_names_follow_eap_ig():
    assert [Node.input().name, Node.attn(1, 3).name, Node.mlp(2).name, Node.logits().name] == [
        "input", "a1.h3", "m2", "logits"]  # fmt: skip
    assert Node.attn(1, 3, position=5).name == "a1.h3@5"
    assert Edge(Node.attn(0, 1), Node.attn(1, 0), "q").name == "a0.h1->a1.h0<q>"
    assert Edge(Node.mlp(0), Node.logits(), "resid").name == "m0->logits"
    assert Edge(Node.attn(0, 0), Node.mlp(0), "mlp").name == "a0.h0->m0"


@pytest.mark.parametrize(
    "sender, receiver, kind",
    [
        (Node.input(), Node.mlp(0), "q"),  # an MLP reads through `mlp`
        (Node.attn(0, 0), Node.attn(0, 1), "k"),  # heads of one layer do not read each other
        (Node.mlp(0), Node.attn(0, 0), "q"),  # the MLP of layer 0 writes after its heads read
        (Node.input(0), Node.mlp(0, 1), "mlp"),  # an MLP stays at its position
        (Node.input(), Node.attn(0, 0, 2), "v"),  # positions on both ends or neither
    ],
)
def test_edges_that_the_residual_stream_does_not_allow_are_refused(sender, receiver, kind):
    with pytest.raises(ValueError):
        Edge(sender, receiver, kind)


@pytest.mark.parametrize("config", [CONFIG, ATTN_ONLY])
def test_complete_graph_has_every_edge_the_residual_stream_allows(config):
    full = Circuit.complete(config)
    assert len(full.edges) == expected_edges(config)
    assert len(full.nodes) == 2 + config.n_layers * (config.n_heads + (0 if config.attn_only else 1))
    assert all(e.sender.sublayer < e.receiver.sublayer for e in full.edges)
    assert any(n.kind == "mlp" for n in full.nodes) == (not config.attn_only)
    first = Node.attn(0, 0)
    assert {e.sender for e in full.edges if e.receiver == first} == {Node.input()}


@pytest.mark.parametrize("direction", ["causal", "bidirectional"])
def test_complete_graph_per_position(direction):
    config = TransformerConfig(n_layers=2, d_model=8, n_heads=2, d_head=4, n_ctx=6, d_vocab=5, attention_dir=direction)
    full = Circuit.complete(config, per_position=True, seq=3)
    assert len(full.edges) == expected_edges(config, seq=3, causal=direction == "causal")
    reads_later = [e for e in full.edges if e.sender.position > e.receiver.position]
    assert bool(reads_later) == (direction == "bidirectional")
    assert all(e.kind in ("k", "v") for e in full.edges if e.sender.position != e.receiver.position)
    with pytest.raises(ValueError, match="needs seq"):
        Circuit.complete(config, per_position=True)


def test_equality_is_by_value_and_order_free():
    full = Circuit.complete(CONFIG)
    shuffled = Circuit(tuple(reversed(full.nodes)), tuple(reversed(full.edges)))
    assert shuffled == full and hash(shuffled) == hash(full)
    assert full.restrict(full.edges[1:]) != full


def scored(full: Circuit) -> Circuit:
    return full.with_scores({e: float(i % 7) - 3.0 for i, e in enumerate(full.edges)})


def test_restrict_subgraph_and_overlap():
    full = scored(Circuit.complete(CONFIG))
    top = full.top(10)
    assert len(top.edges) == 10 and top.is_subgraph_of(full) and not full.is_subgraph_of(top)
    assert min(top.scores.values()) >= max(s for e, s in full.scores.items() if e not in top.edge_set)
    above = full.above(2.0)
    assert set(above.edges) == {e for e, s in full.scores.items() if s >= 2.0}
    assert set(above.nodes) == {n for e in above.edges for n in (e.sender, e.receiver)}
    heads = full.subgraph([n for n in full.nodes if n.kind in ("input", "attn")])
    assert {e.kind for e in heads.edges} == {"q", "k", "v"} and len(heads.scores) == len(heads.edges)

    overlap = top.overlap(above, within=full)
    assert overlap.tp == len(top.edge_set & above.edge_set)
    assert overlap.tp + overlap.fp + overlap.fn + overlap.tn == len(full.edges)
    assert above.overlap(above, within=full).fpr == 0.0 and above.overlap(above, within=full).tpr == 1.0
    with pytest.raises(ValueError, match="not in the circuit"):
        top.restrict(full.edges)


def test_json_round_trip_keeps_data_and_scores():
    full = scored(Circuit.complete(CONFIG, per_position=True, seq=2))
    part = full.above(0.0)
    node = part.nodes[1]
    edge = part.edges[0]
    part = Circuit(part.nodes, part.edges, node_data={node: {"exprs": ["x"], "neurons": {"x": [0, 3]}}},
                   edge_data={edge: {"sops": ["tokens"]}}, scores=part.scores)  # fmt: skip
    text = json.dumps(part.to_json())
    back = Circuit.from_json(json.loads(text))
    assert back == part
    assert back.node_data[node] == {"exprs": ("x",), "neurons": {"x": (0, 3)}}
    assert back.scores == part.scores and len(back.scores) == len(part.edges)
    assert json.dumps(back.to_json()) == text


def test_from_json_rejects_what_it_did_not_write():
    obj = Circuit.complete(ATTN_ONLY).to_json()
    with pytest.raises(WorkbenchError, match="expected format"):
        Circuit.from_json({"nodes": obj["nodes"], "edges": obj["edges"]})
    bad = json.loads(json.dumps(obj))
    bad["nodes"][1]["name"] = "a0.h7"
    with pytest.raises(WorkbenchError, match="has the fields of"):
        Circuit.from_json(bad)
    bad = json.loads(json.dumps(obj))
    bad["edges"][0]["kind"] = "mlp"
    with pytest.raises(WorkbenchError, match="kind"):
        Circuit.from_json(bad)


def test_networkx_and_figure():
    full = scored(Circuit.complete(ATTN_ONLY))
    g = full.to_networkx()
    assert g.number_of_nodes() == len(full.nodes) and g.number_of_edges() == len(full.edges)
    assert set(g["input"]["a1.h2"]) == {"q", "k", "v"}
    assert g["input"]["a1.h2"]["k"]["score"] == full.scores[Edge(Node.input(), Node.attn(1, 2), "k")]
    assert g.nodes["a1.h2"]["layer"] == 1 and g.nodes["a1.h2"]["kind"] == "attn"
    fig = circuit_figure(full, title="complete")
    assert {t["name"] for t in fig["data"]} == {"input", "attn", "mlp", "logits"}
    assert len(fig["layout"]["annotations"]) == len({(e.sender, e.receiver) for e in full.edges})
