"""Scan and Snap, long-sequence limit: deterministic Y/Z dynamics in terms of c_n, f_n, alpha_n.

When L -> infinity the context counts of class n concentrate on `(L - 1) P(. | n)`, so

$$c_n = \\mathrm{softmax}(z_{\\psi(n)} + \\log P(\\cdot|n)),\\quad f_n = c_n/\\|c_n\\|,\\quad
\\alpha_n = \\mathrm{softmax}(Y f_n),$$

$$\\dot Y = \\eta_Y\\, \\mathbb{E}_n[(e_n - \\alpha_n) f_n^\\top],\\qquad
\\dot z_m = \\eta_Z \\sum_{n \\in \\psi^{-1}(m)} P(n)\\, (\\mathrm{diag}(c_n) - c_n c_n^\\top)
\\frac{I - f_n f_n^\\top}{\\|c_n\\|} Y^\\top (e_n - \\alpha_n).$$

`velocity` writes these right-hand sides out (no autodiff); `population_loss` is the loss whose
negative gradient they are (checked in the tests and symbolically in `workbench.theory.scan_snap`).
`simulate_reduced` steps them with the same momentum SGD as the stochastic kernel.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .scan_snap import Dataset2, Model2, class_attention, decode, distinct_entropy, init_model2


def _class_terms(model: Model2, data: Dataset2, active_last):
    c = class_attention(model, data)  # [next, support]
    f = c / jnp.linalg.norm(c, axis=-1, keepdims=True)
    out_mask = data.output_mask(active_last)
    logits = jax.vmap(decode, in_axes=(None, None, 0, 0))(model, data, jnp.arange(data.num_next), f)
    logits = jnp.where(out_mask, logits, -jnp.inf)
    labels = data.num_context + data.num_last + jnp.arange(data.num_next)
    active = jnp.arange(data.num_next) < active_last * data.num_next_per_last
    p_n = active / active.sum()
    return c, f, logits, jax.nn.one_hot(labels, data.vocab), p_n


def population_loss(model: Model2, data: Dataset2, active_last: Int[Array, ""]) -> Float[Array, ""]:
    """E_n[CE(Y f_n, n)] over the active classes (uniform P(n))."""
    _, _, logits, onehot, p_n = _class_terms(model, data, active_last)
    ce = jax.nn.logsumexp(logits, axis=-1) - jnp.where(onehot > 0, logits, 0.0).sum(-1)
    return jnp.where(p_n > 0, p_n * ce, 0.0).sum()


def velocity(model: Model2, data: Dataset2, active_last: Int[Array, ""]) -> Model2:
    """The reduced-dynamics right-hand sides (dY/dt / eta_Y and dZ/dt / eta_Z), written out."""
    nc = data.num_common
    c, f, logits, onehot, p_n = _class_terms(model, data, active_last)
    alpha = jax.nn.softmax(logits, axis=-1)
    err = p_n[:, None] * (onehot - alpha)  # P(n) (e_n - alpha_n), [next, vocab]
    dY_common = err.T @ f[:, :nc]
    dY_distinct = err[:, :, None] * f[:, None, nc:]

    def dz(n):
        cn, fn = c[n], f[n]
        y_support = jnp.concatenate([model.Y_common, model.Y_distinct[n]], axis=1)  # [vocab, support]
        g = (y_support.T @ err[n] - fn * (fn @ (y_support.T @ err[n]))) / jnp.linalg.norm(cn)
        return cn * g - cn * (cn @ g)  # (diag(c) - c c^T) g

    dzs = jax.vmap(dz)(jnp.arange(data.num_next))
    dZ_common = jax.ops.segment_sum(dzs[:, :nc], data.last_of_next(), num_segments=data.num_last)
    return Model2(dY_common, dY_distinct, dZ_common, dzs[:, nc:])


def reduced_step(
    data: Dataset2, model: Model2, vel: Model2, lr_y, lr_z, active_last: Int[Array, ""], *, momentum: float = 0.9
) -> tuple[Model2, Model2]:
    """One momentum step on the exact population gradient (minus `velocity`), as `train_step`
    steps on a minibatch gradient."""
    g = jax.tree.map(jnp.negative, velocity(model, data, active_last))
    vel = jax.tree.map(lambda v, gi: momentum * v + gi, vel, g)
    lrs = Model2(lr_y, lr_y, lr_z, lr_z)
    return jax.tree.map(lambda p, v, lr: p - lr * v, model, vel, lrs), vel


class ReducedTrace(eqx.Module):
    """`entropy`, `common_mass`, `loss` (population) per step (before the update) plus a final row for
    entropy/common mass; `attention` c_n over supports `[steps + 1, next, support]`."""

    loss: Float[Array, " steps"]
    entropy: Float[Array, " steps_plus_1"]
    common_mass: Float[Array, " steps_plus_1"]
    attention: Float[Array, "steps_plus_1 next support"]
    model: Model2


def simulate_reduced(
    data: Dataset2,
    key: PRNGKeyArray,
    lr_z: Float[Array, ""],
    lr_y: Float[Array, ""],
    active_last: Int[Array, ""] | None = None,
    *,
    steps: int,
    momentum: float = 0.9,
    zero_init: bool = True,
) -> ReducedTrace:
    """Deterministic reduced dynamics with momentum (the SGD kernel's optimiser, exact gradients).
    `key` only matters for a random init."""
    active_last = jnp.asarray(data.num_last if active_last is None else active_last, jnp.int32)
    with jax.threefry_partitionable(False):
        model = init_model2(data, jax.random.split(key)[0], active_last, zero_init)
    lr_y, lr_z = jnp.asarray(lr_y, jnp.float32), jnp.asarray(lr_z, jnp.float32)
    active = jnp.arange(data.num_next) < active_last * data.num_next_per_last

    def observe(model):
        c = class_attention(model, data)
        common = jnp.where(active, c[:, : data.num_common].sum(-1), 0.0).sum() / active.sum()
        return distinct_entropy(model, data, active_last), common, c

    def step(carry, _):
        model, vel = carry
        new, vel = reduced_step(data, model, vel, lr_y, lr_z, active_last, momentum=momentum)
        return (new, vel), (population_loss(model, data, active_last), *observe(model))

    vel0 = jax.tree.map(jnp.zeros_like, model)
    (model, _), (loss, ent, common, att) = jax.lax.scan(step, (model, vel0), None, length=steps)
    e, cm, a = observe(model)
    append = lambda xs, x: jnp.concatenate([xs, x[None]])  # noqa: E731
    return ReducedTrace(loss, append(ent, e), append(common, cm), append(att, a), model)
