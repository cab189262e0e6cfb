"""RASP expressions: sequence operations (SOps) and selectors (Weiss, Goldberg and Yahav, 2021).

An SOp maps an input sequence to a sequence of the same length; a selector maps it to a boolean
matrix `[query, key]`. Expressions are immutable and compared by identity (`uid`), because `==` on
an SOp builds a new SOp:

```python
from workbench.rasp import tokens, indices, Select, Aggregate, SelectorWidth, Comparison
length = SelectorWidth(Select(tokens, tokens, Comparison.TRUE)).named("length")
flip = Select(indices, length - indices - 1, Comparison.EQ).named("flip")
reverse = Aggregate(flip, tokens).named("reverse")
```

Every SOp is `"categorical"` (one residual dimension per value) or `"numerical"` (one dimension
holding the value); set it with `numerical(sop)` / `categorical(sop)`. `Select` calls its predicate
as `predicate(key, query)`, so `Comparison.LT` selects keys smaller than the query.
"""

import dataclasses
import enum
import itertools
from collections.abc import Callable
from typing import Any, ClassVar, Literal

Value = Any  # None, bool, int, float or str: anything hashable that a program computes
Encoding = Literal["categorical", "numerical"]

_uids = itertools.count()


class Comparison(enum.Enum):
    """Predicates for `Select`, called as `comparison(key, query)`."""

    EQ = "=="
    LT = "<"
    LEQ = "<="
    GT = ">"
    GEQ = ">="
    NEQ = "!="
    TRUE = "True"
    FALSE = "False"

    def __call__(self, key: Value, query: Value) -> bool:
        if key is None or query is None:
            raise ValueError(f"Comparison {self.name} got None (key={key!r}, query={query!r})")
        return _COMPARE[self](key, query)


_COMPARE: dict[Comparison, Callable[[Value, Value], bool]] = {
    Comparison.EQ: lambda k, q: k == q,
    Comparison.LT: lambda k, q: k < q,
    Comparison.LEQ: lambda k, q: k <= q,
    Comparison.GT: lambda k, q: k > q,
    Comparison.GEQ: lambda k, q: k >= q,
    Comparison.NEQ: lambda k, q: k != q,
    Comparison.TRUE: lambda k, q: True,
    Comparison.FALSE: lambda k, q: False,
}

Predicate = Comparison | Callable[[Value, Value], bool]


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class Expr:
    """A RASP expression. `name` is the user's label; `uid` identifies the expression."""

    name: str | None = None
    uid: int = dataclasses.field(default_factory=lambda: next(_uids), repr=False)

    @property
    def children(self) -> tuple["Expr", ...]:
        return ()

    @property
    def kind(self) -> str:
        return _snake(type(self).__name__)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"{self.kind}_{self.uid}"

    def named(self, name: str):
        """A copy of this expression called `name`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"named(name): name must be a non-empty string, got {name!r}")
        return dataclasses.replace(self, name=name, uid=next(_uids))

    def __bool__(self):
        raise TypeError(
            f"RASP expression {self.label!r} has no truth value; build a selector or use `&`, `|`, `~`"
        )

    def __repr__(self) -> str:
        return f"{self.label} = {self.describe()}"

    def describe(self) -> str:
        """The defining expression, with children by label."""
        return f"{type(self).__name__}()"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _fn_name(f: Callable) -> str:
    return getattr(f, "__name__", type(f).__name__)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class SOp(Expr):
    """A sequence operation: one value per position."""

    encoding: Encoding = "categorical"

    def __repr__(self) -> str:
        return f"{self.label} = {self.describe()}  [{self.encoding}]"

    # comparisons and arithmetic build Maps (with a constant) or SequenceMaps (with an SOp)
    def _op(self, other, f: Callable, symbol: str, reflected: bool = False) -> "SOp":
        if isinstance(other, SOp):
            a, b = (other, self) if reflected else (self, other)
            return SequenceMap(f, a, b, desc=f"{{0}} {symbol} {{1}}")
        if isinstance(other, Expr):
            raise TypeError(f"cannot combine SOp {self.label!r} with selector {other.label!r} by {symbol}")
        if reflected:
            return Map(lambda x: f(other, x), self, desc=f"{other!r} {symbol} {{0}}")
        return Map(lambda x: f(x, other), self, desc=f"{{0}} {symbol} {other!r}")

    def __eq__(self, other):  # type: ignore[override]
        return self._op(other, lambda x, y: x == y, "==")

    def __ne__(self, other):  # type: ignore[override]
        return self._op(other, lambda x, y: x != y, "!=")

    def __lt__(self, other):
        return self._op(other, lambda x, y: x < y, "<")

    def __le__(self, other):
        return self._op(other, lambda x, y: x <= y, "<=")

    def __gt__(self, other):
        return self._op(other, lambda x, y: x > y, ">")

    def __ge__(self, other):
        return self._op(other, lambda x, y: x >= y, ">=")

    def __add__(self, other):
        return self._op(other, lambda x, y: x + y, "+")

    def __radd__(self, other):
        return self._op(other, lambda x, y: x + y, "+", reflected=True)

    def __sub__(self, other):
        return self._op(other, lambda x, y: x - y, "-")

    def __rsub__(self, other):
        return self._op(other, lambda x, y: x - y, "-", reflected=True)

    def __mul__(self, other):
        return self._op(other, lambda x, y: x * y, "*")

    def __rmul__(self, other):
        return self._op(other, lambda x, y: x * y, "*", reflected=True)

    def __truediv__(self, other):
        return self._op(other, lambda x, y: x / y, "/")

    def __rtruediv__(self, other):
        return self._op(other, lambda x, y: x / y, "/", reflected=True)

    def __and__(self, other):
        return self._op(other, lambda x, y: bool(x and y), "&")

    def __rand__(self, other):
        return self._op(other, lambda x, y: bool(x and y), "&", reflected=True)

    def __or__(self, other):
        return self._op(other, lambda x, y: bool(x or y), "|")

    def __ror__(self, other):
        return self._op(other, lambda x, y: bool(x or y), "|", reflected=True)

    def __invert__(self):
        return Map(lambda x: not x, self, desc="not {0}")

    def __neg__(self):
        return Map(lambda x: -x, self, desc="-{0}")

    __hash__ = None  # type: ignore[assignment]  # `==` builds an SOp; key dicts by `uid`


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class TokensType(SOp):
    """The input tokens (always categorical)."""

    @property
    def label(self) -> str:
        return self.name or "tokens"

    def describe(self) -> str:
        return "tokens"


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class IndicesType(SOp):
    """The positions 0..n-1 (always categorical)."""

    @property
    def label(self) -> str:
        return self.name or "indices"

    def describe(self) -> str:
        return "indices"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Map(SOp):
    """`f` applied to each value of `inner` (None stays None)."""

    f: Callable[[Value], Value]
    inner: SOp
    desc: str | None = dataclasses.field(default=None, kw_only=True)

    @property
    def children(self):
        return (self.inner,)

    def describe(self) -> str:
        if self.desc is not None:
            return f"Map({self.desc.format(self.inner.label)})"
        return f"Map({_fn_name(self.f)}, {self.inner.label})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SequenceMap(SOp):
    """`f(a, b)` position by position (None if either is None)."""

    f: Callable[[Value, Value], Value]
    fst: SOp
    snd: SOp
    desc: str | None = dataclasses.field(default=None, kw_only=True)

    @property
    def children(self):
        return (self.fst, self.snd)

    def describe(self) -> str:
        if self.desc is not None:
            return f"SequenceMap({self.desc.format(self.fst.label, self.snd.label)})"
        return f"SequenceMap({_fn_name(self.f)}, {self.fst.label}, {self.snd.label})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LinearSequenceMap(SOp):
    """`fst_fac * fst + snd_fac * snd` (numerical inputs and output)."""

    fst: SOp
    snd: SOp
    fst_fac: float
    snd_fac: float

    @property
    def children(self):
        return (self.fst, self.snd)

    def f(self, x: Value, y: Value) -> Value:
        return self.fst_fac * x + self.snd_fac * y

    def describe(self) -> str:
        return f"LinearSequenceMap({self.fst_fac} * {self.fst.label} + {self.snd_fac} * {self.snd.label})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Full(SOp):
    """The constant `fill` at every position."""

    fill: Value

    def describe(self) -> str:
        return f"Full({self.fill!r})"


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class Selector(Expr):
    """A boolean matrix `[query, key]`; combine with `&`, `|`, `~`."""

    def __and__(self, other: "Selector") -> "Selector":
        return SelectorAnd(self, other)

    def __or__(self, other: "Selector") -> "Selector":
        return SelectorOr(self, other)

    def __invert__(self) -> "Selector":
        return SelectorNot(self)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Select(Selector):
    """`selected[q, k] = predicate(keys[k], queries[q])`."""

    keys: SOp
    queries: SOp
    predicate: Predicate

    def __post_init__(self):
        for field in ("keys", "queries"):
            if not isinstance(getattr(self, field), SOp):
                raise TypeError(f"Select({field}=...) must be an SOp, got {getattr(self, field)!r}")
        if not callable(self.predicate):
            raise TypeError(f"Select(predicate=...) must be a Comparison or callable, got {self.predicate!r}")

    @property
    def children(self):
        return (self.keys, self.queries)

    def describe(self) -> str:
        p = self.predicate.name if isinstance(self.predicate, Comparison) else _fn_name(self.predicate)
        return f"Select(keys={self.keys.label}, queries={self.queries.label}, {p})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class _SelectorPair(Selector):
    """A selector built elementwise from two selectors; subclasses set the `symbol`."""

    fst: Selector
    snd: Selector
    symbol: ClassVar[str]

    @property
    def children(self):
        return (self.fst, self.snd)

    def describe(self) -> str:
        return f"{self.fst.label} {self.symbol} {self.snd.label}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SelectorAnd(_SelectorPair):
    symbol = "&"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SelectorOr(_SelectorPair):
    symbol = "|"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SelectorNot(Selector):
    inner: Selector

    @property
    def children(self):
        return (self.inner,)

    def describe(self) -> str:
        return f"~{self.inner.label}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Aggregate(SOp):
    """Mean of `sop` over the selected keys of each query; `default` where none is selected."""

    selector: Selector
    sop: SOp
    default: Value = None

    def __post_init__(self):
        if not isinstance(self.selector, Selector):
            raise TypeError(f"Aggregate(selector=...) must be a Selector, got {self.selector!r}")
        if not isinstance(self.sop, SOp):
            raise TypeError(f"Aggregate(sop=...) must be an SOp, got {self.sop!r}")

    @property
    def children(self):
        return (self.selector, self.sop)

    def describe(self) -> str:
        default = "" if self.default is None else f", default={self.default!r}"
        return f"Aggregate({self.selector.label}, {self.sop.label}{default})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class SelectorWidth(SOp):
    """The number of keys each query selects."""

    selector: Selector

    def __post_init__(self):
        if not isinstance(self.selector, Selector):
            raise TypeError(f"SelectorWidth(selector=...) must be a Selector, got {self.selector!r}")

    @property
    def children(self):
        return (self.selector,)

    def describe(self) -> str:
        return f"SelectorWidth({self.selector.label})"


tokens = TokensType()
indices = IndicesType()


def numerical(sop: SOp) -> SOp:
    """A copy of `sop` encoded as one residual dimension holding its value."""
    return dataclasses.replace(sop, encoding="numerical", uid=next(_uids))


def categorical(sop: SOp) -> SOp:
    """A copy of `sop` encoded one-hot, one residual dimension per value."""
    return dataclasses.replace(sop, encoding="categorical", uid=next(_uids))


def is_numerical(sop: SOp) -> bool:
    return sop.encoding == "numerical"


def is_categorical(sop: SOp) -> bool:
    return sop.encoding == "categorical"
