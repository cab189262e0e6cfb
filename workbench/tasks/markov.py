"""Markov sources and their Bayes-optimal predictors.

A source of order `order` over `n_symbols` symbols is a table `transitions [n_contexts, n_symbols]`,
`n_contexts = n_symbols ** order`, whose row `c` is P(next | last `order` symbols = c), with the
context read as a base-`n_symbols` number, oldest symbol first. Sequences start from the stationary
distribution over contexts (`init="stationary"`) or from uniform i.i.d. symbols (`init="uniform"`).

Tasks: `FixedMarkovSource` (one table for every sequence; `binary` (Makkuva et al.), `switching`
(Rajaraman et al.), `random`), `DirichletMarkovICL` (a fresh Dirichlet(alpha) row per context for
every sequence, Edelman et al.). Predictors act on one sequence `tokens [seq]` and return
`probs [seq, n_symbols]`, row `t` = P(x_{t+1} | x_0..x_t); score them with `log_loss`.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from workbench.core import validate as v
from ._base import AbstractTask, unsharded_draws


class MarkovBatch(eqx.Module):
    """Sequences `tokens [batch, seq]` and the table each was drawn from, `transitions [batch, n_contexts, n_symbols]`."""

    tokens: Int[Array, "batch seq"]
    transitions: Float[Array, "batch n_contexts n_symbols"]


def context_index(tokens: Int[Array, " seq"], order: int, n_symbols: int) -> Int[Array, " seq"]:
    """Entry `t` is the context (x_{t-order+1}..x_t) as a base-`n_symbols` number, -1 while t < order - 1."""
    seq = tokens.shape[0]
    idx = jnp.zeros(seq, jnp.int32)
    for j in range(order):  # symbol x_{t-j} has weight n_symbols**j
        shifted = jnp.concatenate([jnp.zeros(j, tokens.dtype), tokens[: seq - j]]) if j else tokens
        idx = idx + shifted.astype(jnp.int32) * n_symbols**j
    return jnp.where(jnp.arange(seq) >= order - 1, idx, -1)


def context_chain(transitions: Float[Array, "n_contexts n_symbols"]) -> Float[Array, "n_contexts n_contexts"]:
    """The transition matrix between contexts: c -> (c * n_symbols) mod n_contexts + next."""
    n_ctx, n_sym = transitions.shape
    nxt = (jnp.arange(n_ctx)[:, None] * n_sym) % n_ctx + jnp.arange(n_sym)[None, :]
    return jnp.zeros((n_ctx, n_ctx), transitions.dtype).at[jnp.arange(n_ctx)[:, None], nxt].add(transitions)


def stationary(transitions: Float[Array, "n_contexts n_symbols"]) -> Float[Array, " n_contexts"]:
    """The stationary distribution over contexts (solves pi Q = pi, sum pi = 1; the chain must be irreducible)."""
    q = context_chain(transitions)
    n = q.shape[0]
    a = (q.T - jnp.eye(n)).at[-1].set(1.0)
    pi = jnp.linalg.solve(a, jnp.zeros(n).at[-1].set(1.0))
    return jnp.clip(pi, 0.0) / jnp.clip(pi, 0.0).sum()


def entropy_rate(transitions: Float[Array, "n_contexts n_symbols"]) -> Float[Array, ""]:
    """H = sum_c pi_c H(row c), in nats: the loss floor of any predictor that knows the source."""
    ent = -jnp.sum(jnp.where(transitions > 0, transitions * jnp.log(jnp.where(transitions > 0, transitions, 1.0)), 0.0), 1)
    return stationary(transitions) @ ent


def _digits(c: Int[Array, ""], order: int, n_symbols: int) -> Int[Array, " order"]:
    """The `order` symbols of context `c`, oldest first."""
    return jnp.stack([(c // n_symbols ** (order - 1 - j)) % n_symbols for j in range(order)]).astype(jnp.int32)


def sample_sequence(
    key: PRNGKeyArray, transitions: Float[Array, "n_contexts n_symbols"], order: int, seq_len: int, init: str
) -> Int[Array, " seq_len"]:
    """One sequence of a source (inverse-CDF sampling in a `lax.scan`)."""
    n_ctx, n_sym = transitions.shape
    k0, ku = jax.random.split(key)
    if order == 0:
        return jax.random.categorical(k0, jnp.log(transitions[0]), shape=(seq_len,)).astype(jnp.int32)
    if init == "stationary":
        c0 = jax.random.categorical(k0, jnp.log(stationary(transitions)))
    else:
        c0 = jax.random.randint(k0, (), 0, n_ctx)
    cdf = jnp.cumsum(transitions, axis=1)
    u = jax.random.uniform(ku, (max(seq_len - order, 0),))

    def step(c, u_t):
        x = jnp.minimum(jnp.sum(cdf[c] < u_t * cdf[c, -1]), n_sym - 1).astype(jnp.int32)
        return (c * n_sym) % n_ctx + x, x

    _, rest = jax.lax.scan(step, c0, u)
    return jnp.concatenate([_digits(c0, order, n_sym), rest])[:seq_len]


def _check_source(owner: str, n_symbols: int, order: int, seq_len: int, init: str) -> None:
    v.check_int(owner, "n_symbols", n_symbols, low=2)
    v.check_int(owner, "order", order, low=0)
    v.check_int(owner, "seq_len", seq_len, low=max(order + 1, 2))
    v.check_choice(owner, "init", init, ("stationary", "uniform"))
    if n_symbols**order > 2**16:
        raise ValueError(f"{owner}: n_symbols**order = {n_symbols**order} contexts is too many (at most 65536)")


class FixedMarkovSource(AbstractTask):
    """Every sequence comes from one fixed source `transitions [n_symbols**order, n_symbols]`."""

    transitions: Float[Array, "n_contexts n_symbols"]
    n_symbols: int = eqx.field(static=True)
    order: int = eqx.field(static=True)
    seq_len: int = eqx.field(static=True)
    init: str = eqx.field(static=True, default="stationary")

    def __check_init__(self):
        name = type(self).__name__
        _check_source(name, self.n_symbols, self.order, self.seq_len, self.init)
        v.check_shape(name, "transitions", self.transitions, (self.n_symbols**self.order, self.n_symbols))

    @classmethod
    def binary(cls, p: float, q: float, seq_len: int = 64) -> "FixedMarkovSource":
        """Makkuva et al.'s chain: P(0 -> 1) = p, P(1 -> 0) = q (both in (0, 1))."""
        v.check_float(cls.__name__, "p", p, strict=True, high=1.0)
        v.check_float(cls.__name__, "q", q, strict=True, high=1.0)
        return cls(jnp.array([[1 - p, p], [q, 1 - q]]), n_symbols=2, order=1, seq_len=seq_len)

    @classmethod
    def switching(cls, order: int, delta: float, seq_len: int = 64) -> "FixedMarkovSource":
        """Rajaraman et al.'s source x_n = x_{n-order} XOR Bernoulli(delta): entropy rate H_b(delta)."""
        v.check_int(cls.__name__, "order", order)
        v.check_float(cls.__name__, "delta", delta, strict=True)
        if delta >= 1:
            raise ValueError(f"{cls.__name__}.delta must be in (0, 1), got {delta}")
        oldest = jnp.arange(2**order) // 2 ** (order - 1)
        table = jnp.stack([jnp.where(oldest == 0, 1 - delta, delta), jnp.where(oldest == 0, delta, 1 - delta)], 1)
        return cls(table, n_symbols=2, order=order, seq_len=seq_len)

    @classmethod
    def random(
        cls, n_symbols: int, order: int, alpha: float = 1.0, seq_len: int = 64, *, key: PRNGKeyArray
    ) -> "FixedMarkovSource":
        """One table with Dirichlet(alpha) rows, drawn from `key`."""
        _check_source(cls.__name__, n_symbols, order, seq_len, "stationary")
        v.check_float(cls.__name__, "alpha", alpha, strict=True)
        table = jax.random.dirichlet(key, jnp.full(n_symbols, alpha), (n_symbols**order,))
        return cls(table, n_symbols=n_symbols, order=order, seq_len=seq_len)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> MarkovBatch:
        keys = jax.random.split(key, batch_size)
        tokens = jax.vmap(lambda k: sample_sequence(k, self.transitions, self.order, self.seq_len, self.init))(keys)
        table = jnp.broadcast_to(self.transitions, (batch_size,) + self.transitions.shape)
        return MarkovBatch(tokens=tokens, transitions=table)

    def predictors(self) -> dict:
        return markov_predictors(self.n_symbols, self.order, 1.0)


class DirichletMarkovICL(AbstractTask):
    """Edelman et al.: each sequence draws its own table, every row ~ Dirichlet(alpha * 1), then a chain of it.

    Paper: n_symbols = 2 (or 3), order 1, alpha = 1, seq_len = 100, x_0 from the stationary
    distribution. With `init="uniform"` the add-alpha n-gram of the same order is exactly the
    Bayes posterior predictive; with `"stationary"` the first symbol also carries (a little)
    information about the table, which add-alpha ignores.
    """

    n_symbols: int = eqx.field(static=True)
    seq_len: int = eqx.field(static=True)
    order: int = eqx.field(static=True, default=1)
    alpha: float = eqx.field(static=True, default=1.0)
    init: str = eqx.field(static=True, default="stationary")

    def __check_init__(self):
        name = type(self).__name__
        _check_source(name, self.n_symbols, self.order, self.seq_len, self.init)
        v.check_float(name, "alpha", self.alpha, strict=True)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> MarkovBatch:
        kt, ks = jax.random.split(key)
        shape = (batch_size, self.n_symbols**self.order)
        # Dirichlet via normalised Gammas; tiny alpha underflows to all-zero rows, so floor the Gammas.
        g = jnp.maximum(jax.random.gamma(kt, self.alpha, shape + (self.n_symbols,)), 1e-30)
        tables = g / g.sum(-1, keepdims=True)
        keys = jax.random.split(ks, batch_size)
        tokens = jax.vmap(lambda k, t: sample_sequence(k, t, self.order, self.seq_len, self.init))(keys, tables)
        return MarkovBatch(tokens=tokens, transitions=tables)

    def predictors(self) -> dict:
        return markov_predictors(self.n_symbols, self.order, self.alpha)


def ngram(order: int, alpha: float, n_symbols: int):
    """Add-alpha n-gram: P(j | context) = (N(context, j) + alpha) / (N(context) + n_symbols * alpha).

    Counts use only x_0..x_t. It is the posterior predictive when each row ~ Dirichlet(alpha 1)
    (Bayes-optimal for `DirichletMarkovICL` of this order and alpha). `order=0` is the add-alpha
    unigram. Before the first full context (t < order - 1) it predicts uniform.
    """
    v.check_int("ngram", "order", order, low=0)
    v.check_float("ngram", "alpha", alpha, strict=True)
    v.check_int("ngram", "n_symbols", n_symbols, low=2)

    def predict(tokens: Int[Array, " seq"]) -> Float[Array, "seq n_symbols"]:
        seq = tokens.shape[0]
        onehot = jax.nn.one_hot(tokens, n_symbols)
        if order == 0:
            counts = jnp.cumsum(onehot, axis=0)
        else:
            ctx = context_index(tokens, order, n_symbols)
            nxt = jnp.concatenate([onehot[1:], jnp.zeros((1, n_symbols))])  # x_{s+1}, zero at the end
            s, t = jnp.arange(seq)[None, :], jnp.arange(seq)[:, None]
            match = (ctx[None, :] == ctx[:, None]) & (s < t) & (ctx[None, :] >= 0)
            counts = match.astype(onehot.dtype) @ nxt
        return (counts + alpha) / (counts.sum(-1, keepdims=True) + n_symbols * alpha)

    return predict


def uniform(n_symbols: int):
    """The uniform predictor (loss log n_symbols)."""
    return lambda tokens: jnp.full((tokens.shape[0], n_symbols), 1.0 / n_symbols)


def oracle_probs(
    tokens: Int[Array, " seq"], transitions: Float[Array, "n_contexts n_symbols"], order: int
) -> Float[Array, "seq n_symbols"]:
    """The true conditional P(x_{t+1} | context) of the generating table (uniform before the first full context)."""
    n_sym = transitions.shape[1]
    ctx = context_index(tokens, order, n_sym) if order else jnp.zeros(tokens.shape[0], jnp.int32)
    return jnp.where((ctx >= 0)[:, None], transitions[jnp.maximum(ctx, 0)], 1.0 / n_sym)


def log_loss(probs: Float[Array, "seq n_symbols"], tokens: Int[Array, " seq"]) -> Float[Array, " seq_minus_1"]:
    """-log P(x_{t+1}) for t = 0..seq-2, in nats."""
    picked = jnp.take_along_axis(probs[:-1], tokens[1:, None], axis=1)[:, 0]
    return -jnp.log(picked)


def markov_predictors(n_symbols: int, order: int, alpha: float) -> dict:
    """The reference predictors of a source of this order: add-alpha n-grams of order 0..order+1, uniform."""
    out = {"uniform": uniform(n_symbols)}
    for o in range(0, order + 2):
        out["unigram" if o == 0 else f"add_alpha_order{o}"] = ngram(o, alpha, n_symbols)
    return out


def batch_losses(predictor, batch: MarkovBatch) -> Float[Array, "batch seq_minus_1"]:
    """Per-position log-loss of a sequence predictor on every sequence of `batch`."""
    return jax.vmap(lambda t: log_loss(predictor(t), t))(batch.tokens)


def oracle_losses(batch: MarkovBatch, order: int) -> Float[Array, "batch seq_minus_1"]:
    """Per-position log-loss of the true table of each sequence."""
    return jax.vmap(lambda t, tab: log_loss(oracle_probs(t, tab, order), t))(batch.tokens, batch.transitions)


def binary_entropy(p: float) -> float:
    """H_b(p) in nats."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


class BackcopyBatch(eqx.Module):
    """Sequences `tokens [batch, seq]` (token 0 is BOS at position 0) and `copy [batch, seq]`: True where
    the next token is a copy (the current token is a trigger)."""

    tokens: Int[Array, "batch seq"]
    copy: Bool[Array, "batch seq"]


class BigramBackcopy(AbstractTask):
    """Guo et al. 2024's bigram-backcopy source: BOS, then a fixed bigram chain over symbols
    `1..n_symbols`, except that after a trigger symbol (`1..n_triggers`) the next symbol copies the one
    before the trigger. Only at triggers does a token need another position; elsewhere attention has
    nothing to read, which is where attention sinks form. `x_1` is a uniform non-trigger, so no two
    triggers are adjacent and the copied symbol is never BOS.

    `transitions [n_symbols, n_symbols]` (row i: P(next symbol | symbol i), over symbols 1..n_symbols);
    the vocabulary has `n_symbols + 1` tokens.
    """

    transitions: Float[Array, "n_symbols n_symbols"]
    n_triggers: int = eqx.field(static=True)
    seq_len: int = eqx.field(static=True)

    def __check_init__(self):
        name = type(self).__name__
        n = self.transitions.shape[0]
        v.check_shape(name, "transitions", self.transitions, (n, n))
        v.check_int(name, "n_triggers", self.n_triggers, low=1)
        v.check_int(name, "seq_len", self.seq_len, low=3)
        if self.n_triggers >= n:
            raise ValueError(f"{name}.n_triggers ({self.n_triggers}) must be below n_symbols ({n})")

    @classmethod
    def random(cls, n_symbols: int, n_triggers: int, seq_len: int, alpha: float = 1.0, *,
               key: PRNGKeyArray) -> "BigramBackcopy":
        """A bigram table with Dirichlet(alpha) rows drawn from `key`."""
        v.check_int(cls.__name__, "n_symbols", n_symbols, low=2)
        v.check_float(cls.__name__, "alpha", alpha, strict=True)
        return cls(jax.random.dirichlet(key, jnp.full(n_symbols, alpha), (n_symbols,)), n_triggers=n_triggers,
                   seq_len=seq_len)

    @property
    def n_symbols(self) -> int:
        return self.transitions.shape[0]

    def is_trigger(self, tokens: Int[Array, "*shape"]) -> Bool[Array, "*shape"]:
        return (tokens >= 1) & (tokens <= self.n_triggers)

    def _sequence(self, key: PRNGKeyArray) -> Int[Array, " seq"]:
        k1, ks = jax.random.split(key)
        first = jax.random.randint(k1, (), self.n_triggers, self.n_symbols) + 1
        logits = jnp.log(self.transitions)

        def step(carry, k):
            before, current = carry
            drawn = jax.random.categorical(k, logits[current - 1]) + 1
            nxt = jnp.where(self.is_trigger(current), before, drawn).astype(jnp.int32)
            return (current, nxt), nxt

        _, rest = jax.lax.scan(step, (jnp.int32(0), first.astype(jnp.int32)), jax.random.split(ks, self.seq_len - 2))
        return jnp.concatenate([jnp.array([0, first], jnp.int32), rest])

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> BackcopyBatch:
        tokens = jax.vmap(self._sequence)(jax.random.split(key, batch_size))
        return BackcopyBatch(tokens=tokens, copy=self.is_trigger(tokens))

    def bayes_probs(self, tokens: Int[Array, " seq"]) -> Float[Array, "seq vocab"]:
        """P(x_{t+1} | x_0..x_t) over the `n_symbols + 1` tokens (row 0: uniform non-trigger; BOS never follows)."""
        n, k = self.n_symbols, self.n_triggers
        bigram = jnp.pad(self.transitions[jnp.maximum(tokens - 1, 0)], ((0, 0), (1, 0)))
        before = jnp.concatenate([jnp.zeros(1, tokens.dtype), tokens[:-1]])
        copy = jax.nn.one_hot(before, n + 1)
        first = jnp.zeros(n + 1).at[k + 1:].set(1.0 / (n - k))
        probs = jnp.where(self.is_trigger(tokens)[:, None], copy, bigram)
        return jnp.where((tokens == 0)[:, None], first, probs)

    def predictors(self) -> dict:
        return {"bayes": self.bayes_probs}
