"""A plotly drawing of a `Circuit`: components by sublayer, one arrow per reading pair."""

import json
from typing import Any

from .circuit import Circuit, Edge, Node

COLOURS = {"input": "#4c78a8", "attn": "#f58518", "mlp": "#54a24b", "logits": "#b279a2"}
EDGE_COLOURS = {"q": "#d62728", "k": "#2ca02c", "v": "#1f77b4", "mlp": "#999999", "resid": "#999999"}


def _position(node: Node, n_layers: int, rows: int) -> tuple[float, float]:
    """x: input 0, attention of layer l at 2l + 1, its MLP 2l + 2, logits last; y: head (MLPs below),
    one band of `rows` per position."""
    x = {"input": 0.0, "logits": 2.0 * n_layers + 1.0}.get(node.kind, node.sublayer + 1.0)
    y = float(node.head) if node.kind == "attn" else (-1.0 if node.kind == "mlp" else 0.0)
    return x, y - rows * (node.position or 0)


def _notes(circuit: Circuit, edge: Edge) -> str:
    notes = [f"{k}: {v}" for k, v in circuit.edge_data.get(edge, {}).items()]
    notes += [f"score {circuit.scores[edge]:.3g}"] if edge in circuit.scores else []
    return f" ({'; '.join(notes)})" if notes else ""


def circuit_figure(circuit: Circuit, title: str = "") -> dict[str, Any]:
    """The circuit as a plotly figure (JSON-ready dict).

    One arrow per (sender, receiver) pair, coloured by its edge kind (grey where the receiver reads
    the sender through several inputs); hover shows the kinds, any edge data (e.g. RASP `sops`) and
    scores, and each node's data (e.g. RASP `exprs`).
    """
    import plotly.graph_objects as go

    n_layers = 1 + max([n.layer for n in circuit.nodes if n.layer is not None], default=-1)
    rows = 2 + max([n.head for n in circuit.nodes if n.head is not None], default=0)
    pos = {n: _position(n, n_layers, rows) for n in circuit.nodes}
    pairs: dict[tuple[Node, Node], list[Edge]] = {}
    for e in circuit.edges:
        pairs.setdefault((e.sender, e.receiver), []).append(e)
    fig = go.Figure()
    for (u, v), edges in pairs.items():
        (x0, y0), (x1, y1) = pos[u], pos[v]
        colour = EDGE_COLOURS[edges[0].kind] if len(edges) == 1 else "#999999"
        kinds = [e.kind + _notes(circuit, e) for e in edges]
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
            arrowhead=2, arrowsize=1, arrowwidth=1, arrowcolor=colour, standoff=14, startstandoff=14,
            hovertext=f"{u.name} -> {v.name}: {', '.join(kinds)}",
        )  # fmt: skip
    for kind, colour in COLOURS.items():
        nodes = [n for n in circuit.nodes if n.kind == kind]
        hover = [f"{n.name}: " + ("; ".join(f"{k}: {v}" for k, v in circuit.node_data.get(n, {}).items()) or "-")
                 for n in nodes]  # fmt: skip
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text", name=kind,
            text=[n.name for n in nodes], textposition="top center", marker=dict(size=22, color=colour),
            hovertext=hover, hoverinfo="text",
        ))  # fmt: skip
    fig.update_layout(
        title=title, showlegend=True, template="plotly_white",
        xaxis=dict(title="sublayer (input, attn 0, mlp 0, attn 1, ...)", showgrid=False, zeroline=False),
        yaxis=dict(title="head (MLPs below)", showgrid=False, zeroline=False),
    )  # fmt: skip
    return json.loads(fig.to_json())
