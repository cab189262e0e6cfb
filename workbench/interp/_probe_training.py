"""Probes trained with optax: multinomial logistic regression and a one-hidden-layer MLP regressor.

Both train full-batch for a fixed number of Adam steps inside `lax.scan`, so a fit is a pure function
of arrays: `jax.vmap(fit_logistic, ...)` fits every site of a sweep in one call.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray


class LogisticProbe(eqx.Module):
    """Logits `((x - mx) / sx) @ W + b`: `W [d, n_classes]`, `b [n_classes]`, input standardisation `mx, sx [d]`."""

    W: Float[Array, "d c"]
    b: Float[Array, " c"]
    mx: Float[Array, " d"]
    sx: Float[Array, " d"]

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... c"]:
        return ((x - self.mx) / self.sx) @ self.W + self.b


class MLPProbe(eqx.Module):
    """`relu(((x - mx) / sx) @ W1 + b1) @ W2 + b2`: one hidden layer of `d_hidden` units."""

    W1: Float[Array, "d h"]
    b1: Float[Array, " h"]
    W2: Float[Array, "h k"]
    b2: Float[Array, " k"]
    mx: Float[Array, " d"]
    sx: Float[Array, " d"]

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... k"]:
        h = jax.nn.relu(((x - self.mx) / self.sx) @ self.W1 + self.b1)
        return h @ self.W2 + self.b2


def _standardise(x: Float[Array, "n d"]) -> tuple[Array, Array]:
    return x.mean(0), jnp.maximum(x.std(0), 1e-6)


def _train(params, loss, steps: int, lr: float):
    opt = optax.adam(lr)

    def step(carry, _):
        p, state = carry
        value, grads = jax.value_and_grad(loss)(p)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params, losses


def fit_logistic(
    x: Float[Array, "n d"], labels: Int[Array, " n"], n_classes: int, *, steps: int = 500, lr: float = 0.05,
    l2: float = 1e-4,
) -> LogisticProbe:
    """Multinomial logistic probe: mean cross-entropy + `l2 |W|^2`, `steps` full-batch Adam steps from zero."""
    mx, sx = _standardise(x)
    z = (x - mx) / sx
    params = (jnp.zeros((x.shape[1], n_classes), x.dtype), jnp.zeros(n_classes, x.dtype))

    def loss(p):
        logits = z @ p[0] + p[1]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean() + l2 * jnp.sum(p[0] ** 2)

    (W, b), _ = _train(params, loss, steps, lr)
    return LogisticProbe(W, b, mx, sx)


def accuracy(probe: LogisticProbe, x: Float[Array, "n d"], labels: Int[Array, " n"]) -> Float[Array, ""]:
    """Fraction of `labels` that the probe's arg-max logit gets right."""
    return jnp.mean(jnp.argmax(probe(x), -1) == labels)


def fit_mlp(
    x: Float[Array, "n d"], y: Float[Array, "n k"], *, key: PRNGKeyArray, d_hidden: int = 64, steps: int = 1000,
    lr: float = 3e-3, l2: float = 1e-4,
) -> MLPProbe:
    """MLP regression probe (Akyurek et al. found MLP probes decode more than linear ones): MSE + `l2 |W|^2`."""
    mx, sx = _standardise(x)
    z = (x - mx) / sx
    k1, k2 = jax.random.split(key)
    d, k = x.shape[1], y.shape[1]
    params = (jax.random.normal(k1, (d, d_hidden)) * jnp.sqrt(2.0 / d), jnp.zeros(d_hidden),
              jax.random.normal(k2, (d_hidden, k)) / jnp.sqrt(d_hidden), y.mean(0))

    def loss(p):
        pred = jax.nn.relu(z @ p[0] + p[1]) @ p[2] + p[3]
        return jnp.mean((pred - y) ** 2) + l2 * (jnp.sum(p[0] ** 2) + jnp.sum(p[2] ** 2))

    (W1, b1, W2, b2), _ = _train(params, loss, steps, lr)
    return MLPProbe(W1, b1, W2, b2, mx, sx)
