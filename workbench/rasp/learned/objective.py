"""Training pieces for the workbench trainer: the model with its temperature, the loss, the optimiser.

The temperature is a leaf of the trained pytree (`Annealed.tau`), and the optimiser's last stage
replaces its update with the geometric step `tau -> tau * ratio`, so `tau` goes from `tau_init` to
`tau_end` over `steps` updates, is saved in every checkpoint and resumes exactly. The paper anneals
per batch in the same way (3.0 -> 0.01, geometric), then switches to argmax.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from workbench.core import validate as v

from .discrete import discretise
from .model import TransformerProgram


class Annealed(eqx.Module):
    program: TransformerProgram
    tau: Float[Array, ""]


class Batch(eqx.Module):
    """`tokens [batch, seq]` (BOS first), `labels [batch, seq]` (-1: no label), the Gumbel-noise key."""

    tokens: Int[Array, "batch seq"]
    labels: Int[Array, "batch seq"]
    key: PRNGKeyArray


def loss(model: Annealed, batch: Batch) -> Float[Array, ""]:
    """Mean cross-entropy over the labelled positions, one Gumbel sample per sequence."""
    tau = jax.lax.stop_gradient(model.tau)
    keys = jax.random.split(batch.key, batch.tokens.shape[0])
    logits = jax.vmap(model.program, in_axes=(0, None, 0))(batch.tokens, tau, keys)
    return cross_entropy(logits, batch.labels)


def cross_entropy(logits: Float[Array, "batch seq d_out"], labels: Int[Array, "batch seq"]) -> Float[Array, ""]:
    mask = labels >= 0
    logp = jax.nn.log_softmax(logits, -1)
    picked = jnp.take_along_axis(logp, jnp.maximum(labels, 0)[..., None], -1)[..., 0]
    return -jnp.sum(jnp.where(mask, picked, 0.0)) / jnp.maximum(mask.sum(), 1)


def accuracy(model: TransformerProgram, tokens: Int[Array, "batch seq"], labels: Int[Array, "batch seq"]) -> Float[
        Array, ""]:
    """The discretised program's accuracy over the labelled positions."""
    preds = jax.vmap(discretise(model))(tokens)
    mask = labels >= 0
    return jnp.sum((preds == labels) & mask) / jnp.maximum(mask.sum(), 1)


def anneal(ratio: float) -> optax.GradientTransformation:
    """Replace the update of `Annealed.tau` by `tau * (ratio - 1)` (one geometric step)."""

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("anneal needs the parameters (optimizer.update(grads, state, params))")
        return eqx.tree_at(lambda m: m.tau, updates, params.tau * (ratio - 1.0)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def optimizer(lr: float, steps: int, tau_init: float = 3.0, tau_end: float = 0.01) -> optax.GradientTransformation:
    """Adam at `lr` on the program, and `tau` annealed geometrically from `tau_init` to `tau_end` in `steps`."""
    v.check_float("optimizer", "lr", lr, strict=True)
    v.check_int("optimizer", "steps", steps)
    v.check_float("optimizer", "tau_init", tau_init, strict=True)
    v.check_float("optimizer", "tau_end", tau_end, strict=True, high=tau_init)
    return optax.chain(optax.adam(lr), anneal((tau_end / tau_init) ** (1.0 / steps)))
