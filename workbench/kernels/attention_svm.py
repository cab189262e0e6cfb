"""Transformers as SVMs (Tarzanagh, Li, Thrampoulidis, Oymak 2023): one-layer attention with a
fixed linear head, trained by normalised gradient descent; one instance per call, `vmap` for many.

Model (authors' `SelfAttn` with `cross_attn=True`): for input `i` with tokens `X_i [T, d]` and
cross-input `z_i [d]`, `out_i = v^T X_i^T softmax(X_i W z_i)`; loss
`mean_i log(1 + exp(-y_i out_i))`. The W-parametrisation trains `W` directly; the
(K, Q)-parametrisation trains `W = K^T Q` (`K` = `key.weight`, `Q` = `query.weight`).
Normalised GD: `W <- W - lr * g / (||g||_F + eps)`; for (K, Q) each factor is normalised on its
own and the loss carries `eps * (||K||^2 + ||Q||^2)`.

The W-parametrisation runs in token space (`ngd_step_w`): the loss sees W only through the rows
`u_i = W z_i`, and every gradient `sum_i (X_i^T ds_i) z_i^T` has its rows in span{z_i}, so the kernel
steps the n vectors `u_i` with the Gram matrix `z z^T` and keeps `W = W_0 + A^T z` for the records:
the same iterates as autodiff on W (tested to rounding) at about half the work per step, with no
d x d product inside the loop. (K, Q) uses autodiff (`ngd_step`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


class SVMData(eqx.Module):
    """One instance: tokens `X`, cross-inputs `z` (unit rows), labels `y` in {-1, +1}, head `v`."""

    X: Float[Array, "n T d"]
    z: Float[Array, "n d"]
    y: Float[Array, " n"]
    v: Float[Array, " d"]


def sample_svm_data(key: PRNGKeyArray, n: int, T: int, d: int) -> SVMData:
    """The notebooks' generator: v, X_it, z_i unit Gaussian directions; y_i = +-1 equiprobable."""
    if min(n, T, d) < 1 or T < 2:
        raise ValueError(f"sample_svm_data: need n >= 1, T >= 2, d >= 1; got n={n}, T={T}, d={d}")
    unit = lambda a: a / jnp.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    with jax.threefry_partitionable(False):  # see workbench.kernels: much faster to compile
        g = jax.random.normal(key, (d + n + n * T * d + n * d,))  # one draw, split below
    v, y, X, z = jnp.split(g, [d, d + n, d + n + n * T * d])
    v, y = unit(v), jnp.where(y > 0, 1.0, -1.0)
    X, z = unit(X.reshape(n, T, d)), unit(z.reshape(n, d))
    return SVMData(X, z, y, v)


def token_scores(data: SVMData) -> Float[Array, "n T"]:
    """gamma_it = y_i v^T x_it."""
    return data.y[:, None] * (data.X @ data.v)


def optimal_tokens(data: SVMData) -> Int[Array, " n"]:
    """Globally optimal token per input: argmax_t gamma_it (`best_ids`)."""
    return token_scores(data).argmax(-1)


def attention_pattern(W: Float[Array, "d d"], data: SVMData) -> Float[Array, "n T"]:
    """softmax_t(x_it^T W z_i) for every input."""
    return jax.nn.softmax(jnp.einsum("ntd,de,ne->nt", data.X, W, data.z), axis=-1)


def logistic_loss(W: Float[Array, "d d"], data: SVMData) -> Float[Array, ""]:
    out = jnp.einsum("nt,ntd,d->n", attention_pattern(W, data), data.X, data.v)
    return jax.nn.softplus(-data.y * out).mean()


class Params(eqx.Module):
    """`W` for the W-parametrisation, or the factors `K`, `Q` (then `W = K^T Q`)."""

    W: Float[Array, "d d"] | None
    K: Float[Array, "d d"] | None
    Q: Float[Array, "d d"] | None

    def combined(self) -> Float[Array, "d d"]:
        return self.W if self.W is not None else self.K.T @ self.Q


def init_params(key: PRNGKeyArray, d: int, param: str) -> Params:
    """PyTorch `nn.Linear` default init, U(+-1/sqrt(d)), for W or for each of K, Q."""
    if param not in ("W", "KQ"):
        raise ValueError(f"init_params: `param` must be 'W' or 'KQ', got {param!r}")
    b = 1.0 / jnp.sqrt(d)
    with jax.threefry_partitionable(False):
        K, Q = jax.random.uniform(key, (2, d, d), minval=-b, maxval=b)
    return Params(K, None, None) if param == "W" else Params(None, K, Q)


class NGDTrace(eqx.Module):
    """Every `record_every` steps, after the update: `W` (combined) `[records, d, d]`, the mean max
    softmax probability and the loss `[records]`; `selected` = argmax tokens of the final pattern `[n]`."""

    W: Float[Array, "records d d"]
    max_prob: Float[Array, " records"]
    loss: Float[Array, " records"]
    selected: Int[Array, " n"]


def observe(W: Float[Array, "d d"], data: SVMData) -> tuple[Float[Array, ""], Float[Array, ""], Int[Array, " n"]]:
    """(mean max softmax probability, loss, argmax token per input) at W."""
    pattern = attention_pattern(W, data)
    return pattern.max(-1).mean(), logistic_loss(W, data), pattern.argmax(-1)


def ngd_step(data: SVMData, p: Params, lr: float) -> Params:
    """One normalised GD step by autodiff (either parametrisation)."""
    eps = jnp.finfo(data.X.dtype).eps

    def loss_fn(p: Params):
        loss = logistic_loss(p.combined(), data)
        if p.W is None:
            loss = loss + eps * (jnp.sum(p.K**2) + jnp.sum(p.Q**2))
        return loss

    g = jax.grad(loss_fn)(p)
    return jax.tree.map(lambda w, gw: w - lr * gw / (jnp.linalg.norm(gw) + eps), p, g)


class TokenState(eqx.Module):
    """The W-parametrisation's NGD state in token space: `U[i] = W z_i`, and `A` with
    `W = W_0 + A^T z` (W_0 the initial W)."""

    U: Float[Array, "n d"]
    A: Float[Array, "n d"]


def ngd_step_w(data: SVMData, state: TokenState, lr: float) -> TokenState:
    """`ngd_step` for the W-parametrisation, in token space, with the gradient written out:
    `ds_it = dL/ds_it` for the scores `s_it = x_it . u_i`, `R_i = X_i^T ds_i` (so grad W = R^T z),
    grad W z_i = (G R)_i and ||grad W||_F^2 = <R, G R> with G = z z^T."""
    X, y = data.X, data.y
    eps = jnp.finfo(X.dtype).eps
    values = X @ data.v  # [n, T]: v . x_it
    pattern = jax.nn.softmax(jnp.einsum("ntd,nd->nt", X, state.U), axis=-1)
    out = (pattern * values).sum(-1)
    d_out = -y * jax.nn.sigmoid(-y * out) / y.shape[0]
    ds = d_out[:, None] * pattern * (values - out[:, None])
    R = jnp.einsum("nt,ntd->nd", ds, X)
    GR = (data.z @ data.z.T) @ R
    scale = lr / (jnp.sqrt(jnp.maximum(jnp.sum(R * GR), 0.0)) + eps)
    return TokenState(state.U - scale * GR, state.A - scale * R)


def train_ngd(
    data: SVMData, params: Params, *, steps: int = 2000, lr: float = 0.1, record_every: int = 10
) -> NGDTrace:
    """Normalised gradient descent, one `lax.scan` (the authors' `local_converge` loop); the
    W-parametrisation steps in token space (`ngd_step_w`), (K, Q) by autodiff (`ngd_step`)."""
    if steps < 1 or record_every < 1 or steps % record_every:
        raise ValueError(f"train_ngd: need steps >= 1 divisible by record_every >= 1; got {steps}, {record_every}")
    if params.W is not None:
        W0 = params.W
        state = TokenState(data.z @ W0.T, jnp.zeros_like(data.z))
        advance = lambda s: ngd_step_w(data, s, lr)  # noqa: E731
        combined = lambda s: W0 + s.A.T @ data.z  # noqa: E731
    else:
        state, advance, combined = params, lambda p: ngd_step(data, p, lr), Params.combined

    def block(s, _):
        s = jax.lax.fori_loop(0, record_every, lambda _, s: advance(s), s)
        W = combined(s)
        return s, (W, *observe(W, data))

    _, (Ws, prob, loss, sel) = jax.lax.scan(block, state, None, length=steps // record_every)
    return NGDTrace(Ws, prob, loss, sel[-1])


def correlation(W: Float[Array, "*records d d"], W_ref: Float[Array, "d d"]) -> Float[Array, "*records"]:
    """<W, W_ref> / (||W|| ||W_ref||) (Frobenius)."""
    num = jnp.einsum("...ij,ij->...", W, W_ref)
    return num / (jnp.linalg.norm(W, axis=(-2, -1)) * jnp.linalg.norm(W_ref))


def simulate_ngd(
    key: PRNGKeyArray, n: int, T: int, d: int, *, param: str = "W", steps: int = 2000, lr: float = 0.1,
    record_every: int = 10,
) -> tuple[SVMData, NGDTrace]:
    """Sample an instance and its init from `key` and train it (vmap over `key` for many)."""
    with jax.threefry_partitionable(False):
        k_data, k_init = jax.random.split(key)
    data = sample_svm_data(k_data, n, T, d)
    params = init_params(k_init, d, param)
    params = jax.tree.map(lambda a: a.astype(data.X.dtype), params)
    return data, train_ngd(data, params, steps=steps, lr=lr, record_every=record_every)
