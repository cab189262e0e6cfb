"""Compiler stage 4: one attention head and/or MLP per SOp, over named residual directions.

Residual conventions (the compiled model's input is `[BOS, x_0, ..., x_{n-1}]`):

- `one` is 1 at every real position (not at BOS or padding), `bos` only at BOS, `pad` only at
  padding (appended after the input). MLPs have no biases (constants come from `one`), and every
  hidden unit carries `-G * (bos + pad)` with `G` above its largest possible input there, so MLPs
  write nothing at BOS or padding. Every head sends BOS and padded queries to the BOS key, and every
  real query adds `PAD_MARGIN` to real keys and BOS, so padded keys (whose `indices` are set) are
  never read. So at BOS and padding only `bos`/`pad`, `indices` and width scratch are nonzero.
- A categorical SOp `s` has one direction `s:v` per value `v` (None is the zero vector); a
  numerical SOp has one direction `s` holding its value.

Components (tracr's designs, rebuilt here):

- categorical `Map`: one ReLU unit per input value, whose output is the code of `f(v)`;
- `SequenceMap`: one unit `ReLU(a_u + b_v - one)` per value pair, output the code of `f(u, v)`;
- numerical `Map` (discretising): per threshold `t` between neighbouring values where `f` changes,
  `ReLU(L(x-t) + 1/2) - ReLU(L(x-t) - 1/2)` steps from 0 to 1, with `L = 4 / gap`;
- `Aggregate`: scores `COLDNESS * [predicate]` per atom, summed over atoms (so a `SelectorAnd` of
  selects on different SOps is one head), with the BOS key at `(n_atoms - 1/2) * COLDNESS`: BOS wins
  only when nothing is selected, giving the default (0 / None);
- `SelectorWidth`: BOS scored like a selected key, value = `bos`, so the head writes `1/(w+1)`
  to a scratch direction; a discretising MLP reads `w` back out (gated off at BOS).
"""

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from . import language as L
from .graph import ProgramGraph
from .language import Value
from .validate import CompileError, Unsupported, conjunction
from .values import ValueSets

COLDNESS = 100.0  # attention score per satisfied atom; e^-50 is the largest leak
PAD_MARGIN = 2 * COLDNESS  # what every real query adds to real keys and BOS, but not to padding
MIN_GAP = 1e-5  # float32 cannot separate numerical values closer than this


@dataclasses.dataclass(frozen=True)
class Dir:
    """A residual direction: `name:value` for a categorical SOp, `name` otherwise."""

    name: str
    value: Value = None
    categorical: bool = False

    def __str__(self) -> str:
        return f"{self.name}:{self.value}" if self.categorical else self.name


ONE = Dir("one")
BOS = Dir("bos")
PAD = Dir("pad")


@dataclasses.dataclass(frozen=True)
class MLPPart:
    """ReLU units: `hidden = relu(resid[in_dirs] @ w_in)`, `resid[out_dirs] += hidden @ w_out`."""

    label: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    in_dirs: tuple[Dir, ...]
    w_in: np.ndarray  # [n_in, hidden]
    out_dirs: tuple[Dir, ...]
    w_out: np.ndarray  # [hidden, n_out]

    @property
    def d_hidden(self) -> int:
        return self.w_in.shape[1]


@dataclasses.dataclass(frozen=True)
class HeadPart:
    """Scores `resid[q_dirs]_q @ w_qk @ resid[k_dirs]_k`; output `pattern @ resid[v_dirs] @ w_ov`."""

    label: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    q_dirs: tuple[Dir, ...]
    k_dirs: tuple[Dir, ...]
    w_qk: np.ndarray  # [n_q, n_k]
    v_dirs: tuple[Dir, ...]
    o_dirs: tuple[Dir, ...]
    w_ov: np.ndarray  # [n_v, n_o]


@dataclasses.dataclass(frozen=True)
class Component:
    """How one SOp is computed: `kind` is embed, mlp, attn or width (a head, then an MLP)."""

    label: str
    kind: str
    deps: tuple[int, ...]
    head: HeadPart | None = None
    mlp: MLPPart | None = None


def space(label: str, sop: L.SOp, values: tuple[Value, ...]) -> tuple[Dir, ...]:
    if L.is_numerical(sop):
        return (Dir(label),)
    return tuple(Dir(label, v, True) for v in values)


class _Units:
    """Accumulates ReLU units as sparse {dir: weight} columns."""

    def __init__(self):
        self.ins: list[dict[Dir, float]] = []
        self.outs: list[dict[Dir, float]] = []

    def add(self, w_in: dict[Dir, float], w_out: dict[Dir, float]) -> None:
        if any(w_out.values()):
            self.ins.append(w_in)
            self.outs.append(w_out)

    def part(self, label: str, reads, writes) -> MLPPart:
        self.ins = [_gated(col) for col in self.ins]
        in_dirs = tuple(dict.fromkeys(d for col in self.ins for d in col))
        out_dirs = tuple(dict.fromkeys(d for row in self.outs for d in row))
        w_in = np.zeros((len(in_dirs), len(self.ins)))
        w_out = np.zeros((len(self.outs), len(out_dirs)))
        for h, (col, row) in enumerate(zip(self.ins, self.outs)):
            for d, w in col.items():
                w_in[in_dirs.index(d), h] += w
            for d, w in row.items():
                w_out[h, out_dirs.index(d)] += w
        return MLPPart(label, tuple(reads), tuple(writes), in_dirs, w_in, out_dirs, w_out)


def _gated(col: dict[Dir, float]) -> dict[Dir, float]:
    """`col` switched off at BOS and padding, where every input but `one` is 0 or 1."""
    g = 1.0 + sum(max(w, 0.0) for d, w in col.items() if d != ONE)
    return _merge(col, {BOS: -g, PAD: -g})


def code(out: tuple[Dir, ...], value: Value) -> dict[Dir, float]:
    """The residual code of `value` in the space `out` (empty for None or an unknown value)."""
    if value is None:
        return {}
    if len(out) == 1 and not out[0].categorical:  # numerical; a non-number is unreachable (see validate)
        return {out[0]: float(value)} if isinstance(value, (bool, int, float)) else {}
    return {d: 1.0 for d in out if d.value == value}


def _safe(f: Callable, *args) -> Value:
    try:
        return f(*args)
    except Exception:  # noqa: BLE001 - unreachable values may make f raise (see values.py)
        return None


def lookup_mlp(label, reads, writes, ins: Sequence[tuple[Dir, ...]], f, out) -> MLPPart:
    """A table over the categorical inputs `ins` (one or two spaces): one unit per value tuple."""
    units = _Units()
    if len(ins) == 1:
        for d in ins[0]:
            units.add({d: 1.0}, code(out, _safe(f, d.value)))
    else:
        same = ins[0] == ins[1]
        for da in ins[0]:
            for db in ins[1]:
                if same and da != db:
                    continue
                units.add(_merge({da: 1.0}, {db: 1.0}, {ONE: -1.0}), code(out, _safe(f, da.value, db.value)))
    return units.part(label, reads, writes)


def _merge(*cols: dict[Dir, float]) -> dict[Dir, float]:
    out: dict[Dir, float] = {}
    for col in cols:
        for d, w in col.items():
            out[d] = out.get(d, 0.0) + w
    return out


def discretising_mlp(label, reads, writes, x: Dir, xs: Sequence[float], f, out) -> MLPPart:
    """`f` of a numerical input `x` taking values `xs`, as a sum of steps at midpoints."""
    xs = sorted(xs)
    codes = [code(out, _safe(f, v)) for v in xs]
    units = _Units()
    if not xs:
        return units.part(label, reads, writes)
    units.add({ONE: 1.0}, codes[0])
    for k in range(1, len(xs)):
        jump = {d: codes[k].get(d, 0.0) - codes[k - 1].get(d, 0.0) for d in set(codes[k]) | set(codes[k - 1])}
        if not any(jump.values()):
            continue
        gap = xs[k] - xs[k - 1]
        if gap < MIN_GAP:
            raise CompileError(
                [Unsupported(label, f"reads {x}", f"must tell {xs[k - 1]} from {xs[k]} (gap {gap:.2g} < {MIN_GAP})")],
                "component",
            )
        sharp, t = 4.0 / gap, (xs[k - 1] + xs[k]) / 2
        for offset, sign in ((0.5, 1.0), (-0.5, -1.0)):
            units.add({x: sharp, ONE: -sharp * t + offset}, {d: sign * j for d, j in jump.items()})
    return units.part(label, reads, writes)


def linear_mlp(label, reads, writes, terms: Sequence[tuple[Dir, float]], out: Dir) -> MLPPart:
    """`out = sum(c * x)` over numerical inputs, as `relu(x) - relu(-x)` pairs."""
    coef: dict[Dir, float] = {}
    for d, c in terms:
        coef[d] = coef.get(d, 0.0) + c
    units = _Units()
    for d, c in coef.items():
        units.add({d: 1.0}, {out: c})
        units.add({d: -1.0}, {out: -c})
    return units.part(label, reads, writes)


def selector_head(label, graph: ProgramGraph, values: ValueSets, selector: L.Selector, width: bool):
    """Query/key weights of `selector` (a conjunction of atoms) and the atoms' SOps."""
    atoms = conjunction(selector)
    q_dirs: list[Dir] = [ONE, BOS, PAD]
    k_dirs: list[Dir] = [BOS, ONE]
    entries: dict[tuple[Dir, Dir], float] = {
        (ONE, BOS): COLDNESS * (len(atoms) if width else len(atoms) - 0.5) + PAD_MARGIN,
        (ONE, ONE): PAD_MARGIN,  # real keys (and BOS, above) outrank padding by PAD_MARGIN
        (BOS, BOS): COLDNESS,
        (PAD, BOS): COLDNESS * (len(atoms) + 1),  # above any score a padded query gets from indices
    }
    reads: list[str] = []
    deps: list[int] = []
    for atom in atoms:
        qs = space(graph.label(atom.queries), atom.queries, values[atom.queries.uid])
        ks = space(graph.label(atom.keys), atom.keys, values[atom.keys.uid])
        q_dirs += [d for d in qs if d not in q_dirs]
        k_dirs += [d for d in ks if d not in k_dirs]
        for dq in qs:
            for dk in ks:
                if _safe(atom.predicate, dk.value, dq.value):
                    entries[(dq, dk)] = entries.get((dq, dk), 0.0) + COLDNESS
        for sop in (atom.queries, atom.keys):
            reads.append(graph.label(sop))
            deps.append(sop.uid)
    w_qk = np.zeros((len(q_dirs), len(k_dirs)))
    for (dq, dk), w in entries.items():
        w_qk[q_dirs.index(dq), k_dirs.index(dk)] += w
    return tuple(q_dirs), tuple(k_dirs), w_qk, reads, deps


def build_components(graph: ProgramGraph, values: ValueSets, max_seq_len: int) -> dict[int, Component]:
    """A `Component` for every SOp of `graph` (uid -> component)."""
    out: dict[int, Component] = {}
    for sop in graph.sops:
        label = graph.label(sop)
        spc = space(label, sop, values[sop.uid])
        if isinstance(sop, (L.TokensType, L.IndicesType, L.Full)):
            out[sop.uid] = Component(label, "embed", ())
        elif isinstance(sop, L.Map):
            inner, name = sop.inner, graph.label(sop.inner)
            ins = space(name, inner, values[inner.uid])
            if L.is_numerical(inner):
                mlp = discretising_mlp(label, [name], [label], ins[0], values[inner.uid], sop.f, spc)
            else:
                mlp = lookup_mlp(label, [name], [label], [ins], sop.f, spc)
            out[sop.uid] = Component(label, "mlp", (inner.uid,), mlp=mlp)
        elif isinstance(sop, (L.SequenceMap, L.LinearSequenceMap)):
            a, b = sop.fst, sop.snd
            names = [graph.label(a), graph.label(b)]
            ins = [space(n, s, values[s.uid]) for n, s in zip(names, (a, b))]
            if isinstance(sop, L.LinearSequenceMap) and L.is_numerical(a):
                mlp = linear_mlp(label, names, [label], [(ins[0][0], sop.fst_fac), (ins[1][0], sop.snd_fac)], spc[0])
            else:
                mlp = lookup_mlp(label, names, [label], ins, sop.f, spc)
            out[sop.uid] = Component(label, "mlp", (a.uid, b.uid), mlp=mlp)
        elif isinstance(sop, L.Aggregate):
            q, k, w_qk, reads, deps = selector_head(label, graph, values, sop.selector, width=False)
            src = graph.label(sop.sop)
            v_dirs = space(src, sop.sop, values[sop.sop.uid])
            w_ov = np.eye(len(v_dirs))  # values keep their order: the output set is the input set
            head = HeadPart(label, tuple(reads + [src]), (label,), q, k, w_qk, v_dirs, spc, w_ov)
            out[sop.uid] = Component(label, "attn", tuple(deps + [sop.sop.uid]), head=head)
        elif isinstance(sop, L.SelectorWidth):
            scratch = Dir(f"{label}.width_scratch")
            q, k, w_qk, reads, deps = selector_head(label, graph, values, sop.selector, width=True)
            head = HeadPart(label, tuple(reads), (scratch.name,), q, k, w_qk, (BOS,), (scratch,), np.ones((1, 1)))
            xs = [1.0 / (w + 1) for w in range(max_seq_len + 1)]
            mlp = discretising_mlp(
                label, [scratch.name], [label], scratch, xs, lambda x: round(1 / x - 1), spc
            )
            out[sop.uid] = Component(label, "width", tuple(deps), head=head, mlp=mlp)
        else:
            raise CompileError([Unsupported(label, sop.describe(), "no component for this expression")], "component")
    return out
