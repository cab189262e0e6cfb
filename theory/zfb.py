"""The global minimiser of one linear self-attention layer on Gaussian in-context regression
(Zhang, Frei and Bartlett 2024), its prediction, and its test error as a function of the test prompt
length M, with and without covariate shift.

Setting: x ~ N(0, Lambda), w ~ N(0, I_d), y = w^T x; training prompts have N points. At the global
minimum W^{PV}_{22} W^{KQ}_{11} = Gamma^{-1} with

    Gamma = (1 + 1/N) Lambda + tr(Lambda) / N * I,

and the prediction on a prompt of M points is y_hat = x_q^T Gamma^{-1} (1/M) sum_i y_i x_i. With
S = (1/M) sum_i x_i x_i^T and test inputs x ~ N(0, Lambda'), E[S] = Lambda' and
E[S^2] = Lambda' Gamma'_M (Gaussian fourth moments), Gamma'_M = (1 + 1/M) Lambda' + tr(Lambda')/M I, so

    E(y_hat - y)^2 = tr Lambda' - 2 tr(A Lambda'^2) + tr(Lambda' A Lambda' Gamma'_M A),  A = Gamma^{-1}.

`symbolic_minimiser(d, N)` derives Gamma^{-1} for diagonal Lambda with sympy: it minimises the
expected loss over a diagonal preconditioner, taking the Gaussian moments entry by entry.
"""

import numpy as np
import sympy as sp
from jaxtyping import Array, Float


def gamma(lam: Float[Array, "d d"], n: int) -> np.ndarray:
    """Gamma = (1 + 1/N) Lambda + tr(Lambda)/N I (the training prompt length N)."""
    lam = np.asarray(lam, np.float64)
    return (1 + 1 / n) * lam + np.trace(lam) / n * np.eye(lam.shape[0])


def preconditioner(lam: Float[Array, "d d"], n: int) -> np.ndarray:
    """The learned W^{PV}_{22} W^{KQ}_{11} at the global minimum: Gamma^{-1}."""
    return np.linalg.inv(gamma(lam, n))


def predict(
    xs: Float[Array, "m d"], ys: Float[Array, " m"], x_query: Float[Array, " d"], lam: Float[Array, "d d"], n: int
) -> np.ndarray:
    """y_hat = x_q^T Gamma^{-1} (1/M) sum_i y_i x_i on a prompt of M points."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    return np.asarray(x_query) @ preconditioner(lam, n) @ (xs.T @ ys) / xs.shape[0]


def expected_error(lam: Float[Array, "d d"], n: int, m: int | float, lam_test: Float[Array, "d d"] | None = None) -> float:
    """E(y_hat - y)^2 of the global minimiser (trained at length N) on prompts of length M (inf allowed).

    `lam_test` is the test covariance Lambda' (covariate shift); default: the training Lambda.
    """
    lam = np.asarray(lam, np.float64)
    lt = lam if lam_test is None else np.asarray(lam_test, np.float64)
    a = preconditioner(lam, n)
    inv_m = 0.0 if np.isinf(m) else 1.0 / m
    gamma_m = (1 + inv_m) * lt + np.trace(lt) * inv_m * np.eye(lt.shape[0])
    return float(np.trace(lt) - 2 * np.trace(a @ lt @ lt) + np.trace(lt @ a @ lt @ gamma_m @ a))


def isotropic_expected_error(d: int, n: int, m: int | float) -> float:
    """The Lambda = I case in closed form: d((d+1)/(N+d+1))^2 + d(d+1) / (M (1 + (d+1)/N)^2)."""
    inv_m = 0.0 if np.isinf(m) else 1.0 / m
    return d * ((d + 1) / (n + d + 1)) ** 2 + d * (d + 1) * inv_m / (1 + (d + 1) / n) ** 2


def _gaussian_moment(powers: dict, variances: dict) -> sp.Expr:
    """E prod_j z_j^{p_j} for independent centred normals z_j with the given variances."""
    out = sp.Integer(1)
    for z, p in powers.items():
        if p % 2:
            return sp.Integer(0)
        out *= sp.factorial2(p - 1) * variances[z] ** (p // 2)
    return out


def _expectation(expr: sp.Expr, variances: dict) -> sp.Expr:
    """Expectation of a polynomial in independent centred normals, monomial by monomial."""
    poly = sp.Poly(sp.expand(expr), *variances)
    return sum(c * _gaussian_moment(dict(zip(variances, mon)), variances) for mon, c in poly.terms())


def symbolic_minimiser(d: int = 2, n: int = 2) -> tuple[sp.Matrix, sp.Matrix]:
    """The diagonal preconditioner A minimising E(x_q^T A (1/N) sum_i y_i x_i - x_q^T w)^2 for
    Lambda = diag(l_1..l_d), derived symbolically, next to the closed form Gamma^{-1}.

    Expectations are taken over x_q, w and the N points x_i exactly (Gaussian moments of every
    monomial); A's diagonal solves the stationarity equations. Returns `(derived, closed_form)`."""
    ls = sp.symbols(f"l1:{d + 1}", positive=True)
    a = sp.symbols(f"a1:{d + 1}")
    w = sp.symbols(f"w1:{d + 1}")
    xq = sp.symbols(f"q1:{d + 1}")
    xs = [sp.symbols(f"x{i}_1:{d + 1}") for i in range(n)]
    variances = {**{wj: sp.Integer(1) for wj in w}, **{q: l for q, l in zip(xq, ls)}}
    for x in xs:
        variances.update({xj: l for xj, l in zip(x, ls)})
    h = [sum(sum(wk * xk for wk, xk in zip(w, x)) * x[j] for x in xs) / n for j in range(d)]
    # E over x_q first (E q_j q_k = l_j delta_jk) leaves sum_j l_j (a_j h_j - w_j)^2.
    loss = sum(l * (aj * hj - wj) ** 2 for l, aj, hj, wj in zip(ls, a, h, w))
    expected = sp.expand(_expectation(loss, {s: v for s, v in variances.items() if s not in xq}))
    solution = sp.solve([sp.diff(expected, aj) for aj in a], a, dict=True)[0]
    derived = sp.diag(*[sp.simplify(solution[aj]) for aj in a])
    lam = sp.diag(*ls)
    closed = ((1 + sp.Rational(1, n)) * lam + lam.trace() / n * sp.eye(d)).inv()
    return derived, closed
