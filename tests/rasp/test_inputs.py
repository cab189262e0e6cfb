"""Random program inputs come from the named `rasp_inputs` stream, and the compiler uses them."""

import jax

from workbench.core.rng import seed_streams
from workbench.rasp import sample_inputs
from workbench.rasp.compiler import validation_inputs

VOCAB = ("a", "b", "c")


def test_sample_inputs_is_a_pure_function_of_the_seed():
    draw = sample_inputs(VOCAB, 6, 500, 3)
    assert draw == sample_inputs(VOCAB, 6, 500, jax.random.key(3)) == sample_inputs(list(VOCAB), 6, 500, 3)
    assert draw != sample_inputs(VOCAB, 6, 500, 4)
    assert {len(xs) for xs in draw} == set(range(1, 7))
    assert {x for xs in draw for x in xs} == set(VOCAB)


def test_sample_inputs_draws_from_the_named_stream():
    stream = seed_streams(3, ("rasp_inputs",))["rasp_inputs"]
    lengths_key, tokens_key = jax.random.split(stream)
    lengths = jax.random.randint(lengths_key, (50,), 1, 7)
    assert [len(xs) for xs in sample_inputs(VOCAB, 6, 50, 3)] == [int(n) for n in lengths]


def test_the_compiler_validates_on_sampled_inputs_when_the_space_is_large():
    inputs, described = validation_inputs(VOCAB, 6, 100, seed=2)
    assert described.startswith("validated on a sample of 100 of ")
    assert len(set(inputs)) == 100 and all(1 <= len(x) <= 6 for x in inputs)
    assert {(v,) * n for v in VOCAB for n in range(1, 7)} <= set(inputs)  # every constant input is checked
    assert inputs == validation_inputs(VOCAB, 6, 100, seed=2)[0]  # a function of the seed
    assert inputs != validation_inputs(VOCAB, 6, 100, seed=3)[0]  # its random part comes from sample_inputs
    inputs, described = validation_inputs(VOCAB, 2, 100, seed=2)
    assert described == "exhaustive: all 12 inputs" and len(set(inputs)) == 12
