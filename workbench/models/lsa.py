"""One layer of linear self-attention on tokens e_i = (x_i, y_i) (von Oswald et al. 2023).

Column-vector convention of the paper: with keys and values from the `n` context tokens only,
each token is updated as

    e_j <- e_j + P W_V sum_i e_i (W_K e_i)^T (W_Q e_j)

and the prediction for the query token e_q = (x_q, 0) is minus its updated y-slot.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class LinearSelfAttention(eqx.Module):
    """Single-head linear self-attention on `d_token = d + 1` dimensional tokens (no bias, no softmax).

    **Arguments:** `d` the input dimension; `init_scale` the std of the normal initialisation
    (0.002 in the paper's code).
    """

    W_Q: Float[Array, "d_token d_token"]
    W_K: Float[Array, "d_token d_token"]
    W_V: Float[Array, "d_token d_token"]
    P: Float[Array, "d_token d_token"]

    def __init__(self, d: int, *, key: PRNGKeyArray, init_scale: float = 0.002):
        keys = jax.random.split(key, 4)
        shape = (d + 1, d + 1)
        self.W_Q, self.W_K, self.W_V, self.P = (init_scale * jax.random.normal(k, shape) for k in keys)

    def __call__(
        self, context: Float[Array, "n d_token"], tokens: Float[Array, "m d_token"]
    ) -> Float[Array, "m d_token"]:
        """Update `tokens` by attending (linearly) to the `context` tokens."""
        keys = context @ self.W_K.T
        values = context @ self.W_V.T
        queries = tokens @ self.W_Q.T
        scores = queries @ keys.T  # [m, n]
        return tokens + (scores @ values) @ self.P.T

    def predict(self, xs: Float[Array, "n d"], ys: Float[Array, " n"], x_query: Float[Array, " d"]) -> Float[Array, ""]:
        """Prediction for `x_query` from the context `(xs, ys)`: minus the query's updated y-slot."""
        context = jnp.concatenate([xs, ys[:, None]], axis=1)
        query = jnp.concatenate([x_query, jnp.zeros(1)])[None]
        return -self(context, query)[0, -1]
