"""A library of RASP programs (tracr's `lib.py` programs and the RASP paper's most-freq), plus
`LIBRARY`: each program with a small vocabulary and length for exhaustive checks.

The programs follow the published definitions (Weiss et al. 2021; Lindner et al. 2023); this file is
written for the workbench's language. Programs that average over all positions (length, hist, sort,
...) assume non-causal attention, which is what the compiler builds.
"""

import dataclasses
from collections.abc import Callable, Sequence

from .language import (
    Aggregate,
    Comparison,
    LinearSequenceMap,
    Map,
    Select,
    SelectorAnd,
    SelectorWidth,
    SequenceMap,
    SOp,
    Value,
    indices,
    numerical,
    tokens,
)


def make_length() -> SOp:
    """The sequence length at every position: the width of an all-true selector."""
    everything = Select(tokens, tokens, Comparison.TRUE).named("select_all_true")
    return SelectorWidth(everything).named("length")


def make_reverse(sop: SOp = tokens) -> SOp:
    """`sop` reversed: position i reads position length - i - 1."""
    length = make_length()
    opp = (length - indices).named("opp_idx")
    opp = (opp - 1).named("opp_idx-1")
    flip = Select(indices, opp, Comparison.EQ).named("reverse_selector")
    return Aggregate(flip, sop).named("reverse")


def make_hist() -> SOp:
    """How often each position's token occurs in the sequence."""
    same = Select(tokens, tokens, Comparison.EQ).named("same_tok")
    return SelectorWidth(same).named("hist")


def make_sort_unique(vals: SOp, keys: SOp) -> SOp:
    """`vals` sorted by `keys` (the keys must be unique): position p reads the key with p smaller keys."""
    smaller = Select(keys, keys, Comparison.LT).named("smaller")
    target_pos = SelectorWidth(smaller).named("target_pos")
    move = Select(target_pos, indices, Comparison.EQ).named("sel_new")
    return Aggregate(move, vals).named("sort")


def make_sort(vals: SOp, keys: SOp, *, max_seq_len: int, min_key: float) -> SOp:
    """`vals` sorted by numeric `keys` that may repeat: ties broken by position via
    `key + min_key * i / max_seq_len` (`min_key`: the smallest gap between distinct keys)."""
    unique = SequenceMap(lambda x, i: x + min_key * i / max_seq_len, keys, indices).named("unique_keys")
    return make_sort_unique(vals, unique)


def make_sort_freq(max_seq_len: int) -> SOp:
    """Tokens sorted by decreasing frequency (ties in input order)."""
    hist = (-1 * make_hist()).named("neg_hist")
    return make_sort(tokens, hist, max_seq_len=max_seq_len, min_key=1).named("sort_freq")


def make_frac_prevs(bools: SOp) -> SOp:
    """The fraction of positions up to each position where `bools` holds (numerical)."""
    bools = numerical(bools)
    prevs = Select(indices, indices, Comparison.LEQ).named("prevs")
    return numerical(Aggregate(prevs, bools, default=0)).named("frac_prevs")


def make_pair_balance(sop: SOp, open_token: Value, close_token: Value) -> SOp:
    """Fraction of previous `open_token`s minus fraction of previous `close_token`s (numerical)."""
    opens = numerical(make_frac_prevs(numerical(sop == open_token).named("bools_open"))).named("opens")
    closes = numerical(make_frac_prevs(numerical(sop == close_token).named("bools_close"))).named("closes")
    return numerical(LinearSequenceMap(opens, closes, 1, -1)).named("pair_balance")


def make_shuffle_dyck(pairs: Sequence[str]) -> SOp:
    """1 at every position if each bracket type in `pairs` (e.g. ["()", "{}"]) is balanced, else 0."""
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"make_shuffle_dyck(pairs=...) needs two-character strings like '()', got {pairs}")
    balances = [make_pair_balance(tokens, p[0], p[1]).named(f"balance_{p}") for p in pairs]
    any_negative = balances[0] < 0
    for b in balances[1:]:
        any_negative = any_negative | (b < 0)
    any_negative = numerical(Map(lambda x: x, any_negative, desc="{0}")).named("any_negative")
    select_all = Select(indices, indices, Comparison.TRUE).named("select_all")
    has_neg = numerical(Aggregate(select_all, any_negative, default=0)).named("has_neg")
    all_zero = balances[0] == 0
    for b in balances[1:]:
        all_zero = all_zero & (b == 0)
    select_last = Select(indices, make_length() - 1, Comparison.EQ).named("select_last")
    last_zero = Aggregate(select_last, all_zero).named("last_zero")
    not_has_neg = (~has_neg).named("not_has_neg")
    return (last_zero & not_has_neg).named("shuffle_dyck")


def make_shuffle_dyck2() -> SOp:
    return make_shuffle_dyck(["()", "{}"]).named("shuffle_dyck2")


def shift_by(offset: int, sop: SOp) -> SOp:
    """`sop` shifted right by `offset` positions (None in the first `offset`)."""
    back = Select(indices, indices, lambda k, q: q == k + offset).named(f"select_shift_{offset}")
    return Aggregate(back, sop).named(f"shift_by({offset})")


def detect_pattern(sop: SOp, pattern: Sequence[Value]) -> SOp:
    """True at the last position of each occurrence of `pattern` in `sop` (None before it fits)."""
    if len(pattern) < 1:
        raise ValueError(f"detect_pattern(pattern=...) needs at least one element, got {pattern!r}")
    detectors = []
    for i, element in enumerate(reversed(pattern)):
        hit = (sop == element).named(f"is_{element}_{i}")
        detectors.append(hit if i == 0 else shift_by(i, hit))
    found = detectors.pop()
    while detectors:
        found = found & detectors.pop()
    return found.named(f"detect_pattern({''.join(map(str, pattern))})")


def make_count_less_freq(n: int) -> SOp:
    """How many positions hold a token that occurs at most `n` times (tracr's `x <= n` predicate)."""
    hist = make_hist()
    rare = Select(hist, hist, lambda k, q: k <= n).named("select_less")
    return SelectorWidth(rare).named("count_less_freq")


def make_count(sop: SOp, token: Value) -> SOp:
    """How often `token` occurs in `sop`, at every position."""
    is_token = Select(sop, sop, lambda k, q: k == token).named(f"select_{token}")
    return SelectorWidth(is_token).named(f"count_{token}")


def make_most_freq(max_seq_len: int) -> SOp:
    """The distinct tokens by decreasing frequency, ties by first occurrence; None after the last
    (RASP paper, Weiss et al. 2021). Duplicates are dropped with a `SelectorAnd` (tracr cannot
    compile one): a position is a first occurrence when no earlier position holds its token."""
    hist = make_hist()
    same = Select(tokens, tokens, Comparison.EQ).named("same_tok_prev")
    earlier = Select(indices, indices, Comparison.LT).named("earlier")
    n_earlier = SelectorWidth(SelectorAnd(same, earlier).named("earlier_copy")).named("n_earlier_copies")
    is_first = (n_earlier == 0).named("is_first")
    key = SequenceMap(lambda h, i: -h + i / max_seq_len, hist, indices).named("freq_key")
    first_key = Select(is_first, indices, lambda k, q: k).named("first_key")
    smaller = SelectorAnd(Select(key, key, Comparison.LT).named("key_smaller"), first_key).named("smaller_first")
    target = SelectorWidth(smaller).named("target_pos")
    move = SelectorAnd(Select(target, indices, Comparison.EQ).named("to_target"), first_key).named("move_first")
    return Aggregate(move, tokens).named("most_freq")


@dataclasses.dataclass(frozen=True)
class LibraryEntry:
    """A program builder `build(max_seq_len)` with the vocabulary and length its exhaustive checks use."""

    name: str
    build: Callable[[int], SOp]
    vocab: tuple[Value, ...]
    max_seq_len: int

    def program(self, max_seq_len: int | None = None) -> SOp:
        return self.build(self.max_seq_len if max_seq_len is None else max_seq_len)


LIBRARY: tuple[LibraryEntry, ...] = (
    LibraryEntry("length", lambda n: make_length(), ("a", "b", "c"), 5),
    LibraryEntry("reverse", lambda n: make_reverse(tokens), (1, 2, 3), 5),
    LibraryEntry("hist", lambda n: make_hist(), ("a", "b", "c"), 5),
    LibraryEntry("sort_unique", lambda n: make_sort_unique(tokens, tokens), (1, 2, 3, 4), 4),
    LibraryEntry("sort", lambda n: make_sort(tokens, tokens, max_seq_len=n, min_key=1), (1, 2, 3), 5),
    LibraryEntry("sort_freq", make_sort_freq, ("a", "b", "c"), 5),
    LibraryEntry("frac_prevs", lambda n: make_frac_prevs(tokens == "x"), ("w", "x", "y", "z"), 5),
    LibraryEntry("pair_balance", lambda n: make_pair_balance(tokens, "(", ")"), ("(", ")", "a"), 5),
    LibraryEntry("shuffle_dyck", lambda n: make_shuffle_dyck(["()"]), ("(", ")", "a"), 5),
    LibraryEntry("shuffle_dyck2", lambda n: make_shuffle_dyck2(), ("(", ")", "{", "}"), 4),
    LibraryEntry("shift_by", lambda n: shift_by(2, tokens), (1, 2, 3), 5),
    LibraryEntry("detect_pattern", lambda n: detect_pattern(tokens, "abc"), ("a", "b", "c"), 5),
    LibraryEntry("count_less_freq", lambda n: make_count_less_freq(2), ("a", "b", "c"), 5),
    LibraryEntry("count", lambda n: make_count(tokens, "a"), ("a", "b", "c"), 5),
    LibraryEntry("most_freq", make_most_freq, ("a", "b", "c"), 5),
)


def entry(name: str) -> LibraryEntry:
    """The library entry called `name`."""
    for e in LIBRARY:
        if e.name == name:
            return e
    raise ValueError(f"no library program {name!r}; known: {', '.join(e.name for e in LIBRARY)}")
