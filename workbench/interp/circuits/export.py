"""Circuits out and in: graphviz DOT text, and EAP-IG's JSON graph format both ways.

EAP-IG (Hanna et al.) writes a graph as `{"cfg": {n_layers, n_heads, parallel_attn_mlp, d_model},
"nodes": {name: {"in_graph": bool, "score"?: float}}, "edges": {name: {"score": float,
"in_graph": bool}}}` with every edge of its complete graph listed; node and edge names are the
ones `Circuit` uses (`a0.h1->a1.h0<q>`, `m0->logits`). Its graph always has an MLP per layer, so an
attention-only model's MLP nodes and their edges are written with `in_graph: false`.
"""

import re
from collections.abc import Mapping
from typing import Any

from workbench.core.errors import WorkbenchError
from workbench.models import Circuit, Edge, Node

_KIND_COLOURS = {"q": "#1f77b4", "k": "#2ca02c", "v": "#d62728", "mlp": "#7f7f7f", "resid": "#000000"}
_NODE = re.compile(r"^(?:input|logits|m(\d+)|a(\d+)\.h(\d+))$")
_EDGE = re.compile(r"^([^<>-]+)->([^<>-]+)(?:<([qkv])>)?$")


def to_dot(circuit: Circuit, title: str = "") -> str:
    """Graphviz DOT text of `circuit`: boxes per node, edges coloured by kind (q, k, v, mlp, resid) and as
    wide as their |score| (relative to the largest) where scored."""
    top = max((abs(s) for s in circuit.scores.values()), default=0.0)
    lines = ["digraph circuit {", "  rankdir=BT;", '  node [shape=box, style="rounded,filled", fillcolor="#f0f0f0"];']
    if title:
        lines.append(f'  label="{title}";')
    lines += [f'  "{n.name}";' for n in circuit.nodes]
    for e in circuit.edges:
        attrs = [f'color="{_KIND_COLOURS[e.kind]}"', f'label="{e.kind}"']
        if e in circuit.scores and top > 0:
            attrs.append(f"penwidth={0.5 + 4.5 * abs(circuit.scores[e]) / top:.2f}")
        lines.append(f'  "{e.sender.name}" -> "{e.receiver.name}" [{", ".join(attrs)}];')
    return "\n".join([*lines, "}"]) + "\n"


def _eap_ig_complete(n_layers: int, n_heads: int) -> list[Edge]:
    """EAP-IG's complete graph (sequential attention then MLP in every layer), in its order."""
    written, edges = [Node.input()], []
    for l in range(n_layers):
        heads = [Node.attn(l, h) for h in range(n_heads)]
        edges += [Edge(s, h, kind) for s in written for h in heads for kind in "qkv"]
        written += heads
        edges += [Edge(s, Node.mlp(l), "mlp") for s in written]
        written.append(Node.mlp(l))
    return edges + [Edge(s, Node.logits(), "resid") for s in written]


def to_eap_ig(circuit: Circuit, n_layers: int, n_heads: int, d_model: int,
              scores: Mapping[Edge, float] | None = None) -> dict[str, Any]:
    """EAP-IG's JSON graph of a model with `n_layers` x `n_heads` (no positions): `in_graph` marks
    `circuit`'s edges and nodes; edge scores come from `scores` (e.g. a method's complete scored
    graph), else the circuit's own, else 0."""
    if any(n.position is not None for n in circuit.nodes):
        raise ValueError("EAP-IG's JSON graph has no positions; pass a circuit without per-position nodes")
    complete = _eap_ig_complete(n_layers, n_heads)
    outside = circuit.edge_set - set(complete)
    if outside:
        raise ValueError(f"edges outside a {n_layers}-layer, {n_heads}-head graph: {sorted(e.name for e in outside)[:3]}")
    scores = dict(circuit.scores) | dict(scores or {})
    nodes = {Node.input(), *(n for e in complete for n in (e.sender, e.receiver))}
    kept = set(circuit.nodes)
    node_rows = {n.name: {"in_graph": n in kept or n.kind == "logits"} for n in sorted(nodes, key=Node.sort_key)}
    edge_rows = {e.name: {"score": float(scores.get(e, 0.0)), "in_graph": e in circuit.edge_set} for e in complete}
    cfg = {"n_layers": n_layers, "n_heads": n_heads, "parallel_attn_mlp": False, "d_model": d_model}
    return {"cfg": cfg, "nodes": node_rows, "edges": edge_rows}


def _node(name: str) -> Node:
    match = _NODE.match(name)
    if match is None:
        raise ValueError(f"unknown node name {name!r} (expected input, logits, m<l> or a<l>.h<h>)")
    mlp, layer, head = match.groups()
    if mlp is not None:
        return Node.mlp(int(mlp))
    if layer is not None:
        return Node.attn(int(layer), int(head))
    return Node.input() if name == "input" else Node.logits()


def _edge(name: str) -> Edge:
    match = _EDGE.match(name)
    if match is None:
        raise ValueError(f"unknown edge name {name!r} (expected sender->receiver, with <q|k|v> into a head)")
    sender, receiver = _node(match[1]), _node(match[2])
    kind = match[3] or {"mlp": "mlp", "logits": "resid"}.get(receiver.kind)
    if kind is None:
        raise ValueError(f"edge {name!r} into a head needs <q>, <k> or <v>")
    return Edge(sender, receiver, kind)


def from_eap_ig(obj: Mapping[str, Any]) -> tuple[Circuit, Circuit]:
    """Read EAP-IG's JSON graph: `(circuit, scored)`, the in-graph edges (with their scores) and every
    listed edge with its score. Raises `WorkbenchError` naming what is wrong."""
    fix = "pass a graph written by EAP-IG's Graph.to_json (or by to_eap_ig)"
    try:
        cfg = obj["cfg"]
        if cfg.get("parallel_attn_mlp"):
            raise ValueError("parallel attention and MLP blocks are not a workbench Transformer")
        rows = {_edge(name): row for name, row in obj["edges"].items()}
        scored = Circuit.from_edges(rows, scores={e: float(r["score"]) for e, r in rows.items()})
        bad = [e.name for e in scored.edges if e.receiver.kind != "logits" and e.receiver.layer >= cfg["n_layers"]]
        bad += [n.name for n in scored.nodes if n.kind == "attn" and n.head >= cfg["n_heads"]]
        if bad:
            raise ValueError(f"{bad[:3]} fall outside cfg n_layers={cfg['n_layers']}, n_heads={cfg['n_heads']}")
        for name in obj["nodes"]:
            _node(name)
        kept = [e for e, r in rows.items() if bool(r["in_graph"])]
        return scored.restrict(kept), scored
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise WorkbenchError(f"not an EAP-IG graph: {type(e).__name__}: {e}", fix) from None
