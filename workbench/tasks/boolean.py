"""In-context learning of Boolean functions (Bhattamishra et al. 2024).

Inputs x in {-1, +1}^n_vars, labels y in {0, 1}; a prompt is `n_points` labelled points of one
random function, and every point is predicted from the ones before it. A function is an int vector
`params [n_vars]`: literal signs in {-1, 0, +1} for conjunctions and disjunctions (0: variable
absent), a 0/1 support for parities and majorities.

- `Conjunction`: each variable is a positive or a negated literal with probability `p_literal`
  each; with probability `p_force` x is set to satisfy it (balances the labels, as the paper).
- `Disjunction`: the dual (x forced to falsify it with probability `p_force`).
- `SparseParity`: XOR of the bits (1 - x_i) / 2 over a uniform `k`-subset; x uniform.
- `Majority`: [sum over a uniform `k`-subset (k odd) of x_i > 0]; x uniform.
- `TeachingConjunction`: a monotone conjunction (each variable a positive literal with probability
  `p_literal`) whose prompt opens with its teaching sequence: the positive point that is +1 exactly on
  the k literals, then the k negative points that flip one literal each (k + 1 points, the
  teaching dimension of monotone conjunctions); `teaching_length(params)` = k + 1.

Reference learners (one prompt -> P(y_j = 1) for every j, from points 0..j-1): `elimination`
(conjunctions and disjunctions; `elimination_monotone` for monotone ones), `nearest_neighbour` (Hamming) and `bayes` (exact posterior
predictive by enumerating the class, when it has at most `MAX_ENUMERATE` functions).
"""

import abc
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from workbench.core import validate as v
from ._base import AbstractTask, unsharded_draws

MAX_ENUMERATE = 2**16


class BooleanBatch(eqx.Module):
    """`xs [batch, n_points, n_vars]` in {-1, +1}, `ys [batch, n_points]` in {0, 1}, `params [batch, n_vars]`."""

    xs: Float[Array, "batch n_points n_vars"]
    ys: Int[Array, "batch n_points"]
    params: Int[Array, "batch n_vars"]


class AbstractBooleanTask(AbstractTask):
    """A class of Boolean functions with a prior over it and a function-dependent input distribution."""

    n_vars: eqx.AbstractVar[int]
    n_points: eqx.AbstractVar[int]

    @abc.abstractmethod
    def sample_params(self, key: PRNGKeyArray) -> Int[Array, " n_vars"]:
        """One function of the class, drawn from the prior."""

    @abc.abstractmethod
    def evaluate(self, params: Int[Array, " n_vars"], x: Float[Array, " n_vars"]) -> Int[Array, ""]:
        """f(x) in {0, 1}."""

    @abc.abstractmethod
    def enumerate_params(self) -> tuple[Int[Array, "n_functions n_vars"], Float[Array, " n_functions"]]:
        """Every function of the class with its log prior probability."""

    def sample_x(self, key: PRNGKeyArray, params: Int[Array, " n_vars"]) -> Float[Array, " n_vars"]:
        return jax.random.rademacher(key, (self.n_vars,)).astype(jnp.float32)

    def log_px(self, params: Int[Array, " n_vars"], x: Float[Array, " n_vars"]) -> Float[Array, ""]:
        """log P(x | f) under `sample_x`."""
        return jnp.asarray(-self.n_vars * math.log(2.0))

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> BooleanBatch:
        def one(k):
            kp, kx = jax.random.split(k)
            params = self.sample_params(kp)
            xs = jax.vmap(lambda kk: self.sample_x(kk, params))(jax.random.split(kx, self.n_points))
            ys = jax.vmap(lambda x: self.evaluate(params, x))(xs)
            return xs, ys.astype(jnp.int32), params

        xs, ys, params = jax.vmap(one)(jax.random.split(key, batch_size))
        return BooleanBatch(xs=xs, ys=ys, params=params)

    def bayes(self):
        """The Bayes posterior predictive over the enumerated class (likelihood of x included)."""
        return bayes_predictor(self)

    def predictors(self) -> dict:
        out = {"nearest_neighbour": nearest_neighbour}
        if self.class_size() <= MAX_ENUMERATE:
            out["bayes"] = self.bayes()
        return out

    def class_size(self) -> int:
        raise NotImplementedError


class _LiteralClass(AbstractBooleanTask):
    n_vars: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    p_literal: float = eqx.field(static=True, default=0.15)
    p_force: float = eqx.field(static=True, default=0.3)

    def __check_init__(self):
        name = type(self).__name__
        v.check_int(name, "n_vars", self.n_vars)
        v.check_int(name, "n_points", self.n_points)
        v.check_float(name, "p_literal", self.p_literal, high=0.5)
        v.check_float(name, "p_force", self.p_force, high=1.0)

    def sample_params(self, key):
        u = jax.random.uniform(key, (self.n_vars,))
        return jnp.where(u < self.p_literal, 1, jnp.where(u < 2 * self.p_literal, -1, 0)).astype(jnp.int32)

    def class_size(self) -> int:
        return 3**self.n_vars

    def enumerate_params(self):
        params = jnp.asarray(list(itertools.product((0, 1, -1), repeat=self.n_vars)), jnp.int32)
        logp = {0: math.log(max(1 - 2 * self.p_literal, 1e-300)), 1: math.log(max(self.p_literal, 1e-300))}
        log_prior = jnp.where(params == 0, logp[0], logp[1]).sum(1)
        return params, log_prior

    def _forced_x(self, key, params, sign):
        kf, kx = jax.random.split(key)
        x = jax.random.rademacher(kx, (self.n_vars,)).astype(jnp.float32)
        forced = jnp.where(params != 0, sign * params, x)
        return jnp.where(jax.random.bernoulli(kf, self.p_force), forced, x)

    def _log_px(self, params, x, forced_value):
        n_lit = jnp.sum(params != 0)
        hit = self.evaluate(params, x) == forced_value
        p = (1 - self.p_force) * 2.0**-self.n_vars + self.p_force * hit * 2.0 ** (n_lit - self.n_vars)
        return jnp.log(p)


class Conjunction(_LiteralClass):
    """f(x) = AND over literals [x_i == params_i] (empty: always 1)."""

    def evaluate(self, params, x):
        return jnp.all((params == 0) | (x == params)).astype(jnp.int32)

    def sample_x(self, key, params):
        return self._forced_x(key, params, 1)

    def log_px(self, params, x):
        return self._log_px(params, x, 1)

    def predictors(self) -> dict:
        return {"elimination": elimination_conjunction, **super().predictors()}


class Disjunction(_LiteralClass):
    """f(x) = OR over literals [x_i == params_i] (empty: always 0)."""

    def evaluate(self, params, x):
        return jnp.any((params != 0) & (x == params)).astype(jnp.int32)

    def sample_x(self, key, params):
        return self._forced_x(key, params, -1)

    def log_px(self, params, x):
        return self._log_px(params, x, 0)

    def predictors(self) -> dict:
        return {"elimination": elimination_disjunction, **super().predictors()}


class _SubsetClass(AbstractBooleanTask):
    n_vars: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    k: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        name = type(self).__name__
        v.check_int(name, "n_vars", self.n_vars)
        v.check_int(name, "n_points", self.n_points)
        v.check_int(name, "k", self.k, high=self.n_vars)

    def sample_params(self, key):
        scores = jax.random.uniform(key, (self.n_vars,))
        return (scores >= jnp.sort(scores)[self.n_vars - self.k]).astype(jnp.int32)

    def class_size(self) -> int:
        return math.comb(self.n_vars, self.k)

    def enumerate_params(self):
        rows = np.zeros((self.class_size(), self.n_vars), np.int32)
        for i, subset in enumerate(itertools.combinations(range(self.n_vars), self.k)):
            rows[i, list(subset)] = 1
        return jnp.asarray(rows), jnp.full(rows.shape[0], -math.log(rows.shape[0]))


class SparseParity(_SubsetClass):
    """f(x) = XOR of (1 - x_i) / 2 over a uniform `k`-subset (Bhattamishra: k = 2)."""

    def evaluate(self, params, x):
        return (jnp.sum((params == 1) & (x < 0)) % 2).astype(jnp.int32)


class Majority(_SubsetClass):
    """f(x) = [sum_{i in S} x_i > 0] over a uniform `k`-subset S, `k` odd (no ties)."""

    def __check_init__(self):  # runs after _SubsetClass's (equinox calls every __check_init__)
        if self.k % 2 == 0:
            raise ValueError(f"Majority.k must be odd (no ties), got {self.k}")

    def evaluate(self, params, x):
        return (jnp.sum(params * x) > 0).astype(jnp.int32)


class TeachingConjunction(AbstractBooleanTask):
    """Monotone conjunction AND_{i: params_i = 1} [x_i = +1] whose prompt opens with its teaching sequence.

    After the k + 1 teaching points only the true function is consistent with the prompt; the later
    points are drawn as in `Conjunction` (forced to satisfy it with probability `p_force`).
    """

    n_vars: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    p_literal: float = eqx.field(static=True, default=0.3)
    p_force: float = eqx.field(static=True, default=0.3)

    def __check_init__(self):
        name = type(self).__name__
        v.check_int(name, "n_vars", self.n_vars)
        v.check_int(name, "n_points", self.n_points, low=self.n_vars + 2)
        v.check_float(name, "p_literal", self.p_literal, high=1.0)
        v.check_float(name, "p_force", self.p_force, high=1.0)

    def sample_params(self, key):
        return jax.random.bernoulli(key, self.p_literal, (self.n_vars,)).astype(jnp.int32)

    def evaluate(self, params, x):
        return jnp.all((params == 0) | (x > 0)).astype(jnp.int32)

    def sample_x(self, key, params):
        kf, kx = jax.random.split(key)
        x = jax.random.rademacher(kx, (self.n_vars,)).astype(jnp.float32)
        return jnp.where(jax.random.bernoulli(kf, self.p_force) & (params == 1), 1.0, x)

    def teaching_length(self, params: Int[Array, " n_vars"]) -> Int[Array, ""]:
        """k + 1: the number of teaching points that open the prompt of `params`."""
        return jnp.sum(params) + 1

    def teaching_points(self, params: Int[Array, " n_vars"]) -> Float[Array, "n_vars_plus_1 n_vars"]:
        """Row 0: +1 on the literals, -1 elsewhere; row j >= 1: row 0 with the j-th literal flipped (rows past
        k repeat row 0 and are not used)."""
        positive = jnp.where(params == 1, 1.0, -1.0)
        literals = jnp.argsort(1 - params, stable=True)  # the literals first, in index order
        flips = jax.vmap(lambda i, j: positive.at[i].set(jnp.where(j < params.sum(), -1.0, positive[i])))(
            literals, jnp.arange(self.n_vars))
        return jnp.concatenate([positive[None], flips])

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> BooleanBatch:
        def one(k):
            kp, kx = jax.random.split(k)
            params = self.sample_params(kp)
            rest = jax.vmap(lambda kk: self.sample_x(kk, params))(jax.random.split(kx, self.n_points))
            teach = jnp.zeros_like(rest).at[: self.n_vars + 1].set(self.teaching_points(params))
            xs = jnp.where((jnp.arange(self.n_points) < self.teaching_length(params))[:, None], teach, rest)
            return xs, jax.vmap(lambda x: self.evaluate(params, x))(xs).astype(jnp.int32), params

        xs, ys, params = jax.vmap(one)(jax.random.split(key, batch_size))
        return BooleanBatch(xs=xs, ys=ys, params=params)

    def class_size(self) -> int:
        return 2**self.n_vars

    def enumerate_params(self):
        params = jnp.asarray(list(itertools.product((0, 1), repeat=self.n_vars)), jnp.int32)
        log_prior = jnp.where(params == 1, math.log(max(self.p_literal, 1e-300)),
                              math.log(max(1 - self.p_literal, 1e-300))).sum(1)
        return params, log_prior

    def predictors(self) -> dict:
        return {"elimination": elimination_monotone, "nearest_neighbour": nearest_neighbour}


def _exclusive_all(ok: Array) -> Array:
    """Row j: AND of rows 0..j-1 (True for j = 0)."""
    run = jnp.cumprod(ok.astype(jnp.int32), axis=0)
    return jnp.concatenate([jnp.ones_like(run[:1]), run[:-1]]).astype(bool)


def elimination_conjunction(xs: Float[Array, "m n"], ys: Int[Array, " m"]) -> Float[Array, " m"]:
    """Valiant's elimination: keep every literal not falsified by a positive example; predict their AND.

    Its hypothesis always contains the true literals, so it never predicts 1 on a negative point.
    """
    keep_pos = _exclusive_all((ys[:, None] == 0) | (xs > 0))  # literal x_i = +1 still kept
    keep_neg = _exclusive_all((ys[:, None] == 0) | (xs < 0))
    sat = jnp.all(~keep_pos | (xs > 0), axis=1) & jnp.all(~keep_neg | (xs < 0), axis=1)
    return sat.astype(jnp.float32)


def elimination_monotone(xs: Float[Array, "m n"], ys: Int[Array, " m"]) -> Float[Array, " m"]:
    """Elimination over positive literals only (monotone conjunctions): exact once a positive point is +1
    on the literals alone, e.g. after the first point of a teaching sequence."""
    keep = _exclusive_all((ys[:, None] == 0) | (xs > 0))
    return jnp.all(~keep | (xs > 0), axis=1).astype(jnp.float32)


def elimination_disjunction(xs: Float[Array, "m n"], ys: Int[Array, " m"]) -> Float[Array, " m"]:
    """The dual: drop every literal satisfied by a negative example; predict their OR (never a false 0)."""
    keep_pos = _exclusive_all((ys[:, None] == 1) | (xs < 0))
    keep_neg = _exclusive_all((ys[:, None] == 1) | (xs > 0))
    sat = jnp.any(keep_pos & (xs > 0), axis=1) | jnp.any(keep_neg & (xs < 0), axis=1)
    return sat.astype(jnp.float32)


def nearest_neighbour(xs: Float[Array, "m n"], ys: Int[Array, " m"]) -> Float[Array, " m"]:
    """Label of the Hamming-nearest earlier point (the earliest on ties); 0.5 for the first point."""
    m = xs.shape[0]
    dist = jnp.sum(xs[:, None, :] != xs[None, :, :], axis=-1)  # [query, context]
    earlier = jnp.arange(m)[None, :] < jnp.arange(m)[:, None]
    nearest = jnp.argmin(jnp.where(earlier, dist, xs.shape[1] + 1), axis=1)
    return jnp.where(jnp.arange(m) == 0, 0.5, ys[nearest].astype(jnp.float32))


def bayes_predictor(task: AbstractBooleanTask):
    """Exact P(y_j = 1 | points 0..j-1, x_j) under the task's prior and input distribution."""
    size = task.class_size()
    if size > MAX_ENUMERATE:
        raise ValueError(f"{type(task).__name__}: {size} functions are too many to enumerate (max {MAX_ENUMERATE})")
    params, log_prior = task.enumerate_params()

    def predict(xs: Float[Array, "m n"], ys: Int[Array, " m"]) -> Float[Array, " m"]:
        vals = jax.vmap(lambda p: jax.vmap(lambda x: task.evaluate(p, x))(xs))(params)  # [functions, m]
        log_px = jax.vmap(lambda p: jax.vmap(lambda x: task.log_px(p, x))(xs))(params)
        wrong = (vals != ys[None, :]).astype(jnp.int32)
        before = jnp.cumsum(log_px, axis=1) - log_px  # exclusive prefix sums
        before = jnp.where(jnp.cumsum(wrong, axis=1) - wrong > 0, -jnp.inf, before)
        post = jax.nn.softmax(log_prior[:, None] + before + log_px, axis=0)
        return jnp.sum(post * vals, axis=0)

    return predict


def prefix_probs(predictor, batch: BooleanBatch) -> Float[Array, "batch n_points"]:
    """P(y = 1) at every position of every prompt (`lax.map` over prompts to bound memory)."""
    return jax.lax.map(lambda xy: predictor(*xy), (batch.xs, batch.ys))


def prefix_accuracy(probs: Float[Array, "batch m"], ys: Int[Array, "batch m"]) -> Float[Array, " m"]:
    """Accuracy at each position; a prediction of exactly 0.5 scores 0.5."""
    score = jnp.where(probs > 0.5, ys == 1, jnp.where(probs < 0.5, ys == 0, 0.5))
    return jnp.mean(score.astype(jnp.float32), axis=0)
