"""Circuits: one graph type for ground truths (compiled RASP programs) and discovered circuits.

Nodes are the components that write to the residual stream and read from it, named as the circuit
tools (ACDC, EAP-IG) name them: `input` (token and positional embeddings), `a{layer}.h{head}`
(attention heads), `m{layer}` (MLPs) and `logits` (the unembedding, reading the final residual),
each optionally at one position (`a1.h3@5`). An edge enters its receiver through one input, its
kind: `q`, `k` or `v` for a head, `mlp` for an MLP, `resid` for the logits.

```python
from workbench.models import Circuit, Node, TransformerConfig

config = TransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, n_ctx=8, d_vocab=5)
full = Circuit.complete(config)            # every edge the residual stream allows
full.edges[0].name                         # 'input->a0.h0<q>'
small = full.restrict([e for e in full.edges if e.receiver == Node.logits()])
small.is_subgraph_of(full)                 # True
Circuit.from_json(small.to_json()) == small
```
"""

import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from ..core.errors import WorkbenchError
from ._config import TransformerConfig

NodeKind = Literal["input", "attn", "mlp", "logits"]
EdgeKind = Literal["q", "k", "v", "mlp", "resid"]
NODE_KINDS: tuple[NodeKind, ...] = get_args(NodeKind)
EDGE_KINDS: tuple[EdgeKind, ...] = get_args(EdgeKind)
RECEIVES: dict[str, tuple[EdgeKind, ...]] = {"attn": ("q", "k", "v"), "mlp": ("mlp",), "logits": ("resid",)}
JSON_FORMAT = "workbench.circuit/1"


@dataclasses.dataclass(frozen=True)
class Node:
    """A component of the residual stream: `kind`, its `layer` and `head`, and optionally a `position`.

    Build with `Node.input()`, `Node.attn(layer, head)`, `Node.mlp(layer)`, `Node.logits()`.
    """

    kind: NodeKind
    layer: int | None = None
    head: int | None = None
    position: int | None = None

    def __post_init__(self):
        if self.kind not in NODE_KINDS:
            raise ValueError(f"Node.kind must be one of {NODE_KINDS}, got {self.kind!r}")
        wants_layer, wants_head = self.kind in ("attn", "mlp"), self.kind == "attn"
        for field, wanted in (("layer", wants_layer), ("head", wants_head)):
            value = getattr(self, field)
            if wanted != (value is not None) or (value is not None and (not isinstance(value, int) or value < 0)):
                need = "an int >= 0" if wanted else "None"
                raise ValueError(f"a Node of kind {self.kind!r} needs {field} {need}, got {value!r}")
        if self.position is not None and (not isinstance(self.position, int) or self.position < 0):
            raise ValueError(f"Node.position must be None or an int >= 0, got {self.position!r}")

    @classmethod
    def input(cls, position: int | None = None) -> "Node":
        return cls("input", position=position)

    @classmethod
    def attn(cls, layer: int, head: int, position: int | None = None) -> "Node":
        return cls("attn", layer, head, position)

    @classmethod
    def mlp(cls, layer: int, position: int | None = None) -> "Node":
        return cls("mlp", layer, position=position)

    @classmethod
    def logits(cls, position: int | None = None) -> "Node":
        return cls("logits", position=position)

    @property
    def name(self) -> str:
        """`input`, `a{layer}.h{head}`, `m{layer}` or `logits`, with `@{position}` when positioned."""
        base = {"input": "input", "logits": "logits", "mlp": f"m{self.layer}"}.get(self.kind, f"a{self.layer}.h{self.head}")
        return base if self.position is None else f"{base}@{self.position}"

    @property
    def sublayer(self) -> float:
        """Order along the residual stream: input -1, attention of layer l at 2l, its MLP 2l + 1, logits last."""
        if self.kind == "input":
            return -1
        if self.kind == "logits":
            return math.inf
        return 2 * self.layer + (self.kind == "mlp")  # type: ignore[operator]

    def sort_key(self) -> tuple:
        return (self.sublayer, self.head if self.head is not None else -1, -1 if self.position is None else self.position)


@dataclasses.dataclass(frozen=True)
class Edge:
    """`receiver` reads what `sender` writes to the residual stream, through its input `kind`."""

    sender: Node
    receiver: Node
    kind: EdgeKind

    def __post_init__(self):
        allowed = RECEIVES.get(self.receiver.kind, ())
        if self.kind not in allowed:
            raise ValueError(f"an edge into {self.receiver.name} ({self.receiver.kind}) has kind in {allowed}, got {self.kind!r}")
        if self.sender.kind == "logits" or not self.sender.sublayer < self.receiver.sublayer:
            raise ValueError(f"{self.sender.name} does not write before {self.receiver.name} reads")
        if (self.sender.position is None) != (self.receiver.position is None):
            raise ValueError(f"edge {self.sender.name} -> {self.receiver.name}: both nodes have positions, or neither")
        if self.kind not in ("k", "v") and self.sender.position != self.receiver.position:
            raise ValueError(f"a {self.kind} edge stays at one position, got {self.sender.name} -> {self.receiver.name}")

    @property
    def name(self) -> str:
        """EAP-IG's edge name: `a0.h1->a1.h0<q>` into a head, `m0->logits` otherwise."""
        tail = f"<{self.kind}>" if self.kind in RECEIVES["attn"] else ""
        return f"{self.sender.name}->{self.receiver.name}{tail}"

    def sort_key(self) -> tuple:
        return (self.receiver.sort_key(), EDGE_KINDS.index(self.kind), self.sender.sort_key())


@dataclasses.dataclass(frozen=True)
class EdgeOverlap:
    """Confusion counts of a found edge set against a true one, within a universe of candidate edges."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def tpr(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def fpr(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else math.nan

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan


def _freeze(value: Any) -> Any:
    """JSON-like data with lists as tuples, so a circuit is immutable and compares by value."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _freeze(v) for k, v in value.items()}
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class Circuit:
    """A circuit: `nodes`, typed `edges`, optional per-node and per-edge data, optional edge `scores`.

    Nodes and edges are kept sorted along the residual stream, so two circuits with the same content
    are equal. Data values are JSON values (lists are stored as tuples); `scores` maps an edge to a
    float (e.g. a discovery method's attribution), for any subset of the edges.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    node_data: dict[Node, dict[str, Any]] = dataclasses.field(default_factory=dict)
    edge_data: dict[Edge, dict[str, Any]] = dataclasses.field(default_factory=dict)
    scores: dict[Edge, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        nodes = tuple(sorted(set(self.nodes), key=Node.sort_key))
        edges = tuple(sorted(set(self.edges), key=Edge.sort_key))
        if len({n.position is None for n in nodes}) > 1:
            raise ValueError("a circuit's nodes all have positions, or none has")
        node_set, edge_set = set(nodes), set(edges)
        outside = [n.name for e in edges for n in (e.sender, e.receiver) if n not in node_set]
        outside += [n.name for n in self.node_data if n not in node_set]
        outside += [e.name for e in (*self.edge_data, *self.scores) if e not in edge_set]
        if outside:
            raise ValueError(f"the circuit refers to nodes or edges it does not hold: {sorted(set(outside))[:5]}")
        set_ = object.__setattr__  # normalising the fields of a frozen dataclass once, at construction
        set_(self, "nodes", nodes)
        set_(self, "edges", edges)
        set_(self, "node_data", {n: _freeze(self.node_data[n]) for n in nodes if n in self.node_data})
        set_(self, "edge_data", {e: _freeze(self.edge_data[e]) for e in edges if e in self.edge_data})
        set_(self, "scores", {e: float(self.scores[e]) for e in edges if e in self.scores})

    def __hash__(self) -> int:
        return hash((self.nodes, self.edges))

    @classmethod
    def from_edges(cls, edges: Iterable[Edge], *, nodes: Iterable[Node] = (), **data) -> "Circuit":
        """The circuit of `edges`, their end points and any extra `nodes` (data as in `Circuit`)."""
        edges = tuple(edges)
        return cls((*nodes, *(n for e in edges for n in (e.sender, e.receiver))), edges, **data)

    @classmethod
    def complete(cls, config: TransformerConfig, per_position: bool = False, seq: int | None = None) -> "Circuit":
        """Every edge the residual stream of a `config` model allows: each node feeds every later reader.

        Heads read every earlier layer's output (not their own layer's heads), an MLP reads its own
        layer's heads too, and the logits read everything; `attn_only` configs have no MLP nodes.
        With `per_position`, nodes are per position `0..seq-1`: `q`, `mlp` and `resid` edges stay at
        one position, `k` and `v` edges come from every position the attention may read (earlier
        or equal ones for causal attention, all for bidirectional).
        """
        if per_position and (seq is None or not 1 <= seq <= config.n_ctx):
            raise ValueError(f"Circuit.complete(per_position=True) needs seq in 1..n_ctx={config.n_ctx}, got {seq!r}")
        if not per_position and seq is not None:
            raise ValueError("Circuit.complete(seq=...) goes with per_position=True")
        positions: tuple[int | None, ...] = tuple(range(seq)) if per_position else (None,)  # type: ignore[arg-type]
        edges = []
        for p in positions:  # the receiver's position
            written = [Node.input(p)]
            keys = [k for k in positions if k is None or k <= p or config.attention_dir == "bidirectional"]
            for layer in range(config.n_layers):
                heads = [Node.attn(layer, h, p) for h in range(config.n_heads)]
                for head in heads:
                    edges += [Edge(s, head, "q") for s in written]
                    edges += [Edge(dataclasses.replace(s, position=k), head, kind)
                              for k in keys for s in written for kind in ("k", "v")]  # fmt: skip
                written += heads
                if not config.attn_only:
                    mlp = Node.mlp(layer, p)
                    edges += [Edge(s, mlp, "mlp") for s in written]
                    written.append(mlp)
            edges += [Edge(s, Node.logits(p), "resid") for s in written]
        return cls.from_edges(edges)

    def node(self, name: str) -> Node:
        """The node called `name` (a lookup among this circuit's nodes)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in the circuit; its nodes are {[n.name for n in self.nodes]}")

    @functools.cached_property
    def edge_set(self) -> frozenset[Edge]:
        return frozenset(self.edges)

    def restrict(self, edges: Iterable[Edge]) -> "Circuit":
        """The sub-circuit with only `edges` (edges of this circuit) and the nodes they touch."""
        keep = set(edges)
        missing = keep - self.edge_set
        if missing:
            raise ValueError(f"restrict: {len(missing)} edges are not in the circuit, e.g. {min(e.name for e in missing)}")
        return self._part({n for e in keep for n in (e.sender, e.receiver)}, keep)

    def subgraph(self, nodes: Iterable[Node]) -> "Circuit":
        """The sub-circuit induced by `nodes`: those nodes and the edges between them."""
        keep = set(nodes)
        if not keep <= set(self.nodes):
            raise ValueError(f"subgraph: nodes not in the circuit: {sorted(n.name for n in keep - set(self.nodes))}")
        return self._part(keep, {e for e in self.edges if e.sender in keep and e.receiver in keep})

    def _part(self, nodes: set[Node], edges: set[Edge]) -> "Circuit":
        return Circuit(
            tuple(nodes), tuple(edges),
            node_data={n: d for n, d in self.node_data.items() if n in nodes},
            edge_data={e: d for e, d in self.edge_data.items() if e in edges},
            scores={e: s for e, s in self.scores.items() if e in edges},
        )  # fmt: skip

    def is_subgraph_of(self, other: "Circuit") -> bool:
        return set(self.nodes) <= set(other.nodes) and self.edge_set <= other.edge_set

    def overlap(self, truth: "Circuit", within: "Circuit") -> EdgeOverlap:
        """This circuit's edges as a guess at `truth`'s, among the candidate edges of `within`."""
        found, true, universe = self.edge_set, truth.edge_set, within.edge_set
        if not (found | true) <= universe:
            raise ValueError("overlap: both circuits must be subgraphs of `within` (e.g. the complete graph)")
        return EdgeOverlap(len(found & true), len(found - true), len(true - found), len(universe - found - true))

    def with_scores(self, scores: Mapping[Edge, float]) -> "Circuit":
        return dataclasses.replace(self, scores=dict(scores))

    def above(self, threshold: float) -> "Circuit":
        """The sub-circuit of the scored edges with `score >= threshold`."""
        return self.restrict(e for e, s in self.scores.items() if s >= threshold)

    def top(self, k: int) -> "Circuit":
        """The sub-circuit of the `k` highest-scored edges (ties broken by edge order)."""
        ranked = sorted(self.scores, key=lambda e: -self.scores[e])
        return self.restrict(ranked[:k])

    def to_networkx(self):
        """A `networkx.MultiDiGraph` over node names, one edge per (sender, receiver, kind) keyed by
        kind; node attributes `kind`, `layer`, `head`, `position` and the node data, edge attributes
        `kind`, the edge data and `score` where scored."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for n in self.nodes:
            g.add_node(n.name, kind=n.kind, layer=n.layer, head=n.head, position=n.position, **self.node_data.get(n, {}))
        for e in self.edges:
            extra = {"score": self.scores[e]} if e in self.scores else {}
            g.add_edge(e.sender.name, e.receiver.name, key=e.kind, kind=e.kind, **self.edge_data.get(e, {}), **extra)
        return g

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `Circuit.from_json` reads it back to an equal circuit."""
        nodes = [{"name": n.name, "kind": n.kind, "layer": n.layer, "head": n.head, "position": n.position}
                 | ({"data": _thaw(self.node_data[n])} if n in self.node_data else {}) for n in self.nodes]  # fmt: skip
        edges = []
        for e in self.edges:
            row: dict[str, Any] = {"sender": e.sender.name, "receiver": e.receiver.name, "kind": e.kind}
            if e in self.edge_data:
                row["data"] = _thaw(self.edge_data[e])
            if e in self.scores:
                row["score"] = self.scores[e]
            edges.append(row)
        return {"format": JSON_FORMAT, "nodes": nodes, "edges": edges}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Circuit":
        """The circuit written by `to_json` (raises `WorkbenchError` naming what is wrong)."""
        fix = "read a file written by Circuit.to_json()"
        if not isinstance(obj, Mapping) or obj.get("format") != JSON_FORMAT:
            raise WorkbenchError(f"not a circuit: expected format {JSON_FORMAT!r}", fix)
        try:
            by_name, node_data = {}, {}
            for row in obj["nodes"]:
                node = Node(row["kind"], row["layer"], row["head"], row["position"])
                if node.name != row["name"]:
                    raise ValueError(f"node {row['name']!r} has the fields of {node.name!r}")
                by_name[node.name] = node
                if "data" in row:
                    node_data[node] = row["data"]
            edges, edge_data, scores = [], {}, {}
            for row in obj["edges"]:
                edge = Edge(by_name[row["sender"]], by_name[row["receiver"]], row["kind"])
                edges.append(edge)
                if "data" in row:
                    edge_data[edge] = row["data"]
                if "score" in row:
                    scores[edge] = row["score"]
            return cls(tuple(by_name.values()), tuple(edges), node_data, edge_data, scores)
        except (KeyError, TypeError, ValueError) as e:
            raise WorkbenchError(f"not a valid circuit: {type(e).__name__}: {e}", fix) from None
