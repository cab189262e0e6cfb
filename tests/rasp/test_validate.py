"""Validation: unsupported programs fail with a message naming the expression; what tracr cannot
compile (SelectorAnd, SelectorOr/Not on one pair) compiles correctly; what tracr's validator lets
through (averaging different categorical values) is rejected."""

import pytest

from workbench.rasp import (
    Aggregate,
    Comparison,
    CompileError,
    Full,
    LinearSequenceMap,
    Map,
    Select,
    SelectorAnd,
    SelectorNot,
    SelectorOr,
    SelectorWidth,
    SequenceMap,
    agreement,
    compile_program,
    indices,
    numerical,
    tokens,
)
from workbench.rasp import library as lib
from workbench.rasp.assemble import assemble
from workbench.rasp.components import build_components
from workbench.rasp.graph import extract_graph
from workbench.rasp.layout import allocate
from workbench.rasp.values import infer_value_sets

VOCAB = (1, 2, 3)
SAME = Select(indices, indices, Comparison.EQ)


def rejects(program, match: str, vocab=VOCAB, n: int = 4) -> CompileError:
    with pytest.raises(CompileError, match=match) as info:
        compile_program(program, vocab, n)
    return info.value


def compiles_exactly(program, vocab=VOCAB, n: int = 4):
    c = compile_program(program, vocab, n)
    result = agreement(c)
    assert result.n_agree == result.n_inputs, result.mismatches
    return c


def test_numerical_select_keys_are_rejected_by_name():
    x = numerical(Map(lambda t: t, tokens)).named("num_tok")
    err = rejects(Aggregate(Select(x, tokens, Comparison.EQ).named("bad_select"), tokens), "bad_select")
    assert err.stage == "static" and "keys must be categorical" in str(err) and "num_tok" in str(err)


@pytest.mark.parametrize(
    "program, match",
    [
        (numerical(tokens), "always categorical"),
        (Aggregate(SAME, tokens, default=1).named("agg_default"), "agg_default.*default=None"),
        (numerical(Aggregate(SAME, numerical(tokens == 1), default=1)), "default=0"),
        (numerical(Aggregate(SAME, tokens)), "input 'tokens' is categorical"),
        (SequenceMap(lambda a, b: a + b, numerical(tokens == 1), tokens).named("mixed"), "mixed.*categorical"),
        (LinearSequenceMap(numerical(tokens == 1), tokens, 1, 1).named("mixed_linear"), "mixed_linear"),
        (LinearSequenceMap(numerical(tokens == 1), numerical(tokens == 2), 1, 1).named("lin"), "lin.*numerical"),
    ],
)
def test_static_rejections(program, match):
    assert rejects(program, match).stage == "static"


def test_selector_or_across_pairs_is_rejected_by_name():
    a = Select(tokens, tokens, Comparison.EQ)
    b = Select(indices, indices, Comparison.LT)
    err = rejects(SelectorWidth(SelectorOr(a, b).named("either")), "either.*same keys and queries")
    assert err.stage == "static"
    rejects(SelectorWidth(SelectorNot(SelectorAnd(a, b)).named("nand")), "nand")


def test_averaging_different_categorical_values_is_rejected_even_when_the_mean_is_a_token():
    """tracr's dynamic check only asks that outputs lie in the input value set: the mean of 1 and 3 is 2,
    so it passes there, and the compiled head outputs half a 1 and half a 3. Here it is rejected, and the
    stages run without validation do miscompile it."""
    neighbours = Select(indices, indices, lambda k, q: abs(k - q) == 1).named("neighbours")
    program = Aggregate(neighbours, tokens).named("neighbour_mean")
    err = rejects(program, "neighbour_mean.*averages different values")
    assert err.stage.startswith("dynamic, exhaustive")
    graph = extract_graph(program)
    values = infer_value_sets(graph, VOCAB, 3)
    layout = allocate(graph, build_components(graph, values, 3), values)
    model = assemble(graph, values, layout, VOCAB, 3)
    logits = model(__import__("jax").numpy.array([0, 1, 1, 3]))
    assert float(logits[2].max()) == pytest.approx(0.5, abs=1e-3)  # position 1 holds a blend, not a token


def test_nested_categorical_aggregates():
    """An aggregate of a shifted (partly None) SOp: fine where single keys move (None moves as the zero
    code), rejected where a None and a value would be blended."""
    shifted = lib.shift_by(1, tokens)
    compiles_exactly(lib.shift_by(1, shifted).named("shift_twice"))
    window = Select(indices, indices, lambda k, q: k in (q, q - 1)).named("window")
    rejects(Aggregate(window, shifted).named("blend_none"), "blend_none")


def test_none_reaching_a_select_or_a_numerical_sop_is_rejected():
    shifted = lib.shift_by(1, tokens)
    rejects(SelectorWidth(Select(shifted, tokens, Comparison.EQ).named("none_keys")), "none_keys.*None key")
    rejects(numerical(Map(lambda x: 1, shifted)).named("num_of_none"), "num_of_none.*non-numbers")


def test_value_set_blowup_is_rejected_with_a_fix():
    wide = numerical(Map(lambda x: x * 0.37 + x * x * 0.011, indices)).named("wide")
    mean = numerical(Aggregate(Select(indices, indices, Comparison.LEQ), wide, default=0))
    rejects(mean, "map the input to", n=12, vocab=(1,))


def test_selector_and_compiles_in_one_head():
    earlier_same = SelectorAnd(Select(tokens, tokens, Comparison.EQ), Select(indices, indices, Comparison.LT))
    c = compiles_exactly(SelectorWidth(earlier_same).named("earlier_copies"))
    assert c.model.config.n_layers == 1 and c.model.config.n_heads == 1
    three = SelectorAnd(earlier_same, Select(tokens, indices, lambda k, q: k != q))
    compiles_exactly(numerical(Aggregate(three, numerical(tokens == 1), default=0)).named("and3"))


def test_selector_or_and_not_on_one_pair_compile():
    lt = Select(indices, indices, Comparison.LT)
    gt = Select(indices, indices, Comparison.GT)
    compiles_exactly(SelectorWidth(SelectorOr(lt, gt)).named("others"))
    compiles_exactly(Aggregate(SelectorNot(SelectorOr(lt, gt)), tokens).named("self_via_not"))


def test_numerical_aggregate_of_non_binary_values_and_constants():
    """Beyond tracr: a numerical mean of values outside {0, 1}, and a constant SOp."""
    value = numerical(Map(lambda t: 2 * t - 3, tokens)).named("signed")
    mean = numerical(Aggregate(Select(indices, indices, Comparison.LEQ), value, default=0)).named("running_mean")
    compiles_exactly(mean)
    compiles_exactly(SequenceMap(lambda a, b: a * b, tokens, Full(2)).named("double"))


def test_a_program_built_for_shorter_inputs_is_rejected():
    """make_sort breaks ties with key + i / max_seq_len: built for length 4 but compiled for 5, two keys
    collide at i = 4 and the sorting aggregate would blend two tokens."""
    program = lib.make_sort(tokens, tokens, max_seq_len=4, min_key=1)
    rejects(program, "'sort'.*averages different values", n=5)
    compiles_exactly(lib.make_sort(tokens, tokens, max_seq_len=5, min_key=1), n=5)
