"""The in-context regression family beyond isotropic linear regression.

Sparse linear and two-layer ReLU / decision-tree functions (Garg et al. 2022), noisy linear with a
finite pool of tasks (Raventos et al. 2023), ill-conditioned covariances for Iterative Newton
(Fu et al.), the linear dynamical system x_{t+1} = W x_t (Zheng et al. 2024) and representation
ICL y = w^T phi(x) with a fixed random MLP phi (Guo et al. 2024). Each task's `predictors()` maps a
name to a masked predictor of `workbench.tasks.predictors`; evaluate them per prefix with
`predictors.prefix_errors(p, batch.xs, batch.ys)`.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from workbench.core import validate as v
from . import predictors as P
from ._base import AbstractPromptBatch, AbstractTask, RegressionBatch, unsharded_draws


def _label_noise(key: PRNGKeyArray, shape: tuple[int, ...], noise: float) -> Float[Array, "..."] | float:
    """noise * N(0, 1) label noise; nothing is drawn when `noise` is 0 (a static field)."""
    return noise * jax.random.normal(key, shape) if noise else 0.0


class FunctionBatch(AbstractPromptBatch):
    """Prompts of a non-linear function class (ReLU networks, trees): `xs [batch, n+1, d]`, `ys [batch, n+1]`."""

    xs: Float[Array, "batch n_plus_1 d"]
    ys: Float[Array, "batch n_plus_1"]


class RepresentationBatch(AbstractPromptBatch):
    """Prompts of y = w^T phi(x) + noise: `xs [batch, n+1, d]`, `ys [batch, n+1]`, `ws [batch, d_phi]`."""

    xs: Float[Array, "batch n_plus_1 d"]
    ys: Float[Array, "batch n_plus_1"]
    ws: Float[Array, "batch d_phi"]


class TrajectoryBatch(eqx.Module):
    """Trajectories x_{t+1} = W x_t: `xs [batch, seq, d]`, `transition [batch, d, d]` (each sequence's W)."""

    xs: Float[Array, "batch seq d"]
    transition: Float[Array, "batch d d"]


def ill_conditioned_covariance(d: int, condition_number: float, *, key: PRNGKeyArray | None = None) -> Float[Array, "d d"]:
    """A covariance with eigenvalues log-spaced from largest to largest / `condition_number`, trace `d`.

    With `key` the eigenbasis is a random rotation, otherwise the axes. Pass it to
    `LinearRegression(x_dist="gaussian", covariance=...)` for the Iterative Newton setting.
    """
    v.check_int("ill_conditioned_covariance", "d", d)
    v.check_float("ill_conditioned_covariance", "condition_number", condition_number, low=1.0)
    eig = condition_number ** (-jnp.linspace(0.0, 1.0, d))
    eig = eig * d / eig.sum()
    if key is None:
        return jnp.diag(eig)
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, d)))
    q = q * jnp.sign(jnp.diag(r))
    return (q * eig) @ q.T


def _linear_predictors(noise: float, weight_scale: float) -> dict[str, P.MaskedPredictor]:
    out = {"ols": P.ols, "averaging": P.averaging, "knn3": P.knn(3)}
    if noise > 0:
        out["ridge_bayes"] = P.ridge(P.bayes_ridge_lambda(noise, weight_scale))
    return out


class SparseLinearRegression(AbstractTask):
    """y = w^T x + noise * eps, x ~ N(0, I_d), w with exactly `sparsity` non-zero N(0, weight_scale^2) entries.

    Garg et al.: d = 20, sparsity 3. Reference: Lasso (FISTA), OLS, 3-NN, averaging.
    """

    d: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    sparsity: int = eqx.field(static=True)
    noise: float = eqx.field(static=True, default=0.0)
    weight_scale: float = eqx.field(static=True, default=1.0)
    lasso_alpha: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        name = type(self).__name__
        v.check_int(name, "d", self.d)
        v.check_int(name, "n_points", self.n_points)
        v.check_int(name, "sparsity", self.sparsity, high=self.d)
        v.check_float(name, "noise", self.noise)
        v.check_float(name, "weight_scale", self.weight_scale, strict=True)
        v.check_float(name, "lasso_alpha", self.lasso_alpha, strict=True)

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> RegressionBatch:
        kx, kw, ks, kn = jax.random.split(key, 4)
        xs = jax.random.normal(kx, (batch_size, self.n_points + 1, self.d))
        dense = self.weight_scale * jax.random.normal(kw, (batch_size, self.d))
        # The `sparsity` coordinates with the largest uniform scores: a uniformly random support.
        scores = jax.random.uniform(ks, (batch_size, self.d))
        kth = jnp.sort(scores, axis=1)[:, self.d - self.sparsity][:, None]
        ws = jnp.where(scores >= kth, dense, 0.0)
        ys = jnp.einsum("bnd,bd->bn", xs, ws) + _label_noise(kn, xs.shape[:2], self.noise)
        return RegressionBatch(xs=xs, ys=ys, ws=ws)

    def predictors(self) -> dict[str, P.MaskedPredictor]:
        return {"lasso": P.lasso(self.lasso_alpha), **_linear_predictors(self.noise, self.weight_scale)}


class FinitePoolRegression(AbstractTask):
    """Raventos et al.: y = w^T x + noise * eps with w drawn uniformly from a fixed pool of `n_tasks` vectors.

    The pool `pool [n_tasks, d]` ~ N(0, weight_scale^2 I) is drawn once from `key`; x ~ N(0, I_d).
    Paper: d = 8, n_points = 16, noise^2 = 0.25, n_tasks = 2^1..2^20. Reference: dMMSE (posterior
    mean over the pool, Bayes-optimal here) and ridge with lambda = noise^2 / weight_scale^2
    (Bayes-optimal for fresh Gaussian tasks).
    """

    pool: Float[Array, "n_tasks d"]
    d: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    n_tasks: int = eqx.field(static=True)
    noise: float = eqx.field(static=True)
    weight_scale: float = eqx.field(static=True)

    def __init__(
        self, d: int, n_points: int, n_tasks: int, noise: float = 0.5, weight_scale: float = 1.0, *, key: PRNGKeyArray
    ):
        name = type(self).__name__
        v.check_int(name, "d", d)
        v.check_int(name, "n_points", n_points)
        v.check_int(name, "n_tasks", n_tasks)
        v.check_float(name, "noise", noise, strict=True)
        v.check_float(name, "weight_scale", weight_scale, strict=True)
        self.d, self.n_points, self.n_tasks, self.noise, self.weight_scale = d, n_points, n_tasks, noise, weight_scale
        self.pool = weight_scale * jax.random.normal(key, (n_tasks, d))

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> RegressionBatch:
        kx, ki, kn = jax.random.split(key, 3)
        xs = jax.random.normal(kx, (batch_size, self.n_points + 1, self.d))
        ws = self.pool[jax.random.randint(ki, (batch_size,), 0, self.n_tasks)]
        ys = jnp.einsum("bnd,bd->bn", xs, ws) + _label_noise(kn, xs.shape[:2], self.noise)
        return RegressionBatch(xs=xs, ys=ys, ws=ws)

    def predictors(self) -> dict[str, P.MaskedPredictor]:
        return {"dmmse": P.dmmse(self.pool, self.noise), **_linear_predictors(self.noise, self.weight_scale)}


class ReLUNetRegression(AbstractTask):
    """Garg et al.: y = sqrt(2 / hidden) * a^T ReLU(W^T x), W [d, hidden] and a [hidden] ~ N(0, 1) per prompt, x ~ N(0, I)."""

    d: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        for name in ("d", "n_points", "hidden"):
            v.check_int(type(self).__name__, name, getattr(self, name))

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> FunctionBatch:
        kx, k1, k2 = jax.random.split(key, 3)
        xs = jax.random.normal(kx, (batch_size, self.n_points + 1, self.d))
        w1 = jax.random.normal(k1, (batch_size, self.d, self.hidden))
        a = jax.random.normal(k2, (batch_size, self.hidden))
        hid = jax.nn.relu(jnp.einsum("bnd,bdh->bnh", xs, w1))
        ys = math.sqrt(2 / self.hidden) * jnp.einsum("bnh,bh->bn", hid, a)
        return FunctionBatch(xs=xs, ys=ys)

    def predictors(self) -> dict[str, P.MaskedPredictor]:
        return {"ols": P.ols, "knn3": P.knn(3), "averaging": P.averaging}


def tree_predict(
    features: Float[Array, " n_internal"], leaves: Float[Array, " n_leaves"], x: Float[Array, " d"]
) -> Float[Array, ""]:
    """A complete binary tree in heap order: node `i` goes to child `2i + 1 + [x[features[i]] > 0]`."""
    depth = int(math.log2(leaves.shape[0]))
    node = jnp.asarray(0)
    for _ in range(depth):
        node = 2 * node + 1 + (x[features[node]] > 0).astype(node.dtype)
    return leaves[node - (2**depth - 1)]


class DecisionTreeRegression(AbstractTask):
    """Garg et al.: a random depth-`depth` binary tree per prompt, splits on x_i > 0 with i uniform, leaves N(0, 1)."""

    d: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    depth: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        for name in ("d", "n_points", "depth"):
            v.check_int(type(self).__name__, name, getattr(self, name))

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> FunctionBatch:
        kx, kf, kl = jax.random.split(key, 3)
        xs = jax.random.normal(kx, (batch_size, self.n_points + 1, self.d))
        features = jax.random.randint(kf, (batch_size, 2**self.depth - 1), 0, self.d)
        leaves = jax.random.normal(kl, (batch_size, 2**self.depth))
        per_point = jax.vmap(tree_predict, in_axes=(None, None, 0))
        ys = jax.vmap(per_point)(features, leaves, xs)
        return FunctionBatch(xs=xs, ys=ys)

    def predictors(self) -> dict[str, P.MaskedPredictor]:
        return {"knn3": P.knn(3), "ols": P.ols, "averaging": P.averaging}


class ARProcess(AbstractTask):
    """Zheng et al.: x_{t+1} = W x_t, W block-diagonal with random 2x2 rotations (|eigenvalues| = 1).

    `x1_dist`: `"gaussian"` (x_1 ~ N(0, I), which violates their Assumption 4.2) or `"rademacher"`
    (x_1 in {+-1}^d). Reference: `predictors.ar_prefix_predictions` with `gd(eta, 1)` (the trained
    linear-attention solution) or `ols`.
    """

    d: int = eqx.field(static=True)
    seq_len: int = eqx.field(static=True)
    x1_dist: str = eqx.field(static=True, default="gaussian")

    def __check_init__(self):
        name = type(self).__name__
        v.check_int(name, "d", self.d, low=2)
        if self.d % 2:
            raise ValueError(f"{name}.d must be even (W is built from 2x2 rotations), got {self.d}")
        v.check_int(name, "seq_len", self.seq_len, low=2)
        v.check_choice(name, "x1_dist", self.x1_dist, ("gaussian", "rademacher"))

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> TrajectoryBatch:
        ka, kx = jax.random.split(key)
        theta = jax.random.uniform(ka, (batch_size, self.d // 2), maxval=2 * jnp.pi)
        c, s = jnp.cos(theta), jnp.sin(theta)
        blocks = jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)  # [batch, d/2, 2, 2]
        eye = jnp.eye(self.d // 2)
        w = jnp.einsum("bkij,kl->bkilj", blocks, eye).reshape(batch_size, self.d, self.d)
        if self.x1_dist == "gaussian":
            x1 = jax.random.normal(kx, (batch_size, self.d))
        else:
            x1 = jax.random.rademacher(kx, (batch_size, self.d)).astype(jnp.float32)

        def roll(x, w):
            def step(x_t, _):
                return w @ x_t, x_t

            return jax.lax.scan(step, x, None, length=self.seq_len)[1]

        return TrajectoryBatch(xs=jax.vmap(roll)(x1, w), transition=w)

    def predictors(self) -> dict[str, P.MaskedPredictor]:
        return {"ols": P.ols, "gd1": P.gd(1.0, 1)}


class RepresentationRegression(AbstractTask):
    """Guo et al.: y = w^T phi(x) + noise * eps, phi a fixed random ReLU MLP, w ~ N(0, I_{d_phi}) per prompt.

    phi(x) = ReLU(A_L ... ReLU(A_1 x)) with A_l ~ N(0, 2 / fan_in) (He scaling keeps |phi(x)|^2 ~ d_phi),
    drawn once from `key`; x ~ N(0, I_d). Reference: ridge on phi(x) (Bayes-optimal with
    lambda = noise^2), OLS on x (misspecified).
    """

    layers: tuple[Float[Array, "d_out d_in"], ...]
    d: int = eqx.field(static=True)
    n_points: int = eqx.field(static=True)
    d_phi: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    noise: float = eqx.field(static=True)

    def __init__(
        self, d: int, n_points: int, d_phi: int = 8, depth: int = 2, noise: float = 0.1, *, key: PRNGKeyArray
    ):
        name = type(self).__name__
        for pname, value in (("d", d), ("n_points", n_points), ("d_phi", d_phi), ("depth", depth)):
            v.check_int(name, pname, value)
        v.check_float(name, "noise", noise)
        self.d, self.n_points, self.d_phi, self.depth, self.noise = d, n_points, d_phi, depth, noise
        dims = [d] + [d_phi] * depth
        keys = jax.random.split(key, depth)
        self.layers = tuple(
            jnp.sqrt(2.0 / dims[i]) * jax.random.normal(keys[i], (dims[i + 1], dims[i])) for i in range(depth)
        )

    def features(self, x: Float[Array, " d"]) -> Float[Array, " d_phi"]:
        for a in self.layers:
            x = jax.nn.relu(a @ x)
        return x

    @unsharded_draws
    def sample(self, key: PRNGKeyArray, batch_size: int) -> RepresentationBatch:
        kx, kw, kn = jax.random.split(key, 3)
        xs = jax.random.normal(kx, (batch_size, self.n_points + 1, self.d))
        ws = jax.random.normal(kw, (batch_size, self.d_phi))
        phi = jax.vmap(jax.vmap(self.features))(xs)
        ys = jnp.einsum("bnk,bk->bn", phi, ws) + _label_noise(kn, xs.shape[:2], self.noise)
        return RepresentationBatch(xs=xs, ys=ys, ws=ws)

    def predictors(self) -> dict[str, P.MaskedPredictor]:
        lam = max(self.noise**2, 1e-6)
        return {"ridge_phi": P.in_features(P.ridge(lam), self.features), "ols_x": P.ols, "knn3": P.knn(3)}
