"""Compiler stage 3: value-set inference (every value an SOp can take on inputs up to a length).

The sets over-approximate what the program reaches: `Map` applies `f` to every value of its input,
`SequenceMap` to every pair, a numerical `Aggregate` takes every mean of up to `max_seq_len` values.
None never appears in a set (it is the all-zero encoding). Values on which `f` raises are left out;
if such a value is reachable, the interpreter raises on that input and dynamic validation says so.
"""

import itertools
from collections.abc import Iterable, Sequence

import numpy as np

from . import language as L
from .graph import ProgramGraph
from .language import Value

ValueSets = dict[int, tuple[Value, ...]]  # uid -> sorted values of each SOp

NUMERIC_TOL = 1e-9  # numerical values closer than this are one value
MAX_MEANS = 20_000  # largest value set a numerical Aggregate may have


class ValueSetError(ValueError):
    def __init__(self, expr: L.Expr, reason: str):
        self.expr = expr
        self.reason = reason
        super().__init__(f"{expr.label}: {reason}")


def sort_values(values: Iterable[Value]) -> tuple[Value, ...]:
    """Distinct values in a deterministic order: numbers, then strings, then anything else."""

    def order(v):
        if isinstance(v, (bool, int, float)):
            return (0, float(v), "")
        return (1, 0.0, repr(v)) if isinstance(v, str) else (2, 0.0, repr(v))

    unique = dict.fromkeys(v for v in values if v is not None)  # 1, 1.0 and True are one value
    return tuple(sorted(unique, key=order))


def _numeric(a: Value, b: Value) -> bool:
    return isinstance(a, (bool, int, float)) and isinstance(b, (bool, int, float))


def merge_close(values: Sequence[float]) -> tuple[float, ...]:
    """Sorted numbers with neighbours closer than `NUMERIC_TOL` merged (the first is kept)."""
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > NUMERIC_TOL:
            out.append(v)
    return tuple(out)


def _apply(f, args: Iterable[tuple[Value, ...]]) -> list[Value]:
    out = []
    for a in args:
        try:
            out.append(f(*a))
        except Exception:  # noqa: BLE001 - unreachable values may make f raise; see module docstring
            continue
    return out


def _means(expr: L.Aggregate, values: tuple[Value, ...], n: int) -> tuple[float, ...]:
    """Every mean of 1..n values from `values`, and the default 0 (sums tracked per count)."""
    if not all(_numeric(v, v) for v in values):
        raise ValueSetError(expr, f"a numerical Aggregate needs numbers, but {expr.sop.label!r} takes {values}")
    sums: set[float] = {0.0}
    means: set[float] = {0.0}
    for count in range(1, n + 1):
        sums = set(merge_close([s + float(v) for s in sums for v in values]))
        means.update(s / count for s in sums)
        if len(means) > MAX_MEANS:
            raise ValueSetError(
                expr,
                f"averaging values {values} over up to {n} positions gives more than {MAX_MEANS} possible "
                "means; map the input to {0, 1} (as frac_prevs does) or shorten max_seq_len",
            )
    return merge_close(means)


def _linear(expr: L.LinearSequenceMap, a: tuple[Value, ...], b: tuple[Value, ...]) -> tuple[Value, ...]:
    """Every `fst_fac * x + snd_fac * y`, vectorised: long chains of sums, such as a classifier's
    scores, have value sets of thousands. Integers (with integer factors) take a sumset by
    convolution of indicator arrays; other numbers the outer sum (the float64 arithmetic of `expr.f`)."""
    if not all(_numeric(v, v) for v in a + b):
        return sort_values(_apply(expr.f, itertools.product(a, b)))
    x, y = expr.fst_fac * np.asarray(a, float), expr.snd_fac * np.asarray(b, float)
    whole = all(float(f).is_integer() for f in (expr.fst_fac, expr.snd_fac))
    if whole and len(x) and len(y) and (x == np.round(x)).all() and (y == np.round(y)).all():
        span = (x.max() - x.min()) + (y.max() - y.min())
        if span <= 10 * (len(x) + len(y)) ** 2 and span < 1e7:
            ix, iy = (x - x.min()).astype(np.int64), (y - y.min()).astype(np.int64)
            hit_x, hit_y = np.zeros(ix.max() + 1), np.zeros(iy.max() + 1)
            hit_x[ix], hit_y[iy] = 1.0, 1.0
            sums = np.flatnonzero(np.convolve(hit_x, hit_y) > 0.5) + x.min() + y.min()
            return tuple(float(v) for v in sums)
    return tuple(float(v) for v in np.unique(np.add.outer(x, y)))


def infer_value_sets(graph: ProgramGraph, vocab: Sequence[Value], max_seq_len: int) -> ValueSets:
    """The value set of every SOp of `graph` on inputs over `vocab` of length 1..`max_seq_len`."""
    sets: ValueSets = {}
    for expr in graph.sops:
        sets[expr.uid] = _infer(expr, sets, vocab, max_seq_len)
        if L.is_numerical(expr):
            nums = [v for v in sets[expr.uid] if _numeric(v, v)]
            sets[expr.uid] = merge_close([float(v) for v in nums])
    return sets


def _infer(expr: L.SOp, sets: ValueSets, vocab: Sequence[Value], n: int) -> tuple[Value, ...]:
    if isinstance(expr, L.TokensType):
        return sort_values(vocab)
    if isinstance(expr, L.IndicesType):
        return tuple(range(n))
    if isinstance(expr, L.Full):
        return sort_values([expr.fill])
    if isinstance(expr, L.Map):
        return sort_values(_apply(expr.f, ((x,) for x in sets[expr.inner.uid])))
    if isinstance(expr, L.LinearSequenceMap) and L.is_numerical(expr):
        return _linear(expr, sets[expr.fst.uid], sets[expr.snd.uid])
    if isinstance(expr, (L.SequenceMap, L.LinearSequenceMap)):
        pairs = itertools.product(sets[expr.fst.uid], sets[expr.snd.uid])
        return sort_values(_apply(expr.f, pairs))
    if isinstance(expr, L.SelectorWidth):
        return tuple(range(n + 1))
    if isinstance(expr, L.Aggregate):
        inner = sets[expr.sop.uid]
        if L.is_numerical(expr):
            return _means(expr, inner, n)
        return inner
    raise ValueSetError(expr, f"no value-set rule for {type(expr).__name__}")
