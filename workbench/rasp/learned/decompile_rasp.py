"""Decompile a `DiscreteProgram` into a workbench RASP program, which `compile_program` turns into a
standard `Transformer` with its ground-truth circuit.

The RASP input is the whole sequence `[BOS, s_1..s_n]` (BOS is the token `n_symbols`), so RASP
positions are the learned model's positions. Heads and MLPs become:

- numerical head: `SelectorWidth(Select(k, target, EQ))` with `target = Map(pred, q)` (a count, kept
  categorical, so that MLPs and the classifier can read it through lookup tables);
- MLP: `SequenceMap(table, a, b)` (a `Map` where an input is the constant `ones`);
- classifier: per class, a numerical `Map` of each variable to its integer score, summed by a tree of
  `LinearSequenceMap`s; then `[s_c > s_c']` for every pair of classes (numerical differences, mapped
  to booleans) and a chain of `SequenceMap`s keeping the first class that beats every earlier one;
- categorical head: RASP has no "nearest match", so it is built from counts. The nearest match on
  the left is the match whose rank among equal keys from the left (`SelectorWidth` of equal keys at
  or before it) equals the number of matches left of the query; one `Select` pair picks it, a
  numerical `Aggregate` moves its value and position (`+1`, so that 0 means none and no `None`
  appears), and `SequenceMap`s pick the nearer side, else the query itself, else BOS.
"""

import warnings
from collections.abc import Sequence

import numpy as np

from .. import language as L
from ..compiler import CompiledProgram, SampledValidationWarning, compile_program
from .discrete import DiscreteProgram
from .units import Listing, Unit, check_discrete, listing

NONE_SIDE, LEFT, RIGHT = 0, 1, 2


class _Builder:
    """Builds the RASP expression of every variable once (shared parts are cached by name)."""

    def __init__(self, lst: Listing, n_ctx: int):
        self.sops: dict[str, L.SOp] = {"tokens": L.tokens, "positions": L.indices}
        self.cache: dict[str, L.SOp] = {}
        self.far = 2 * n_ctx  # the distance of a side with no match

    def shared(self, name: str, build) -> L.SOp:
        if name not in self.cache:
            self.cache[name] = build().named(name)
        return self.cache[name]

    def rank(self, key: str, side: str) -> L.SOp:
        """How many positions at or before (`left`) / after (`right`) each one hold its value of `key`."""
        cmp = L.Comparison.LEQ if side == "left" else L.Comparison.GEQ
        k = self.sops[key]
        return self.shared(f"{key}_rank_{side}", lambda: L.SelectorWidth(
            L.Select(k, k, L.Comparison.EQ) & L.Select(L.indices, L.indices, cmp)))

    def plus_one(self, var: str) -> L.SOp:
        sop = self.sops[var]
        return self.shared(f"{var}_plus_1", lambda: L.numerical(L.Map(lambda x: x + 1, sop, desc="{0} + 1")))

    def at_bos(self, var: str) -> L.SOp:
        sop = self.sops[var]
        first = self.shared("select_bos", lambda: L.Select(L.indices, L.indices, lambda k, q: k == 0))
        return self.shared(f"{var}_at_bos", lambda: L.Aggregate(first, sop))

    def cat_head(self, u: Unit) -> L.SOp:
        q, k, v = (self.sops[r] for r in u.reads)
        pred = tuple(int(x) for x in u.table)
        target = L.Map(lambda x: pred[x], q, desc=f"predicate_{u.name[5:]}({{0}})").named(f"{u.name}_target")
        match = L.Select(k, target, L.Comparison.EQ).named(f"{u.name}_match")
        moved = {}
        for side, cmp in (("left", L.Comparison.LT), ("right", L.Comparison.GT)):
            n_side = L.SelectorWidth(match & L.Select(L.indices, L.indices, cmp)).named(f"{u.name}_n_{side}")
            nearest = (match & L.Select(self.rank(u.reads[1], side), n_side, L.Comparison.EQ)).named(
                f"{u.name}_nearest_{side}")
            value = L.numerical(L.Aggregate(nearest, self.plus_one(u.reads[2]), default=0))
            where = L.numerical(L.Aggregate(nearest, self.plus_one("positions"), default=0))
            value = L.Map(_minus_one, value.named(f"{u.name}_{side}_value+1"), desc="{0} - 1").named(
                f"{u.name}_{side}_value")
            where = L.Map(_minus_one, where.named(f"{u.name}_{side}_pos+1"), desc="{0} - 1").named(
                f"{u.name}_{side}_pos")
            moved[side] = value, where
        far = self.far
        d_left = L.SequenceMap(lambda p, i: i - p if p >= 0 else far, moved["left"][1], L.indices).named(
            f"{u.name}_left_distance")
        d_right = L.SequenceMap(lambda p, i: p - i if p >= 0 else far, moved["right"][1], L.indices).named(
            f"{u.name}_right_distance")
        side = L.SequenceMap(_side(far), d_left, d_right).named(f"{u.name}_side")
        is_self = L.SequenceMap(lambda a, b: a == b, k, target).named(f"{u.name}_self_match")
        own = L.SequenceMap(lambda s, x: x if s else -1, is_self, v).named(f"{u.name}_self_value")
        fallback = L.SequenceMap(lambda a, b: a if a >= 0 else b, own, self.at_bos(u.reads[2])).named(
            f"{u.name}_fallback")
        pick = L.SequenceMap(lambda s, x: x if s == LEFT else (-2 if s == RIGHT else -1), side,
                             moved["left"][0]).named(f"{u.name}_pick_left")
        pick = L.SequenceMap(lambda p, x: x if p == -2 else p, pick, moved["right"][0]).named(f"{u.name}_pick_right")
        return L.SequenceMap(lambda p, x: x if p == -1 else p, pick, fallback)

    def num_head(self, u: Unit) -> L.SOp:
        q, k = (self.sops[r] for r in u.reads)
        pred = tuple(int(x) for x in u.table)
        target = L.Map(lambda x: pred[x], q, desc=f"num_predicate_{u.name[9:]}({{0}})").named(f"{u.name}_target")
        return L.SelectorWidth(L.Select(k, target, L.Comparison.EQ))

    def lookup(self, table: np.ndarray, reads: Sequence[str]) -> L.SOp:
        t = tuple(tuple(int(x) for x in row) for row in table)
        a, b = reads
        if a == "ones" and b == "ones":
            return L.Map(lambda x: t[1][1], L.tokens, desc=f"{t[1][1]}")
        if a == "ones":
            return L.Map(lambda y: t[1][y], self.sops[b], desc="table(1, {0})")
        if b == "ones":
            return L.Map(lambda x: t[x][1], self.sops[a], desc="table({0}, 1)")
        return L.SequenceMap(lambda x, y: t[x][y], self.sops[a], self.sops[b], desc="table({0}, {1})")

    def score(self, lst: Listing, c: int) -> L.SOp:
        """Class `c`'s integer score at every position (numerical)."""
        bias = int(lst.out_bias[c])
        terms = []
        for i, (name, table) in enumerate(lst.out_terms):
            col = tuple(int(x) + (bias if i == 0 else 0) for x in table[:, c])
            terms.append(L.numerical(L.Map(lambda x, col=col: col[x], self.sops[name], desc=f"score_{c}({{0}})")
                                     ).named(f"score_{c}_{name}"))
        if not terms:
            return L.numerical(L.Full(bias)).named(f"score_{c}")
        while len(terms) > 1:  # a balanced tree of sums: few layers
            pairs = [terms[i:i + 2] for i in range(0, len(terms), 2)]
            terms = [p[0] if len(p) == 1 else L.numerical(L.LinearSequenceMap(p[0], p[1], 1, 1)) for p in pairs]
        return terms[0].named(f"score_{c}")

    def classifier(self, lst: Listing) -> L.SOp:
        """The first class with the highest score: class c wins over the earlier best if it beats all earlier ones."""
        scores = [self.score(lst, c) for c in range(len(lst.out_bias))]
        best: L.SOp = L.Full(0).named("best_0")
        for c in range(1, len(scores)):
            beats = []
            for e in range(c):
                diff = L.numerical(L.LinearSequenceMap(scores[c], scores[e], 1, -1)).named(f"score_{c}-{e}")
                beats.append(L.Map(lambda d: d > 0.5, diff, desc="{0} > 0").named(f"beats_{c}_{e}"))
            while len(beats) > 1:
                pairs = [beats[i:i + 2] for i in range(0, len(beats), 2)]
                beats = [p[0] if len(p) == 1 else L.SequenceMap(_both, p[0], p[1], desc="{0} and {1}") for p in pairs]
            best = L.SequenceMap(lambda b, up, c=c: c if up else b, best, beats[0], desc=f"{c} if {{1}} else {{0}}"
                                 ).named(f"best_{c}")
        return best

    def unit(self, u: Unit) -> L.SOp:
        if u.kind == "cat_head":
            sop = self.cat_head(u)
        elif u.kind == "num_head":
            sop = self.num_head(u)
        else:
            sop = self.lookup(u.table, u.reads)
        self.sops[u.name] = sop.named(u.name)
        return self.sops[u.name]


def _both(a, b):
    return bool(a and b)


def _minus_one(x):
    return int(round(x)) - 1


def _side(far: int):
    def side(a, b):
        if a == far and b == far:
            return NONE_SIDE
        return LEFT if a <= b else RIGHT
    return side


def rasp_program(program: DiscreteProgram) -> L.SOp:
    """`program` as a RASP SOp over `[BOS, s_1..s_n]` (one output class per position, BOS's included)."""
    program = check_discrete(program, "rasp_program(program=...)")
    lst = listing(program)
    builder = _Builder(lst, program.config.n_ctx)
    for u in lst.units:
        builder.unit(u)
    return builder.classifier(lst).named("output")


def compile_learned(program: DiscreteProgram, *, validation_budget: int = 200, seed: int = 0) -> CompiledProgram:
    """Compile `rasp_program(program)` for inputs over the tokens `0..n_symbols` up to length `n_ctx`.

    Dynamic validation runs on `validation_budget` sampled inputs (the program is large); the
    result's `validation` says so, and agreement is measured on the data with `compiled_outputs`."""
    program = check_discrete(program, "compile_learned(program=...)")
    c = program.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampledValidationWarning)
        return compile_program(rasp_program(program), vocab=range(c.n_symbols + 1), max_seq_len=c.n_ctx,
                               validation_budget=validation_budget, seed=seed)


def compiled_outputs(compiled: CompiledProgram, tokens: np.ndarray) -> np.ndarray:
    """The compiled transformer's outputs `[batch, seq - 1]` on `tokens [batch, seq]` (BOS first; -1 for None)."""
    rows = [tuple(int(x) for x in row) for row in np.asarray(tokens)]
    out = compiled.run_batch(rows)
    return np.array([[-1 if y is None else int(y) for y in row[1:]] for row in out], dtype=np.int64)
