"""A discretised program as a list of named units (heads and MLPs), pruned to what the output reads.

Both decompilers walk this list: each unit writes one variable named after it (`attn_0_1`,
`num_attn_1_0`, `mlp_2_0`, `num_mlp_0_1`) from the variables it reads, in program order.
"""

import dataclasses
from collections import Counter

import numpy as np

from .discrete import DiscreteProgram

INPUTS = ("tokens", "positions", "ones")


@dataclasses.dataclass(frozen=True)
class Unit:
    """`kind`: `cat_head` (reads q, k, v; `table` [d_var]: query value -> key value), `num_head`
    (reads q, k), `mlp` or `num_mlp` (reads a, b; `table` [n, n])."""

    kind: str
    name: str
    layer: int
    reads: tuple[str, ...]
    table: np.ndarray


@dataclasses.dataclass(frozen=True)
class Listing:
    """The live units in program order and the classifier: integer score tables `[values, d_out]` of the
    variables it reads (those whose scores depend on their value), and a bias holding the rest."""

    units: tuple[Unit, ...]
    out_terms: tuple[tuple[str, np.ndarray], ...]
    out_bias: np.ndarray

    @property
    def size(self) -> dict[str, int]:
        """How many heads and MLPs the program keeps, by kind (the paper counts predicates and MLPs)."""
        counts = Counter(u.kind for u in self.units)
        return {k: counts.get(k, 0) for k in ("cat_head", "num_head", "mlp", "num_mlp")}


def check_discrete(program, caller: str) -> DiscreteProgram:
    if not isinstance(program, DiscreteProgram):
        what = type(program).__name__
        hint = " (call workbench.rasp.learned.discretise(model) first)" if what == "TransformerProgram" else ""
        raise TypeError(f"{caller} needs a DiscreteProgram, got a {what}{hint}")
    return program


def listing(program: DiscreteProgram, prune: bool = True) -> Listing:
    """The units of `program`; with `prune`, only those the classifier's output depends on."""
    program = check_discrete(program, "listing(program=...)")
    c = program.config
    cat, num = c.cat_names(), c.num_names()
    units = []
    for l, b in enumerate(_as_numpy(program.blocks)):
        for h in range(c.n_cat_heads):
            units.append(Unit("cat_head", f"attn_{l}_{h}", l, tuple(cat[i] for i in b.cat_read[:, h]), b.cat_pred[h]))
        for h in range(c.n_num_heads):
            reads = tuple(cat[i] for i in b.num_read[:, h])
            units.append(Unit("num_head", f"num_attn_{l}_{h}", l, reads, b.num_pred[h]))
        for m in range(c.n_cat_mlps):
            units.append(Unit("mlp", f"mlp_{l}_{m}", l, tuple(cat[i] for i in b.mlp_read[m]), b.mlp_table[m]))
        for m in range(c.n_num_mlps):
            units.append(Unit("num_mlp", f"num_mlp_{l}_{m}", l, tuple(num[i] for i in b.num_mlp_read[m]),
                              b.num_mlp_table[m]))
    out_terms, bias = [], np.asarray(program.out_bias).copy()
    tables = [(cat[v], t) for v, t in enumerate(np.asarray(program.out_cat))]
    tables += [(num[u], t) for u, t in enumerate(np.asarray(program.out_num))]
    for name, table in tables:
        if name == "ones":
            bias += table[1]
        elif prune and (table == table[0]).all():
            bias += table[0]
        else:
            out_terms.append((name, table))
    if prune:
        needed = {name for name, _ in out_terms}
        kept = []
        for u in reversed(units):
            if u.name in needed:
                kept.append(u)
                needed.update(u.reads)
        units = kept[::-1]
    return Listing(tuple(units), tuple(out_terms), bias)


def _as_numpy(blocks):
    return [type(b)(*(np.asarray(getattr(b, f.name)) for f in dataclasses.fields(b))) for b in blocks]
