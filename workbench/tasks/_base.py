"""The task contract: `task.sample(key, batch_size) -> batch`, pure, jit-able, deterministic in the key."""

import abc

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray


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
