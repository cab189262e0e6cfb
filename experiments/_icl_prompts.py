"""In-context regression prompts as token sequences for a `Transformer` with vector inputs.

A prompt `x_1, y_1, ..., x_K, y_K` becomes `2K` tokens of width `d + 1` (token `2i` is `(x_i, 0)`,
token `2i + 1` is `(0, y_i)`), and the model's prediction of `y_k` is read at the token of `x_k`,
which sees only the pairs before it (Garg et al. 2022; Raventós et al. 2023). `xy_tokens` is the
variant whose y tokens carry their x as well: (x_i, y_i).
"""

from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from workbench.models import Transformer, TransformerConfig
from workbench.tasks import RegressionBatch


def model_config(d: int, n_points: int, n_layers: int, d_model: int, n_heads: int, **kwargs) -> TransformerConfig:
    """A causal transformer over `2 n_points` tokens of width `d + 1` with one output per token."""
    return TransformerConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
                             n_ctx=2 * n_points, d_input=d + 1, d_vocab_out=1, **kwargs)


def tokens(xs: Float[Array, "k d"], ys: Float[Array, " k"]) -> Float[Array, "2k d_plus_1"]:
    """Interleave the pairs: token 2i is (x_i, 0), token 2i + 1 is (0, y_i)."""
    x_tok = jnp.concatenate([xs, jnp.zeros_like(ys)[:, None]], axis=1)
    y_tok = jnp.concatenate([jnp.zeros_like(xs), ys[:, None]], axis=1)
    return jnp.stack([x_tok, y_tok], axis=1).reshape(-1, xs.shape[1] + 1)


def xy_tokens(xs: Float[Array, "k d"], ys: Float[Array, " k"]) -> Float[Array, "2k d_plus_1"]:
    """Token 2i is (x_i, 0), token 2i + 1 is (x_i, y_i): a y token carries its own x, so one attention layer can
    form sum_i (x_q . x_i) y_i without first copying x_i onto the y token (which costs Garg et al.'s layout a
    long loss plateau)."""
    x_tok = jnp.concatenate([xs, jnp.zeros_like(ys)[:, None]], axis=1)
    y_tok = jnp.concatenate([xs, ys[:, None]], axis=1)
    return jnp.stack([x_tok, y_tok], axis=1).reshape(-1, xs.shape[1] + 1)


LAYOUTS = {"garg": tokens, "xy": xy_tokens}
Layout = Literal["garg", "xy"]


def predict(model: Transformer, xs: Float[Array, "k d"], ys: Float[Array, " k"], layout: Layout = "garg"
            ) -> Float[Array, " k"]:
    """The model's prediction of each `y_k`, read at the token of `x_k` (it sees only the pairs before)."""
    return model(LAYOUTS[layout](xs, ys))[0::2, 0]


def batch_predict(model: Transformer, batch: RegressionBatch, layout: Layout = "garg") -> Float[Array, "batch k"]:
    """`predict` over a batch of prompts (every point of `batch.xs`, `batch.ys` is a prediction)."""
    return jax.vmap(lambda x, y: predict(model, x, y, layout))(batch.xs, batch.ys)
