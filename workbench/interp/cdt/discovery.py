"""Circuit discovery with CD-T (Hsu et al. 2025, Sec. 3.3): score nodes against the output, then
against the inputs of the nodes found, iteratively.

A source acting on a head only through its query or key gives that head's output no beta under
the GPT rule (`z_beta = A_beta v_beta`), so the heads that move information are found against the
output and the heads that steer them against the q/k/v inputs of the heads found: the authors'
iteration, which yields a `workbench.models.Circuit`.
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from workbench.models import Circuit, Edge, Node, Site, Transformer, TransformerConfig

from .._sites import SiteGrid, site_mask, site_set
from ..metrics import AbstractMetric
from .scores import contributions


def nodes_of(config: TransformerConfig) -> tuple[Node, ...]:
    """Every head and MLP of the model, in execution order."""
    nodes = []
    for l in range(config.n_layers):
        nodes += [Node.attn(l, h) for h in range(config.n_heads)]
        if not config.attn_only:
            nodes.append(Node.mlp(l))
    return tuple(nodes)


def _site(node: Node) -> Site:
    return Site(node.layer, "z", head=node.head) if node.kind == "attn" else Site(node.layer, "mlp_out")


def node_sources(config: TransformerConfig, seq: int, nodes: tuple[Node, ...] | None = None) -> SiteGrid:
    """One source per node (a head's `z` or an MLP's output at every position): axis `node`."""
    nodes = nodes_of(config) if nodes is None else nodes
    cells = [_site(n) for n in nodes]
    masks: dict[str, np.ndarray] = {}
    for i, site in enumerate(cells):
        mask = site_mask(site, config, seq)
        stack = masks.setdefault(site.name, np.zeros((len(cells), *mask.shape), bool))
        stack[i] = mask
    return SiteGrid({n: jnp.asarray(m) for n, m in masks.items()}, ("node",), (tuple(n.name for n in nodes),))


def node_scores(model: Transformer, xs: Array, metric: AbstractMetric, **kw) -> dict[Node, float]:
    """Each head's and MLP's CD-T score for the output (`metric` on its beta-output, mean over `xs`)."""
    nodes = nodes_of(model.config)
    result = contributions(model, xs, node_sources(model.config, xs.shape[1], nodes), metric, **kw)
    return dict(zip(nodes, np.asarray(result.scores.values).tolist(), strict=True))


def _input_scores(model, xs, receiver: Node, kind: str, **kw) -> dict[Node, float]:
    senders = tuple(n for n in nodes_of(model.config) if n.sublayer < receiver.sublayer)
    if not senders:
        return {}
    site = Site(receiver.layer, kind, head=receiver.head) if receiver.kind == "attn" else Site(receiver.layer, "mlp_pre")
    targets = site_set(model.config, xs.shape[1], [site])
    result = contributions(model, xs, node_sources(model.config, xs.shape[1], senders), targets=targets, **kw)
    return dict(zip(senders, np.asarray(result.scores.values).tolist(), strict=True))


def discover(
    model: Transformer, xs: Array, metric: AbstractMetric, *, per_iteration: int = 2, iterations: int = 3,
    tol: float = 1e-6, **kw,
) -> Circuit:
    """The authors' CD-T circuit discovery: keep the `per_iteration` nodes of largest |score| (above
    `tol`) for the output, then for the inputs (q/k/v of heads, the MLP input) of the nodes kept last,
    for `iterations` rounds. Returns the circuit of the edges found, scored; `**kw` go to `contributions`.
    """
    logits = Node.logits()
    out = node_scores(model, xs, metric, **kw)
    edges: dict[Edge, float] = {}
    frontier = _keep(out, per_iteration, tol, set())
    found = set(frontier)
    edges.update({Edge(n, logits, "resid"): out[n] for n in frontier})
    for _ in range(iterations - 1):
        candidates: dict[tuple[Node, Node, str], float] = {}
        for receiver in frontier:
            kinds = ("q", "k", "v") if receiver.kind == "attn" else ("mlp",)
            for kind in kinds:
                for sender, s in _input_scores(model, xs, receiver, "mlp" if kind == "mlp" else kind, **kw).items():
                    candidates[(sender, receiver, kind)] = s
        best: dict[Node, float] = {}
        for (sender, _, _), s in candidates.items():
            best[sender] = max(best.get(sender, 0.0), abs(s))
        frontier = _keep(best, per_iteration, tol, found)
        found |= set(frontier)
        edges.update({Edge(s, r, k): v for (s, r, k), v in candidates.items() if s in found and abs(v) > tol})
    return Circuit.from_edges(edges, scores=edges)


def _keep(scores: dict[Node, float], k: int, tol: float, exclude: set) -> list[Node]:
    ranked = sorted((n for n in scores if n not in exclude and abs(scores[n]) > tol), key=lambda n: -abs(scores[n]))
    return ranked[:k]
