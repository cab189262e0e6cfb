"""The ground-truth circuit of a compiled program: which component computes which expression, and
which components read from which, as a `workbench.models.Circuit`.

Nodes: `input` (token and positional embeddings: tokens, indices, constants), `a{layer}.h{head}`
(attention heads), `m{layer}` (the MLP of a layer, all its expressions side by side) and `logits`
(the unembedding, reading the program's output). Node data: `exprs` (the RASP labels computed
there) and, for MLPs, `neurons` (label -> [start, stop)). An edge `u -> v` of kind `q`, `k`, `v`
(heads), `mlp` or `resid` (logits) means `v` reads, through that input, a residual block that `u`
writes; edge data `sops` lists the blocks. The `one`, `bos` and `pad` directions (written by the
embeddings, read by every head) are left out.
"""

from ..models.circuit import Circuit, Edge, Node
from .components import BOS, ONE, PAD
from .graph import ProgramGraph
from .layout import Layout


def build_circuit(graph: ProgramGraph, layout: Layout) -> Circuit:
    node_data: dict[Node, dict] = {Node.input(): {"exprs": list(layout.embedded)}}
    for h in layout.heads:
        node_data[h.node] = {"exprs": [h.part.label]}
    for m in layout.mlps:
        data = node_data.setdefault(m.node, {"exprs": [], "neurons": {}})
        data["exprs"].append(m.part.label)
        data["neurons"][m.part.label] = list(m.neurons)
    node_data[Node.logits()] = {"exprs": []}

    writer = layout.writer()
    sops: dict[Edge, dict[str, None]] = {}  # edge -> the blocks read through it, in order, once each
    skip = {ONE.name, BOS.name, PAD.name}
    reads = [(h.node, kind, dirs) for h in layout.heads
             for kind, dirs in (("q", h.part.q_dirs), ("k", h.part.k_dirs), ("v", h.part.v_dirs))]
    reads += [(m.node, "mlp", m.part.in_dirs) for m in layout.mlps]  # fmt: skip
    for node, kind, dirs in reads:
        for block in dict.fromkeys(d.name for d in dirs if d.name not in skip):
            sops.setdefault(Edge(writer[block], node, kind), {})[block] = None
    output = graph.label(graph.program)
    sops.setdefault(Edge(writer[output], Node.logits(), "resid"), {})[output] = None
    edge_data = {e: {"sops": list(blocks)} for e, blocks in sops.items()}
    return Circuit(tuple(node_data), tuple(sops), node_data=node_data, edge_data=edge_data)
