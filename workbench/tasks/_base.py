"""The task contract: `task.sample(key, batch_size) -> batch`, pure, jit-able, deterministic in the key."""

import abc
import functools

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray


def unsharded_draws(sample):
    """Decorator for a task's `sample`: its draws use the non-partitionable threefry.

    A task batch is drawn on one device, where this generator is 2-4x faster on CPU than JAX's
    default partitionable one (which only pays off when a draw is sharded). The numbers drawn
    differ from the default's, deterministically in the key as ever.
    """

    @functools.wraps(sample)
    def wrapped(*args, **kwargs):
        with jax.threefry_partitionable(False):
            return sample(*args, **kwargs)

    return wrapped


class AbstractPromptBatch(eqx.Module):
    """Prompts of `n` context points and one query (the last point): `xs [batch, n+1, d]`, `ys [batch, n+1]`."""

    xs: eqx.AbstractVar[Float[Array, "batch n_plus_1 d"]]
    ys: eqx.AbstractVar[Float[Array, "batch n_plus_1"]]

    @property
    def context_xs(self) -> Float[Array, "batch n d"]:
        return self.xs[:, :-1]

    @property
    def context_ys(self) -> Float[Array, "batch n"]:
        return self.ys[:, :-1]

    @property
    def query_x(self) -> Float[Array, "batch d"]:
        return self.xs[:, -1]

    @property
    def query_y(self) -> Float[Array, " batch"]:
        return self.ys[:, -1]


class RegressionBatch(AbstractPromptBatch):
    """In-context linear regression prompts; the query's label `ys[:, -1]` is the target.

    `xs [batch, n + 1, d]`, `ys [batch, n + 1]`, and the prompts' true weights `ws [batch, d]`.
    """

    xs: Float[Array, "batch n_plus_1 d"]
    ys: Float[Array, "batch n_plus_1"]
    ws: Float[Array, "batch d"]


class AbstractTask(eqx.Module):
    """A synthetic task: a data generator plus the reference predictors for it."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, batch_size: int) -> eqx.Module:
        """A batch of `batch_size` independent examples, a pure function of `key`."""
        raise NotImplementedError
