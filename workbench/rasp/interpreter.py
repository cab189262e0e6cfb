"""The RASP interpreter: `evaluate(program, xs)` and `trace(program, xs)` (every subexpression).

Semantics (those of tracr's evaluator): `Map`/`SequenceMap` pass None through; `Select` raises on a
None key or query; `Aggregate` returns the default on an empty row, the value itself on a row with
one selected key, and the mean of the selected values otherwise (numbers only).
"""

from collections.abc import Sequence

from . import language as L
from .graph import walk
from .language import Value

SelectorValue = list[list[bool]]


class EvaluationError(ValueError):
    """Evaluating `expr` on input `xs` failed; `__cause__` holds the original error."""

    def __init__(self, expr: L.Expr, xs: Sequence[Value], cause: Exception):
        self.expr = expr
        self.xs = list(xs)
        super().__init__(f"evaluating {expr!r} on {self.xs}: {type(cause).__name__}: {cause}")


def evaluate(program: L.SOp, xs: Sequence[Value]) -> list[Value]:
    """The value of `program` on the input sequence `xs`, one value per position."""
    if not isinstance(program, L.SOp):
        raise TypeError(f"evaluate(program=...) needs an SOp, got {program!r}")
    return trace(program, xs)[program.uid]  # type: ignore[return-value]


def trace(program: L.Expr, xs: Sequence[Value]) -> dict[int, list[Value] | SelectorValue]:
    """The value of every subexpression of `program` on `xs`, keyed by `uid`."""
    xs = list(xs)
    values: dict[int, list[Value] | SelectorValue] = {}
    for expr in walk(program):
        try:
            values[expr.uid] = _eval(expr, xs, values)
        except EvaluationError:
            raise
        except Exception as e:  # noqa: BLE001 - re-raised with the expression that failed
            raise EvaluationError(expr, xs, e) from e
    return values


def _eval(expr: L.Expr, xs: list[Value], v: dict) -> list[Value] | SelectorValue:
    n = len(xs)
    if isinstance(expr, L.TokensType):
        return list(xs)
    if isinstance(expr, L.IndicesType):
        return list(range(n))
    if isinstance(expr, L.Full):
        return [expr.fill] * n
    if isinstance(expr, L.Map):
        return [None if x is None else expr.f(x) for x in v[expr.inner.uid]]
    if isinstance(expr, (L.SequenceMap, L.LinearSequenceMap)):
        pairs = zip(v[expr.fst.uid], v[expr.snd.uid])
        return [None if x is None or y is None else expr.f(x, y) for x, y in pairs]
    if isinstance(expr, L.Select):
        keys, queries = v[expr.keys.uid], v[expr.queries.uid]
        for name, vals, sop in (("key", keys, expr.keys), ("query", queries, expr.queries)):
            if any(x is None for x in vals):
                raise ValueError(f"Select got a None {name} (from {sop.label!r})")
        return [[bool(expr.predicate(k, q)) for k in keys] for q in queries]
    if isinstance(expr, L.SelectorAnd):
        a, b = v[expr.fst.uid], v[expr.snd.uid]
        return [[x and y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]
    if isinstance(expr, L.SelectorOr):
        a, b = v[expr.fst.uid], v[expr.snd.uid]
        return [[x or y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]
    if isinstance(expr, L.SelectorNot):
        return [[not x for x in row] for row in v[expr.inner.uid]]
    if isinstance(expr, L.SelectorWidth):
        return [sum(row) for row in v[expr.selector.uid]]
    if isinstance(expr, L.Aggregate):
        vals = v[expr.sop.uid]
        return [_mean([x for x, s in zip(vals, row) if s], expr.default) for row in v[expr.selector.uid]]
    raise NotImplementedError(f"the interpreter has no rule for {type(expr).__name__}")


def _mean(selected: list[Value], default: Value) -> Value:
    if not selected:
        return default
    if len(selected) == 1:
        return selected[0]
    if all(isinstance(x, (bool, int, float)) for x in selected):
        return sum(selected) / len(selected)
    raise ValueError(f"Aggregate can only average numbers, got {selected}")
