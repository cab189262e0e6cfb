"""Sound or loud: a program whose input space fits the validation budget is checked on every input;
past the budget it compiles only with a visible "validated on a sample" mark and one warning."""

import pytest

from workbench.rasp import (
    Aggregate,
    CompileError,
    Map,
    SampledValidationWarning,
    Select,
    SelectorWidth,
    SequenceMap,
    agreement,
    compile_program,
    evaluate,
    indices,
    tokens,
)
from workbench.rasp.compiler import count_inputs, validation_inputs

VOCAB = (0, 1, 2, 3, 4)
N = 6  # 19,530 inputs: past the old budget of 2,000


def blend_on(rare: tuple[int, ...]):
    """Copies `indices`, except on the input `rare` (length N), where every query selects every key and
    the categorical Aggregate blends the different indices 0..N-1."""
    hit = Map(lambda t: int(t == 1), SequenceMap(lambda t, i: t == rare[i], tokens, indices))
    n_hits = SelectorWidth(Select(hit, hit, lambda k, q: k == 1 and q == 1))
    query = SequenceMap(lambda i, w: -1 if w == N else i, indices, n_hits)
    return Aggregate(Select(indices, query, lambda k, q: q == -1 or k == q), indices).named("rare_blend")


ALL_EQUAL = (2,) * N
RARE = (0, 1, 2, 3, 4, 0)


def test_the_interpreter_blends_only_on_the_rare_input():
    program = blend_on(ALL_EQUAL)
    assert evaluate(program, (2, 2, 2, 2, 2, 1)) == list(range(N))
    assert evaluate(program, ALL_EQUAL) == [(N - 1) / 2] * N  # the mean of 0..N-1: no one-hot can carry it


def test_a_blend_on_the_all_equal_input_is_rejected_by_exhaustive_validation():
    with pytest.raises(CompileError, match="rare_blend.*averages different values") as info:
        compile_program(blend_on(ALL_EQUAL), VOCAB, N)
    assert f"exhaustive: all {count_inputs(VOCAB, N)} inputs" in info.value.stage


def test_the_sample_past_the_budget_holds_every_constant_input_and_is_distinct():
    inputs, described = validation_inputs(VOCAB, N, 2000, seed=0)
    assert len(inputs) == len(set(inputs)) == 2000
    assert {(v,) * n for v in VOCAB for n in range(1, N + 1)} <= set(inputs)
    assert described == f"validated on a sample of 2000 of {count_inputs(VOCAB, N)} inputs"
    with pytest.raises(CompileError, match="rare_blend"):  # the all-equal case is caught even when sampled
        compile_program(blend_on(ALL_EQUAL), VOCAB, N, validation_budget=2000)


def test_a_sampled_compile_is_marked_and_warns_once():
    program = blend_on(RARE)
    assert RARE not in validation_inputs(VOCAB, N, 2000, seed=0)[0]
    with pytest.warns(SampledValidationWarning, match="validated on a sample of 2000 of 19530") as record:
        compiled = compile_program(program, VOCAB, N, validation_budget=2000)
    assert len(record) == 1
    assert not compiled.exhaustive and (compiled.n_validated, compiled.n_inputs) == (2000, 19530)
    assert compiled.validation.startswith("validated on a sample of 2000")
    result = agreement(compiled, [RARE, (1,) * N])
    assert result.n_agree == 1, "the sampled model should disagree on the rare input it never saw"
