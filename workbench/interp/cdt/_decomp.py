"""The CD-T rules on (beta, gamma) pairs: beta the part due to the sources, gamma the rest.

Each rule maps a pair whose sum is an activation to a pair whose sum is the next activation. They
follow the authors' code (Hsu et al. 2025, `pyfunctions/cdt_core.py`) with one change: the bias
shares are `r` and `1 - r`, so beta + gamma is exact (the authors' shares each carry a `1e-8` in
the denominator and lose a sliver of every bias). A rule that is given the total (the clean
activation, from a cache) derives gamma as total - beta instead of mapping gamma: same values, half
the matmuls.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

Pair = tuple[Array, Array]


def bias_split(beta_w: Array, gamma_w: Array, b: Array | None) -> Pair:
    """`W beta + b r`, `W gamma + b (1 - r)` with `r = |W beta| / (|W beta| + |W gamma|)` (0 where both are 0)."""
    if b is None:
        return beta_w, gamma_w
    mag_b, mag_g = jnp.abs(beta_w), jnp.abs(gamma_w)
    den = mag_b + mag_g
    r = jnp.where(den > 0, mag_b / jnp.where(den > 0, den, 1.0), 0.0)
    return beta_w + b * r, gamma_w + b * (1.0 - r)


def linear(pair: Pair, fn, b: Array | None, total_w: Array | None = None) -> Pair:
    """The linear rule for `x -> fn(x) + b`; `total_w = fn(beta + gamma)` (bias-free) spares `fn(gamma)`."""
    beta, gamma = pair
    beta_w = fn(beta)
    gamma_w = fn(gamma) if total_w is None else total_w - beta_w
    return bias_split(beta_w, gamma_w, b)


def norm(pair: Pair, scale: Float[Array, "seq 1"], w: Array | None, b: Array | None, kind: str) -> Pair:
    """LayerNorm / LNPre / RMS with the statistics of the total (`scale` from the total): each part is
    centred by its own mean, divided by the total's scale, and the bias split by magnitude."""
    beta, gamma = pair
    if kind != "RMS":
        beta, gamma = beta - beta.mean(-1, keepdims=True), gamma - gamma.mean(-1, keepdims=True)
    beta, gamma = beta / scale, gamma / scale
    if w is not None:
        beta, gamma = beta * w, gamma * w
    return bias_split(beta, gamma, b)


def activation(pair: Pair, act, total_post: Array | None = None, shapley: bool = False) -> Pair:
    """`beta' = act(beta + gamma) - act(gamma)`, `gamma' = act(gamma)` (Singh et al. 2019, the authors'
    rule); `shapley`: beta' is the mean of that and `act(beta) - act(0)` (both orders of the two parts)."""
    beta, gamma = pair
    post = act(beta + gamma) if total_post is None else total_post
    gamma_post = act(gamma)
    if not shapley:  # where beta is exactly 0 so is beta' (a fused act(beta + gamma) may round apart from act(gamma))
        beta_post = jnp.where(beta == 0, 0.0, post - gamma_post)
        return beta_post, post - beta_post
    beta_post = jnp.where(beta == 0, 0.0, 0.5 * ((post - gamma_post) + (act(beta) - act(jnp.zeros_like(beta)))))
    return beta_post, post - beta_post


def cleanup(pair: Pair) -> Pair:
    """Where beta and gamma have opposite signs, the larger in magnitude takes the total, the other 0
    (the authors' `normalize_rel_irrel`)."""
    beta, gamma = pair
    total = beta + gamma
    opposite = beta * gamma < 0
    beta_wins = jnp.abs(beta) >= jnp.abs(gamma)
    new_beta = jnp.where(opposite, jnp.where(beta_wins, total, 0.0), beta)
    return new_beta, jnp.where(opposite, total - new_beta, gamma)


def scores(q: Float[Array, "seq head d_head"], k: Float[Array, "kv head d_head"], scale: float) -> Array:
    return jnp.einsum("qhd,khd->hqk", q, k) / scale


def pattern(s: Float[Array, "head seq kv"], causal: bool, softmax: bool) -> Float[Array, "head seq kv"]:
    """The attention pattern of scores `s` (causal mask, softmax or linear), as the model computes it."""
    if causal:
        seq = s.shape[-2]
        mask = jnp.tril(jnp.ones((seq, s.shape[-1]), dtype=bool))
        s = jnp.where(mask, s, -jnp.inf if softmax else 0.0)
    return jax.nn.softmax(s, axis=-1) if softmax else s


def attention(
    q: Pair, k: Pair, v: Pair, *, scale: float, causal: bool, softmax: bool, fixed: bool,
    total_pattern: Array | None = None, total_z: Array | None = None,
) -> Pair:
    """Head outputs z as a pair. GPT rule: `A_beta = pattern(q_beta k_beta)`, `z_beta = A_beta v_beta`,
    `z_gamma = A v - z_beta` with `A` the pattern of the totals. `fixed`: `z_beta = A v_beta` (BERT rule)."""
    if total_pattern is None:
        total_pattern = pattern(scores(q[0] + q[1], k[0] + k[1], scale), causal, softmax)
    a_beta = total_pattern if fixed else pattern(scores(q[0], k[0], scale), causal, softmax)
    z_beta = jnp.einsum("hqk,khd->qhd", a_beta, v[0])
    if total_z is None:
        total_z = jnp.einsum("hqk,khd->qhd", total_pattern, v[0] + v[1])
    return z_beta, total_z - z_beta
