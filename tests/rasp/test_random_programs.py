"""Random compositions of RASP primitives: every program either fails validation or its compiled model
agrees with the interpreter on every input (no silent miscompiles)."""

import random

import pytest

from workbench.rasp import (
    Aggregate,
    Comparison,
    CompileError,
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
    listing,
    numerical,
    tokens,
)
from workbench.rasp import library as lib

VOCAB = (0, 1, 2)
MAX_SEQ_LEN = 4
N_PROGRAMS = 24

MAPS = [
    lambda x: (x + 1) % 3, lambda x: x % 2, lambda x: x > 1, lambda x: -x, lambda x: min(x, 2),
    lambda x: x == 0, lambda x: 2 - x,
]  # fmt: skip
NUM_MAPS = [lambda x: x, lambda x: 2 * x - 1, lambda x: x > 0.5, lambda x: 0.5 * x * x]
PAIRS = [
    lambda x, y: (x + y) % 4, lambda x, y: min(x, y), lambda x, y: x == y, lambda x, y: x < y,
    lambda x, y: abs(x - y),
]  # fmt: skip
PREDICATES = [*Comparison, lambda k, q: k == q + 1, lambda k, q: k <= 1]


class Builder:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.cat = [tokens, indices]
        self.num = []

    def select(self):
        r = self.rng
        sel = Select(r.choice(self.cat), r.choice(self.cat), r.choice(PREDICATES))
        roll = r.random()
        if roll < 0.25:
            sel = SelectorAnd(sel, Select(r.choice(self.cat), r.choice(self.cat), r.choice(PREDICATES)))
        elif roll < 0.35:
            same = r.random() < 0.5
            k, q = (sel.keys, sel.queries) if same else (r.choice(self.cat), r.choice(self.cat))
            sel = SelectorOr(sel, Select(k, q, r.choice(PREDICATES)))
        elif roll < 0.45:
            sel = SelectorNot(sel)
        return sel

    def step(self):
        r = self.rng
        op = r.randrange(9)
        if op == 0:
            self.cat.append(Map(r.choice(MAPS), r.choice(self.cat)))
        elif op == 1:
            self.cat.append(SequenceMap(r.choice(PAIRS), r.choice(self.cat), r.choice(self.cat)))
        elif op == 2:
            self.num.append(numerical(Map(r.choice(NUM_MAPS), r.choice(self.cat + self.num))))
        elif op == 3 and self.num:
            self.cat.append(Map(lambda x: x > 0.25, r.choice(self.num)))
        elif op == 4 and len(self.num) >= 1:
            a, b = r.choice(self.num), r.choice(self.num)
            self.num.append(numerical(LinearSequenceMap(a, b, r.choice([1, -1, 0.5]), r.choice([1, 2]))))
        elif op == 5:
            self.cat.append(Aggregate(self.select(), r.choice(self.cat)))
        elif op == 6 and self.num:
            self.num.append(numerical(Aggregate(self.select(), r.choice(self.num), default=0)))
        elif op == 7:
            width = SelectorWidth(self.select())
            if r.random() < 0.3:
                self.num.append(numerical(width))
            else:
                self.cat.append(width)
        else:
            self.cat.append(lib.shift_by(r.choice([1, 2]), r.choice(self.cat)))

    def program(self, n_steps: int):
        for _ in range(n_steps):
            self.step()
        last = self.cat[-1] if self.rng.random() < 0.7 or not self.num else self.num[-1]
        return last


def test_random_programs_compile_exactly_or_fail_validation():
    rng = random.Random(1234)
    compiled, rejected = 0, 0
    for i in range(N_PROGRAMS):
        program = Builder(rng).program(rng.randint(2, 5))
        try:
            c = compile_program(program, VOCAB, MAX_SEQ_LEN)
        except CompileError as e:
            assert e.problems and all(p.label and p.reason for p in e.problems)
            rejected += 1
            continue
        result = agreement(c)
        assert result.n_agree == result.n_inputs, f"program {i}:\n{listing(program)}\n{result.mismatches}"
        compiled += 1
    assert compiled >= N_PROGRAMS // 2, (compiled, rejected)
    assert rejected >= 1, (compiled, rejected)


def exact_past_the_old_budget(seed: int, vocab: tuple, max_seq_len: int, n_programs: int) -> int:
    """Compile random programs; each compiled one must be validated on every input and agree on all of them."""
    rng = random.Random(seed)
    total = sum(len(vocab) ** n for n in range(1, max_seq_len + 1))
    compiled = 0
    for i in range(n_programs):
        program = Builder(rng).program(rng.randint(2, 5))
        try:
            c = compile_program(program, vocab, max_seq_len)
        except CompileError:
            continue
        assert c.exhaustive and c.n_inputs == total, c.validation
        result = agreement(c)
        assert result.n_agree == result.n_inputs == total, f"program {i}:\n{listing(program)}\n{result.mismatches}"
        compiled += 1
    return compiled


def test_random_programs_past_the_old_budget_are_exact():
    """Vocabulary 5, length 5: 3,905 inputs, past the old sampling threshold of 2,000."""
    assert exact_past_the_old_budget(99, (0, 1, 2, 3, 4), 5, 8) >= 3


@pytest.mark.slow
def test_many_random_programs_past_the_old_budget_are_exact():
    """Vocabulary 6, length 5: 9,330 inputs, 24 programs."""
    assert exact_past_the_old_budget(7, (0, 1, 2, 3, 4, 5), 5, 24) >= 8
