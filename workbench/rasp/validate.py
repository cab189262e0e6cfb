"""Compiler stages 1 and 3b: static and dynamic validation, and selectors in normal form.

Static validation rejects what the components cannot express (numerical keys, numerical
`SequenceMap` inputs, `SelectorOr` across different key/query SOps, ...). Dynamic validation runs the
interpreter on inputs and rejects what only shows on data: a categorical `Aggregate` that averages
different values (an attention head would blend their one-hot codes), a None reaching a `Select` or
a numerical SOp, and (a compiler bug) a value outside the inferred value set.

A selector compiles to one attention head when it is a conjunction of *atoms*: an atom is a
predicate over one (keys, queries) pair of SOps, built from `Select`s on that pair with `&`, `|`
and `~`. Atoms on different pairs may only be joined by `&` (their scores add up in one head).
"""

import bisect
import dataclasses
from collections.abc import Callable, Iterable, Sequence

from . import language as L
from .graph import ProgramGraph
from .interpreter import EvaluationError, trace
from .language import Value
from .values import NUMERIC_TOL, ValueSets


@dataclasses.dataclass(frozen=True)
class Unsupported:
    """Why the expression `label` cannot be compiled."""

    label: str
    expr: str
    reason: str

    def __str__(self) -> str:
        return f"{self.label!r} ({self.expr}): {self.reason}"


class CompileError(ValueError):
    """The program cannot be compiled; `problems` names each offending expression and why."""

    def __init__(self, problems: Sequence[Unsupported], stage: str):
        self.problems = list(problems)
        self.stage = stage
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"cannot compile this RASP program ({stage} validation):\n{lines}")


def _problem(graph: ProgramGraph | None, expr: L.Expr, reason: str) -> Unsupported:
    label = graph.label(expr) if graph is not None and expr.uid in graph.labels else expr.label
    return Unsupported(label, expr.describe(), reason)


@dataclasses.dataclass(frozen=True)
class Atom:
    """`selected[q, k] = predicate(keys[k], queries[q])` for one (keys, queries) pair."""

    keys: L.SOp
    queries: L.SOp
    predicate: Callable[[Value, Value], bool]


class _Reject(Exception):
    def __init__(self, expr: L.Expr, reason: str):
        self.expr = expr
        self.reason = reason


def conjunction(selector: L.Selector) -> tuple[Atom, ...]:
    """`selector` as a conjunction of atoms on distinct (keys, queries) pairs; raises `_Reject`."""
    if isinstance(selector, L.Select):
        return (Atom(selector.keys, selector.queries, selector.predicate),)
    if isinstance(selector, L.SelectorAnd):
        atoms = list(conjunction(selector.fst))
        for atom in conjunction(selector.snd):
            same = [i for i, a in enumerate(atoms) if _pair(a) == _pair(atom)]
            if same:
                old = atoms[same[0]]
                atoms[same[0]] = Atom(atom.keys, atom.queries, _and(old.predicate, atom.predicate))
            else:
                atoms.append(atom)
        return tuple(atoms)
    if isinstance(selector, L.SelectorOr):
        a, b = conjunction(selector.fst), conjunction(selector.snd)
        if len(a) != 1 or len(b) != 1 or _pair(a[0]) != _pair(b[0]):
            raise _Reject(
                selector,
                "SelectorOr is compiled only between selectors on the same keys and queries SOps "
                f"(got pairs {_pairs(a)} and {_pairs(b)}); build one Select with a combined predicate, "
                "or combine the key/query SOps first with a SequenceMap",
            )
        return (Atom(a[0].keys, a[0].queries, _or(a[0].predicate, b[0].predicate)),)
    if isinstance(selector, L.SelectorNot):
        a = conjunction(selector.inner)
        if len(a) != 1:
            raise _Reject(
                selector, f"SelectorNot of a conjunction over several key/query pairs {_pairs(a)} is not compiled"
            )
        return (Atom(a[0].keys, a[0].queries, _not(a[0].predicate)),)
    raise _Reject(selector, f"{type(selector).__name__} is not compiled")


def _pair(atom: Atom) -> tuple[int, int]:
    return (atom.keys.uid, atom.queries.uid)


def _pairs(atoms: Sequence[Atom]) -> list[tuple[str, str]]:
    return [(a.keys.label, a.queries.label) for a in atoms]


def _and(p, q):
    return lambda k, x: bool(p(k, x)) and bool(q(k, x))


def _or(p, q):
    return lambda k, x: bool(p(k, x)) or bool(q(k, x))


def _not(p):
    return lambda k, x: not p(k, x)


def static_problems(graph: ProgramGraph) -> list[Unsupported]:
    """Every expression of `graph` that no component can express, with the reason."""
    problems = []
    for expr in graph.order:
        try:
            _check(expr)
        except _Reject as r:
            problems.append(_problem(graph, r.expr, r.reason))
    return list({(p.label, p.reason): p for p in problems}.values())


def _check(expr: L.Expr) -> None:
    if isinstance(expr, (L.TokensType, L.IndicesType)):
        if L.is_numerical(expr):
            raise _Reject(expr, f"{expr.describe()} is always categorical; map it to a numerical SOp instead")
    elif isinstance(expr, L.Select):
        for role, sop in (("keys", expr.keys), ("queries", expr.queries)):
            if not L.is_categorical(sop):
                raise _Reject(expr, f"Select {role} must be categorical, but {sop.label!r} is numerical")
    elif isinstance(expr, (L.SelectorAnd, L.SelectorOr, L.SelectorNot)):
        conjunction(expr)
    elif isinstance(expr, L.SelectorWidth):
        conjunction(expr.selector)
    elif isinstance(expr, L.Aggregate):
        conjunction(expr.selector)
        if expr.encoding != expr.sop.encoding:
            raise _Reject(
                expr, f"Aggregate is {expr.encoding} but its input {expr.sop.label!r} is {expr.sop.encoding}"
            )
        if L.is_categorical(expr) and expr.default is not None:
            raise _Reject(expr, f"a categorical Aggregate needs default=None (got {expr.default!r})")
        if L.is_numerical(expr) and expr.default != 0:
            raise _Reject(expr, f"a numerical Aggregate needs default=0 (got {expr.default!r})")
    elif isinstance(expr, L.LinearSequenceMap):
        encodings = {expr.fst.encoding, expr.snd.encoding}
        if len(encodings) != 1:
            raise _Reject(expr, "LinearSequenceMap inputs must both be numerical (or both categorical)")
        if encodings == {"numerical"} and not L.is_numerical(expr):
            raise _Reject(expr, "LinearSequenceMap of numerical inputs must be numerical (wrap in numerical())")
    elif isinstance(expr, L.SequenceMap):
        for sop in expr.children:
            if not L.is_categorical(sop):
                raise _Reject(
                    expr, f"SequenceMap inputs must be categorical, but {sop.label!r} is numerical "
                    "(use LinearSequenceMap, or a categorical Map first)"
                )
    elif isinstance(expr, L.Full):
        if L.is_numerical(expr) and not isinstance(expr.fill, (bool, int, float)):
            raise _Reject(expr, f"a numerical Full needs a number, got {expr.fill!r}")
    elif not isinstance(expr, L.Map):
        raise _Reject(expr, f"{type(expr).__name__} is not supported by the compiler")


def dynamic_problems(
    graph: ProgramGraph, values: ValueSets, inputs: Iterable[Sequence[Value]], max_problems: int = 10
) -> list[Unsupported]:
    """Run the interpreter on each input and report what the compiled model would get wrong."""
    found: dict[tuple[str, str], Unsupported] = {}
    aggregates = [e for e in graph.order if isinstance(e, L.Aggregate) and L.is_categorical(e)]
    for xs in inputs:
        try:
            t = trace(graph.program, xs)
        except EvaluationError as e:
            p = _problem(graph, e.expr, f"the interpreter fails on input {list(xs)}: {e.__cause__}")
            found.setdefault((p.label, "eval"), p)
        else:
            for kind, p in _check_trace(graph, values, aggregates, t, xs):
                found.setdefault((p.label, kind), p)  # the first input showing each kind of problem
        if len(found) >= max_problems:
            break
    return list(found.values())


def _check_trace(graph, values, aggregates, t, xs) -> list[tuple[str, Unsupported]]:
    problems = []
    for agg in aggregates:
        for q, row in enumerate(t[agg.selector.uid]):
            picked = [v for v, s in zip(t[agg.sop.uid], row) if s]
            if any(not _same(v, picked[0]) for v in picked[1:]):
                problems.append(("blend", _problem(
                    graph, agg, f"averages different values {picked} at position {q} of input {list(xs)}: "
                    "a categorical Aggregate may only move one value (its selector must pick keys that agree)"
                )))
                break
    if problems:  # values downstream of a blended aggregate are meaningless; report the cause only
        return problems
    for sop in graph.sops:
        seq = t[sop.uid]
        allowed = values[sop.uid]
        if L.is_numerical(sop):
            bad = [v for v in seq if not isinstance(v, (bool, int, float))]
            if bad:
                reason = f"numerical SOp takes non-numbers {bad} on input {list(xs)}"
                problems.append(("none", _problem(graph, sop, reason)))
                continue
            missing = [v for v in seq if not _near(float(v), allowed)]
        else:
            known = set(allowed)
            missing = [v for v in seq if v is not None and v not in known]
        if missing:
            problems.append(("missed", _problem(
                graph, sop, f"value-set inference missed {missing} on input {list(xs)} (a compiler bug)"
            )))
    return problems


def _near(x: float, allowed: tuple[float, ...]) -> bool:
    """Whether `x` is within 1e-6 of a value in the sorted tuple `allowed`."""
    i = bisect.bisect_left(allowed, x)
    return any(abs(x - allowed[j]) <= 1e3 * NUMERIC_TOL for j in (i - 1, i) if 0 <= j < len(allowed))


def _same(a: Value, b: Value) -> bool:
    return (a is None) == (b is None) and a == b
