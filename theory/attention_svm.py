"""Att-SVM optimality conditions, symbolically and numerically.

Frobenius problem `min 1/2 |W|_F^2 s.t. <A_k, W> >= 1`, `A_k = u_k z_k^T`: the Lagrangian
`1/2 |W|^2 - sum_k lam_k (<A_k, W> - 1)` is stationary at `W = sum_k lam_k A_k`, so the row space
of W lies in span{z_k} and `rank W <= min(n, d)` (the n inputs share their z_i).
Nuclear problem `min |W|_* s.t. <A_k, W> >= 1`: its dual is `max sum lam s.t. |sum lam_k A_k|_op <= 1,
lam >= 0`, and at optimum `sum lam = |W|_*` (strong duality).
"""

import numpy as np
import sympy as sp


def frobenius_stationarity(d: int = 2, m: int = 2) -> sp.Matrix:
    """Solve dLagrangian/dW = 0 symbolically; returns W* - sum_k lam_k u_k z_k^T (the zero matrix)."""
    W = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
    lam = sp.symbols(f"lam0:{m}", nonnegative=True)
    us = [sp.Matrix(sp.symbols(f"u{k}_0:{d}", real=True)) for k in range(m)]
    zs = [sp.Matrix(sp.symbols(f"z{k}_0:{d}", real=True)) for k in range(m)]
    lagrangian = sum(w**2 for w in W) / 2 - sum(lam[k] * ((us[k].T * W * zs[k])[0] - 1) for k in range(m))
    sol = sp.solve([sp.diff(lagrangian, w) for w in W], list(W), dict=True)[0]
    W_star = W.subs(sol)
    return sp.simplify(W_star - sum((lam[k] * us[k] * zs[k].T for k in range(m)), sp.zeros(d, d)))


def kkt_residuals(W: np.ndarray, lam: np.ndarray, u: np.ndarray, z: np.ndarray, b: np.ndarray) -> dict:
    """Frobenius KKT residuals (all ~0 at the optimum): stationarity, primal and dual feasibility,
    complementary slackness. `u, z`: [constraint, d]; `b`: 1 for real constraints (others ignored)."""
    active = b > 0
    margins = np.einsum("ki,ij,kj->k", u, W, z)
    W_lam = u[active].T @ (lam[active][:, None] * z[active])
    return {
        "stationarity": float(np.abs(W - W_lam).max() / max(np.abs(W).max(), 1e-300)),
        "primal": float(np.maximum(0.0, 1.0 - margins[active]).max()),
        "dual": float(np.maximum(0.0, -lam[active]).max()),
        "complementarity": float(np.abs(lam[active] * (margins[active] - 1.0)).max()),
    }


def nuclear_certificate(W: np.ndarray, lam: np.ndarray, u: np.ndarray, z: np.ndarray, b: np.ndarray) -> dict:
    """Dual feasibility |sum lam A|_op <= 1 and the duality gap |W|_* - sum lam (both ~0 / <= 1)."""
    active = b > 0
    S = u[active].T @ (np.maximum(lam[active], 0.0)[:, None] * z[active])
    nuc = np.linalg.svd(W, compute_uv=False).sum()
    return {"dual_op_norm": float(np.linalg.svd(S, compute_uv=False).max()),
            "relative_gap": float(abs(nuc - lam[active].sum()) / nuc)}
