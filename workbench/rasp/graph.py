"""Compiler stage 2: the program as a graph of uniquely labelled expressions.

`extract_graph(program)` returns a `ProgramGraph`: the expressions in dependency order, a label per
expression that is unique within the program (a repeated user name gets a suffix `_2`, `_3`, ...),
and a `networkx.DiGraph` over those labels with an edge from each child to its parent.
"""

import dataclasses

import networkx as nx

from . import language as L


@dataclasses.dataclass(frozen=True)
class ProgramGraph:
    """`order`: every subexpression, children first (the program last). `labels`: uid -> label."""

    program: L.SOp
    order: tuple[L.Expr, ...]
    labels: dict[int, str]
    graph: nx.DiGraph

    def label(self, expr: L.Expr) -> str:
        return self.labels[expr.uid]

    @property
    def sops(self) -> tuple[L.SOp, ...]:
        return tuple(e for e in self.order if isinstance(e, L.SOp))

    def by_label(self, label: str) -> L.Expr:
        return self.graph.nodes[label]["expr"]


def walk(program: L.Expr) -> list[L.Expr]:
    """Every subexpression of `program` once, children before parents (program last)."""
    order: list[L.Expr] = []
    seen: set[int] = set()
    stack: list[tuple[L.Expr, bool]] = [(program, False)]
    while stack:
        expr, expanded = stack.pop()
        if expanded:
            order.append(expr)
            continue
        if expr.uid in seen:
            continue
        seen.add(expr.uid)
        stack.append((expr, True))
        stack.extend((c, False) for c in reversed(expr.children) if c.uid not in seen)
    return order


def listing(program: L.Expr) -> str:
    """The program as one line per subexpression, children first."""
    return "\n".join(repr(e) for e in walk(program))


def extract_graph(program: L.SOp) -> ProgramGraph:
    """Label every subexpression of `program` uniquely and link children to parents."""
    order = tuple(walk(program))
    labels: dict[int, str] = {}
    taken: set[str] = set()
    for expr in order:
        label, k = expr.label, 1
        while label in taken:
            k += 1
            label = f"{expr.label}_{k}"
        taken.add(label)
        labels[expr.uid] = label
    graph = nx.DiGraph()
    for expr in order:
        graph.add_node(labels[expr.uid], expr=expr, kind=expr.kind)
        for child in expr.children:
            graph.add_edge(labels[child.uid], labels[expr.uid])
    return ProgramGraph(program, order, labels, graph)
