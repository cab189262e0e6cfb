"""Att-SVM solvers in JAX (fixed iteration counts, so they `vmap` over instances).

Tarzanagh et al. 2023: with selected token `alpha_i` of input `i`,

$$W^{mm} = \\arg\\min_W \\|W\\| \\;\\text{s.t.}\\; (x_{i\\alpha_i} - x_{it})^\\top W z_i \\ge 1
\\;\\; \\forall i,\\; t \\ne \\alpha_i,$$

Frobenius norm for the W-parametrisation, nuclear norm for (K, Q). Each constraint is
`<A_k, W> >= 1` with the rank-one `A_k = u_k z_k^T`, `u_k = x_{i alpha_i} - x_{it}`.

- Frobenius: the dual is the non-negative QP `min_{lam >= 0} 1/2 lam^T G lam - 1^T lam` with
  `G_kl = (u_k . u_l)(z_k . z_l)`, solved by a Mehrotra predictor-corrector interior-point method;
  `W = sum_k lam_k A_k`, whose row space lies in span{z_i}, so `rank W <= min(n, d)`.
- Nuclear: primal-dual hybrid gradient (Chambolle-Pock) with singular value thresholding.

Both end by scaling W by `1 / min(1, min margin)`, so a returned W meets every constraint; an
instance is `feasible` when the solver's own margins reached 1 - `feas_tol` before that scaling.
Precision: run under `jax.enable_x64(True)` (the `solve_*` wrappers do) for 1e-6 feasibility.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int


class SVMProblem(eqx.Module):
    """Constraints `u_k^T W z_k >= b_k` (`b_k = 1` for real constraints, `-1` for padding)."""

    u: Float[Array, "constraint d"]
    z: Float[Array, "constraint d"]
    b: Float[Array, " constraint"]


class SVMSolution(eqx.Module):
    """`W` (feasible after scaling), its norm `objective`, smallest raw margin, `feasible`, and the
    constraint multipliers `dual` (lambda >= 0; W = sum lambda_k A_k for Frobenius)."""

    W: Float[Array, "d d"]
    objective: Float[Array, ""]
    min_margin: Float[Array, ""]
    feasible: Bool[Array, ""]
    dual: Float[Array, " constraint"]


def att_svm_problem(X: Float[Array, "n T d"], z: Float[Array, "n d"], ids: Int[Array, " n"]) -> SVMProblem:
    """The Att-SVM constraints for selected tokens `ids`: n*T rows, the `t = ids[i]` rows padded."""
    n, T, d = X.shape
    u = (X[jnp.arange(n), ids][:, None, :] - X).reshape(n * T, d)
    zz = jnp.broadcast_to(z[:, None, :], (n, T, d)).reshape(n * T, d)
    selected = (jnp.arange(T)[None, :] == ids[:, None]).reshape(-1)
    u = jnp.where(selected[:, None], 0.0, u)
    return SVMProblem(u, zz, jnp.where(selected, -1.0, 1.0).astype(u.dtype))


def margins(problem: SVMProblem, W: Float[Array, "d d"]) -> Float[Array, " constraint"]:
    """`u_k^T W z_k` for every constraint."""
    return jnp.einsum("ki,ij,kj->k", problem.u, W, problem.z)


def _finish(problem: SVMProblem, W, norm_fn, feas_tol, dual) -> SVMSolution:
    active = problem.b > 0
    m = jnp.where(active, margins(problem, W), jnp.inf).min()
    feasible = jnp.isfinite(m) & (m >= 1.0 - feas_tol) & jnp.all(jnp.isfinite(W))
    W = W / jnp.minimum(1.0, jnp.where(m > 0, m, 1.0))
    return SVMSolution(W, norm_fn(W), m, feasible, jnp.where(active, dual, 0.0))


def svm_fro(problem: SVMProblem, iters: int = 60, feas_tol: float = 1e-6) -> SVMSolution:
    """Frobenius-norm Att-SVM by a primal-dual interior-point method on the dual QP."""
    u, z, b = problem.u, problem.z, problem.b
    G = (u @ u.T) * (z @ z.T)
    m = b.shape[0]
    eye = jnp.eye(m, dtype=G.dtype)
    reg = 1e-13 * (1.0 + jnp.trace(G) / m)

    def max_step(x, dx):
        ratio = jnp.where(dx < 0, -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
        return jnp.minimum(1.0, ratio.min())

    def step(state, _):
        lam, s = state
        r = G @ lam - b - s
        mu = lam @ s / m
        H = G + jnp.diag(s / lam) + reg * eye
        chol = jax.scipy.linalg.cho_factor(H)
        solve = lambda rhs: jax.scipy.linalg.cho_solve(chol, rhs)  # noqa: E731
        dlam_a = solve(-r - s)
        ds_a = -s - (s / lam) * dlam_a
        alpha_a = jnp.minimum(max_step(lam, dlam_a), max_step(s, ds_a))
        mu_a = (lam + alpha_a * dlam_a) @ (s + alpha_a * ds_a) / m
        sigma = (mu_a / mu) ** 3
        comp = sigma * mu - dlam_a * ds_a
        dlam = solve(-r - s + comp / lam)
        ds = (-lam * s + comp - s * dlam) / lam
        alpha = 0.99 * jnp.minimum(max_step(lam, dlam), max_step(s, ds))
        new = (lam + alpha * dlam, s + alpha * ds)
        done = (mu < 1e-14) | ~jnp.all(jnp.isfinite(new[0]))  # converged, or stop before NaNs spread
        return jax.tree.map(lambda a, o: jnp.where(done, o, a), new, state), None

    ones = jnp.ones_like(b)
    (lam, _), _ = jax.lax.scan(step, (ones, ones), None, length=iters)
    W = u.T @ (lam[:, None] * z)
    return _finish(problem, W, jnp.linalg.norm, feas_tol, lam)


def _svt(W, tau):
    U, S, Vt = jnp.linalg.svd(W, full_matrices=False)
    return (U * jnp.maximum(S - tau, 0.0)) @ Vt


def nuclear_norm(W: Float[Array, "d d"]) -> Float[Array, ""]:
    return jnp.linalg.svd(W, compute_uv=False).sum()


def svm_nuc(problem: SVMProblem, iters: int = 20000, feas_tol: float = 1e-6) -> SVMSolution:
    """Nuclear-norm Att-SVM by PDHG: `y <- min(y + sigma (A W_bar - b), 0)`,
    `W <- SVT(W - tau A^T y, tau)`, `W_bar = 2 W_new - W`, with `tau = sigma = 0.99 / ||A||`."""
    u, z, b = problem.u, problem.z, problem.b
    G = (u @ u.T) * (z @ z.T)
    norm_a = jnp.sqrt(jnp.linalg.eigvalsh(G)[-1])
    tau = sigma = 0.99 / norm_a
    A = lambda W: margins(problem, W)  # noqa: E731
    At = lambda y: u.T @ (y[:, None] * z)  # noqa: E731

    def step(state, _):
        W, W_bar, y = state
        y = jnp.minimum(y + sigma * (A(W_bar) - b), 0.0)
        W_new = _svt(W - tau * At(y), tau)
        return (W_new, 2 * W_new - W, y), None

    d = u.shape[1]
    W0 = jnp.zeros((d, d), u.dtype)
    (W, _, y), _ = jax.lax.scan(step, (W0, W0, jnp.zeros_like(b)), None, length=iters)
    return _finish(problem, W, nuclear_norm, feas_tol, -y)


def matrix_rank(W: Float[Array, "d d"], tol: float = 1e-7) -> Int[Array, ""]:
    """Singular values above `tol` (numpy's `matrix_rank(W, tol=...)`, as the authors count rank)."""
    return (jnp.linalg.svd(W, compute_uv=False) > tol).sum()


def solve_att_svm(
    X: Float[Array, "*batch n T d"], z: Float[Array, "*batch n d"], ids: Int[Array, "*batch n"], *,
    norm: str = "fro", iters: int | None = None,
) -> SVMSolution:
    """Att-SVM for one instance or a leading batch of instances (vmapped), in float64; the fields of
    the returned `SVMSolution` are NumPy float64 arrays."""
    if norm not in ("fro", "nuc"):
        raise ValueError(f"solve_att_svm: `norm` must be 'fro' or 'nuc', got {norm!r}")
    X, z, ids = np.asarray(X, np.float64), np.asarray(z, np.float64), np.asarray(ids)
    if X.ndim < 3 or z.shape != X.shape[:-2] + X.shape[-1:] or ids.shape != X.shape[:-2]:
        raise ValueError(f"solve_att_svm: need X [*batch, n, T, d], z [*batch, n, d], ids [*batch, n]; "
                         f"got {X.shape}, {z.shape}, {ids.shape}")
    with jax.enable_x64(True):
        return jax.tree.map(np.asarray, _solve_jit(jnp.asarray(X), jnp.asarray(z), jnp.asarray(ids), norm, iters))


@eqx.filter_jit
def _solve_jit(X, z, ids, norm, iters):
    solver = svm_fro if norm == "fro" else svm_nuc
    kwargs = {} if iters is None else {"iters": iters}
    fn = lambda X, z, ids: solver(att_svm_problem(X, z, ids), **kwargs)  # noqa: E731
    for _ in range(X.ndim - 3):
        fn = jax.vmap(fn)
    return fn(X, z, ids)
