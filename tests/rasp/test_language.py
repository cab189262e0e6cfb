"""The RASP language and interpreter: labels, operators, and the published examples."""

import pytest

from workbench.rasp import (
    Aggregate,
    Comparison,
    Full,
    Map,
    Select,
    SelectorAnd,
    SelectorNot,
    SelectorOr,
    SelectorWidth,
    SequenceMap,
    evaluate,
    indices,
    listing,
    numerical,
    tokens,
    trace,
)
from workbench.rasp import library as lib
from workbench.rasp.graph import walk
from workbench.rasp.interpreter import EvaluationError
from workbench.rasp.language import is_numerical


def test_operators_build_maps_and_sequence_maps():
    assert isinstance(tokens == 1, Map)
    assert isinstance(tokens + indices, SequenceMap)
    assert isinstance(1 - tokens, Map)
    assert evaluate(1 - tokens, [1, 2, 3]) == [0, -1, -2]
    assert evaluate(tokens - indices, [5, 5, 5]) == [5, 4, 3]
    assert evaluate(~(tokens == 2), [1, 2]) == [True, False]
    assert evaluate((tokens > 1) & (indices < 2), [3, 3, 3]) == [True, True, False]
    assert evaluate(Full(7), "ab") == [7, 7]


def test_labels_repr_and_named_copies():
    x = (tokens == "x").named("is_x")
    assert x.label == "is_x"
    assert repr(x) == "is_x = Map(tokens == 'x')  [categorical]"
    y = numerical(x)
    assert is_numerical(y) and not is_numerical(x) and y.uid != x.uid
    sel = Select(indices, indices, Comparison.LEQ).named("prevs")
    assert repr(sel) == "prevs = Select(keys=indices, queries=indices, LEQ)"
    assert "reverse = Aggregate(reverse_selector, tokens)" in listing(lib.make_reverse())


def test_truth_value_is_an_error():
    with pytest.raises(TypeError, match="no truth value"):
        bool(tokens == 1)


def test_walk_puts_children_first_and_visits_shared_nodes_once():
    length = lib.make_length()
    prog = SequenceMap(lambda a, b: a + b, length, length - indices)
    order = walk(prog)
    pos = {e.uid: i for i, e in enumerate(order)}
    assert len(pos) == len(order)
    for e in order:
        assert all(pos[c.uid] < pos[e.uid] for c in e.children)


def test_bad_constructor_arguments_name_the_parameter():
    with pytest.raises(TypeError, match="Aggregate\\(selector"):
        Aggregate(tokens, tokens)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Select\\(keys"):
        Select("abc", tokens, Comparison.EQ)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "program, xs, expected",
    [
        (lib.make_length(), "abcdefg", [7] * 7),
        (lib.make_reverse(tokens), "Hello", list("olleH")),
        (lib.make_hist(), "abac", [2, 1, 2, 1]),
        (lib.make_sort_unique(tokens, tokens), [2, 4, 3, 1], [1, 2, 3, 4]),
        (lib.make_sort(tokens, tokens, max_seq_len=5, min_key=1), [2, 4, 1, 2], [1, 2, 2, 4]),
        (lib.make_sort_freq(5), [2, 4, 2, 1], [2, 2, 4, 1]),
        (lib.make_frac_prevs(tokens == "l"), "hello", [0, 0, 1 / 3, 1 / 2, 2 / 5]),
        (lib.make_pair_balance(tokens, "(", ")"), "a()b(c))", [0, 1 / 2, 0, 0, 1 / 5, 1 / 6, 0, -1 / 8]),
        (lib.make_shuffle_dyck2(), "({)}", [1, 1, 1, 1]),
        (lib.make_shuffle_dyck2(), "(){)}", [0, 0, 0, 0, 0]),
        (lib.shift_by(2, tokens), [1, 2, 3, 4], [None, None, 1, 2]),
        (lib.detect_pattern(tokens, "abc"), "abcabc", [None, None, True, False, False, True]),
        (lib.make_count_less_freq(2), list("aaabbc"), [3] * 6),
        (lib.make_count_less_freq(2), list("aacbbc"), [6] * 6),
        (lib.make_count(tokens, "a"), list("aaabbc"), [3] * 6),
        (lib.make_most_freq(8), list("abbccddd"), ["d", "b", "c", "a", None, None, None, None]),
    ],
)
def test_library_programs_match_their_published_examples(program, xs, expected):
    out = evaluate(program, xs)
    assert len(out) == len(expected)
    for got, want in zip(out, expected):
        assert got == pytest.approx(want) if isinstance(want, float) else got == want


def test_selector_combinators():
    lt = Select(indices, indices, Comparison.LT)
    eq = Select(tokens, tokens, Comparison.EQ)
    t = trace(SelectorWidth(SelectorAnd(lt, eq)), [1, 2, 1, 1])
    assert t[max(t)] == [0, 0, 1, 2]  # earlier copies of the same token
    assert evaluate(SelectorWidth(SelectorOr(lt, eq)), [1, 2, 1]) == [2, 2, 3]
    assert evaluate(SelectorWidth(SelectorNot(lt)), [1, 2, 1]) == [3, 2, 1]


def test_interpreter_errors_name_the_expression():
    shifted = lib.shift_by(1, tokens)
    bad = Aggregate(Select(shifted, tokens, Comparison.EQ).named("sel_on_none"), tokens)
    with pytest.raises(EvaluationError, match="sel_on_none.*None key"):
        evaluate(bad, [1, 2])
    mixed = Aggregate(Select(tokens, tokens, Comparison.TRUE), tokens).named("avg_strings")
    with pytest.raises(EvaluationError, match="avg_strings"):
        evaluate(mixed, ["a", "b"])
