"""One layer of linear causal self-attention with merged weights (Zheng et al. 2024).

Token `t` attends to tokens `i <= t` with the bilinear score e_i^T W_KQ e_t and no softmax:

    f(E)_t = e_t + W_PV sum_{i <= t} e_i (e_i^T W_KQ e_t) / rho_t,    rho_t = max(t, 1)

(positions counted from 0). With tokens e_t = (0, x_t, x_{t-1}) and x_{-1} = 0, the first `t` of the
`t + 1` attended tokens carry a pair (x_{i-1}, x_i), so rho_t is the number of pairs: Zheng et al.'s
1 / (t - 1) with positions counted from 1.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class CausalLinearAttention(eqx.Module):
    """Merged-parameter linear causal attention on `d_token`-dimensional tokens (no softmax, bias or MLP).

    **Arguments:** `d_token` the token width; `init_scale` the std of the normal initialisation.
    """

    W_KQ: Float[Array, "d_token d_token"]
    W_PV: Float[Array, "d_token d_token"]

    def __init__(self, d_token: int, *, key: PRNGKeyArray, init_scale: float = 0.01):
        k1, k2 = jax.random.split(key)
        self.W_KQ = init_scale * jax.random.normal(k1, (d_token, d_token))
        self.W_PV = init_scale * jax.random.normal(k2, (d_token, d_token))

    def __call__(self, tokens: Float[Array, "seq d_token"]) -> Float[Array, "seq d_token"]:
        """The updated tokens `[seq, d_token]`."""
        seq = tokens.shape[0]
        scores = (tokens @ self.W_KQ.T) @ tokens.T  # [t, i] = e_i^T W_KQ e_t
        causal = jnp.tril(jnp.ones((seq, seq), bool))
        rho = jnp.maximum(jnp.arange(seq), 1)[:, None]
        return tokens + (jnp.where(causal, scores, 0.0) / rho) @ (tokens @ self.W_PV.T)
