"""The ground-truth circuit of a compiled program: which component computes which expression, and
which components read from which.

Nodes: `embed` (token and positional embeddings: tokens, indices, constants), `a{layer}.h{head}`
(attention heads), `m{layer}` (the MLP of a layer, all its expressions side by side) and `logits`
(the unembedding, reading the program's output). Node data: `kind`, `layer`, `head`, `exprs` (the
RASP labels computed there) and, for MLPs, `neurons` (label -> [start, stop)). An edge `u -> v`
means `v` reads a residual block that `u` writes; edge data `sops` lists the blocks and `roles`
how they are read (`q`, `k`, `v` for heads, `in` for MLPs, `out` for logits). The `one`, `bos` and
`pad` directions (written by the embeddings, read by every head) are left out.
"""

import json
from typing import Any

import networkx as nx

from .components import BOS, ONE, PAD
from .graph import ProgramGraph
from .layout import Layout


def build_circuit(graph: ProgramGraph, layout: Layout) -> nx.DiGraph:
    circuit = nx.DiGraph()
    circuit.add_node("embed", kind="embed", layer=-1, head=None, exprs=list(layout.embedded))
    for h in layout.heads:
        circuit.add_node(h.site, kind="attn", layer=h.layer, head=h.head, exprs=[h.part.label])
    for m in layout.mlps:
        if m.site not in circuit:
            circuit.add_node(m.site, kind="mlp", layer=m.layer, head=None, exprs=[], neurons={})
        circuit.nodes[m.site]["exprs"].append(m.part.label)
        circuit.nodes[m.site]["neurons"][m.part.label] = list(m.neurons)
    circuit.add_node("logits", kind="logits", layer=layout.n_layers, head=None, exprs=[])

    writer = layout.writer()

    def link(block: str, site: str, role: str) -> None:
        source = writer[block]
        if not circuit.has_edge(source, site):
            circuit.add_edge(source, site, sops=[], roles=[])
        data = circuit.edges[source, site]
        if block not in data["sops"]:
            data["sops"].append(block)
        if role not in data["roles"]:
            data["roles"].append(role)

    skip = {ONE.name, BOS.name, PAD.name}
    for h in layout.heads:
        for role, dirs in (("q", h.part.q_dirs), ("k", h.part.k_dirs), ("v", h.part.v_dirs)):
            for block in dict.fromkeys(d.name for d in dirs if d.name not in skip):
                link(block, h.site, role)
    for m in layout.mlps:
        for block in dict.fromkeys(d.name for d in m.part.in_dirs if d.name not in skip):
            link(block, m.site, "in")
    link(graph.label(graph.program), "logits", "out")
    return circuit


def _position(node: str, data: dict[str, Any]) -> tuple[float, float]:
    kind, layer = data["kind"], data["layer"]
    if kind == "embed":
        return 0.0, 0.0
    if kind == "logits":
        return 2.0 * layer + 1.0, 0.0
    if kind == "attn":
        return 2.0 * layer + 1.0, float(data["head"])
    return 2.0 * layer + 2.0, -1.0


def circuit_figure(circuit: nx.DiGraph, title: str = "") -> dict[str, Any]:
    """The circuit as a plotly figure (JSON-ready dict): components by layer, arrows for reads."""
    import plotly.graph_objects as go

    pos = {n: _position(n, d) for n, d in circuit.nodes(data=True)}
    colours = {"embed": "#4c78a8", "attn": "#f58518", "mlp": "#54a24b", "logits": "#b279a2"}
    fig = go.Figure()
    for u, v, d in circuit.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
            arrowhead=2, arrowsize=1, arrowwidth=1, arrowcolor="#999", standoff=14, startstandoff=14,
            hovertext=f"{u} -> {v}: {', '.join(d['sops'])} ({'/'.join(d['roles'])})",
        )
    for kind, colour in colours.items():
        nodes = [n for n, d in circuit.nodes(data=True) if d["kind"] == kind]
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text", name=kind,
            text=nodes, textposition="top center", marker=dict(size=22, color=colour),
            hovertext=[f"{n}: {', '.join(circuit.nodes[n]['exprs']) or '-'}" for n in nodes], hoverinfo="text",
        ))
    fig.update_layout(
        title=title, showlegend=True, template="plotly_white",
        xaxis=dict(title="sublayer (embed, attn 0, mlp 0, attn 1, ...)", showgrid=False, zeroline=False),
        yaxis=dict(title="head (MLPs below)", showgrid=False, zeroline=False),
    )
    return json.loads(fig.to_json())
