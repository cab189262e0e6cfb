"""Algorithmic token tasks of RASP (Weiss et al. 2021) and Transformer Programs (Friedman et al. 2023).

A sequence is `[BOS, s_1..s_length]` with symbols `0..n_symbols-1` and `BOS = n_symbols`
(`d_vocab = n_symbols + 1`). Labels are exact, one per position, `-1` where there is none (always at
BOS). Each task's `label(symbols [n]) -> [n]` works for any length `n`, so `enumerate_batches(L)`
gives every input of every length 1..L with its labels, for exhaustive checks of compiled programs.

| task | label at position i |
|---|---|
| `Reverse` | s_{n+1-i} |
| `Hist` | number of j with s_j = s_i |
| `DoubleHist` | number of distinct symbols whose count equals the count of s_i |
| `Sort` | i-th smallest symbol |
| `MostFreq` | i-th distinct symbol by decreasing count, ties by first occurrence; `EMPTY = n_symbols` past the last |
| `Dyck` | prefix s_1..s_i is balanced `T=1`, a proper prefix `P=0`, or can never balance `F=2` |
| `Induction` | the symbol after the previous occurrence of s_i, -1 if s_i is new |
| `Copy` | the next symbol from the end of the first copy of [a, a] on (-1 before; last position -1) |
"""

import abc
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from workbench.core import validate as v
from ._base import AbstractTask

MAX_ENUMERATE = 2**20
DYCK_P, DYCK_T, DYCK_F = 0, 1, 2


class AlgorithmicBatch(eqx.Module):
    """`tokens [batch, length+1]` (BOS first), `labels [batch, length+1]` (-1: no label)."""

    tokens: Int[Array, "batch seq"]
    labels: Int[Array, "batch seq"]


class AbstractAlgorithmicTask(AbstractTask):
    """A token task with a uniform-symbol input distribution (override `sample_symbols`) and exact labels."""

    n_symbols: eqx.AbstractVar[int]
    length: eqx.AbstractVar[int]

    @abc.abstractmethod
    def label(self, symbols: Int[Array, " n"]) -> Int[Array, " n"]:
        """The exact label of every position of `symbols` (no BOS)."""

    @property
    def bos(self) -> int:
        return self.n_symbols

    @property
    def d_vocab(self) -> int:
        return self.n_symbols + 1

    @property
    def d_vocab_out(self) -> int:
        return self.n_symbols

    def sample_symbols(self, key: PRNGKeyArray) -> Int[Array, " length"]:
        return jax.random.randint(key, (self.length,), 0, self.n_symbols)

    def with_bos(self, symbols: Int[Array, "batch n"]) -> AlgorithmicBatch:
        """Prepend BOS and attach the labels (`-1` at BOS)."""
        b = symbols.shape[0]
        tokens = jnp.concatenate([jnp.full((b, 1), self.bos, jnp.int32), symbols.astype(jnp.int32)], 1)
        labels = jnp.concatenate([jnp.full((b, 1), -1, jnp.int32), jax.vmap(self.label)(symbols).astype(jnp.int32)], 1)
        return AlgorithmicBatch(tokens=tokens, labels=labels)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> AlgorithmicBatch:
        return self.with_bos(jax.vmap(self.sample_symbols)(jax.random.split(key, batch_size)))

    def enumerate_lengths(self, max_length: int) -> tuple[int, ...]:
        return tuple(range(1, max_length + 1))

    def enumerate_batches(self, max_length: int) -> list[AlgorithmicBatch]:
        """Every input of every length 1..`max_length` (one batch per length) with its labels."""
        v.check_int(type(self).__name__, "max_length", max_length)
        out = []
        for n in self.enumerate_lengths(max_length):
            free = self._free_length(n)
            if self.n_symbols**free > MAX_ENUMERATE:
                raise ValueError(f"{type(self).__name__}: {self.n_symbols}**{free} inputs are too many; lower max_length")
            rows = np.asarray(list(itertools.product(range(self.n_symbols), repeat=free)), np.int32).reshape(-1, free)
            out.append(eqx.filter_jit(self.with_bos)(self._complete(jnp.asarray(rows))))
        return out

    def _free_length(self, n: int) -> int:
        return n

    def _complete(self, free: Int[Array, "batch n"]) -> Int[Array, "batch n"]:
        return free

    def predictors(self) -> dict:
        return {"exact": self.label}


class _Uniform(AbstractAlgorithmicTask):
    n_symbols: int = eqx.field(static=True, default=8)
    length: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        v.check_int(type(self).__name__, "n_symbols", self.n_symbols, low=2)
        v.check_int(type(self).__name__, "length", self.length)


def _counts(s: Int[Array, " n"]) -> Int[Array, " n"]:
    return jnp.sum(s[:, None] == s[None, :], axis=1)


class Reverse(_Uniform):
    def label(self, symbols):
        return symbols[::-1]


class Hist(_Uniform):
    @property
    def d_vocab_out(self) -> int:
        return self.length + 1

    def label(self, symbols):
        return _counts(symbols)


class DoubleHist(_Uniform):
    @property
    def d_vocab_out(self) -> int:
        return self.n_symbols + 1

    def label(self, symbols):
        per_symbol = jnp.sum(symbols[None, :] == jnp.arange(self.n_symbols)[:, None], axis=1)  # [n_symbols]
        return jnp.sum(per_symbol[None, :] == _counts(symbols)[:, None], axis=1)


class Sort(_Uniform):
    def label(self, symbols):
        return jnp.sort(symbols)


class MostFreq(_Uniform):
    @property
    def d_vocab_out(self) -> int:
        return self.n_symbols + 1  # EMPTY = n_symbols

    def label(self, symbols):
        n, vocab = symbols.shape[0], self.n_symbols
        present = symbols[None, :] == jnp.arange(vocab)[:, None]  # [vocab, n]
        count = present.sum(1)
        first = jnp.min(jnp.where(present, jnp.arange(n)[None, :], n), axis=1)
        key = jnp.where(count > 0, -count * (n + 1) + first, (n + 1) ** 2)
        ranked = jnp.where(jnp.sort(key) < (n + 1) ** 2, jnp.argsort(key), vocab)
        return jnp.concatenate([ranked, jnp.full(n, vocab)])[:n]


class Induction(_Uniform):
    def label(self, symbols):
        n = symbols.shape[0]
        idx = jnp.arange(n)
        prev = jnp.max(jnp.where((symbols[None, :] == symbols[:, None]) & (idx[None, :] < idx[:, None]), idx[None, :], -1), 1)
        return jnp.where(prev >= 0, symbols[jnp.minimum(prev + 1, n - 1)], -1)


class Copy(_Uniform):
    """`[BOS, a, a]` with `a` uniform of length `length / 2`; labels predict the second copy (next symbol)."""

    def __check_init__(self):
        if self.length % 2:
            raise ValueError(f"Copy.length must be even (a sequence and its copy), got {self.length}")

    def sample_symbols(self, key):
        return self._complete(jax.random.randint(key, (1, self.length // 2), 0, self.n_symbols))[0]

    def label(self, symbols):
        n = symbols.shape[0]
        nxt = jnp.concatenate([symbols[1:], jnp.full(1, -1, symbols.dtype)])
        return jnp.where(jnp.arange(n) >= n // 2 - 1, nxt, -1)

    def enumerate_lengths(self, max_length):
        return tuple(range(2, max_length + 1, 2))

    def _free_length(self, n):
        return n // 2

    def _complete(self, free):
        return jnp.concatenate([free, free], axis=1)


class Dyck(AbstractAlgorithmicTask):
    """Dyck-`n_types`: symbols `2t` open and `2t + 1` close bracket type t. Sampled half from a random
    walk over valid prefixes (close the top with probability 1/2 when open), half uniform."""

    n_types: int = eqx.field(static=True, default=1)
    length: int = eqx.field(static=True, default=16)

    def __check_init__(self):
        v.check_int(type(self).__name__, "n_types", self.n_types)
        v.check_int(type(self).__name__, "length", self.length)

    @property
    def n_symbols(self) -> int:
        return 2 * self.n_types

    @property
    def d_vocab_out(self) -> int:
        return 3

    def label(self, symbols):
        n = symbols.shape[0]

        def step(state, s):
            stack, depth, bad = state
            is_open = s % 2 == 0
            top = stack[jnp.maximum(depth - 1, 0)]
            bad = bad | (~is_open & ((depth == 0) | (top != s - 1)))
            stack = jnp.where(is_open, stack.at[depth % n].set(s), stack)
            depth = jnp.where(is_open, depth + 1, jnp.maximum(depth - 1, 0))
            out = jnp.where(bad, DYCK_F, jnp.where(depth == 0, DYCK_T, DYCK_P))
            return (stack, depth, bad), out

        init = (jnp.zeros(n, symbols.dtype), jnp.asarray(0), jnp.asarray(False))
        return jax.lax.scan(step, init, symbols)[1]

    def sample_symbols(self, key):
        kw, ku, kc = jax.random.split(key, 3)
        uniform = jax.random.randint(ku, (self.length,), 0, self.n_symbols)

        def step(state, k):
            stack, depth = state
            k1, k2 = jax.random.split(k)
            close = (depth > 0) & jax.random.bernoulli(k1)
            s = jnp.where(close, stack[jnp.maximum(depth - 1, 0)] + 1, 2 * jax.random.randint(k2, (), 0, self.n_types))
            stack = jnp.where(close, stack, stack.at[depth % self.length].set(s))
            return (stack, jnp.where(close, depth - 1, depth + 1)), s

        init = (jnp.zeros(self.length, jnp.int32), jnp.asarray(0))
        walk = jax.lax.scan(step, init, jax.random.split(kw, self.length))[1]
        return jnp.where(jax.random.bernoulli(kc), walk, uniform).astype(jnp.int32)


ALGORITHMIC_TASKS = {
    "reverse": Reverse,
    "hist": Hist,
    "double_hist": DoubleHist,
    "sort": Sort,
    "most_freq": MostFreq,
    "dyck1": lambda **kw: Dyck(n_types=1, **kw),
    "dyck2": lambda **kw: Dyck(n_types=2, **kw),
    "induction": Induction,
    "copy": Copy,
}
