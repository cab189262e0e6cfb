"""Algorithmic tasks: the JAX labels equal independent Python definitions on every input up to a length."""

from collections import Counter

import equinox as eqx
import jax
import numpy as np
import pytest

from workbench.tasks import algorithmic as A


def _dyck(s, n_types):
    stack, bad, out = [], False, []
    for c in s:
        if c % 2 == 0:
            stack.append(c)
        elif stack and stack[-1] == c - 1:
            stack.pop()
        else:
            bad = True
        out.append(A.DYCK_F if bad else (A.DYCK_T if not stack else A.DYCK_P))
    return out


def _most_freq(s, vocab):
    c = Counter(s)
    order = sorted(c, key=lambda t: (-c[t], s.index(t)))
    return (order + [vocab] * len(s))[: len(s)]


def _induction(s):
    out = []
    for i, t in enumerate(s):
        prev = [j for j in range(i) if s[j] == t]
        out.append(s[prev[-1] + 1] if prev else -1)
    return out


REFERENCE = {
    "reverse": lambda s, v: s[::-1],
    "hist": lambda s, v: [s.count(t) for t in s],
    "double_hist": lambda s, v: [len({u for u in s if s.count(u) == s.count(t)}) for t in s],
    "sort": lambda s, v: sorted(s),
    "most_freq": _most_freq,
    "dyck1": lambda s, v: _dyck(s, 1),
    "dyck2": lambda s, v: _dyck(s, 2),
    "induction": lambda s, v: _induction(s),
    "copy": lambda s, v: [s[i + 1] if i >= len(s) // 2 - 1 and i + 1 < len(s) else -1 for i in range(len(s))],
}


@pytest.mark.parametrize("name", sorted(A.ALGORITHMIC_TASKS))
def test_labels_exhaustively(name):
    small = name in ("dyck1", "dyck2")
    task = A.ALGORITHMIC_TASKS[name](length=6) if small else A.ALGORITHMIC_TASKS[name](n_symbols=3, length=6)
    max_len = {"dyck1": 8, "dyck2": 5}.get(name, 5)
    batches = task.enumerate_batches(max_len)
    assert len(batches) == len(task.enumerate_lengths(max_len))
    total = 0
    for b in batches:
        tokens, labels = np.asarray(b.tokens), np.asarray(b.labels)
        assert np.all(tokens[:, 0] == task.bos) and np.all(labels[:, 0] == -1)
        assert len({tuple(r) for r in tokens}) == len(tokens)  # every input once
        for row, lab in zip(tokens[:, 1:].tolist(), labels[:, 1:].tolist()):
            assert lab == list(REFERENCE[name](row, task.n_symbols)), (row, lab)
        assert labels.max() < task.d_vocab_out
        total += len(tokens)
    free = [task._free_length(n) for n in task.enumerate_lengths(max_len)]
    assert total == sum(task.n_symbols**f for f in free)
    sample = eqx.filter_jit(task.sample)(jax.random.key(0), 4)
    assert sample.tokens.shape == (4, task.length + 1) and sample.tokens.max() <= task.bos


def test_dyck_sampler_produces_all_label_kinds():
    b = eqx.filter_jit(A.Dyck(n_types=2, length=16).sample)(jax.random.key(1), 256)
    assert set(np.unique(np.asarray(b.labels[:, 1:]))) == {A.DYCK_P, A.DYCK_T, A.DYCK_F}


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: A.Reverse(n_symbols=1), "n_symbols"),
        (lambda: A.Sort(length=0), "length"),
        (lambda: A.Copy(length=5), "length"),
        (lambda: A.Dyck(n_types=0), "n_types"),
    ],
)
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"\.{name} "):
        make()
