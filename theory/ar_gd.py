"""One GD step on the in-context AR objective (Zheng et al. 2024) and where it ends as t grows.

Trajectories x_{i+1} = W x_i with W orthogonal, block-diagonal in 2x2 rotations. One step of GD from
W = 0 on L_t(W) = (1/2t) sum_{i=1}^{t} |x_i - W x_{i-1}|^2 gives

    W_hat_t = (eta / t) sum_{i=1}^{t} x_i x_{i-1}^T = eta W S_t,   S_t = (1/t) sum_{i<t} x_i x_i^T,

and one layer of linear causal attention on tokens e_t = (0, x_t, x_{t-1}) computes exactly this with
W_PV = b [I 0 0; 0 0 0; 0 0 0] (value x_i into the output block) and W_KQ[x_{i-1}, x_t] = a I
(`construction`), eta = a b. In a block of radius r a rotation by an angle not in pi Z averages
x x^T to (r^2 / 2) I, so S_t -> diag(u_k I_2) with u_k = r_k^2 / 2 and the relative error of the
prediction W_hat_t x_t of x_{t+1} tends to

    E[(1 - eta u)^2 u] / E[u]:   (1 - eta)^2 for x_1 in {+-1}^d (u = 1),
                                 1 - 4 eta + 6 eta^2 for x_1 ~ N(0, I) (u ~ Exp(1)), at least 1/3.

So with Rademacher x_1 the learned step (eta -> 1) recovers W, while with Gaussian x_1 no step size
takes the error to 0 (Zheng et al.'s Assumption 4.2 fails). `symbolic_limit_error` derives both with sympy.
"""

import numpy as np
import sympy as sp

X1_DISTS = ("rademacher", "gaussian")


def construction(d: int, eta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(W_KQ, W_PV) `[3d, 3d]` of the one-step GD layer on tokens (0, x_t, x_{t-1}) with step `eta`."""
    kq, pv = np.zeros((3 * d, 3 * d)), np.zeros((3 * d, 3 * d))
    kq[2 * d :, d : 2 * d] = np.eye(d)  # key x_{i-1} against query x_t
    pv[:d, d : 2 * d] = eta * np.eye(d)  # value x_i into the output block
    return kq, pv


def gd_predictions(xs: np.ndarray, eta: float = 1.0) -> np.ndarray:
    """`[..., seq, d]` -> row t: (eta / t) sum_{i=1}^{t} x_i x_{i-1}^T x_t, the prediction of x_{t+1} (row 0: 0)."""
    xs = np.asarray(xs, np.float64)
    pairs = np.einsum("...ia,...ib->...iab", xs[..., 1:, :], xs[..., :-1, :])
    cum = np.concatenate([np.zeros_like(pairs[..., :1, :, :]), np.cumsum(pairs, axis=-3)], axis=-3)
    rho = np.maximum(np.arange(xs.shape[-2]), 1)[:, None]
    return eta * np.einsum("...tab,...tb->...ta", cum, xs) / rho


def limit_error(eta: float, x1_dist: str) -> float:
    """The t -> infinity relative error E|x_{t+1} - W_hat_t x_t|^2 / E|x_{t+1}|^2 of one GD step of size eta."""
    if x1_dist == "rademacher":
        return (1.0 - eta) ** 2
    if x1_dist == "gaussian":
        return 1.0 - 4.0 * eta + 6.0 * eta**2
    raise ValueError(f"x1_dist must be one of {X1_DISTS}, got {x1_dist!r}")


def best_limit_eta(x1_dist: str) -> float:
    """The step size minimising `limit_error`: E[u^2] / E[u^3] (1 for Rademacher, 1/3 for Gaussian)."""
    return {"rademacher": 1.0, "gaussian": 1.0 / 3.0}[x1_dist]


def symbolic_limit_error() -> dict[str, sp.Expr]:
    """sympy: E[(1 - eta u)^2 u] / E[u] with u = 1 and with u ~ Exp(1) (half a chi^2_2 block radius)."""
    eta, u = sp.symbols("eta u", positive=True)
    integrand = (1 - eta * u) ** 2 * u
    gaussian = sp.integrate(integrand * sp.exp(-u), (u, 0, sp.oo)) / sp.integrate(u * sp.exp(-u), (u, 0, sp.oo))
    return {"rademacher": sp.expand(integrand.subs(u, 1)), "gaussian": sp.expand(gaussian)}
