"""Patching metrics: one example's output (and the clean run's output) -> a scalar.

A metric is an `eqx.Module`; its array fields hold one entry per prompt (the instruments vmap over
the metric together with the prompts), so build it with the batch's arrays:
`LogitDiff(correct=batch_correct, wrong=batch_wrong)`.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


class AbstractMetric(eqx.Module):
    @abc.abstractmethod
    def __call__(
        self, out: Float[Array, "seq vocab_out"], clean_out: Float[Array, "seq vocab_out"]
    ) -> Float[Array, ""]:
        """The metric of `out` (one example), given the clean run's output `clean_out`."""


class LogitDiff(AbstractMetric):
    """`out[position, correct] - out[position, wrong]` (fields `[batch]` ints)."""

    correct: Int[Array, ""]
    wrong: Int[Array, ""]
    position: int = eqx.field(static=True, default=-1)

    def __call__(self, out, clean_out):
        return out[self.position, self.correct] - out[self.position, self.wrong]


class MeanLogitDiff(AbstractMetric):
    """Mean over positions of `out[t, correct[t]] - out[t, wrong[t]]` (fields `[batch, seq]` ints);
    positions with a negative `correct` are skipped."""

    correct: Int[Array, " seq"]
    wrong: Int[Array, " seq"]

    def __call__(self, out, clean_out):
        keep = self.correct >= 0
        pick = lambda idx: jnp.take_along_axis(out, jnp.maximum(idx, 0)[:, None], -1)[:, 0]
        diff = pick(self.correct) - pick(self.wrong)
        return jnp.sum(jnp.where(keep, diff, 0.0)) / jnp.maximum(keep.sum(), 1)


class Loss(AbstractMetric):
    """Mean cross-entropy of `out` on `targets [batch, seq]`; positions with a negative target are skipped."""

    targets: Int[Array, " seq"]

    def __call__(self, out, clean_out):
        keep = self.targets >= 0
        logp = jax.nn.log_softmax(out, -1)
        ll = jnp.take_along_axis(logp, jnp.maximum(self.targets, 0)[:, None], -1)[:, 0]
        return -jnp.sum(jnp.where(keep, ll, 0.0)) / jnp.maximum(keep.sum(), 1)


class KL(AbstractMetric):
    """KL(clean || out) of the output distributions, at `position` or averaged over all (None)."""

    position: int | None = eqx.field(static=True, default=None)

    def __call__(self, out, clean_out):
        if self.position is not None:
            out, clean_out = out[self.position][None], clean_out[self.position][None]
        logp, logq = jax.nn.log_softmax(clean_out, -1), jax.nn.log_softmax(out, -1)
        return jnp.mean(jnp.sum(jnp.exp(logp) * (logp - logq), -1))


class MSE(AbstractMetric):
    """Mean squared error of a vector output against `target [batch, seq, d_out]`, or the clean output (None);
    over the positions where `keep [batch, seq]` is true, if given (e.g. not padding)."""

    target: Float[Array, "seq d_out"] | None = None
    keep: Bool[Array, " seq"] | None = None

    def __call__(self, out, clean_out):
        target = clean_out if self.target is None else self.target
        if self.keep is None:
            return jnp.mean((out - target) ** 2)
        per_position = jnp.mean((out - target) ** 2, -1)
        return jnp.sum(jnp.where(self.keep, per_position, 0.0)) / jnp.maximum(self.keep.sum(), 1)


class Output(AbstractMetric):
    """`out[position, index]`: one logit, or a regression output (`index=0`)."""

    index: int = eqx.field(static=True, default=0)
    position: int = eqx.field(static=True, default=-1)

    def __call__(self, out, clean_out):
        return out[self.position, self.index]


class L1(AbstractMetric):
    """Mean |out| over positions and outputs (at `position` only, if set): a size with no sign to cancel."""

    position: int | None = eqx.field(static=True, default=None)

    def __call__(self, out, clean_out):
        return jnp.abs(out if self.position is None else out[self.position]).mean()
