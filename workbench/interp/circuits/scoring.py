"""Scoring a discovery against a ground-truth circuit: edge and node ROC curves and their AUC.

A scored method's ROC sweeps a threshold over its scores (ties move together, so a tied block is a
straight segment); ACDC's points are its runs at each threshold of its sweep (Conmy et al. 2023).
Both curves run from (0, 0) to (1, 1), and the AUC is the trapezoid area. Nodes are the heads and
MLPs (`input` and `logits` are in every circuit); a node's score is the largest score of its edges.
"""

import dataclasses

import numpy as np

from workbench.models import Circuit, Node

from .methods import Discovery


@dataclasses.dataclass(frozen=True)
class ROC:
    """False and true positive rates, sorted by `fpr` (then `tpr`), from (0, 0) to (1, 1)."""

    fpr: np.ndarray
    tpr: np.ndarray

    @property
    def auc(self) -> float:
        return float(np.trapezoid(self.tpr, self.fpr))


def _curve(points) -> ROC:
    pts = sorted({(0.0, 0.0), (1.0, 1.0), *((float(f), float(t)) for f, t in points)})
    return ROC(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))


def _rates(found: set, true: set, universe: set) -> tuple[float, float]:
    neg = len(universe - true)
    return len(found - true) / neg if neg else 0.0, len(found & true) / len(true)


def roc_from_scores(scores: dict, true: set, universe: set) -> ROC:
    """The ROC of `scores` (item -> float, over `universe`) against the items in `true`."""
    if not true or not true <= universe:
        raise ValueError("the ground truth must be a non-empty subset of the candidates")
    values = np.array([scores[i] for i in universe])
    points = [_rates({i for i in universe if scores[i] >= t}, true, universe) for t in np.unique(values)]
    return _curve(points)


def _nodes(edges) -> set:
    return {n for e in edges for n in (e.sender, e.receiver) if n.kind in ("attn", "mlp")}


def edge_roc(found: Discovery, truth: Circuit) -> ROC:
    """The edge ROC of a discovery against `truth` (a subgraph of the complete graph it scored)."""
    universe, true = set(found.scored.edges), set(truth.edges)
    if not true <= universe:
        raise ValueError("edge_roc: the ground truth has edges outside the complete graph")
    if found.sweep:
        return _curve(_rates(set(c.edges), true, universe) for _, c in found.sweep)
    return roc_from_scores(found.scored.scores, true, universe)


def node_roc(found: Discovery, truth: Circuit) -> ROC:
    """The node ROC (heads and MLPs) of a discovery against `truth`."""
    universe, true = _nodes(found.scored.edges), _nodes(truth.edges)
    if found.sweep:
        return _curve(_rates(_nodes(c.edges), true, universe) for _, c in found.sweep)
    scores: dict[Node, float] = {n: -np.inf for n in universe}
    for e, s in found.scored.scores.items():
        for n in (e.sender, e.receiver):
            if n in scores:
                scores[n] = max(scores[n], s)
    return roc_from_scores(scores, true, universe)
