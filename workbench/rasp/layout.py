"""Compiler stage 5: layer allocation and the residual basis.

Sublayers alternate attention (even index `2l`) and MLP (odd index `2l + 1`). Each component goes to
the earliest sublayer of its kind after all its inputs are ready (a longest-path schedule, as in
tracr); a selector width takes an attention sublayer and the MLP right after it. Heads in one layer
are numbered in program order; MLPs in one layer run side by side as one wider MLP, and each
expression keeps its slice of neurons.
"""

import dataclasses

from ..models.circuit import Node
from . import language as L
from .components import BOS, ONE, PAD, Component, Dir, HeadPart, MLPPart, space
from .graph import ProgramGraph
from .values import ValueSets


@dataclasses.dataclass(frozen=True)
class PlacedHead:
    part: HeadPart
    layer: int
    head: int

    @property
    def node(self) -> Node:
        return Node.attn(self.layer, self.head)


@dataclasses.dataclass(frozen=True)
class PlacedMLP:
    part: MLPPart
    layer: int
    neurons: tuple[int, int]  # [start, stop) within the layer's MLP

    @property
    def node(self) -> Node:
        return Node.mlp(self.layer)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where every component sits, and what each residual dimension means."""

    dirs: tuple[Dir, ...]
    heads: tuple[PlacedHead, ...]
    mlps: tuple[PlacedMLP, ...]
    n_layers: int
    embedded: tuple[str, ...]  # SOps written by the embeddings (tokens, indices, constants)

    @property
    def n_heads(self) -> int:
        return max([h.head + 1 for h in self.heads], default=1)

    @property
    def d_mlp(self) -> int:
        return max([m.neurons[1] for m in self.mlps], default=0)

    @property
    def d_head(self) -> int:
        widths = [max(min(len(h.part.q_dirs), len(h.part.k_dirs)), len(h.part.v_dirs)) for h in self.heads]
        return max(widths, default=1)

    def writer(self) -> dict[str, Node]:
        """Residual block name (SOp label or scratch) -> the circuit node writing it (`input` for inputs)."""
        out = {name: Node.input() for name in self.embedded}
        for h in self.heads:
            out.update({w: h.node for w in h.part.writes})
        for m in self.mlps:
            out.update({w: m.node for w in m.part.writes})
        return out


def schedule(graph: ProgramGraph, components: dict[int, Component]) -> dict[int, int]:
    """uid -> the sublayer after which the SOp's value is in the residual (-1: embeddings)."""
    ready: dict[int, int] = {}
    for sop in graph.sops:
        c = components[sop.uid]
        after = max([ready[d] for d in c.deps], default=-1)
        if c.kind == "embed":
            ready[sop.uid] = -1
        elif c.kind == "mlp":
            ready[sop.uid] = after + 1 if (after + 1) % 2 == 1 else after + 2
        else:
            attn = after + 1 if (after + 1) % 2 == 0 else after + 2
            ready[sop.uid] = attn if c.kind == "attn" else attn + 1
    return ready


def allocate(graph: ProgramGraph, components: dict[int, Component], values: ValueSets) -> Layout:
    """Place every component and lay out the residual stream."""
    ready = schedule(graph, components)
    n_layers = max(max(ready.values(), default=0) // 2 + 1, 1)
    heads: list[PlacedHead] = []
    mlps: list[PlacedMLP] = []
    per_layer_heads = [0] * n_layers
    per_layer_neurons = [0] * n_layers
    for sop in graph.sops:
        c = components[sop.uid]
        if c.head is not None:
            layer = (ready[sop.uid] - (1 if c.kind == "width" else 0)) // 2
            heads.append(PlacedHead(c.head, layer, per_layer_heads[layer]))
            per_layer_heads[layer] += 1
        if c.mlp is not None:
            layer = ready[sop.uid] // 2
            start = per_layer_neurons[layer]
            per_layer_neurons[layer] += c.mlp.d_hidden
            mlps.append(PlacedMLP(c.mlp, layer, (start, per_layer_neurons[layer])))
    inputs = [s for s in graph.sops if components[s.uid].kind == "embed"]
    others = [s for s in graph.sops if components[s.uid].kind != "embed"]
    dirs: list[Dir] = [ONE, BOS, PAD]
    for sop in inputs + others:
        label = graph.label(sop)
        dirs += space(label, sop, values[sop.uid])
        head = components[sop.uid].head
        if components[sop.uid].kind == "width" and head is not None:
            dirs += head.o_dirs
    return Layout(tuple(dirs), tuple(heads), tuple(mlps), n_layers, tuple(graph.label(s) for s in inputs))


def sublayer_count(layout: Layout) -> dict[str, int]:
    """How many attention and MLP sublayers hold at least one component."""
    return {
        "attn": len({h.layer for h in layout.heads}),
        "mlp": len({m.layer for m in layout.mlps if m.part.d_hidden > 0}),
    }


def is_embedded(sop: L.SOp) -> bool:
    return isinstance(sop, (L.TokensType, L.IndicesType, L.Full))
